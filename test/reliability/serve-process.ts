// `domsec serve` as a child process that a reliability test can kill with SIGKILL at any moment and
// start again on the same state directory; it keeps the engine's JSON log lines for assertions.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { CLI } from '../support/cli.js';
import { eventually } from '../support/eventually.js';

export class ServeProcess {
  stdout = '';
  stderr = '';
  private readonly child: ChildProcessWithoutNullStreams;
  private readonly exited: Promise<number | string>;

  constructor(args: string[], env: Record<string, string> = {}) {
    this.child = spawn(process.execPath, [CLI, 'serve', ...args], {
      env: { ...process.env, NO_COLOR: '1', ...env },
    });
    this.child.stdout.on('data', (chunk: Buffer) => (this.stdout += chunk.toString()));
    this.child.stderr.on('data', (chunk: Buffer) => (this.stderr += chunk.toString()));
    this.exited = new Promise((resolve) =>
      this.child.once('close', (code, signal) => resolve(code ?? signal ?? -1)),
    );
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** Resolves once the engine says it is ready; rejects when it exits first or after the bound. */
  async ready(timeoutMs = 20_000): Promise<void> {
    const output = () => `${this.stdout}\n${this.stderr}`;
    await eventually(
      'serve to be ready',
      () => {
        if (/domsec engine ready/.test(this.stdout)) return true;
        if (this.child.exitCode !== null || this.child.signalCode !== null)
          throw new Error(`serve exited before it was ready:\n${output()}`);
        return false;
      },
      { timeoutMs, intervalMs: 25, explain: output },
    );
  }

  /** The engine's structured log lines (stderr), parsed; lines that are not JSON are skipped. */
  events(): Record<string, unknown>[] {
    return this.stderr.split('\n').flatMap((line) => {
      try {
        const value: unknown = JSON.parse(line);
        return typeof value === 'object' && value !== null
          ? [value as Record<string, unknown>]
          : [];
      } catch {
        return [];
      }
    });
  }

  /** kill -9: no handler runs, nothing is flushed; resolves once the process is gone. */
  async kill(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
    await this.exited;
  }

  /** SIGTERM, then SIGKILL after the bound; resolves with the exit code (or signal). */
  async stop(timeoutMs = 10_000): Promise<number | string> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    const result = await this.exited;
    clearTimeout(timer);
    return result;
  }
}
