// The security impact of plan changes, field by field: the cases the old hand-written list
// missed, IP ranges by coverage, create and delete, and a property test that no change letting
// in a probe the old configuration refused is ever called neutral or strengthening.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { namesPartner } from '../../src/certificate-names.js';
import type { Change, EngineState, JsonObject, Kind, ObjectState } from '../../src/model.js';
import { rangesHold } from '../../src/ip-coverage.js';
import { computePlan } from '../../src/reconcile/plan.js';

const engine = (objects: ObjectState[]): EngineState => ({
  formatVersion: 1,
  generation: 3,
  appliedAt: null,
  source: null,
  hostname: 'mail.adatum.com',
  objects,
  listeners: [],
  queues: [],
});

const object = (kind: Kind, spec: JsonObject, name = 'x'): ObjectState => ({ kind, name, spec });

/** The one change of a plan from `before` to `after` (null: the object absent). */
function judged(kind: Kind, before: JsonObject | null, after: JsonObject | null): Change {
  const plan = computePlan(
    after === null ? [] : [object(kind, after)],
    engine(before === null ? [] : [object(kind, before)]),
  );
  const [change] = plan.changes;
  assert.ok(change !== undefined, 'a change');
  return change;
}

const PARTNER: JsonObject = {
  domain: 'partner.example',
  domainSecure: { send: true, receive: true },
  trustAnchors: ['partner-root'],
  certificateNames: [],
  certificateNameMatch: 'domain',
  clientCertificatePurpose: 'strict',
  remoteIPRanges: [],
  requireHeaderFromDomain: true,
};

const CONNECTOR: JsonObject = {
  bindings: ['127.0.0.1:2525'],
  remoteIPRanges: ['10.0.0.0/8'],
  authMechanisms: ['tls'],
  permitRelay: false,
  acceptAuthoritativeDomainSenders: false,
  domainSecure: true,
  requireTls: true,
  maxMessageSize: '25MB',
};

