// The demo's processes: the domsec CLI run as a user would run it, and engines it starts and stops.
import { spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { fileURLToPath } from 'node:url';

const here = fileURLToPath(import.meta.url);
// Run the CLI the way this demo runs: from src/ under tsx, or built in dist/.
const cli = here.endsWith('.ts')
  ? [process.execPath, '--import', 'tsx', fileURLToPath(new URL('../cli/main.ts', import.meta.url))]
  : [process.execPath, fileURLToPath(new URL('../cli/main.js', import.meta.url))];

export interface CliRun {
  args: string[];
  code: number;
  stdout: string;
  stderr: string;
}

export function runCli(args: string[], token?: string, timeoutMs = 60_000): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const [command = process.execPath, ...prefix] = cli;
    const child = spawn(command, [...prefix, ...args], {
      env: {
        ...process.env,
        ...(token === undefined ? {} : { DOMSEC_TOKEN: token }),
        NO_COLOR: '1',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: timeoutMs,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.once('error', reject);
    child.once('close', (code) => resolve({ args, code: code ?? 1, stdout, stderr }));
  });
}

export class DemoEngine {
  private constructor(
    readonly name: string,
    private readonly child: ReturnType<typeof spawn>,
    private readonly exited: Promise<number>,
  ) {}

  /** Starts `domsec serve` and resolves once it says it is ready (bounded). */
  static async start(
    name: string,
    args: string[],
    token: string,
    logFile: string,
    timeoutMs = 20_000,
  ): Promise<DemoEngine> {
    const [command = process.execPath, ...prefix] = cli;
    const child = spawn(command, [...prefix, 'serve', ...args], {
      env: { ...process.env, DOMSEC_TOKEN: token, NO_COLOR: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const log = createWriteStream(logFile);
    child.stderr.pipe(log);
    const exited = new Promise<number>((resolve) =>
      child.once('close', (code) => resolve(code ?? 1)),
    );
    await new Promise<void>((resolve, reject) => {
      let seen = '';
      const timer = setTimeout(
        () =>
          reject(new Error(`engine ${name} did not start within ${timeoutMs} ms (see ${logFile})`)),
        timeoutMs,
      );
      child.stdout.on('data', (chunk: Buffer) => {
        seen += chunk.toString();
        if (seen.includes('domsec engine ready')) {
          clearTimeout(timer);
          resolve();
        }
      });
      void exited.then((code) => {
        clearTimeout(timer);
        reject(new Error(`engine ${name} exited with code ${code} (see ${logFile})`));
      });
    });
    return new DemoEngine(name, child, exited);
  }

  async stop(timeoutMs = 10_000): Promise<void> {
    if (this.child.exitCode !== null) return;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    await this.exited;
    clearTimeout(timer);
  }
}
