// domsec status from one source of truth: every apply (CLI, rollback) records Ready and the
// generation; a watcher's entry lapses once its reports stop; a stopped listener is drift and
// makes Ready False with the reason, after a rollback too; the record survives a restart.
import assert from 'node:assert/strict';
import type { Server } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { register as registerApply } from '../../src/cli/apply.js';
import { register as registerRollback } from '../../src/cli/rollback.js';
import { register as registerStatus } from '../../src/cli/status.js';
import { Engine } from '../../src/engine/engine.js';
import { memoryLog } from '../../src/engine/log.js';
import {
  EMPTY_STATUS,
  readStatusRecord,
  recordReport,
  RECONCILER_FIRST_TTL_MS,
  RECONCILER_MIN_TTL_MS,
  viewStatus,
} from '../../src/engine/state-status.js';
import type { ReconcileStatus } from '../../src/model.js';
import { watchManifests } from '../../src/reconcile/watch.js';
import { domsecInProcess } from '../support/cli.js';
import { eventually, startEngine, type RunningEngine } from '../support/engine.js';
import { ADATUM, TREY, writeLab, writeManifests } from '../support/manifests.js';
import { freePort } from '../support/ports.js';
import { tempDir } from '../support/tmp.js';

const commands = [registerApply, registerRollback, registerStatus];

/** Stops a listener's socket behind the engine's back, as a failed listener would. */
async function breakListener(engine: Engine, binding: string): Promise<void> {
  // Test-only reach into the engine: no public API kills a listener, which is the point.
  const listeners = (engine['listeners'] as unknown as { listeners: Map<string, unknown> })
    .listeners;
  const listener = listeners.get(binding) as { server: { server: Server } } | undefined;
  assert.ok(listener !== undefined, `no listener ${binding}`);
  await new Promise<void>((resolve) => listener.server.server.close(() => resolve()));
}

describe('status from one source of truth', () => {
  let lab: Awaited<ReturnType<typeof tempDir>>;
  let running: RunningEngine;
  let manifests: string;
  let port: number;
  const cli = (...args: string[]) =>
    domsecInProcess(commands, [...args, '--server', running.control.url]);
  const status = async () => {
    const shown = await cli('status', '-o', 'json');
    assert.equal(shown.code, 0, shown.stderr);
    return JSON.parse(shown.stdout) as ReconcileStatus;
  };

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
    process.env.DOMSEC_TOKEN = running.token;
  });

  after(async () => {
    delete process.env.DOMSEC_TOKEN;
    await running.stop();
    await lab.remove();
  });

  it('says Ready False before anything was applied, and Ready True with the generation after apply', async () => {
    const empty = await status();
    assert.equal(empty.ready, false);
    assert.match(empty.reason ?? '', /no configuration has been applied yet/);

    const applied = await cli('apply', '-f', manifests, '--auto-approve');
    assert.equal(applied.code, 0, applied.stderr);
    const now = await status();
    assert.equal(now.ready, true);
    assert.equal(now.reason, null);
    assert.equal(now.generation, 1);
    assert.equal(now.lastAppliedGeneration, 1);
    assert.equal(now.lastAppliedBy, 'apply');
    assert.equal(now.engineId, running.engine.identity);
    const text = await cli('status');
    assert.match(text.stdout, /^Ready: +True\n/);
    assert.match(text.stdout, /lastAppliedGeneration: +1 by apply at /);
    assert.match(text.stdout, /Reconciler: +-\n/);
  });

  it('shows a watcher while it reports, and lets its entry lapse once its reports stop', async () => {
    const controller = new AbortController();
    const watching = watchManifests({
      paths: [manifests],
      client: running.client,
      signal: controller.signal,
      print: () => undefined,
      resyncMs: 150,
      reconciler: 'watch status-test',
    });
    try {
      // Two reports show its beat; the entry then lapses after three missed ones (1 s at least).
      await eventually('the watcher to report twice', async () => {
        const now = await status();
        return now.reconciler === 'watch status-test' &&
          Date.parse(now.reconcilerExpiresAt ?? '') - Date.parse(now.reconcilerReportedAt ?? '') <
            RECONCILER_FIRST_TTL_MS
          ? now
          : undefined;
      });
    } finally {
      controller.abort();
      await watching;
    }
    const stoppedAt = Date.now();
    const lapsed = await eventually(
      'the entry to lapse',
      async () => {
        const now = await status();
        return now.reconciler === null ? now : undefined;
      },
      10_000,
    );
    assert.ok(Date.now() - stoppedAt < 5_000, `lapsed after ${Date.now() - stoppedAt} ms`);
    assert.equal(lapsed.lastReconciler, 'watch status-test');
    assert.equal(lapsed.ready, true, 'its last attempt stands');
    const text = await cli('status');
    assert.match(text.stdout, /Reconciler: +- \(watch status-test stopped reporting: last report /);
  });

  it('keeps a quiet watcher (no changes, no --resync) shown as the reconciler: its heartbeat renews the entry', async () => {
    const controller = new AbortController();
    const watching = watchManifests({
      paths: [manifests],
      client: running.client,
      signal: controller.signal,
      print: () => undefined,
      heartbeatMs: 200,
      reconciler: 'watch quiet',
    });
    try {
      // Its beat is seen from its second report on; the entry then lasts three beats (1 s at least).
      await eventually('the heartbeat to set the beat', async () => {
        const now = await status();
        return now.reconciler === 'watch quiet' &&
          Date.parse(now.reconcilerExpiresAt ?? '') - Date.parse(now.reconcilerReportedAt ?? '') <
            RECONCILER_FIRST_TTL_MS
          ? now
          : undefined;
      });
      // Well past three beats of 200 ms and the 1 s floor, nothing changed: still the reconciler.
      await new Promise((resolve) => setTimeout(resolve, 2_500));
      const later = await status();
      assert.equal(later.reconciler, 'watch quiet');
      assert.equal(later.ready, true);
    } finally {
      controller.abort();
      await watching;
    }
  });

  it('makes Ready False with the reason when a listener stops, and after a rollback with drift', async () => {
    await breakListener(running.engine, `127.0.0.1:${port}`);
    const drifted = await status();
    assert.equal(drifted.ready, false);
    assert.match(
      drifted.reason ?? '',
      new RegExp(`drift: listener 127\\.0\\.0\\.1:${port} \\(from-partners\\) is not listening`),
    );
    assert.match((await cli('status')).stdout, /^Ready: +False \(drift: listener /);

    const rolled = await cli('rollback', '1', '--auto-approve');
    assert.equal(rolled.code, 0, rolled.stderr);
    const after = await status();
    assert.equal(after.ready, true, 'the rollback bound the listener again');
    assert.equal(after.lastAppliedBy, 'rollback of generation 1');
    assert.equal(after.lastAppliedGeneration, after.generation);

    await breakListener(running.engine, `127.0.0.1:${port}`);
    const again = await status();
    assert.equal(again.ready, false, 'drift after the rollback is not Ready');
    assert.match(again.reason ?? '', /drift: listener/);
  });

  it('keeps the record across a restart of the engine', async () => {
    const before = await status();
    const dir = join(lab.path, 'restarted');
    const first = await Engine.open({ stateDir: dir, log: memoryLog() });
    await first.recordOutcome({ outcome: 'invalid', error: '1 error(s)', by: 'test' });
    await first.close();
    const second = await Engine.open({ stateDir: dir, log: memoryLog() });
    try {
      const kept = second.reconcileStatus();
      assert.equal(kept.lastAttemptOutcome, 'invalid');
      assert.equal(kept.lastAttemptBy, 'test');
      assert.equal(kept.ready, false);
    } finally {
      await second.close();
    }
    assert.equal((await status()).generation, before.generation);
  });
});