describe('security impact', () => {
  it('weakens when the client certificate purpose goes from strict to standard', () => {
    const change = judged('PartnerDomain', PARTNER, {
      ...PARTNER,
      clientCertificatePurpose: 'standard',
    });
    assert.equal(change.security, 'weakens');
    assert.deepEqual(change.reasons, ['client certificate purpose loosened to standard']);
  });

  it('weakens when a wildcard certificate name is added, strengthens when it is removed', () => {
    const wider = { ...PARTNER, certificateNames: ['*.partner.example'] };
    const added = judged('PartnerDomain', PARTNER, wider);
    assert.equal(added.security, 'weakens');
    assert.deepEqual(added.reasons, ['certificate names added: *.partner.example']);
    assert.equal(judged('PartnerDomain', wider, PARTNER).security, 'strengthens');
  });

  it('weakens when the From: header check is turned off', () => {
    const change = judged('PartnerDomain', PARTNER, { ...PARTNER, requireHeaderFromDomain: false });
    assert.equal(change.security, 'weakens');
  });

  it("judges a partner's remote ranges by coverage, an empty list being any address", () => {
    const limited = { ...PARTNER, remoteIPRanges: ['192.0.2.0/24'] };
    assert.equal(judged('PartnerDomain', PARTNER, limited).security, 'strengthens');
    const lifted = judged('PartnerDomain', limited, PARTNER);
    assert.equal(lifted.security, 'weakens');
    assert.deepEqual(lifted.reasons, ['remote IP ranges: restriction removed (any address)']);
  });

  it("judges a receive connector's remote ranges by the addresses covered, not the strings", () => {
    const ranges = (remoteIPRanges: string[]) => ({ ...CONNECTOR, remoteIPRanges });
    // The same addresses written as two halves: no change in who may connect.
    assert.equal(
      judged('ReceiveConnector', ranges(['10.0.0.0/8']), ranges(['10.0.0.0/9', '10.128.0.0/9']))
        .security,
      'none',
    );
    assert.equal(
      judged('ReceiveConnector', ranges(['10.0.0.0/8']), ranges(['10.1.0.0/16'])).security,
      'strengthens',
    );
    const widened = judged('ReceiveConnector', ranges(['10.0.0.0/8']), ranges(['10.0.0.0/7']));
    assert.equal(widened.security, 'weakens');
    assert.deepEqual(widened.reasons, ['remote ranges widened: 10.0.0.0/7']);
    assert.equal(
      judged('ReceiveConnector', ranges(['10.0.0.0/8']), ranges(['10.0.0.0/8', '2001:db8::/32']))
        .security,
      'weakens',
    );
  });

  it('weakens when a receive connector stops offering TLS or accepts our own domains from outside', () => {
    assert.equal(
      judged('ReceiveConnector', CONNECTOR, { ...CONNECTOR, authMechanisms: ['none'] }).security,
      'weakens',
    );
    assert.equal(
      judged('ReceiveConnector', CONNECTOR, {
        ...CONNECTOR,
        acceptAuthoritativeDomainSenders: true,
      }).security,
      'weakens',
    );
  });

  it('weakens when a trust anchor trusts another CA certificate, the public store, or loses its CRL', () => {
    const anchor = { system: false, fingerprint: 'AA:BB', crl: 'sha256:1' };
    assert.equal(
      judged('TrustAnchor', anchor, { ...anchor, fingerprint: 'CC:DD' }).security,
      'weakens',
    );
    assert.equal(
      judged('TrustAnchor', anchor, { system: true, crl: 'sha256:1' }).security,
      'weakens',
    );
    const removed = judged('TrustAnchor', anchor, { ...anchor, crl: null });
    assert.deepEqual(removed.reasons, ['certificate revocation list removed']);
    assert.equal(judged('TrustAnchor', anchor, { ...anchor, crl: 'sha256:2' }).security, 'none');
    assert.equal(judged('TrustAnchor', anchor, null).security, 'weakens');
  });

  it('weakens when the admin API moves beyond loopback, even through a renamed Organization', () => {
    const organization = (listen: string) => ({ hostname: 'mail.adatum.com', admin: { listen } });
    const moved = judged(
      'Organization',
      organization('127.0.0.1:8025'),
      organization('0.0.0.0:8025'),
    );
    assert.equal(moved.security, 'weakens');
    assert.equal(
      judged('Organization', organization('127.0.0.1:8025'), organization('[::1]:9000')).security,
      'none',
    );
    const renamed = computePlan(
      [object('Organization', organization('192.0.2.10:8025'), 'new-name')],
      engine([object('Organization', organization('127.0.0.1:8025'), 'adatum')]),
    );
    const created = renamed.changes.find((c) => c.action === 'create');
    assert.equal(created?.security, 'weakens');
  });

  it('judges creates and deletes: a deleted partner or a created relay connector weakens', () => {
    const deleted = judged('PartnerDomain', PARTNER, null);
    assert.equal(deleted.security, 'weakens');
    assert.equal(judged('PartnerDomain', null, PARTNER).security, 'strengthens');
    assert.equal(
      judged('ReceiveConnector', null, { ...CONNECTOR, permitRelay: true }).security,
      'weakens',
    );
    assert.equal(judged('ReceiveConnector', null, CONNECTOR).security, 'none');
    assert.equal(
      judged('SendConnector', null, { requireTls: false, addressSpaces: ['*'] }).security,
      'weakens',
    );
  });

  it('takes a change of the partner domain for the old domain losing its protection', () => {
    const change = judged('PartnerDomain', PARTNER, { ...PARTNER, domain: 'other.example' });
    assert.equal(change.security, 'weakens');
    assert.match(change.reasons.join('; '), /partner\.example loses domain security for sending/);
  });

  it('counts a change of a field nobody classified as weakening', () => {
    const change = judged('ReceiveConnector', CONNECTOR, { ...CONNECTOR, trustEveryone: true });
    assert.equal(change.security, 'weakens');
    assert.match(
      change.reasons[0] ?? '',
      /trustEveryone changed, and its security impact is not classified/,
    );
  });
});

// ---------------------------------------------------------------------------------------------
// Property test: a model of what a spec accepts, and generated probes.

const RANGES = [
  '10.0.0.0/8',
  '10.0.0.0/9',
  '10.128.0.0/9',
  '10.1.0.0/16',
  '192.0.2.0/24',
  '192.0.2.1',
  '0.0.0.0/0',
  '::/0',
  '2001:db8::/32',
];
const ADDRESSES = [
  '10.0.0.1',
  '10.1.2.3',
  '10.200.0.1',
  '192.0.2.1',
  '192.0.2.9',
  '203.0.113.5',
  '2001:db8::1',
  '::1',
];
const NAMES = [
  'partner.example',
  'mail.partner.example',
  '*.partner.example',
  'mx.other.example',
  'a.b.partner.example',
];
const ANCHORS = ['partner-root', 'other-root', 'system'];

const partnerSpec = fc.record({
  domain: fc.constant('partner.example'),
  domainSecure: fc.record({ send: fc.boolean(), receive: fc.boolean() }),
  trustAnchors: fc.uniqueArray(fc.constantFrom(...ANCHORS), { maxLength: 3 }),
  certificateNames: fc.uniqueArray(fc.constantFrom(...NAMES), { maxLength: 3 }),
  certificateNameMatch: fc.constantFrom('domain', 'subdomain'),
  clientCertificatePurpose: fc.constantFrom('strict', 'standard'),
  remoteIPRanges: fc.uniqueArray(fc.constantFrom(...RANGES), { maxLength: 3 }),
  requireHeaderFromDomain: fc.boolean(),
});
type PartnerSpec = typeof partnerSpec extends fc.Arbitrary<infer T> ? T : never;

