// docs/tutorial.md, run as written: every `$ ` line of its console blocks goes to one bash with
// job control and aliases on (as in a terminal), from the directory holding a copy of the
// checkout named domsec, in a network namespace of its own, so the tutorial's fixed addresses
// (127.0.0.2 and .3, ports 2525, 2587 and 8025) are free whatever else runs. What each command
// prints is compared with the lines the tutorial shows under it: `...` alone on a line stands for
// any lines, inside a line for any text; line ends (a Maildir file's CRLF), times, dates, ids,
// client ports, fingerprints and Maildir file names are normalised. One line is not run: `npm ci`, which this suite runs after; the copy gets the
// checkout's node_modules and dist/ instead of a second install from the registry.
import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  alive,
  copyCheckout,
  REPOSITORY,
  sleep,
  startedEngine,
  userEnvironment,
} from '../support/docs-session.js';
import { tempDir, type TempDir } from '../support/tmp.js';

const TUTORIAL_MS = 80_000;

interface Step {
  command: string;
  shown: string[];
}

/** Every `$ ` line of docs/tutorial.md's console blocks, with the lines shown under it. */
export function tutorialSteps(page: string): Step[] {
  const steps: Step[] = [];
  for (const block of page.matchAll(/^```console\n([\s\S]*?)^```$/gm)) {
    for (const line of (block[1] ?? '').split('\n')) {
      if (line.startsWith('$ ')) steps.push({ command: line.slice(2), shown: [] });
      else steps.at(-1)?.shown.push(line);
    }
    const last = steps.at(-1);
    while (last !== undefined && last.shown.at(-1) === '') last.shown.pop();
  }
  return steps;
}

/** What differs between two runs: times, dates, ids, client ports, fingerprints, Maildir names. */
function normalise(text: string): string {
  return (
    text
      .replace(/\r$/gm, '')
      .replace(/[ \t]+$/gm, '')
      .replace(/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z/g, '<time>')
      .replace(/\w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d [+-]\d{4}/g, '<date>')
      .replace(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g, '<uuid>')
      .replace(/(?:[0-9A-F]{2}:){31}[0-9A-F]{2}/g, '<fingerprint>')
      // A fingerprint the tutorial shortens: FB:41:7F:...:F9:FD.
      .replace(/(?:[0-9A-F]{2}:)+\.\.\.(?::[0-9A-F]{2})+/g, '<fingerprint>')
      // A Maildir file: its time, unique part, host and size.
      .replace(/\/(new|cur)\/\d+\.[^\s/]+/g, '/$1/<file>')
      .replace(/127\.0\.0\.1:\d+/g, '127.0.0.1:<port>')
      // Session and message ids, random (and not always with a digit in them).
      .replace(/^([^,\n]*,[\w-]+,)[\w-]+(,\d+,)/gm, '$1<session>$2')
      .replace(/"session":"[^"]*"/g, '"session":"<session>"')
      .replace(/ id [\w-]+;/g, ' id <id>;')
      .replace(/queued as [\w.-]+/g, 'queued as <id>')
      .replace(/\b(?=[A-Za-z0-9]*\d)(?=[A-Za-z0-9]*[A-Za-z])[A-Za-z0-9]{10,}\b/g, '<id>')
  );
}

/**
 * Whether the lines match the shown ones: `...` alone on a line (indented or not) stands for any
 * lines, inside a line for any text.
 */
export function matchesShown(actual: string[], shown: string[]): boolean {
  const line = (text: string, pattern: string) =>
    new RegExp(
      `^${pattern
        .split('...')
        .map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
        .join('.*')}$`,
    ).test(text);
  const match = (a: number, s: number): boolean => {
    if (s === shown.length) return a === actual.length;
    if (shown[s]?.trim() === '...') {
      for (let next = a; next <= actual.length; next += 1) if (match(next, s + 1)) return true;
      return false;
    }
    return a < actual.length && line(actual[a] ?? '', shown[s] ?? '') && match(a + 1, s + 1);
  };
  return match(0, 0);
}

