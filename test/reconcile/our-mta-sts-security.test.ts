// Our own published MTA-STS policy (Organization.mtaSts.mode): lowering it (enforce -> testing ->
// none) lets senders deliver to us without verified TLS, so it is a weakening change that the
// one gate refuses unattended without --approve-weakening; raising it strengthens.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { RuntimeConfig } from '../../src/model.js';
import { describeConfig } from '../../src/objects.js';
import { judgePlan, savedGenerationState } from '../../src/reconcile/gate.js';
import { computePlan } from '../../src/reconcile/plan.js';
import { runtimeConfig } from '../support/runtime-config.js';

type Mode = 'enforce' | 'testing' | 'none';
const publishing = (mode: Mode): RuntimeConfig =>
  runtimeConfig({ organization: { mtaSts: { mode, mx: [], maxAge: 604800 } } });

const plan = (before: Mode, after: Mode) =>
  computePlan(describeConfig(publishing(after)), savedGenerationState(publishing(before), 1));

describe('our MTA-STS policy mode', () => {
  it('weakens when lowered one step or two, strengthens when raised', () => {
    for (const [before, after] of [
      ['enforce', 'testing'],
      ['testing', 'none'],
      ['enforce', 'none'],
    ] as const) {
      const [change] = plan(before, after).changes;
      assert.equal(change?.kind, 'Organization', `${before} -> ${after}`);
      assert.equal(change?.security, 'weakens', `${before} -> ${after}`);
      assert.deepEqual(change?.reasons, [`our published MTA-STS policy loosened to ${after}`]);
    }
    for (const [before, after] of [
      ['none', 'testing'],
      ['testing', 'enforce'],
    ] as const) {
      assert.equal(
        plan(before, after).changes[0]?.security,
        'strengthens',
        `${before} -> ${after}`,
      );
    }
    assert.deepEqual(plan('enforce', 'enforce').changes, []);
  });

  it('weakens when the policy is removed altogether, as lowering it to none', () => {
    const none = runtimeConfig({});
    for (const mode of ['enforce', 'testing'] as const) {
      const removed = computePlan(describeConfig(none), savedGenerationState(publishing(mode), 1));
      const change = removed.changes.find((c) => c.kind === 'Organization');
      assert.equal(change?.security, 'weakens', `${mode} -> (none)`);
      assert.ok(
        change?.reasons.includes('our published MTA-STS policy loosened to none'),
        JSON.stringify(change?.reasons),
      );
    }
  });

  it('is refused by the gate unattended without --approve-weakening, and passes with it', async () => {
    const refused = await judgePlan(plan('enforce', 'testing'), {
      approval: { kind: 'unattended', approveWeakening: false },
      print: () => undefined,
    });
    assert.equal(refused.status, 'refused');
    assert.match(
      refused.status === 'refused' ? refused.message : '',
      /Organization\/treyresearch \(our published MTA-STS policy loosened to testing\)/,
    );
    const approved = await judgePlan(plan('enforce', 'testing'), {
      approval: { kind: 'unattended', approveWeakening: true },
      print: () => undefined,
    });
    assert.equal(approved.status, 'approved');
  });
});
