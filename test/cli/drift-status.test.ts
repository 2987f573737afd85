// Drift: the engine's actual state is what it runs, so a certificate file replaced on disk and a
// listener that stopped both show in the next plan; watch --resync corrects them and reports its
// attempts to the engine (domsec status); history and rollback from the command line.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { readFile, rm, writeFile } from 'node:fs/promises';
import type { Server } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { register as registerApply } from '../../src/cli/apply.js';
import { register as registerHistory } from '../../src/cli/history.js';
import { register as registerPlan } from '../../src/cli/plan.js';
import { register as registerRollback } from '../../src/cli/rollback.js';
import { register as registerStatus } from '../../src/cli/status.js';
import type { Engine } from '../../src/engine/engine.js';
import { issueCertificate } from '../../src/pki/lab.js';
import { watchManifests } from '../../src/reconcile/watch.js';
import { domsecInProcess } from '../support/cli.js';
import { eventually, startEngine, type RunningEngine } from '../support/engine.js';
import { ADATUM, TREY, writeLab, writeManifests } from '../support/manifests.js';
import { freePort } from '../support/ports.js';
import { tempDir } from '../support/tmp.js';
import { banner } from '../support/banner.js';

const commands = [registerPlan, registerApply, registerHistory, registerRollback, registerStatus];
const DAY = 86_400_000;

/** Stops a listener's socket behind the engine's back, as a failed listener would. */
async function breakListener(engine: Engine, binding: string): Promise<void> {
  // Test-only reach into the engine: no public API kills a listener, which is the point.
  const listeners = (engine['listeners'] as unknown as { listeners: Map<string, unknown> })
    .listeners;
  const listener = listeners.get(binding) as { server: { server: Server } } | undefined;
  assert.ok(listener !== undefined, `no listener ${binding}`);
  await new Promise<void>((resolve) => listener.server.server.close(() => resolve()));
}