describe('docs/tutorial.md, as written', () => {
  let dir: TempDir;
  let checkout: string;
  let io: string;
  let shell: ChildProcessWithoutNullStreams | undefined;
  const engines: number[] = [];

  before(async () => {
    dir = await tempDir('domsec-tutorial-');
    checkout = join(dir.path, 'domsec');
    io = join(dir.path, 'io');
    await mkdir(io);
    await copyCheckout(checkout, (inside) => inside[0] === 'examples' && inside[2] === 'pki');
  });

  after(async () => {
    for (const pid of engines) if (alive(pid)) process.kill(pid, 'SIGKILL');
    if (shell !== undefined && shell.exitCode === null) shell.kill('SIGKILL');
    await dir.remove();
  });

  it(
    'prints under each command what the tutorial shows, and stops both engines',
    { timeout: TUTORIAL_MS + 5_000 },
    async () => {
      const steps = tutorialSteps(await readFile(join(REPOSITORY, 'docs', 'tutorial.md'), 'utf8'));
      assert.equal(steps[1]?.command.replace(/\s+#.*$/, ''), 'npm ci', 'the second step is npm ci');
      const env = userEnvironment();
      env.PATH = `${env.PATH ?? ''}:/usr/local/sbin:/usr/sbin:/sbin`;
      // A network namespace of its own, its loopback up; unshare and bash exec, so this PID is
      // the shell's.
      const bash = spawn(
        'unshare',
        ['-n', 'bash', '-c', 'ip link set lo up && exec bash --norc --noprofile -s'],
        { cwd: dir.path, env },
      );
      shell = bash;
      let shellOutput = '';
      bash.stdout.on('data', (chunk: Buffer) => (shellOutput += chunk.toString()));
      bash.stderr.on('data', (chunk: Buffer) => (shellOutput += chunk.toString()));
      // As a terminal's shell: job control, aliases, and Ctrl-C ending the job, not the shell.
      bash.stdin.write('set -m\nshopt -s expand_aliases\ntrap : INT\n');
      const deadline = Date.now() + TUTORIAL_MS;
      const remaining = () => deadline - Date.now();
      const read = (path: string) => readFile(path, 'utf8').catch(() => '');
      const transcript: string[] = [];
      /** Every step whose output differs, so that one run lists them all. */
      const mismatches: string[] = [];

      for (const [index, step] of steps.entries()) {
        const out = join(io, `out.${index}`);
        const rc = join(io, `rc.${index}`);
        const command = index === 1 ? 'true' : step.command;
        const background = /&\s*(#.*)?$/.test(step.command);
        transcript.push(`$ ${step.command}`);
        // The status goes to a file on a line of its own (Ctrl-C drops the rest of a line), and $?
        // is kept for the next command (`echo $?`).
        bash.stdin.write(
          `{\n${command}\n} < /dev/null > '${out}' 2>&1\n__rc=$?; echo $__rc > '${rc}'; (exit $__rc)\n`,
        );
        while ((await read(rc)) === '' && remaining() > 0) await sleep(20);
        assert.notEqual(await read(rc), '', `still running at the deadline: ${step.command}`);
        if (background) {
          // Its output goes to the files it names: wait for the ready line there.
          const written = /> (\S+)/.exec(step.command)?.[1];
          const state = /--state (\S+)/.exec(step.command)?.[1];
          assert.ok(written !== undefined && state !== undefined, step.command);
          while (!(await read(join(checkout, written))).includes('\n') && remaining() > 0)
            await sleep(50);
          engines.push(await startedEngine(checkout, state, 'tutorial'));
        }
        const printed = await read(out);
        const actual = printed === '' ? [] : normalise(printed).replace(/\n$/, '').split('\n');
        transcript.push(printed);
        const shown = step.shown.map(normalise);
        if (!matchesShown(actual, shown))
          mismatches.push(
            `under\n$ ${step.command}\nthe tutorial shows\n${shown.join('\n')}\n` +
              `but it printed\n${actual.join('\n')}\n`,
          );
      }
      assert.deepEqual(mismatches, [], `the tutorial as run:\n${transcript.join('\n')}`);
      assert.equal(engines.length, 2, 'the tutorial started both engines');
      while (engines.some(alive) && remaining() > 0) await sleep(50);
      assert.deepEqual(engines.filter(alive), [], `engines still running:\n${shellOutput}`);
      bash.stdin.end('exit\n');
    },
  );
});
