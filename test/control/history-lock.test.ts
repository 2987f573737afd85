// One apply at a time (a concurrent one is refused 'locked', nothing half-applied), the last 20
// generations kept with time and source, rollback to one of them, and the reconcile status.
import assert from 'node:assert/strict';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { register as registerRollback } from '../../src/cli/rollback.js';
import { ControlError } from '../../src/control/client.js';
import type { RuntimeConfig } from '../../src/model.js';
import { describeConfig } from '../../src/objects.js';
import { domsecInProcess } from '../support/cli.js';
import { startEngine, type RunningEngine } from '../support/engine.js';
import { freePort } from '../support/ports.js';
import { partnerDomain, runtimeConfig } from '../support/runtime-config.js';
import { tempDir } from '../support/tmp.js';

/** Holds the engine's apply lock from inside an apply until released. */
class LockHolder {
  private entered: (() => void) | undefined;
  private gate: Promise<void> | undefined;
  private open: (() => void) | undefined;

  /** The engine's applyGate: waits while the lock is held. */
  readonly applyGate = async (): Promise<void> => {
    this.entered?.();
    await this.gate;
  };

  /** The next apply stops inside the lock; resolves once it is there. */
  hold(): { inside: Promise<void>; release: () => void } {
    const inside = new Promise<void>((resolve) => (this.entered = resolve));
    this.gate = new Promise<void>((resolve) => (this.open = resolve));
    return {
      inside,
      release: () => {
        this.entered = undefined;
        this.gate = undefined;
        this.open?.();
      },
    };
  }
}