const partnerProbe = fc.record({
  direction: fc.constantFrom('send', 'receive'),
  certificateName: fc.constantFrom(...NAMES),
  anchor: fc.constantFrom(...ANCHORS),
  address: fc.constantFrom(...ADDRESSES),
  clientAuth: fc.boolean(),
  headerFromMatches: fc.boolean(),
});
type PartnerProbe = typeof partnerProbe extends fc.Arbitrary<infer T> ? T : never;

/** Whether a session with the partner's server, as the probe describes it, is let through. */
function partnerAccepts(spec: PartnerSpec, probe: PartnerProbe): boolean {
  // Without domain security in that direction, any certificate (or none) will do.
  if (!spec.domainSecure[probe.direction as 'send' | 'receive']) return true;
  if (!spec.trustAnchors.includes(probe.anchor)) return false;
  if (!namesPartner([probe.certificateName], spec)) return false;
  if (probe.direction === 'send') return true;
  if (spec.remoteIPRanges.length > 0 && !rangesHold(spec.remoteIPRanges, probe.address))
    return false;
  if (spec.clientCertificatePurpose === 'strict' && !probe.clientAuth) return false;
  return !spec.requireHeaderFromDomain || probe.headerFromMatches;
}

const connectorSpec = fc
  .record({
    bindings: fc.constant<string[]>(['127.0.0.1:2525']),
    remoteIPRanges: fc.uniqueArray(fc.constantFrom(...RANGES), { minLength: 1, maxLength: 3 }),
    authMechanisms: fc.constantFrom<string[]>(['tls'], ['none'], ['tls', 'none']),
    permitRelay: fc.boolean(),
    acceptAuthoritativeDomainSenders: fc.boolean(),
    domainSecure: fc.boolean(),
    requireTls: fc.boolean(),
    maxMessageSize: fc.constantFrom('10MB', '25MB'),
    maxRecipientsPerMessage: fc.constantFrom(100, 200),
  })
  // What validate lets through: TLS required or domain security only where TLS is offered
  // (DS002, DS018), and domain security always with required TLS (DS014).
  .filter((spec) => spec.authMechanisms.includes('tls') || (!spec.requireTls && !spec.domainSecure))
  .filter((spec) => spec.requireTls || !spec.domainSecure);
type ConnectorSpec = typeof connectorSpec extends fc.Arbitrary<infer T> ? T : never;

const connectorProbe = fc.record({
  address: fc.constantFrom(...ADDRESSES),
  startsTls: fc.boolean(),
  localRecipient: fc.boolean(),
  ownDomainSender: fc.boolean(),
  partnerWithoutCertificate: fc.boolean(),
});
type ConnectorProbe = typeof connectorProbe extends fc.Arbitrary<infer T> ? T : never;

/** Whether a client, as the probe describes it, gets its message accepted. */
function connectorAccepts(spec: ConnectorSpec, probe: ConnectorProbe): boolean {
  if (!rangesHold(spec.remoteIPRanges, probe.address)) return false;
  const underTls = probe.startsTls && spec.authMechanisms.includes('tls');
  if (spec.requireTls && !underTls) return false;
  if (!probe.localRecipient && !spec.permitRelay) return false;
  if (probe.ownDomainSender && !spec.acceptAuthoritativeDomainSenders) return false;
  return !(probe.partnerWithoutCertificate && spec.domainSecure);
}

describe('security impact, generated', () => {
  it('never calls a partner change neutral or strengthening when it lets in a probe refused before', () => {
    fc.assert(
      fc.property(
        partnerSpec,
        partnerSpec,
        fc.array(partnerProbe, { minLength: 1, maxLength: 20 }),
        (before, after, probes) => {
          const change = computePlan(
            [object('PartnerDomain', after)],
            engine([object('PartnerDomain', before)]),
          ).changes[0];
          const admitted = probes.some(
            (p) => partnerAccepts(after, p) && !partnerAccepts(before, p),
          );
          if (admitted)
            assert.equal(change?.security, 'weakens', JSON.stringify({ before, after }));
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('never calls a receive connector change neutral or strengthening when it lets in a probe refused before', () => {
    fc.assert(
      fc.property(
        connectorSpec,
        connectorSpec,
        fc.array(connectorProbe, { minLength: 1, maxLength: 20 }),
        (before, after, probes) => {
          const change = computePlan(
            [object('ReceiveConnector', after)],
            engine([object('ReceiveConnector', before)]),
          ).changes[0];
          const admitted = probes.some(
            (p) => connectorAccepts(after, p) && !connectorAccepts(before, p),
          );
          if (admitted)
            assert.equal(change?.security, 'weakens', JSON.stringify({ before, after }));
        },
      ),
      { numRuns: 2000 },
    );
  });
});