describe('drift, watch --resync and status', () => {
  let lab: Awaited<ReturnType<typeof tempDir>>;
  let running: RunningEngine;
  let manifests: string;
  let port: number;
  let target: string[];
  const cli = (...args: string[]) => domsecInProcess(commands, [...args, ...target]);

  before(async () => {
    lab = await tempDir();
    await writeLab(lab.path);
    port = await freePort();
    manifests = await writeManifests({
      root: lab.path,
      org: ADATUM,
      partner: TREY,
      partnerBinding: `127.0.0.1:${port}`,
      internalBinding: '127.0.0.1:0',
      adminListen: '127.0.0.1:1',
      partnerRoute: { host: '127.0.0.1', port: 9 },
      trust: 'root',
    });
    running = await startEngine(join(lab.path, 'state'));
    target = ['--server', running.control.url];
    process.env.DOMSEC_TOKEN = running.token;
    const applied = await cli('apply', '-f', manifests, '--auto-approve', '--approve-weakening');
    assert.equal(applied.code, 0, applied.stderr);
  });

  after(async () => {
    delete process.env.DOMSEC_TOKEN;
    await running.stop();
    await lab.remove();
  });

  it('shows a certificate file replaced on disk as a fingerprint change, warning it expires soon', async () => {
    const pki = join(lab.path, ADATUM.name, 'pki');
    const root = {
      commonName: 'Adatum',
      certPem: await readFile(join(pki, `${ADATUM.name}-root.crt`), 'utf8'),
      keyPem: await readFile(join(pki, `${ADATUM.name}-root.key`), 'utf8'),
      fingerprint: '',
    };
    const before = new X509Certificate(await readFile(join(pki, `${ADATUM.hostname}.crt`), 'utf8'))
      .fingerprint256;
    const renewed = issueCertificate(root, {
      commonName: ADATUM.hostname,
      dnsNames: [ADATUM.hostname, ADATUM.domain],
      notAfter: new Date(Date.now() + 10 * DAY),
    });
    await rm(join(pki, `${ADATUM.hostname}.key`));
    await writeFile(join(pki, `${ADATUM.hostname}.key`), renewed.keyPem, { mode: 0o600 });
    await writeFile(join(pki, `${ADATUM.hostname}.crt`), renewed.certPem);

    const result = await cli('plan', '-f', manifests, '--detailed-exitcode');
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stdout, /~ Certificate\/mail/);
    assert.match(result.stdout, new RegExp(`fingerprint: ${before} -> ${renewed.fingerprint}`));
    assert.match(result.stdout, /Warnings:\n {2}Certificate\/mail: expires in 10 day\(s\)/);
    // The same plan run also prints validate's DS101 for it: one count of days, not two.
    assert.match(result.stderr, /DS101 {2}warning: Certificate\/mail expires in 10 day\(s\)/);
    assert.doesNotMatch(result.stdout, /PRIVATE KEY/);
  });

  it('watch --resync applies the drift (no YAML changed) and reports Ready to the engine', async () => {
    const controller = new AbortController();
    const printed: string[] = [];
    const watching = watchManifests({
      paths: [manifests],
      client: running.client,
      signal: controller.signal,
      print: (text) => printed.push(text),
      resyncMs: 200,
      reconciler: 'watch test',
    });
    try {
      const generation = (await running.client.state()).generation;
      // The engine records the apply itself; watch's report (its name, Ready) follows it.
      const status = await eventually(
        'watch to apply the renewed certificate and report',
        async () => {
          const now = await running.client.status();
          return now.lastAppliedGeneration !== null &&
            now.lastAppliedGeneration > generation &&
            now.reconciler === 'watch test'
            ? now
            : undefined;
        },
      );
      assert.equal(status.ready, true);
      assert.equal(status.reconciler, 'watch test');
      assert.equal(status.lastAttemptError, null);
      const shown = await cli('status');
      assert.equal(shown.code, 0, shown.stderr);
      assert.match(shown.stdout, /Ready: +True/);
      assert.match(shown.stdout, new RegExp(`lastAppliedGeneration: +${generation + 1}`));

      // The next resync finds nothing to do and keeps reporting Ready.
      await eventually('an unchanged resync', async () => {
        const now = await running.client.status();
        return now.lastAttemptOutcome === 'unchanged' ? now : undefined;
      });
    } finally {
      controller.abort();
      await watching;
    }
    assert.match(printed.join(''), /~ Certificate\/mail/);
  });

  it('shows a listener that stopped as -/+ replace, and apply binds it again', async () => {
    await breakListener(running.engine, `127.0.0.1:${port}`);
    const plan = await cli('plan', '-f', manifests, '--detailed-exitcode');
    assert.equal(plan.code, 2, plan.stderr);
    assert.match(plan.stdout, /-\/\+ ReceiveConnector\/from-partners/);
    assert.match(
      plan.stdout,
      new RegExp(`# replaced: listener 127\\.0\\.0\\.1:${port} is not listening`),
    );
    assert.match(plan.stdout, /Plan: 0 to add, 0 to change, 1 to replace, 0 to delete\./);

    const applied = await cli('apply', '-f', manifests, '--auto-approve');
    assert.equal(applied.code, 0, applied.stderr);
    assert.match(await banner(port), /^220 /);
    const state = await running.client.state();
    assert.ok(state.listeners.every((l) => l.listening));
    assert.equal((await cli('plan', '-f', manifests, '--detailed-exitcode')).code, 0);
  });

  it('lists the history and rolls back to a generation from the command line', async () => {
    const history = await cli('history');
    assert.equal(history.code, 0, history.stderr);
    const current = (await running.client.state()).generation;
    assert.match(history.stdout, new RegExp(`^\\*${current} `, 'm'));
    assert.match(history.stdout, /^ 1 /m);

    const rolled = await cli('rollback', '1', '--auto-approve');
    assert.equal(rolled.code, 0, rolled.stderr);
    assert.match(
      rolled.stdout,
      new RegExp(`the engine runs generation ${current + 1}, the configuration of generation 1`),
    );
    // Generation 1 had the old certificate: the manifests now differ from the engine.
    assert.equal((await cli('plan', '-f', manifests, '--detailed-exitcode')).code, 2);
    const missing = await cli('rollback', '99', '--auto-approve');
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /generation 99 is not kept/);
  });
});
