// The domsec CLI as a user runs it: the built dist/cli/main.js in a child process (npm test builds first).
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { ControlError } from '../../src/control/client.js';
import { CliError } from '../../src/cli/errors.js';
import type { Output } from '../../src/cli/output.js';
import { eventually } from './eventually.js';

export const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));

/** Records the admin token a command gets in the suite's secret ledger (test/run.mjs greps for it). */
function recordToken(env: Record<string, string | undefined>): void {
  const ledger = process.env.DOMSEC_SECRET_LEDGER;
  const token = env.DOMSEC_TOKEN ?? '';
  if (ledger === undefined || ledger === '' || token.length < 16) return;
  const origin = (process.argv[1] ?? '-').replace(/\s/g, '_');
  appendFileSync(join(ledger, `${process.pid}.txt`), `token - ${origin} ${token}\n`);
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function domsec(
  args: string[],
  env: Record<string, string> = {},
  timeoutMs = 30_000,
): Promise<CliResult> {
  recordToken({ ...process.env, ...env });
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      env: { ...process.env, NO_COLOR: '1', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: timeoutMs,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

/** A long-running command (watch, serve) whose output the test reads while it runs. */
export class RunningCli {
  stdout = '';
  stderr = '';
  private readonly child: ChildProcessWithoutNullStreams;
  private readonly closed: Promise<number>;

  constructor(args: string[], env: Record<string, string> = {}) {
    recordToken({ ...process.env, ...env });
    this.child = spawn(process.execPath, [CLI, ...args], {
      env: { ...process.env, NO_COLOR: '1', ...env },
    });
    this.child.stdout.on('data', (chunk: Buffer) => (this.stdout += chunk.toString()));
    this.child.stderr.on('data', (chunk: Buffer) => (this.stderr += chunk.toString()));
    this.closed = new Promise((resolve) => this.child.once('close', (code) => resolve(code ?? -1)));
  }

  async waitForOutput(pattern: RegExp, timeoutMs = 15_000): Promise<void> {
    const output = () => `output:\n${this.stdout}\n${this.stderr}`;
    await eventually(
      `${pattern} in the output`,
      () => {
        if (pattern.test(this.stdout)) return true;
        if (this.child.exitCode !== null) throw new Error(`no ${pattern} in ${output()}`);
        return false;
      },
      { timeoutMs, explain: output },
    );
  }

  async stop(): Promise<number> {
    if (this.child.exitCode === null) this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 5_000);
    const code = await this.closed;
    clearTimeout(timer);
    return code;
  }
}

/** A command's register(), as src/cli/{plan,apply,...}.ts export it. */
export type RegisterCommand = (program: Command, out: Output) => void;

/**
 * The CLI in this process: a commander program with the given commands, errors mapped to exit
 * codes as main.ts maps them. For commands main.ts does not wire yet, and for interactive cases.
 */
export async function domsecInProcess(
  commands: RegisterCommand[],
  args: string[],
  options: { interactive?: boolean } = {},
): Promise<CliResult> {
  let stdout = '';
  let stderr = '';
  const out: Output = {
    stdout: (text) => (stdout += text),
    stderr: (text) => (stderr += text),
    color: false,
    interactive: options.interactive ?? false,
  };
  const program = new Command('domsec').exitOverride();
  for (const register of commands) register(program, out);
  const previous = process.exitCode;
  process.exitCode = undefined;
  let code: number;
  try {
    await program.parseAsync(args, { from: 'user' });
    code = Number(process.exitCode ?? 0);
  } catch (error) {
    if (!(error instanceof CliError || error instanceof ControlError)) throw error;
    stderr += `domsec: ${error.message}\n`;
    code = error instanceof CliError ? error.exitCode : 1;
  } finally {
    process.exitCode = previous;
  }
  return { code, stdout, stderr };
}
