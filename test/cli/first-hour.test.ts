// A newcomer's first hour, as README.md and docs/ tell it: each small trap a careless first run
// falls into answers with one line saying what happened and what to do, over the built CLI.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { cp, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { after, before, describe, it } from 'node:test';
import { CLI, domsec, type CliResult } from '../support/cli.js';
import { startEngine } from '../support/engine.js';
import { freePort } from '../support/ports.js';
import { tempDir, type TempDir } from '../support/tmp.js';

/** Resolves with the exit code, or undefined when the process is still running after ms. */
function exited(child: ChildProcess, ms: number): Promise<number | null | undefined> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(undefined), ms);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve(code);
    });
  });
}

/** Whether a process with this PID still exists. */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

const REPOSITORY = fileURLToPath(new URL('../..', import.meta.url));

/** `domsec ARGS` run from the directory cwd, as a user in their own checkout runs it. */
function domsecIn(
  cwd: string,
  args: string[],
  env: Record<string, string> = {},
  timeoutMs = 30_000,
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      cwd,
      env: { ...process.env, NO_COLOR: '1', DOMSEC_TOKEN: '', DOMSEC_SERVER: '', ...env },
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

describe('a first hour with domsec', () => {
  let dir: TempDir;
  before(async () => {
    dir = await tempDir('domsec-first-hour-');
  });
  after(async () => {
    await dir.remove();
  });

  it('certs lab refuses to replace an existing CA and its keys without --force', async () => {
    const lab = join(dir.path, 'lab');
    assert.equal((await domsec(['certs', 'lab', lab])).code, 0);
    const root = await readFile(join(lab, 'adatum', 'pki', 'adatum-root.crt'), 'utf8');
    const again = await domsec(['certs', 'lab', lab]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /adatum-root\.crt.* already exist.*--force/);
    assert.equal(again.stderr.trim().split('\n').length, 1);
    assert.equal(await readFile(join(lab, 'adatum', 'pki', 'adatum-root.crt'), 'utf8'), root);
    const forced = await domsec(['certs', 'lab', lab, '--force']);
    assert.equal(forced.code, 0, forced.stderr);
    assert.notEqual(await readFile(join(lab, 'adatum', 'pki', 'adatum-root.crt'), 'utf8'), root);
  });

  it('validate, plan, apply, probe and watch without -f say first, on stderr, that they read ./manifests (text mode only)', async () => {
    const checkout = join(dir.path, 'checkout');
    await cp(join(REPOSITORY, 'manifests'), join(checkout, 'manifests'), { recursive: true });
    // No engine listens at --server: each says what it read, then fails to reach it.
    const server = ['--server', `http://127.0.0.1:${await freePort()}`];
    const commands = [
      ['validate'],
      ['plan', ...server],
      ['apply', '--auto-approve', ...server],
      ['probe', 'contoso.com', '--timeout', '1'],
      ['watch', ...server],
    ];
    const NOTICE = 'domsec: no -f given: reading ./manifests';
    for (const command of commands) {
      const result = await domsecIn(checkout, command, {}, 15_000);
      assert.equal(result.stderr.split('\n')[0], NOTICE, `${command[0]}:\n${result.stderr}`);
      assert.equal(result.stderr.split(NOTICE).length, 2, `${command[0]} says it once`);
      const given = await domsecIn(checkout, [...command, '-f', 'manifests'], {}, 15_000);
      assert.doesNotMatch(given.stderr, /no -f given/, `${command[0]} -f`);
      const json = await domsecIn(checkout, [...command, '-o', 'json'], {}, 15_000);
      assert.doesNotMatch(json.stderr, /no -f given/, `${command[0]} -o json`);
    }
    const json = await domsecIn(checkout, ['validate', '-o', 'json']);
    assert.deepEqual(JSON.parse(json.stdout).files.length, 3, 'stdout stays one JSON document');
    // A saved plan is no manifest directory: apply FILE says nothing about ./manifests.
    const saved = await domsecIn(checkout, ['apply', 'no-such.plan', ...server]);
    assert.equal(saved.code, 1);
    assert.doesNotMatch(saved.stderr, /no -f given/);
  });

  it('explain DS001 prints what the code means and how to fix it, as the troubleshooting page says', async () => {
    const result = await domsec(['explain', 'DS001']);
    assert.equal(result.code, 0, result.stderr);
    assert.match(
      result.stdout,
      /^CODE: {5}DS001\nSEVERITY: error\n\nMEANING:\n {4}A SendConnector with/,
    );
    assert.match(result.stdout, /\nFIX:\n {4}Use `routing: \{ dnsMx: \{\} \}`/);
    const page = await readFile(join(REPOSITORY, 'docs', 'troubleshooting.md'), 'utf8');
    const row = page.split('\n').find((line) => line.startsWith('| `DS001`'));
    const words = (text: string) => text.replace(/\s+/g, ' ').trim();
    assert.ok(row !== undefined);
    const [, , , meaning = '', fix = ''] = row.split('|');
    assert.ok(words(result.stdout).includes(words(meaning)), "the meaning is the page's");
    assert.ok(words(result.stdout).includes(words(fix)), "the fix is the page's");
    const lower = await domsec(['explain', 'ds101']);
    assert.match(lower.stdout, /^CODE: {5}DS101\nSEVERITY: warning/);
    const unknown = await domsec(['explain', 'DS999']);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /^domsec: unknown diagnostic code "DS999": the codes are DS001, /);
  });

  it("validate -f examples/bad prints README.md's DS001 sample, position and all", async () => {
    const checkout = join(dir.path, 'tour');
    for (const example of ['adatum', 'treyresearch', 'bad'])
      await cp(join(REPOSITORY, 'examples', example), join(checkout, 'examples', example), {
        recursive: true,
        filter: (source) => !source.endsWith('/pki'),
      });
    assert.equal((await domsecIn(checkout, ['certs', 'lab', 'examples'])).code, 0);
    const readme = await readFile(join(REPOSITORY, 'README.md'), 'utf8');
    const sample = /\n```text\n(examples\/bad\/[\s\S]*? in \d+ file\(s\)\n)/.exec(readme);
    assert.ok(sample?.[1] !== undefined, 'README.md has the DS001 sample');
    const result = await domsecIn(checkout, ['validate', '-f', 'examples/bad']);
    assert.equal(result.code, 1);
    assert.equal(result.stderr, sample[1]);
  });

  it('takes --token-file over DOMSEC_TOKEN, and a refused token names the source it came from', async () => {
    const running = await startEngine(join(dir.path, 'state-token'));
    try {
      const good = join(dir.path, 'good.token');
      const wrong = join(dir.path, 'wrong.token');
      await writeFile(good, `${running.token}\n`, { mode: 0o600 });
      await writeFile(wrong, 'not-the-engine-token\n', { mode: 0o600 });
      const server = ['--server', running.control.url];
      const exported = { DOMSEC_TOKEN: 'an-old-exported-token' };
      const typed = await domsecIn(
        dir.path,
        ['history', ...server, '--token-file', good],
        exported,
      );
      assert.equal(typed.code, 0, typed.stderr);
      const fromFile = await domsecIn(dir.path, ['history', ...server, '--token-file', wrong]);
      assert.equal(fromFile.code, 1);
      assert.match(fromFile.stderr, /refused the admin token from --token-file .*wrong\.token: /);
      const fromEnvironment = await domsecIn(dir.path, ['history', ...server], exported);
      assert.equal(fromEnvironment.code, 1);
      assert.match(fromEnvironment.stderr, /refused the admin token from DOMSEC_TOKEN: /);
    } finally {
      await running.stop();
    }
  });

  it('an engine started by npx stops when npx is stopped: its shell ending counts as SIGTERM', async () => {
    // npx runs `sh -c domsec ...` and passes SIGTERM to that shell only; the same chain here,
    // with the environment npm exec gives (npm_command=exec), without the registry.
    const tour = join(dir.path, 'npx');
    await cp(join(REPOSITORY, 'examples', 'adatum'), join(tour, 'examples', 'adatum'), {
      recursive: true,
      filter: (source) => !source.endsWith('/pki'),
    });
    assert.equal((await domsecIn(tour, ['certs', 'lab', 'examples'])).code, 0);
    const connectors = join(tour, 'examples', 'adatum', 'connectors.yaml');
    let text = await readFile(connectors, 'utf8');
    for (const binding of ['127.0.0.2:2525', '127.0.0.2:2587'])
      text = text.replace(binding, `127.0.0.1:${await freePort()}`);
    await writeFile(connectors, text);
    const state = join(tour, 'var', 'adatum');
    const admin = `127.0.0.1:${await freePort()}`;
    const wrapper = spawn(
      'sh',
      [
        '-c',
        '"$@"; status=$?; exit $status',
        'npx',
        process.execPath,
        CLI,
        'serve',
        '-f',
        'examples/adatum',
        '--state',
        'var/adatum',
        '--admin',
        admin,
      ],
      {
        cwd: tour,
        env: { ...process.env, NO_COLOR: '1', DOMSEC_TOKEN: '', npm_command: 'exec' },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let output = '';
    wrapper.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    wrapper.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    let engine: number | undefined;
    try {
      const deadline = Date.now() + 30_000;
      while (!/domsec engine ready/.test(output)) {
        assert.ok(Date.now() < deadline && wrapper.exitCode === null, `no ready line:\n${output}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      // The tour's way to find the engine: its PID is in the state directory's lock file.
      engine = (JSON.parse(await readFile(join(state, 'lock'), 'utf8')) as { pid: number }).pid;
      assert.notEqual(engine, wrapper.pid);
      assert.ok(alive(engine));
      wrapper.kill('SIGTERM');
      await exited(wrapper, 5_000);
      const stopped = Date.now() + 20_000;
      while (alive(engine) && Date.now() < stopped)
        await new Promise((resolve) => setTimeout(resolve, 50));
      assert.equal(alive(engine), false, `the engine ${engine} outlived its npx:\n${output}`);
    } finally {
      if (engine !== undefined && alive(engine)) process.kill(engine, 'SIGKILL');
      if (wrapper.exitCode === null) wrapper.kill('SIGKILL');
    }
  });

  it("README.md's tour starts every engine it talks to, at the status address it gives, and stops them", async () => {
    const readme = await readFile(join(REPOSITORY, 'README.md'), 'utf8');
    const section = readme.slice(
      readme.indexOf('## A five-minute tour'),
      readme.indexOf('## Operating an engine'),
    );
    const tour = [...section.matchAll(/^```sh\n([\s\S]*?)^```$/gm)].map((m) => m[1]).join('');
    const lines = tour.split('\n').map((line) => line.replace(/\s+#.*$/, '').trim());
    /** The accepted domains and admin address of examples/NAME. */
    const organization = async (name: string) => {
      const text = await readFile(join(REPOSITORY, 'examples', name, 'organization.yaml'), 'utf8');
      const spec = parseAllDocuments(text)
        .map((document) => document.toJS() as { kind?: string; spec?: Record<string, unknown> })
        .find((document) => document.kind === 'Organization')?.spec;
      return {
        domains: (spec?.acceptedDomains ?? []) as string[],
        admin: (spec?.admin as { listen?: string } | undefined)?.listen ?? '127.0.0.1:8025',
      };
    };
    const served = lines.flatMap((line) => {
      const match = /^npx domsec serve -f examples\/(\S+) .*&$/.exec(line);
      return match?.[1] === undefined ? [] : [match[1]];
    });
    assert.deepEqual(served, ['adatum', 'treyresearch'], 'both engines run in the background');
    const engines = await Promise.all(served.map(organization));
    for (const line of lines) {
      const probe = /^npx domsec probe (\S+) /.exec(line)?.[1];
      if (probe !== undefined)
        assert.ok(
          engines.some((engine) => engine.domains.includes(probe)),
          `the tour probes ${probe} without starting its engine`,
        );
    }
    const lastServe = lines.findLastIndex((line) => line.startsWith('npx domsec serve'));
    const exported = lines.findIndex((line) => line.startsWith('export DOMSEC_TOKEN='));
    assert.ok(exported > lastServe, 'DOMSEC_TOKEN is exported once every serve has started');
    assert.equal(lines.filter((line) => line !== '').at(-1), 'kill %1 %2', 'the tour stops them');
    const operating = readme.slice(readme.indexOf('## Operating an engine'));
    for (const engine of engines)
      assert.ok(
        operating.includes(`http://${engine.admin}/status`),
        `no status URL ${engine.admin}`,
      );
  });

  it('the starter manifests validate after the step their DS016 hint names, which refuses to run twice', async () => {
    const starter = join(dir.path, 'starter');
    await cp(join(REPOSITORY, 'manifests'), join(starter, 'manifests'), {
      recursive: true,
      filter: (source) => !source.endsWith('/pki'),
    });
    const before = await domsecIn(starter, ['validate', '-f', 'manifests']);
    assert.equal(before.code, 1);
    const step = /hint: .*`(domsec certs lab -f DIR)`/.exec(before.stderr)?.[1];
    assert.ok(step !== undefined, `no step in the hint:\n${before.stderr}`);
    const args = step.replace('DIR', 'manifests').split(' ').slice(1);
    const made = await domsecIn(starter, args);
    assert.equal(made.code, 0, made.stderr);
    assert.match(made.stdout, /manifests\/pki\/mail\.example\.com\.crt/);
    const after = await domsecIn(starter, ['validate', '-f', 'manifests']);
    assert.equal(after.code, 0, after.stderr);
    assert.match(after.stdout, /^Valid: /);
    const again = await domsecIn(starter, args);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /already exist.*without --force/);
  });
});