describe('apply lock, history and rollback', () => {
  const lock = new LockHolder();
  let state: Awaited<ReturnType<typeof tempDir>>;
  let running: RunningEngine;
  let binding: string;

  /** The base configuration with `count` extra partners named `${prefix}-N`, from `description`. */
  const config = (prefix: string, count: number, description = prefix): RuntimeConfig => ({
    ...runtimeConfig({ receiveConnector: { bindings: [binding] } }),
    partners: [
      partnerDomain('adatum', { domain: 'adatum.com' }),
      ...Array.from({ length: count }, (_, i) =>
        partnerDomain(`${prefix}-${i}`, { domain: `${prefix}-${i}.example` }),
      ),
    ],
    source: { description },
  });

  before(async () => {
    state = await tempDir();
    running = await startEngine(state.path, { applyGate: lock.applyGate });
    binding = `127.0.0.1:${await freePort()}`;
  });
  after(async () => {
    await running.stop();
    await state.remove();
  });

  it('refuses a concurrent apply with 423 locked and leaves exactly the other one applied', async () => {
    const before = (await running.client.state()).generation;
    const first = config('first', 2);
    const held = lock.hold();
    const applying = running.client.apply(first);
    await held.inside;
    await assert.rejects(running.client.apply(config('second', 2)), (error: unknown) => {
      assert.ok(error instanceof ControlError);
      assert.equal(error.code, 'locked');
      assert.match(error.message, /^locked: another apply is in progress/);
      return true;
    });
    held.release();
    assert.equal((await applying).generation, before + 1);
    const after = await running.client.state();
    assert.equal(after.generation, before + 1);
    assert.deepEqual(after.objects, describeConfig(first));
  });

  it('keeps the last 20 generations with time and source, owner-readable only', async () => {
    for (let i = 0; i < 22; i += 1) await running.client.apply(config(`h${i}`, 1, `change ${i}`));
    const history = await running.client.history();
    const current = (await running.client.state()).generation;
    assert.equal(history.generation, current);
    assert.equal(history.entries.length, 20);
    assert.deepEqual(
      history.entries.map((e) => e.generation),
      Array.from({ length: 20 }, (_, i) => current - i),
    );
    assert.equal(history.entries[0]?.source?.description, 'change 21');
    assert.ok(!Number.isNaN(Date.parse(history.entries[0]?.appliedAt ?? '')));
    const files = (await readdir(join(state.path, 'history'))).filter((f) => f.endsWith('.json'));
    assert.equal(files.length, 20);
    for (const file of files)
      assert.equal((await stat(join(state.path, 'history', file))).mode & 0o777, 0o600);
  });

  it('rolls back to a kept generation as a new generation, and refuses one not kept', async () => {
    const history = await running.client.history();
    const target = history.entries[5];
    assert.ok(target !== undefined);
    const result = await running.client.rollback(target.generation);
    assert.equal(result.generation, history.generation + 1);
    const after = await running.client.state();
    assert.ok(after.objects.some((o) => o.name === `h${21 - 5}-0`));
    assert.ok(!after.objects.some((o) => o.name === 'h21-0'));
    const latest = (await running.client.history()).entries[0];
    assert.equal(latest?.rollbackOf, target.generation);
    assert.equal(latest?.source?.description, target.source?.description);

    await assert.rejects(running.client.rollback(1), (error: unknown) => {
      assert.ok(error instanceof ControlError);
      assert.equal(error.code, 'not-found');
      assert.match(error.message, /generation 1 is not kept/);
      return true;
    });
    await assert.rejects(running.client.rollback(target.generation, 1), /stale|made against/);
  });

  it('comes back after a restart under the same generation, and numbering continues', async () => {
    const before = await running.client.state();
    await running.stop();
    running = await startEngine(state.path, { applyGate: lock.applyGate });
    const resumed = await running.engine.resume();
    assert.equal(resumed?.generation, before.generation);
    assert.deepEqual((await running.client.state()).objects, before.objects);
    assert.equal((await running.client.history()).entries.length, 20);
    const next = await running.client.apply(config('after-restart', 1));
    assert.equal(next.generation, before.generation + 1);
  });

  it('records the reconcile status a watcher reports (Ready, last applied generation, last error) and keeps it across a restart', async () => {
    // The applies above were recorded as they happened, as every apply is.
    const initial = await running.client.status();
    assert.equal(initial.lastAttemptOutcome, 'applied');
    assert.equal(initial.lastAttemptBy, 'apply');
    const generation = (await running.client.state()).generation;
    let status = await running.client.reportStatus({
      outcome: 'applied',
      generation,
      error: null,
      reconciler: 'watch test',
    });
    assert.equal(status.ready, true);
    assert.equal(status.lastAppliedGeneration, generation);
    status = await running.client.reportStatus({
      outcome: 'invalid',
      generation,
      error: '2 error(s) in the manifests',
      reconciler: 'watch test',
    });
    assert.equal(status.ready, false);
    assert.equal(status.lastAppliedGeneration, generation);
    assert.equal(status.lastAttemptError, '2 error(s) in the manifests');
    assert.deepEqual(await running.client.status(), status);

    // A restarted engine still says what the last attempt did.
    await running.stop();
    running = await startEngine(state.path, { applyGate: lock.applyGate });
    await running.engine.resume();
    assert.deepEqual(await running.client.status(), status);
  });

  it('tells the command-line user the engine is locked, and leaves the running apply whole', async () => {
    const kept = (await running.client.history()).entries[1];
    assert.ok(kept !== undefined);
    const big = config('cli', 50);
    const held = lock.hold();
    const applying = running.client.apply(big);
    await held.inside;
    process.env.DOMSEC_TOKEN = running.token;
    let rollback;
    try {
      rollback = await domsecInProcess(
        [registerRollback],
        [
          'rollback',
          String(kept.generation),
          '--server',
          running.control.url,
          '-f',
          'none',
          '--auto-approve',
          '--approve-weakening',
        ],
      );
    } finally {
      delete process.env.DOMSEC_TOKEN;
      held.release();
    }
    assert.equal(rollback.code, 1);
    assert.equal(
      rollback.stderr,
      'domsec: the engine is locked by another apply in progress; try again when it ends\n',
    );
    const applied = await applying;
    const state = await running.client.state();
    assert.equal(state.generation, applied.generation);
    assert.deepEqual(state.objects, describeConfig(big));
  });
});
