// The contract the Containerfile relies on, without building an image: the package as `npm pack`
// ships it, installed with production dependencies only (`npm ci --omit=dev`, as the runtime
// stage does), runs `domsec validate`, `serve` (with its probes) and `plan`. And the Containerfile
// says what the image runs: two stages, that install, a user without privileges, serve --watch on
// the directories the StatefulSet mounts.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFile, readFile, readdir } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import yaml from 'js-yaml';
import { recordToken } from '../support/engine.js';
import { eventually } from '../support/eventually.js';
import { ADATUM, TREY, writeLab, writeManifests } from '../support/manifests.js';
import { freePort } from '../support/ports.js';
import { tempDir, type TempDir } from '../support/tmp.js';

const run = promisify(execFile);
const REPOSITORY = fileURLToPath(new URL('../../', import.meta.url));
const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm';

/** What a registry failure looks like in npm's output. */
const UNREACHABLE = /ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ETIMEDOUT|ECONNRESET|network|socket hang up/i;

interface Finished {
  code: number;
  stdout: string;
  stderr: string;
}

function node(script: string, args: string[], env: Record<string, string> = {}): Promise<Finished> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script, ...args], {
      env: { ...process.env, NO_COLOR: '1', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 30_000,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

describe('a production-only install of the packed package', () => {
  let dir: TempDir;
  let app: string;
  let cli: string;
  let manifests: string;
  let admin: string;

  before(async () => {
    dir = await tempDir('domsec-install-');
    // The package as published: what `files` ships (dist/, schemas/), with the lock file the
    // runtime stage copies beside it. --ignore-scripts: the tarball is of the dist/ built here.
    const { stdout } = await run(
      NPM,
      ['pack', '--ignore-scripts', '--json', '--pack-destination', dir.path],
      { cwd: REPOSITORY, timeout: 60_000, maxBuffer: 16 * 1024 * 1024 },
    );
    const [packed] = JSON.parse(stdout) as { filename: string }[];
    assert.ok(packed);
    await run('tar', ['-xzf', join(dir.path, packed.filename), '-C', dir.path]);
    app = join(dir.path, 'package');
    await copyFile(join(REPOSITORY, 'package-lock.json'), join(app, 'package-lock.json'));
    try {
      await run(NPM, ['ci', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund'], {
        cwd: app,
        timeout: 120_000,
        maxBuffer: 16 * 1024 * 1024,
        env: { ...process.env, NODE_ENV: 'production' },
      });
    } catch (error) {
      const output = `${(error as { stderr?: string }).stderr ?? ''}${(error as Error).message}`;
      const registry = (await run(NPM, ['config', 'get', 'registry'])).stdout.trim();
      if (UNREACHABLE.test(output))
        assert.fail(
          `npm ci --omit=dev needs the npm registry (${registry}), which this machine does not reach: ${output.slice(0, 400)}`,
        );
      throw error;
    }
    cli = join(app, 'dist', 'cli', 'main.js');

    await writeLab(dir.path);
    admin = `127.0.0.1:${await freePort()}`;
    manifests = await writeManifests({
      root: dir.path,
      org: ADATUM,
      partner: TREY,
      partnerBinding: `127.0.0.1:${await freePort()}`,
      internalBinding: `127.0.0.1:${await freePort()}`,
      adminListen: admin,
      partnerRoute: { host: '127.0.0.1', port: 9 },
      trust: 'root',
    });
  });
  after(async () => {
    await dir?.remove();
  });

  it('holds no development dependency', async () => {
    const lock = JSON.parse(await readFile(join(REPOSITORY, 'package-lock.json'), 'utf8')) as {
      packages: Record<string, { dev?: boolean }>;
    };
    const development = Object.entries(lock.packages)
      .filter(([path, entry]) => path.startsWith('node_modules/') && entry.dev === true)
      .map(([path]) => path);
    assert.ok(development.includes('node_modules/typescript'), 'the lock file marks dev packages');
    for (const path of development) assert.ok(!existsSync(join(app, path)), `${path} installed`);
    assert.ok(existsSync(join(app, 'node_modules', 'smtp-server')));
    assert.deepEqual(
      (await readdir(app)).sort(),
      [
        'LICENSE',
        'README.md',
        'dist',
        'node_modules',
        'package-lock.json',
        'package.json',
        'schemas',
      ].filter((name) => name !== 'LICENSE' || existsSync(join(app, 'LICENSE'))),
    );
  });

  it('validates the manifests', async () => {
    const result = await node(cli, ['validate', '-f', manifests]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^Valid: \d+ object\(s\) in 3 file\(s\)\./);
  });

  it('serves them, answers its probes, plans no change against itself and stops on SIGTERM', async () => {
    const token = randomBytes(24).toString('base64url');
    recordToken(token);
    const state = join(dir.path, 'state');
    const child = spawn(process.execPath, [cli, 'serve', '-f', manifests, '--state', state], {
      env: { ...process.env, NO_COLOR: '1', DOMSEC_TOKEN: token },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<number>((resolve) =>
      child.once('close', (code) => resolve(code ?? -1)),
    );
    try {
      await eventually(
        'the ready line',
        () => {
          if (child.exitCode !== null) throw new Error(`serve exited ${child.exitCode}: ${stderr}`);
          return /domsec engine ready: generation 1/.test(stdout);
        },
        { timeoutMs: 20_000, explain: () => `${stdout}${stderr}` },
      );
      for (const path of ['/healthz', '/readyz']) {
        const answer = await fetch(`http://${admin}${path}`, {
          signal: AbortSignal.timeout(5_000),
        });
        assert.equal(answer.status, 200, path);
      }
      const unauthenticated = await fetch(`http://${admin}/v1/state`, {
        signal: AbortSignal.timeout(5_000),
      });
      assert.equal(unauthenticated.status, 401);
      const plan = await node(cli, ['plan', '-f', manifests, '--detailed-exitcode'], {
        DOMSEC_TOKEN: token,
      });
      assert.equal(plan.code, 0, `${plan.stdout}${plan.stderr}`);
      assert.match(plan.stdout, /No changes\. The engine matches the manifests\./);
    } finally {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      const code = await exited;
      clearTimeout(timer);
      assert.equal(code, 0, `serve exited ${code} on SIGTERM: ${stderr.slice(-2000)}`);
    }
  });
});

describe('the Containerfile', () => {
  /** Instructions, continuation lines joined, comments dropped. */
  async function instructions(): Promise<{ op: string; rest: string }[]> {
    const text = (await readFile(join(REPOSITORY, 'Containerfile'), 'utf8')).replace(/\\\n/g, ' ');
    return text
      .split('\n')
      .map((line) => line.trim())
      .filter((line) => line !== '' && !line.startsWith('#'))
      .map((line) => {
        const [op = '', ...rest] = line.split(/\s+/);
        return { op: op.toUpperCase(), rest: rest.join(' ') };
      });
  }

  it('builds in one stage and runs production dependencies only, as a user without privileges, in the other', async () => {
    const all = await instructions();
    const stages = all.flatMap((entry, index) => (entry.op === 'FROM' ? [index] : []));
    assert.equal(stages.length, 2, 'two stages');
    const build = all.slice(stages[0], stages[1]);
    const runtime = all.slice(stages[1]);
    assert.ok(build.some((i) => i.op === 'RUN' && /\bnpm ci\b/.test(i.rest)));
    assert.ok(build.some((i) => i.op === 'RUN' && /\bnpm run build\b/.test(i.rest)));
    assert.ok(
      runtime.some((i) => i.op === 'RUN' && /\bnpm ci\b.*--omit=dev/.test(i.rest)),
      'the runtime stage installs production dependencies only',
    );
    assert.ok(
      !runtime.some((i) => i.op === 'RUN' && /\bnpm (ci|install)\b(?!.*--omit=dev)/.test(i.rest)),
    );
    assert.ok(runtime.some((i) => i.op === 'COPY' && /--from=\S+ .*\/dist /.test(i.rest)));
    const user = runtime.filter((i) => i.op === 'USER').at(-1)?.rest ?? '';
    assert.match(
      user,
      /^[1-9]\d*(:[1-9]\d*)?$/,
      'a numeric user that is not root (runAsNonRoot checks it)',
    );
  });

  it('starts serve --watch on the directories the StatefulSet mounts, as that user', async () => {
    const all = await instructions();
    const entry = JSON.parse(all.find((i) => i.op === 'ENTRYPOINT')?.rest ?? '[]') as string[];
    const command = JSON.parse(all.find((i) => i.op === 'CMD')?.rest ?? '[]') as string[];
    assert.equal(entry[0], 'node', 'node itself as PID 1, so SIGTERM reaches serve');
    assert.match(entry[1] ?? '', /\/dist\/cli\/main\.js$/);
    assert.deepEqual(command.slice(0, 2), ['serve', '--watch']);
    const statefulSet = yaml.loadAll(
      await readFile(
        join(REPOSITORY, 'examples', 'kubernetes', 'base', 'statefulset.yaml'),
        'utf8',
      ),
    )[0] as {
      spec: {
        template: {
          spec: { containers: { args: string[] }[]; securityContext: { runAsUser: number } };
        };
      };
    };
    const pod = statefulSet.spec.template.spec;
    const args = pod.containers[0]?.args ?? [];
    const values = (list: string[], flag: string) =>
      list.flatMap((arg, index) => (arg === flag ? [list[index + 1]] : []));
    for (const flag of ['-f', '--state'])
      assert.deepEqual(values(command, flag), values(args, flag), `the same ${flag}`);
    const user = all.filter((i) => i.op === 'USER').at(-1)?.rest ?? '';
    assert.equal(Number(user.split(':')[0]), pod.securityContext.runAsUser);
  });

  it('keeps .dockerignore and .containerignore the same, leaving out state, keys and builds', async () => {
    const contained = await readFile(join(REPOSITORY, '.containerignore'), 'utf8');
    assert.equal(await readFile(join(REPOSITORY, '.dockerignore'), 'utf8'), contained);
    const patterns = contained.split('\n').filter((line) => line !== '' && !line.startsWith('#'));
    for (const wanted of ['.git', 'node_modules', 'dist', 'var', 'examples/*/pki', 'manifests/pki'])
      assert.ok(patterns.includes(wanted), wanted);
  });
});
