// The CLI's process edges, as a user meets them: a bad --state refused in one line at once (no
// spin under /proc), a reader that goes away (`plan | head -1`), SIGTERM logged with what was
// drained, and serve -f on manifests with a typo coming up on the saved generation.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFile, symlink, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ControlClient } from '../../src/control/client.js';
import { ServeProcess } from '../reliability/serve-process.js';
import { CLI, domsec } from '../support/cli.js';
import { eventually, startEngine, type RunningEngine } from '../support/engine.js';
import { ADATUM, TREY, writeLab, writeManifests } from '../support/manifests.js';
import { freePort } from '../support/ports.js';
import { tempDir } from '../support/tmp.js';

describe('state and process edges', () => {
  let lab: Awaited<ReturnType<typeof tempDir>>;
  let manifests: string;
  let admin: string;
  let internalPort: number;

  before(async () => {
    lab = await tempDir();
    await writeLab(lab.path);
    admin = `127.0.0.1:${await freePort()}`;
    internalPort = await freePort();
    manifests = await writeManifests({
      root: lab.path,
      org: ADATUM,
      partner: TREY,
      partnerBinding: `127.0.0.1:${await freePort()}`,
      internalBinding: `127.0.0.1:${internalPort}`,
      adminListen: admin,
      partnerRoute: { host: '127.0.0.1', port: 9 },
      trust: 'root',
    });
  });
  after(async () => lab.remove());

  it('refuses a bad --state in one line and exits 1 within a second, under /proc too', async () => {
    const file = join(lab.path, 'a-file');
    await writeFile(file, 'not a directory\n');
    const dangling = join(lab.path, 'dangling');
    await symlink(join(lab.path, 'nowhere'), dangling);
    const cases: [string, RegExp][] = [
      ['/proc/nope', /is on proc, a virtual file system/],
      [file, /is a file$/],
      [dangling, /is a dangling symbolic link \(to .*nowhere\)$/],
      [join(file, 'below'), /\(its ancestor .*a-file\) is a file$/],
      ['/sys/kernel/nope/deeper', /is on sysfs/],
    ];
    for (const [state, expected] of cases) {
      // Within a second of what starting the CLI at all takes on this machine right now: the
      // refusal waits for nothing (no lock, no retry), whatever the load.
      const baseline = Date.now();
      await domsec(['--version'], {}, 10_000);
      const startup = Date.now() - baseline;
      const started = Date.now();
      const result = await domsec(['serve', '--state', state], { DOMSEC_TOKEN: '' }, 10_000);
      const ms = Date.now() - started - startup;
      assert.equal(result.code, 1, `${state}: ${result.stderr}`);
      const lines = result.stderr.split('\n').filter((line) => line !== '');
      assert.equal(lines.length, 1, `${state}: one line, got:\n${result.stderr}`);
      assert.match(lines[0] ?? '', /^domsec: the state directory /);
      assert.match(lines[0] ?? '', expected);
      assert.ok(
        ms < 1_000,
        `${state}: answered ${ms} ms after the CLI's own start (${startup} ms)`,
      );
    }
  });

  describe('against a running engine', () => {
    let running: RunningEngine;
    before(async () => {
      running = await startEngine(join(lab.path, 'plan-state'));
    });
    after(async () => running.stop());

    it('exits quietly when the reader of its output goes away (plan | head -1)', async () => {
      const env = { ...process.env, NO_COLOR: '1', DOMSEC_TOKEN: running.token };
      const pipeline = spawn(
        'bash',
        [
          '-c',
          `"$0" "$1" plan -f "$2" --server "$3" 2>"$4" | head -1 >/dev/null; echo "\${PIPESTATUS[0]}"`,
          process.execPath,
          CLI,
          manifests,
          running.control.url,
          join(lab.path, 'plan.err'),
        ],
        { env, timeout: 30_000 },
      );
      let printed = '';
      pipeline.stdout.on('data', (chunk: Buffer) => (printed += chunk.toString()));
      await new Promise((resolve) => pipeline.once('close', resolve));
      assert.equal(printed.trim(), '0');
      const stderr = await readFile(join(lab.path, 'plan.err'), 'utf8');
      assert.doesNotMatch(stderr, /EPIPE|\n\s+at |unexpected failure/);

      // A reader gone before anything is written: every write after that meets EPIPE.
      const child = spawn(
        process.execPath,
        [CLI, 'plan', '-f', manifests, '--server', running.control.url],
        { env, timeout: 30_000 },
      );
      child.stdout.destroy();
      let childErr = '';
      child.stderr.on('data', (chunk: Buffer) => (childErr += chunk.toString()));
      const code = await new Promise((resolve) => child.once('close', (c) => resolve(c)));
      assert.equal(code, 0, childErr);
      assert.doesNotMatch(childErr, /EPIPE|\n\s+at |unexpected failure/);
    });
  });

  it('logs the shutdown on SIGTERM with the sessions and deliveries it drained', async () => {
    const state = join(lab.path, 'sigterm');
    const serve = new ServeProcess(['-f', manifests, '--state', state, '--log-format', 'json'], {
      DOMSEC_TOKEN: 'sigterm-test-token-0123456789abcdef',
    });
    try {
      await serve.ready();
      // A session in progress when the signal comes: the drain waits for it (or answers 421).
      const session = connect(internalPort, '127.0.0.1');
      session.on('error', () => undefined);
      await new Promise<void>((resolve) => session.once('data', () => resolve()));
      assert.equal(await serve.stop(), 0);
      session.destroy();
    } finally {
      await serve.kill();
    }
    const stopping = serve.events().find((e) => e.event === 'serve.stopping');
    const stopped = serve.events().find((e) => e.event === 'serve.stopped');
    assert.equal(stopping?.signal, 'SIGTERM', serve.stderr);
    assert.equal(stopped?.signal, 'SIGTERM');
    assert.equal(stopped?.drainedSessions, 1);
    assert.equal(stopped?.drainedDeliveries, 0);
  });

  it('serve -f on manifests with a typo comes up on the saved generation, Ready False; --watch applies the fix', async () => {
    const state = join(lab.path, 'typo');
    const token = 'typo-test-token-0123456789abcdef01';
    const env = { DOMSEC_TOKEN: token };
    const first = new ServeProcess(['-f', manifests, '--state', state], env);
    await first.ready();
    assert.equal(await first.stop(), 0);

    const connectors = join(manifests, 'connectors.yaml');
    const good = await readFile(connectors, 'utf8');
    await writeFile(connectors, good.replace('kind: ReceiveConnector', 'kind: ReceiveConector'));
    const plain = new ServeProcess(['-f', manifests, '--state', state], env);
    try {
      await plain.ready();
      assert.match(
        plain.stdout,
        /Refused the manifests: \d+ error\(s\) in the manifests; the engine runs its saved generation 1\./,
      );
      const client = new ControlClient(`http://${admin}`, token);
      const status = await client.status();
      assert.equal(status.ready, false);
      assert.equal(status.generation, 1);
      assert.match(
        status.reason ?? '',
        /found the manifests invalid: \d+ error\(s\) in the manifests: .*connectors\.yaml:\d+:\d+ /,
      );
      const metrics = await (
        await fetch(`http://${admin}/metrics`, { headers: { authorization: `Bearer ${token}` } })
      ).text();
      assert.match(metrics, /domsec_reconcile_total\{outcome="invalid"\} 1/);
      assert.ok(plain.events().some((e) => e.event === 'serve.manifests-refused'));
      assert.ok((await client.state()).listeners.every((l) => l.listening));
    } finally {
      assert.equal(await plain.stop(), 0);
    }

    const watching = new ServeProcess(['-f', manifests, '--state', state, '--watch'], env);
    try {
      await watching.ready();
      const client = new ControlClient(`http://${admin}`, token);
      assert.equal((await client.status()).ready, false);
      await writeFile(connectors, good);
      const fixed = await eventually(
        'the fixed manifests to be applied',
        async () => {
          const now = await client.status();
          // The fixed manifests are the saved generation again: unchanged, and Ready.
          return now.ready && (now.lastAttemptBy ?? '').startsWith('watch ') ? now : undefined;
        },
        15_000,
      ).catch((error: Error) => {
        throw new Error(`${error.message}\n${watching.stdout}\n${watching.stderr}`);
      });
      assert.equal(fixed.lastAppliedGeneration, fixed.generation);
      assert.equal(fixed.reason, null);
    } finally {
      await watching.stop();
    }

    // Without a saved generation, broken manifests are still fatal: exit 1, nothing started.
    await writeFile(connectors, good.replace('kind: ReceiveConnector', 'kind: ReceiveConector'));
    try {
      const result = await domsec(
        ['serve', '-f', manifests, '--state', join(lab.path, 'fresh')],
        env,
      );
      assert.equal(result.code, 1);
      assert.match(
        result.stderr,
        /domsec: \d+ error\(s\) in the manifests and no saved generation in .* to start on; nothing was started\n$/,
      );
    } finally {
      await writeFile(connectors, good);
    }
  });
});
