// domsec tlsrpt show [DOMAIN]: TLS reporting's results of a UTC day (today unless --date) as kept
// in the state directory, per policy domain: sessions that succeeded, failures by RFC 8460 result
// type with the MX host and addresses, and whether that day's report went out. Read from the files
// the engine writes (every 10 s), so today's last few seconds may not be there yet.
import type { Command } from 'commander';
import { parseDomainName } from '../domain-name.js';
import type { DomainDay, ReportState } from '../engine/index.js';
import { CliError, commandAction, EXIT } from './errors.js';
import { formatOption, jsonText, processOutput, type Output } from './output.js';

export interface TlsRptShowOptions {
  state: string;
  date?: string;
  output: 'text' | 'json';
}

export async function tlsrptShowCommand(
  domain: string | undefined,
  options: TlsRptShowOptions,
  out: Output,
  now: () => Date = () => new Date(),
): Promise<number> {
  // Loaded here: the engine's modules would slow every other command's start.
  const { readDomainDay, readTlsReportState, resultDomains, utcDay } =
    await import('../engine/index.js');
  const day = options.date ?? utcDay(now());
  if (!/^\d{4}-\d{2}-\d{2}$/.test(day) || Number.isNaN(Date.parse(`${day}T00:00:00Z`)))
    throw new CliError(`--date ${JSON.stringify(day)} is not a day (YYYY-MM-DD)`);
  let domains;
  if (domain === undefined) domains = await resultDomains(options.state, day);
  else {
    const parsed = parseDomainName(domain);
    if (!parsed.ok)
      throw new CliError(`${JSON.stringify(domain)} is not a domain name: ${parsed.reason}`);
    domains = [parsed.name];
  }
  const shown: { results: DomainDay; report: ReportState | null }[] = [];
  for (const name of domains) {
    const results = await readDomainDay(options.state, day, name);
    if (results === undefined) continue;
    shown.push({ results, report: (await readTlsReportState(options.state, day, name)) ?? null });
  }
  if (options.output === 'json') {
    out.stdout(jsonText({ day, domains: shown }));
    return EXIT.ok;
  }
  if (shown.length === 0) {
    out.stdout(
      `No TLS results on ${day}${domain === undefined ? '' : ` for ${domains[0] ?? domain}`}.\n`,
    );
    return EXIT.ok;
  }
  for (const { results, report } of shown) {
    const reportText =
      report === null
        ? 'not reported yet'
        : `report ${report.reportId}: ${report.outcome}${report.delivered.length > 0 ? ` to ${report.delivered.join(', ')}` : ''}${report.lastError === undefined ? '' : ` (last error: ${report.lastError})`}`;
    out.stdout(`${results.domain} on ${day}: ${reportText}\n`);
    for (const policy of results.policies) {
      out.stdout(
        `  policy ${policy.policyType}: ${policy.success} successful, ${policy.failure} failed\n`,
      );
      for (const failure of policy.failures)
        out.stdout(
          `    ${failure.resultType} x${failure.count}: mx ${failure.receivingMxHostname ?? '-'} ip ${failure.receivingIp ?? '-'} from ${failure.sendingMtaIp ?? '-'}${failure.failureReasonCode === undefined ? '' : ` (${failure.failureReasonCode})`}\n`,
        );
    }
  }
  return EXIT.ok;
}

export function register(program: Command, out: Output = processOutput()): void {
  const tlsrpt = program
    .command('tlsrpt')
    .description('TLS reporting (RFC 8460) results and reports');
  tlsrpt
    .command('show [domain]')
    .description("a UTC day's TLS results per policy domain (today unless --date), and its report")
    .option('--state <dir>', 'the engine state directory', 'var/domsec')
    .option('--date <YYYY-MM-DD>', 'the UTC day (default: today)')
    .addOption(formatOption())
    .action(
      commandAction(async (domain: string | undefined, o: TlsRptShowOptions) =>
        tlsrptShowCommand(domain, o, out),
      ),
    );
}
