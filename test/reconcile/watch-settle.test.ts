// The pure parts of watch's safety: the settle window (taken once, a window after the last change,
// events or none) and what watch keeps without --prune (never a deletion, whatever a save drops).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { loadConfiguration } from '../../src/config/index.js';
import type { RuntimeConfig } from '../../src/model.js';
import { describeConfig } from '../../src/objects.js';
import { savedGenerationState } from '../../src/reconcile/gate.js';
import { computePlan } from '../../src/reconcile/plan.js';
import { keepDroppedObjects } from '../../src/reconcile/retained-objects.js';
import { SettleWindow } from '../../src/reconcile/settle-window.js';
import type { FileLooks } from '../../src/reconcile/watched-files.js';
import { ADATUM, TREY, writeLab, writeManifests } from '../support/manifests.js';
import { tempDir } from '../support/tmp.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('the settle window', () => {
  /** A window over one file whose look the test sets; resolves the times it settled at. */
  function window(windowMs: number) {
    let look = 'v1';
    const settled: number[] = [];
    const settle = new SettleWindow({
      windowMs,
      look: async (): Promise<FileLooks> => new Map([['/m/a.yaml', look]]),
      settled: () => settled.push(performance.now()),
      failed: (error) => assert.fail(error),
    });
    return {
      settle,
      settled,
      set: (value: string) => (look = value),
    };
  }

  it('takes a change once, a whole window after the last of a burst of events', async () => {
    const { settle, settled, set } = window(150);
    let last = 0;
    for (let i = 0; i < 8; i++) {
      set(`v${i}`);
      settle.change();
      last = performance.now();
      await sleep(40); // still changing: each event starts the window again
      assert.equal(settled.length, 0, `taken while still changing (event ${i})`);
    }
    await sleep(400);
    settle.close();
    assert.equal(settled.length, 1);
    assert.ok((settled[0] ?? 0) - last >= 145, `taken ${(settled[0] ?? 0) - last} ms after`);
  });

  it('starts again when a file changed without an event, and takes it once it stops', async () => {
    const { settle, settled, set } = window(120);
    settle.change();
    await sleep(20);
    set('v2'); // a second chunk no event reported
    await sleep(160);
    assert.equal(settled.length, 0, 'taken although the file changed within the window');
    await sleep(200);
    settle.close();
    assert.equal(settled.length, 1);
  });

  it('never settles after close', async () => {
    const { settle, settled } = window(50);
    settle.change();
    settle.close();
    settle.change();
    await sleep(150);
    assert.equal(settled.length, 0);
  });
});

describe('what watch keeps without --prune', () => {
  let lab: Awaited<ReturnType<typeof tempDir>>;
  let running: RuntimeConfig;

  before(async () => {
    lab = await tempDir();
    await writeLab(lab.path);
    const dir = await writeManifests({
      root: lab.path,
      org: ADATUM,
      partner: TREY,
      partnerBinding: '127.0.0.1:0',
      internalBinding: '127.0.0.1:0',
      adminListen: '127.0.0.1:1',
      partnerRoute: { host: '127.0.0.1', port: 9 },
      trust: 'root',
    });
    const load = await loadConfiguration([dir]);
    assert.ok(load.config !== undefined, JSON.stringify(load.diagnostics));
    // More partners, so that saves can drop any mix of them.
    const partner = load.config.partners[0];
    assert.ok(partner !== undefined);
    const more = [1, 2, 3].map((i) => ({ name: `partner-${i}`, spec: { ...partner.spec } }));
    running = { ...load.config, partners: [...load.config.partners, ...more] };
  });

  after(async () => {
    await lab.remove();
  });

  const LISTS = ['certificates', 'trustAnchors', 'partners', 'sendConnectors', 'receiveConnectors'];
  type ListName = 'certificates' | 'trustAnchors' | 'partners' | 'sendConnectors';
  const KIND: Record<string, string> = {
    certificates: 'Certificate',
    trustAnchors: 'TrustAnchor',
    partners: 'PartnerDomain',
    sendConnectors: 'SendConnector',
    receiveConnectors: 'ReceiveConnector',
  };

  /** Every object but the organization, as `list/index`. */
  function droppable(): string[] {
    return LISTS.flatMap((list) =>
      (running[list as ListName] as unknown[]).map((_, index) => `${list}/${index}`),
    );
  }

  /** The running configuration without the dropped objects: what a truncated save loads. */
  function without(dropped: string[]): { saved: RuntimeConfig; labels: string[] } {
    const saved = { ...running } as unknown as Record<string, { name: string }[]>;
    const labels: string[] = [];
    for (const list of LISTS) {
      const items = running[list as ListName] as { name: string }[];
      saved[list] = items.filter((item, index) => {
        const drop = dropped.includes(`${list}/${index}`);
        if (drop) labels.push(`${KIND[list]}/${item.name}`);
        return !drop;
      });
    }
    return { saved: saved as unknown as RuntimeConfig, labels: labels.sort() };
  }

  it('whatever a save drops, the plan deletes nothing and names each dropped object (fast-check)', () => {
    const state = savedGenerationState(running, 3);
    fc.assert(
      fc.property(fc.subarray(droppable()), (dropped) => {
        const { saved, labels } = without(dropped);
        const retention = keepDroppedObjects(saved, state, running);
        assert.deepEqual(retention.unkeepable, []);
        assert.deepEqual(retention.kept, labels);
        const plan = computePlan(describeConfig(retention.config), state);
        assert.deepEqual(plan.changes, [], 'the engine keeps running exactly what it ran');
      }),
      { numRuns: 200 },
    );
  });

  it('cannot keep a certificate or trust anchor it never loaded as it runs, and says so', () => {
    const state = savedGenerationState(running, 3);
    fc.assert(
      fc.property(fc.subarray(droppable(), { minLength: 1 }), (dropped) => {
        const { saved, labels } = without(dropped);
        const secret = labels.filter((l) => /^(Certificate|TrustAnchor)\//.test(l));
        // No earlier load (watch started on the truncated file), or one of another certificate.
        const stale = {
          ...running,
          certificates: running.certificates.map((c) => ({
            ...c,
            spec: { ...c.spec, fingerprint: 'AA:BB' },
          })),
          trustAnchors: [],
        };
        for (const memory of [undefined, stale]) {
          const retention = keepDroppedObjects(saved, state, memory);
          assert.deepEqual(retention.unkeepable, secret);
          assert.deepEqual(
            retention.kept,
            labels.filter((l) => !secret.includes(l)),
          );
        }
      }),
      { numRuns: 100 },
    );
  });

  it('does not keep a renamed organization beside the new one', () => {
    const state = savedGenerationState(running, 3);
    const renamed = { ...running, organization: { ...running.organization, name: 'adatum-2' } };
    const retention = keepDroppedObjects(renamed, state, running);
    assert.deepEqual(retention.kept, []);
    assert.equal(retention.config.organization.name, 'adatum-2');
  });
});
