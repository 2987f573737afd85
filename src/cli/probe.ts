// domsec probe DOMAIN: checks domain security towards a partner step by step (MX, connect,
// STARTTLS, our certificate, theirs), or another domain's DANE and MTA-STS, with the manifests'
// configuration; exit 0 only if it works.
import type { Command } from 'commander';
import type { ProbeReport } from '../engine/index.js';
import { CliError, commandAction, EXIT } from './errors.js';
import { fileOption, loadOrFail, manifestPaths } from './manifests.js';
import { formatOption, processOutput, type Output } from './output.js';

export interface ProbeCommandOptions {
  file: string[];
  output: 'text' | 'json';
  timeout: number; // seconds
}

export async function probeCommand(
  domain: string,
  options: ProbeCommandOptions,
  out: Output,
): Promise<number> {
  const { config } = await loadOrFail(options.file, out);
  // Loaded here: the engine's modules would slow every other command's start.
  const { buildGeneration, probeDomain } = await import('../engine/index.js');
  const generation = buildGeneration(config, 0);
  const report = await probeDomain(generation, domain, { timeoutMs: options.timeout * 1000 });
  out.stdout(
    options.output === 'json'
      ? `${JSON.stringify({ formatVersion: 1, ...report }, null, 2)}\n`
      : renderProbe(report),
  );
  return report.ok ? EXIT.ok : EXIT.error;
}

/** The checklist: one line per step, grouped by next hop, then the verdict. */
export function renderProbe(report: ProbeReport): string {
  const policy = report.kind === 'tls-policy';
  const lines = [`${policy ? 'TLS' : 'Domain security'} to ${report.domain}`];
  let hop: string | undefined;
  for (const step of report.steps) {
    if (step.hop !== hop && step.hop !== undefined) lines.push(`  next hop ${step.hop}`);
    hop = step.hop;
    const indent = step.hop === undefined ? '  ' : '    ';
    lines.push(`${indent}[${step.ok ? 'pass' : 'FAIL'}] ${step.step}: ${step.detail}`);
  }
  lines.push(
    report.ok
      ? `OK: mail to ${report.domain} would be sent ${policy ? 'as its TLS policy says' : 'domain-secured'}`
      : `FAILED: ${policy ? 'TLS' : 'domain security'} to ${report.domain} would not work`,
  );
  return `${lines.join('\n')}\n`;
}

/** Seconds, as a number a timer takes: "abc", "0" or "1e9" would reach Node as a RangeError. */
export function parseTimeout(text: string): number {
  const seconds = /^\d+(?:\.\d+)?$/.test(text) ? Number(text) : Number.NaN;
  if (!(seconds >= 0.1 && seconds <= 600))
    throw new CliError(`--timeout ${text} is not a number of seconds from 0.1 to 600`);
  return seconds;
}

export function register(program: Command): void {
  program
    .command('probe <domain>')
    .description('test domain security against a partner, step by step')
    .addOption(fileOption())
    .addOption(formatOption())
    .option('--timeout <seconds>', 'bound on each network wait (0.1 to 600)', parseTimeout, 10)
    .action(
      commandAction(
        (domain: string, o: { file?: string[]; output: 'text' | 'json'; timeout: number }) =>
          probeCommand(
            domain,
            { ...o, file: manifestPaths(o.file, { output: o.output, out: processOutput() }) },
            processOutput(),
          ),
      ),
    );
}
