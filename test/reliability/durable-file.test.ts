// writeFileDurably: what it wrote is there whole once it returned, even when the process is killed
// with SIGKILL at once; and before returning it has fsync'ed the file, renamed it over the target
// and fsync'ed the directory that holds the rename (watched with strace, as a power loss cannot be
// made in a test: the system calls are the evidence).
import { spawn } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tempDir } from '../support/tmp.js';

const MODULE = pathToFileURL(join(import.meta.dirname, '../../src/durable-file.ts')).href;

/** Runs a script in a child Node (optionally under strace); resolves once it died of SIGKILL. */
function runKilled(script: string, prefix: string[] = []): Promise<string> {
  const node = [process.execPath, '--import', 'tsx', '--input-type=module', '-e', script];
  const [command, ...args] = [...prefix, ...node] as [string, ...string[]];
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { timeout: 30_000 });
    let out = '';
    let err = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
    child.once('error', reject);
    child.once('close', (code, signal) =>
      signal === 'SIGKILL' || code === 128 + 9
        ? resolve(out)
        : reject(new Error(`ended with ${code ?? signal}: ${out} ${err}`)),
    );
  });
}

/** Writes the target with text (a JavaScript expression), says so on stdout, and is killed before anything else can run. */
function writerScript(target: string, text: string): string {
  return [
    `import { writeFileDurably } from ${JSON.stringify(MODULE)};`,
    `await writeFileDurably(${JSON.stringify(target)}, ${text});`,
    `process.stdout.write('written\\n');`,
    `process.kill(process.pid, 'SIGKILL');`,
  ].join('\n');
}

test('a file written durably is there whole after the writer is killed -9, over an old one, with no temporary left', async () => {
  const dir = await tempDir();
  try {
    const target = join(dir.path, 'state.json');
    await runKilled(writerScript(target, "'old'"));
    const made = "JSON.stringify({ big: 'x'.repeat(1 << 20) })";
    assert.equal(await runKilled(writerScript(target, made)), 'written\n');
    assert.equal(await readFile(target, 'utf8'), JSON.stringify({ big: 'x'.repeat(1 << 20) }));
    assert.deepEqual(await readdir(dir.path), ['state.json']);
  } finally {
    await dir.remove();
  }
});

test('before it returns, the file is fsynced, renamed over the target, then its directory opened read-only and fsynced', async () => {
  const dir = await tempDir();
  try {
    const target = join(dir.path, 'state.json');
    const trace = join(dir.path, 'trace.txt');
    const strace = ['strace', '-f', '-qq', '-o', trace];
    const calls = ['-e', 'trace=openat,rename,renameat,renameat2,fsync,fdatasync,write'];
    await runKilled(writerScript(target, "'kept'"), [...strace, ...calls]);
    assert.equal(await readFile(target, 'utf8'), 'kept');
    const lines = (await readFile(trace, 'utf8')).split('\n');
    const at = (from: number, match: (line: string) => boolean, what: string): number => {
      const index = lines.findIndex((line, i) => i > from && match(line));
      assert.ok(index > from, `${what} after line ${from} of:\n${lines.join('\n')}`);
      return index;
    };
    const temporary = `${target}.`;
    const renamed = at(
      -1,
      (l) =>
        /\brename(at2?)?\(/.test(l) && l.includes(`"${temporary}`) && l.includes(`"${target}"`),
      'the rename of the temporary file over the target',
    );
    // The temporary file's own fsync comes before its rename.
    const fileOpened = lines.findIndex(
      (l) => l.includes(`openat(AT_FDCWD, "${temporary}`) && l.includes('O_RDONLY'),
    );
    assert.ok(fileOpened >= 0 && fileOpened < renamed, 'the temporary file opened to be synced');
    const fileFd = /= (\d+)$/.exec(lines[fileOpened] ?? '')?.[1];
    at(fileOpened, (l) => l.includes(`fsync(${fileFd}`), 'the temporary file fsynced');
    assert.ok(
      lines.findIndex((l, i) => i > fileOpened && l.includes(`fsync(${fileFd}`)) < renamed,
      'the file is synced before the rename',
    );
    const dirOpened = at(
      renamed,
      (l) => l.includes(`openat(AT_FDCWD, "${dir.path}", O_RDONLY`) && /= \d+$/.test(l),
      'the directory opened read-only',
    );
    const dirFd = /= (\d+)$/.exec(lines[dirOpened] ?? '')?.[1];
    const synced = at(dirOpened, (l) => l.includes(`fsync(${dirFd}`), 'the directory fsynced');
    at(synced, (l) => l.includes('write(1, "written\\n"'), 'the caller told it was written');
  } finally {
    await dir.remove();
  }
});