describe('the status record (pure)', () => {
  const at = (ms: number) => new Date(Date.UTC(2026, 0, 1) + ms);
  const report = (reconciler: string) => ({
    outcome: 'unchanged' as const,
    generation: 3,
    error: null,
    reconciler,
  });
  const facts = { generation: 3, engineId: 'e', drift: [] };

  it('gives a first report a quarter of an hour, then three of its beats', () => {
    const first = recordReport(EMPTY_STATUS, report('watch a'), at(0));
    assert.equal(
      Date.parse(first.reconcilerExpiresAt ?? ''),
      at(RECONCILER_FIRST_TTL_MS).getTime(),
    );
    const second = recordReport(first, report('watch a'), at(60_000));
    assert.equal(Date.parse(second.reconcilerExpiresAt ?? ''), at(60_000 + 180_000).getTime());
    assert.equal(viewStatus(second, facts, at(239_999)).reconciler, 'watch a');
    assert.equal(viewStatus(second, facts, at(240_001)).reconciler, null);
    // A quick report after a change does not shorten the beat learnt.
    const third = recordReport(second, report('watch a'), at(61_000));
    assert.equal(third.reconcilerIntervalMs, 60_000);
    // Another reconciler starts over.
    const other = recordReport(third, report('watch b'), at(62_000));
    assert.equal(other.reconcilerIntervalMs, null);
    const fast = recordReport(recordReport(EMPTY_STATUS, report('w'), at(0)), report('w'), at(10));
    assert.equal(
      Date.parse(fast.reconcilerExpiresAt ?? '') - at(10).getTime(),
      RECONCILER_MIN_TTL_MS,
    );
  });

  it('reads a record an older engine wrote, its reconciler taken as lapsed', () => {
    const old = readStatusRecord({
      formatVersion: 1,
      ready: true,
      lastAppliedGeneration: 2,
      lastAttemptAt: '2026-01-01T00:00:00.000Z',
      lastAttemptOutcome: 'applied',
      lastAttemptError: null,
      reconciler: 'watch old',
    });
    assert.ok(old !== undefined);
    const view = viewStatus(old, facts, at(0));
    assert.equal(view.reconciler, null);
    assert.equal(view.lastReconciler, 'watch old');
    assert.equal(view.ready, true);
    assert.equal(readStatusRecord({ formatVersion: 2, ready: true }), undefined);
    assert.equal(readStatusRecord('nonsense'), undefined);
  });
});
