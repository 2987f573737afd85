import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { EngineState, ObjectState } from '../../src/model.js';
import { computePlan } from '../../src/reconcile/plan.js';
import { renderPlanText } from '../../src/reconcile/render/text.js';
import { renderPlanJson } from '../../src/reconcile/render/json.js';

const partner = (
  name: string,
  domain: string,
  spec: Record<string, unknown> = {},
): ObjectState => ({
  kind: 'PartnerDomain',
  name,
  spec: {
    domain,
    domainSecure: { send: true, receive: true },
    trustAnchors: [`${name}-root`],
    certificateNameMatch: 'domain',
    ...spec,
  } as ObjectState['spec'],
});

const engine = (objects: ObjectState[], generation = 3): EngineState => ({
  formatVersion: 1,
  generation,
  appliedAt: null,
  source: null,
  hostname: 'mail.adatum.com',
  objects,
  listeners: [],
  queues: [],
});

describe('plan', () => {
  it('reports no changes when the engine runs exactly the desired objects', () => {
    const objects = [partner('trey', 'treyresearch.net')];
    const plan = computePlan(structuredClone(objects), engine(objects));
    assert.equal(plan.changes.length, 0);
    assert.deepEqual(plan.summary, { add: 0, change: 0, replace: 0, delete: 0 });
    assert.equal(renderPlanText(plan), 'No changes. The engine matches the manifests.\n');
  });

  it('lists an added partner as a create and adds it to both Exchange domain-secure lists', () => {
    const plan = computePlan(
      [partner('trey', 'treyresearch.net'), partner('contoso', 'contoso.com')],
      engine([partner('trey', 'treyresearch.net')]),
    );
    assert.deepEqual(plan.summary, { add: 1, change: 0, replace: 0, delete: 0 });
    assert.equal(plan.changes[0]?.action, 'create');
    assert.equal(plan.changes[0]?.name, 'contoso');
    assert.equal(plan.changes[0]?.security, 'strengthens');
    assert.deepEqual(plan.domainSecureLists.tlsSendDomainSecureList.add, ['contoso.com']);
    assert.deepEqual(plan.domainSecureLists.tlsReceiveDomainSecureList.add, ['contoso.com']);
    assert.equal(plan.baseGeneration, 3);
    const text = renderPlanText(plan);
    assert.match(text, /\+ PartnerDomain\/contoso/);
    assert.match(text, /TLSSendDomainSecureList \+= contoso\.com/);
    assert.match(text, /Plan: 1 to add, 0 to change, 0 to delete\./);
  });

  it('shows each changed field before -> after and marks an added trust anchor as weakening', () => {
    const before = partner('adatum', 'adatum.com', { trustAnchors: ['system'] });
    const after = partner('adatum', 'adatum.com', { trustAnchors: ['adatum-root'] });
    const plan = computePlan([after], engine([before]));
    const change = plan.changes[0];
    assert.equal(change?.action, 'update');
    assert.deepEqual(change?.fields, [
      { path: 'trustAnchors', before: ['system'], after: ['adatum-root'] },
    ]);
    assert.equal(change?.security, 'weakens');
    const text = renderPlanText(plan);
    assert.match(text, /! ~ PartnerDomain\/adatum/);
    assert.match(text, /trustAnchors: \["system"\] -> \["adatum-root"\]/);
    assert.match(text, /Security: these changes weaken domain security/);
  });

  it('deletes objects the manifests no longer have, and turning domain security off weakens', () => {
    const plan = computePlan([], engine([partner('trey', 'treyresearch.net')]));
    assert.deepEqual(plan.summary, { add: 0, change: 0, replace: 0, delete: 1 });
    assert.equal(plan.changes[0]?.security, 'weakens');
    assert.deepEqual(plan.domainSecureLists.tlsSendDomainSecureList.remove, ['treyresearch.net']);
  });

  it('treats lowering TLS to the internal mailbox server as weakening, raising it as strengthening', () => {
    const organization = (tls: string): ObjectState => ({
      kind: 'Organization',
      name: 'adatum',
      spec: { hostname: 'mail.adatum.com', delivery: { relay: { host: 'mbx:25', tls } } },
    });
    const lowered = computePlan([organization('none')], engine([organization('required')]));
    assert.equal(lowered.changes[0]?.security, 'weakens');
    assert.deepEqual(lowered.changes[0]?.reasons, ['TLS to the mailbox server lowered to none']);
    const raised = computePlan([organization('required')], engine([organization('opportunistic')]));
    assert.equal(raised.changes[0]?.security, 'strengthens');
  });

  it('treats relay permitted on a receive connector as weakening', () => {
    const connector = (permitRelay: boolean): ObjectState => ({
      kind: 'ReceiveConnector',
      name: 'internal',
      spec: { bindings: ['127.0.0.1:2587'], remoteIPRanges: ['127.0.0.0/8'], permitRelay },
    });
    const plan = computePlan([connector(true)], engine([connector(false)]));
    assert.equal(plan.changes[0]?.security, 'weakens');
    assert.deepEqual(plan.changes[0]?.reasons, ['relay permitted']);
  });

  it('renders the same plan as versioned JSON', () => {
    const plan = computePlan([partner('contoso', 'contoso.com')], engine([]));
    const parsed = JSON.parse(renderPlanJson(plan)) as {
      formatVersion: number;
      changes: { kind: string; action: string }[];
    };
    assert.equal(parsed.formatVersion, 1);
    assert.deepEqual(
      parsed.changes.map((c) => [c.kind, c.action]),
      [['PartnerDomain', 'create']],
    );
  });

  it('replaces (-/+) a receive connector whose bindings change, since its listeners are rebound', () => {
    const connector = (bindings: string[]): ObjectState => ({
      kind: 'ReceiveConnector',
      name: 'from-partners',
      spec: { bindings, remoteIPRanges: ['0.0.0.0/0'], permitRelay: false },
    });
    const plan = computePlan(
      [connector(['127.0.0.1:2526'])],
      engine([connector(['127.0.0.1:2525'])]),
    );
    assert.equal(plan.changes[0]?.action, 'replace');
    assert.deepEqual(plan.changes[0]?.replaceReasons, [
      'bindings change: its listeners are rebound',
    ]);
    assert.deepEqual(plan.summary, { add: 0, change: 0, replace: 1, delete: 0 });
    const text = renderPlanText(plan);
    assert.match(text, /-\/\+ ReceiveConnector\/from-partners/);
    assert.match(text, /bindings: \["127\.0\.0\.1:2525"\] -> \["127\.0\.0\.1:2526"\]/);
    assert.match(text, /Plan: 0 to add, 0 to change, 1 to replace, 0 to delete\./);
  });

  it('replaces a connector whose listener the engine reports as not listening (drift)', () => {
    const connector: ObjectState = {
      kind: 'ReceiveConnector',
      name: 'from-partners',
      spec: { bindings: ['127.0.0.1:2525'] },
    };
    const actual = engine([connector]);
    actual.listeners.push({
      connectors: ['from-partners'],
      binding: '127.0.0.1:2525',
      address: null,
      port: null,
      listening: false,
      error: 'EADDRINUSE',
    });
    const plan = computePlan([structuredClone(connector)], actual);
    assert.equal(plan.changes[0]?.action, 'replace');
    assert.deepEqual(plan.changes[0]?.fields, []);
    assert.deepEqual(plan.changes[0]?.replaceReasons, [
      'listener 127.0.0.1:2525 is not listening (EADDRINUSE)',
    ]);
  });

  it('warns of a certificate expiring within 30 days and of a removed partner with queued mail', () => {
    const now = new Date('2026-11-25T00:00:00Z');
    const certificate: ObjectState = {
      kind: 'Certificate',
      name: 'mail',
      spec: { fingerprint: 'AA', notAfter: '2026-12-05T00:00:00.000Z' },
    };
    const actual = engine([certificate, partner('trey', 'treyresearch.net')]);
    actual.queues.push({
      nextHopDomain: 'treyresearch.net',
      messageCount: 3,
      status: 'retry',
      lastError: null,
      nextRetryAt: null,
    });
    const plan = computePlan([certificate], actual, { now });
    assert.deepEqual(
      plan.warnings.map((w) => [w.code, w.kind, w.name]),
      [
        ['certificate-expiring', 'Certificate', 'mail'],
        ['queued-mail', 'PartnerDomain', 'trey'],
      ],
    );
    assert.match(plan.warnings[0]?.message ?? '', /expires in 10 day\(s\)/);
    assert.match(plan.warnings[1]?.message ?? '', /3 message\(s\) queued for treyresearch\.net/);
    const text = renderPlanText(plan);
    assert.match(text, /Warnings:\n {2}Certificate\/mail: expires in 10 day/);
    const expired = computePlan([certificate], engine([certificate]), {
      now: new Date('2027-01-01T00:00:00Z'),
    });
    assert.equal(expired.changes.length, 0);
    assert.match(renderPlanText(expired), /No changes\.[^]*Certificate\/mail: expired on/);
  });

  it('prints secrets as (sensitive), even if a Plan carried one', () => {
    const certificate = (fingerprint: string, keyPem: string): ObjectState => ({
      kind: 'Certificate',
      name: 'mail',
      spec: { fingerprint, privateKey: '(sensitive)', keyPem },
    });
    const created = renderPlanText(computePlan([certificate('AA', 'PRIVATE KEY 1')], engine([])));
    assert.match(created, /privateKey: \(sensitive\)/);
    assert.match(created, /keyPem: \(sensitive\)/);
    const rotated = renderPlanText(
      computePlan(
        [certificate('BB', 'PRIVATE KEY 2')],
        engine([certificate('AA', 'PRIVATE KEY 1')]),
      ),
    );
    assert.match(rotated, /fingerprint: AA -> BB/);
    assert.match(rotated, /keyPem: \(sensitive\) -> \(sensitive\)/);
    assert.doesNotMatch(created + rotated, /PRIVATE KEY/);
  });
});
