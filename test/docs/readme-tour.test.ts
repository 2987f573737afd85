// README.md's five-minute tour, run as written: every line of the section's ```sh blocks goes to
// one bash with job control on (as in a terminal, so `&`, `kill %1 %2` and Ctrl-C mean what they
// mean there), in a copy of the repository after `npm ci`, through the real `npx`. What each
// block prints is compared with the ```text block the README shows under it, normalising only
// the checkout's path, the ports, times, ids and certificate fingerprints. The copy's examples
// listen on free loopback ports; npx is kept offline with a cache of its own.
import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  alive,
  childrenOf,
  copyCheckout,
  REPOSITORY,
  sleep,
  startedEngine,
  userEnvironment,
} from '../support/docs-session.js';
import { tempDir, type TempDir } from '../support/tmp.js';

/** Where the README's tour says it runs. */
const SHOWN_CHECKOUT = '/home/you/domsec';
/** The examples' ports, each replaced in the copy by a free one on 127.0.0.2 and 127.0.0.3. */
const EXAMPLE_PORTS = [2525, 2587, 8025];
const EXAMPLES = ['adatum', 'treyresearch'];
/** The whole tour, once npx built the checkout (before it). */
const TOUR_MS = 55_000;

interface Step {
  command: string;
  background: boolean;
  /** The README says Ctrl-C stops it: it is interrupted once its block printed what is shown. */
  interrupted: boolean;
}

interface Block {
  steps: Step[];
  /** The ```text block under it, if any. */
  shown?: string;
}

