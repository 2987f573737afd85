// Runs a module script in a child Node (with tsx) that ends by killing itself with SIGKILL, as a
// crash would; resolves with what it wrote to stdout, and fails when it ended any other way.
import { spawn } from 'node:child_process';

export function runUntilKilled(script: string, timeoutMs = 20_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', '--input-type=module', '-e', script],
      {
        timeout: timeoutMs,
      },
    );
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.once('error', reject);
    child.once('close', (_code, signal) =>
      signal === 'SIGKILL' ? resolve(out) : reject(new Error(`exited without SIGKILL: ${out}`)),
    );
  });
}
