// The plan says who may relay once it is applied: each relay connector's ranges by what they
// cover (loopback, private networks, beyond), so an open relay does not read like a loopback one.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { EngineState, ObjectState, Plan } from '../../src/model.js';
import { computePlan } from '../../src/reconcile/plan.js';
import { renderPlanJson } from '../../src/reconcile/render/json.js';
import { renderPlanText } from '../../src/reconcile/render/text.js';

const relay = (name: string, bindings: string[], remoteIPRanges: string[]): ObjectState => ({
  kind: 'ReceiveConnector',
  name,
  spec: { bindings, remoteIPRanges, permitRelay: true, requireTls: false },
});

const empty: EngineState = {
  formatVersion: 1,
  generation: 2,
  appliedAt: null,
  source: null,
  hostname: 'mail.adatum.com',
  objects: [],
  listeners: [],
  queues: [],
};

describe('plan: relay permissions', () => {
  const desired = [
    relay('internal', ['0.0.0.0:587'], ['127.0.0.0/8']),
    relay('lab', ['127.0.0.2:2587'], ['0.0.0.0/0']),
    relay('lan', ['0.0.0.0:587'], ['127.0.0.0/8', '10.0.0.0/8']),
    relay('open', ['0.0.0.0:25', '127.0.0.1:26'], ['0.0.0.0/1', '128.0.0.0/1', '::ffff:0:0/96']),
    { ...relay('plain', ['0.0.0.0:25'], ['0.0.0.0/0']), spec: { permitRelay: false } },
  ];
  const plan = computePlan(desired, empty);

  it('lists each relay connector with the class its ranges reach, by coverage', () => {
    assert.deepEqual(
      plan.relay?.map((r) => [r.connector, r.reach, r.exposedBindings]),
      [
        ['internal', 'loopback', ['0.0.0.0:587']],
        ['lab', 'loopback', []], // every binding on loopback: only this machine connects
        ['lan', 'private-networks', ['0.0.0.0:587']],
        ['open', 'beyond-private-networks', ['0.0.0.0:25']],
      ],
    );
    const open = plan.relay?.find((r) => r.connector === 'open');
    assert.deepEqual(open?.beyondPrivateNetworks, ['0.0.0.0/1', '128.0.0.0/1', '::ffff:0:0/96']);
    assert.deepEqual(plan.relay?.find((r) => r.connector === 'lan')?.privateNetworks, [
      '10.0.0.0/8',
    ]);
  });

  it('the text plan says which ranges may relay, an open relay in words', () => {
    const text = renderPlanText(plan);
    const section = text.slice(text.indexOf('Relay: these clients may send mail'));
    assert.match(
      section,
      /ReceiveConnector\/internal: 127\.0\.0\.0\/8 on 0\.0\.0\.0:587 \(loopback only\)/,
    );
    assert.match(
      section,
      /ReceiveConnector\/lab: 0\.0\.0\.0\/0 \(every binding is on loopback\) \(loopback only\)/,
    );
    assert.match(
      section,
      /ReceiveConnector\/lan: 127\.0\.0\.0\/8, 10\.0\.0\.0\/8 on 0\.0\.0\.0:587 \(private networks\)/,
    );
    assert.match(
      section,
      /ReceiveConnector\/open: 0\.0\.0\.0\/1, 128\.0\.0\.0\/1, ::ffff:0:0\/96 on 0\.0\.0\.0:25 \(beyond private networks: an open relay\)/,
    );
    assert.doesNotMatch(section, /plain/);
  });

  it('the JSON plan carries the same list; a plan saved without it still renders', () => {
    assert.deepEqual((JSON.parse(renderPlanJson(plan)) as Plan).relay, plan.relay);
    const older: Plan = { ...plan };
    delete older.relay;
    assert.doesNotMatch(renderPlanText(older), /^Relay:/m);
  });
});