/** The ```sh blocks of README.md's tour section, each with the ```text block shown under it. */
export function tourBlocks(readme: string): Block[] {
  const start = readme.indexOf('## A five-minute tour');
  assert.ok(start >= 0, 'README.md has a five-minute tour');
  const next = readme.indexOf('\n## ', start + 1);
  const section = readme.slice(start, next < 0 ? undefined : next);
  const blocks: Block[] = [];
  for (const fence of section.matchAll(/^```(\w*)\n([\s\S]*?)^```$/gm)) {
    const [, language = '', body = ''] = fence;
    if (language === 'sh') {
      const steps = body
        .split('\n')
        .filter((line) => line.trim() !== '')
        .map((command) => {
          const code = command.replace(/\s+#.*$/, '').trim();
          return {
            command,
            background: code.endsWith('&'),
            interrupted: /#.*Ctrl-C/.test(command),
          };
        });
      blocks.push({ steps });
    } else if (language === 'text') {
      const last = blocks.at(-1);
      assert.ok(last !== undefined && last.shown === undefined, 'a text block follows a sh block');
      last.shown = body;
    }
  }
  return blocks;
}

/** A port free on every one of the hosts. */
async function portFreeOn(hosts: string[], taken: Set<number>): Promise<number> {
  const bind = (host: string, port: number) =>
    new Promise<number>((resolve, reject) => {
      const server = createServer();
      server.once('error', reject);
      server.listen(port, host, () => {
        const address = server.address();
        const bound = typeof address === 'object' && address !== null ? address.port : 0;
        server.close(() => resolve(bound));
      });
    });
  for (let attempt = 0; attempt < 20; attempt += 1) {
    const port = await bind(hosts[0] ?? '127.0.0.1', 0);
    if (taken.has(port)) continue;
    const others = await Promise.all(
      hosts.slice(1).map((host) =>
        bind(host, port).then(
          () => true,
          () => false,
        ),
      ),
    );
    if (others.every(Boolean)) return port;
  }
  throw new Error(`no port free on all of ${hosts.join(', ')}`);
}

/** What differs between two runs of the same command: times, ids, fingerprints. */
function volatile(text: string): string {
  return text
    .replace(/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z/g, '<time>')
    .replace(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g, '<id>')
    .replace(/(?:[0-9A-F]{2}:){31}[0-9A-F]{2}/g, '<fingerprint>');
}

describe("README.md's five-minute tour, as written", () => {
  let dir: TempDir;
  let checkout: string;
  let io: string;
  let shell: ChildProcessWithoutNullStreams | undefined;
  const ports = new Map<number, number>();
  const env: Record<string, string> = {};
  const engines: number[] = [];
  const jobs: number[] = [];

  before(async () => {
    dir = await tempDir('domsec-readme-tour-');
    checkout = join(dir.path, 'domsec');
    io = join(dir.path, 'io');
    await mkdir(io);
    await copyCheckout(
      checkout,
      (inside) =>
        (inside[0] === 'examples' && inside[2] === 'pki') ||
        (inside[0] === 'manifests' && inside[1] === 'pki'),
    );
    Object.assign(env, userEnvironment(), {
      npm_config_cache: join(dir.path, 'npm-cache'),
      npm_config_offline: 'true',
      npm_config_update_notifier: 'false',
      npm_config_fund: 'false',
    });
    // The first npx in a checkout links and builds it (the README says so): done here, so the
    // tour's own time is the tour's.
    const first = await new Promise<{ code: number | null; output: string }>((resolve, reject) => {
      const child = spawn('npx', ['domsec', '--version'], { cwd: checkout, env, timeout: 90_000 });
      let output = '';
      child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
      child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
      child.once('error', reject);
      child.once('close', (code) => resolve({ code, output }));
    });
    assert.equal(first.code, 0, `npx domsec --version in the copy:\n${first.output}`);
    const taken = new Set<number>();
    for (const port of EXAMPLE_PORTS) {
      const free = await portFreeOn(['127.0.0.2', '127.0.0.3'], taken);
      taken.add(free);
      ports.set(free, port);
    }
    for (const example of EXAMPLES) {
      for (const name of ['organization.yaml', 'connectors.yaml']) {
        const path = join(checkout, 'examples', example, name);
        let text = await readFile(path, 'utf8');
        for (const [free, port] of ports)
          text = text.replace(new RegExp(`(:|port: )${port}\\b`, 'g'), `$1${free}`);
        await writeFile(path, text);
      }
    }
  });

  after(async () => {
    // Whatever the tour left running (it should be nothing) goes, then the copy.
    for (const pid of engines) if (alive(pid)) process.kill(pid, 'SIGKILL');
    for (const job of jobs.filter((pid) => pid > 0)) {
      try {
        process.kill(-job, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    if (shell !== undefined && shell.exitCode === null) shell.kill('SIGKILL');
    await dir.remove();
  });

  it(
    'prints under each command what the README shows, and stops every engine it starts',
    { timeout: TOUR_MS + 5_000 },
    async () => {
      const blocks = tourBlocks(await readFile(join(REPOSITORY, 'README.md'), 'utf8'));
      assert.ok(blocks.some((block) => block.steps.some((step) => step.background)));
      const bash = spawn('bash', ['--norc', '--noprofile', '-s'], { cwd: checkout, env });
      shell = bash;
      let shellOutput = '';
      bash.stdout.on('data', (chunk: Buffer) => (shellOutput += chunk.toString()));
      bash.stderr.on('data', (chunk: Buffer) => (shellOutput += chunk.toString()));
      // Job control, as in a terminal; and, as an interactive shell does, Ctrl-C ends the job in
      // the foreground, not the shell (a script's bash exits when its foreground job dies of it).
      bash.stdin.write('set -m\ntrap : INT\n');
      const deadline = Date.now() + TOUR_MS;
      const remaining = () => deadline - Date.now();

      const normalise = (text: string) => {
        let result = text.split(checkout).join(SHOWN_CHECKOUT);
        for (const [free, port] of ports)
          result = result.replace(new RegExp(`(:)${free}\\b`, 'g'), `$1${port}`);
        return volatile(result);
      };
      const read = (path: string) => readFile(path, 'utf8').catch(() => '');
      const transcript: string[] = [];

      let index = 0;
      for (const block of blocks) {
        const outputs: string[] = [];
        const printed = async () => (await Promise.all(outputs.map(read))).join('');
        const matches = async () =>
          block.shown === undefined || normalise(await printed()) === volatile(block.shown);
        for (const step of block.steps) {
          index += 1;
          const out = join(io, `out.${index}`);
          const rc = join(io, `rc.${index}`);
          outputs.push(out);
          transcript.push(`$ ${step.command}`);
          if (step.background) {
            // Standard output only: the log an engine writes on standard error goes on meanwhile.
            bash.stdin.write(
              `{\n${step.command}\n} < /dev/null > '${out}' 2> '${join(io, `err.${index}`)}'\necho $! > '${rc}'\n`,
            );
            while ((await read(rc)) === '' && remaining() > 0) await sleep(20);
            const job = Number(await read(rc));
            assert.ok(job > 0, `no job started for ${step.command}`);
            jobs.push(job);
            continue;
          }
          // Standard input is not the shell's: node would make the shell's script pipe non-blocking.
          const before = new Set(await childrenOf(bash.pid ?? 0));
          // On its own line: after Ctrl-C the shell drops the rest of the interrupted line.
          bash.stdin.write(
            `{\n${step.command}\n} < /dev/null > '${out}' 2>&1\necho $? > '${rc}'\n`,
          );
          if (step.interrupted) {
            while (!(await matches()) && remaining() > 0) await sleep(50);
            // Ctrl-C: SIGINT to the foreground job's process group, as the terminal sends it.
            const job = (await childrenOf(bash.pid ?? 0)).filter(
              (pid) => !before.has(pid) && !jobs.includes(pid),
            );
            for (const leader of job) process.kill(-leader, 'SIGINT');
          }
          while ((await read(rc)) === '' && remaining() > 0) await sleep(20);
          assert.notEqual(
            await read(rc),
            '',
            `still running at the deadline: ${step.command}\n${await read(out)}${shellOutput}`,
          );
        }
        // Background commands print when they are ready: wait for it, boundedly.
        while (!(await matches()) && remaining() > 0) await sleep(50);
        const actual = normalise(await printed());
        transcript.push(actual);
        if (block.shown !== undefined)
          assert.equal(
            actual,
            volatile(block.shown),
            `under\n${block.steps.map((step) => step.command).join('\n')}\n` +
              `the README shows what the tour did not print (so far:\n${transcript.join('\n')})`,
          );
        // Once an engine says it is ready, its PID is in its state's lock file, its token on disk.
        for (const step of block.steps.filter((s) => s.background)) {
          const state = /--state (\S+)/.exec(step.command)?.[1];
          assert.ok(state !== undefined, `a background serve names its --state: ${step.command}`);
          engines.push(await startedEngine(checkout, state, 'readme-tour'));
        }
      }
      assert.equal(engines.length, 2, 'the tour started both engines');
      // The tour ends by stopping the engines: they drain and exit, npx and all.
      while (engines.some(alive) && remaining() > 0) await sleep(50);
      assert.deepEqual(
        engines.filter(alive),
        [],
        `engines still running after the tour:\n${shellOutput}`,
      );
      for (const job of jobs) assert.equal(alive(job), false, `npx ${job} outlived its engine`);
      bash.stdin.end('exit\n');
    },
  );
});
