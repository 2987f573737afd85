// TLS policy outcomes by domain for /metrics and the status page: success and failures by the
// result type TLS reporting names, counted from the send sessions' events; the label set stays
// bounded however many domains mail goes to (an `other` bucket past the cap), with every session
// still counted; the Prometheus series are the engine registry's.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { requireDomainName } from '../../../src/domain-name.js';
import type { EngineEvent } from '../../../src/engine/events.js';
import { EngineMetrics } from '../../../src/engine/metrics.js';
import { PartnerHealth } from '../../../src/engine/partner-health.js';
import {
  OTHER_DOMAINS,
  PolicyOutcomes,
  type PolicyResult,
} from '../../../src/engine/tlsrpt/policy-outcomes.js';
import { RESULT_TYPES, type PolicyType } from '../../../src/engine/tlsrpt/results.js';

const result = (domain: string, policyType: PolicyType, outcome: PolicyResult): EngineEvent => ({
  type: 'send.tls-result',
  domain: requireDomainName(domain),
  policyType,
  policyStrings: [],
  mxHost: [],
  result: outcome,
  host: `mx.${domain}`,
  address: '192.0.2.1',
  localAddress: null,
});

describe('TLS policy outcomes', () => {
  it('counts success and each failure by result type, per domain, failures most first', () => {
    const outcomes = new PolicyOutcomes();
    for (const event of [
      result('fabrikam.example', 'sts', 'success'),
      result('fabrikam.example', 'sts', 'success'),
      result('fabrikam.example', 'sts', 'certificate-host-mismatch'),
      result('fabrikam.example', 'tlsa', 'tlsa-invalid'),
      result('fabrikam.example', 'tlsa', 'tlsa-invalid'),
      result('contoso.example', 'sts', 'sts-policy-fetch-error'),
      result('contoso.example', 'no-policy-found', 'starttls-not-supported'),
    ])
      outcomes.observe(event);
    outcomes.observe({
      type: 'queue.delivered',
      id: 'm1',
      recipients: ['a@x.example'],
      nextHopDomain: 'x.example',
    });
    assert.deepEqual(outcomes.byDomain(), [
      {
        domain: 'contoso.example',
        policyTypes: ['no-policy-found', 'sts'],
        successful: 0,
        failed: 2,
        failures: [
          { result: 'starttls-not-supported', sessions: 1 },
          { result: 'sts-policy-fetch-error', sessions: 1 },
        ],
      },
      {
        domain: 'fabrikam.example',
        policyTypes: ['sts', 'tlsa'],
        successful: 2,
        failed: 3,
        failures: [
          { result: 'tlsa-invalid', sessions: 2 },
          { result: 'certificate-host-mismatch', sessions: 1 },
        ],
      },
    ]);
  });

  it('keeps at most the cap of domains plus other, and counts every session (property)', () => {
    const cap = 5;
    const label = fc.stringMatching(/^[a-z][a-z0-9]{0,8}$/);
    const event = fc.record({
      domain: fc.tuple(label, label).map(([a, b]) => `${a}.${b}.example`),
      policyType: fc.constantFrom<PolicyType>('tlsa', 'sts', 'no-policy-found'),
      outcome: fc.constantFrom<PolicyResult>('success', ...RESULT_TYPES),
    });
    fc.assert(
      fc.property(fc.array(event, { maxLength: 200 }), (events) => {
        const outcomes = new PolicyOutcomes(cap);
        for (const e of events) outcomes.observe(result(e.domain, e.policyType, e.outcome));
        const domains = new Set(outcomes.outcomes().map((o) => o.domain));
        assert.ok(domains.size <= cap + 1);
        const firstSeen = [...new Set(events.map((e) => e.domain))];
        for (const domain of firstSeen.slice(0, cap)) assert.ok(domains.has(domain));
        assert.equal(domains.has(OTHER_DOMAINS), firstSeen.length > cap);
        const total = outcomes.outcomes().reduce((sum, o) => sum + o.sessions, 0);
        assert.equal(total, events.length);
        const views = outcomes.byDomain();
        assert.equal(
          views.reduce((sum, v) => sum + v.successful + v.failed, 0),
          events.length,
        );
        if (domains.has(OTHER_DOMAINS)) assert.equal(views.at(-1)?.domain, OTHER_DOMAINS);
      }),
      { numRuns: 200 },
    );
  });

  it('exports domsec_tls_policy_sessions_total by policy domain, policy type and result', async () => {
    const metrics = new EngineMetrics({
      generation: () => undefined,
      queuedMessages: () => [],
      receiveSessions: () => [],
      partners: new PartnerHealth(),
    });
    metrics.observe(result('fabrikam.example', 'sts', 'success'));
    metrics.observe(result('fabrikam.example', 'sts', 'certificate-host-mismatch'));
    metrics.observe(result('fabrikam.example', 'sts', 'certificate-host-mismatch'));
    metrics.observe(result('contoso.example', 'tlsa', 'dnssec-invalid'));
    const { body } = await metrics.text();
    const lines = body.split('\n').filter((l) => l.startsWith('domsec_tls_policy_sessions_total'));
    assert.deepEqual(lines.sort(), [
      'domsec_tls_policy_sessions_total{policy_domain="contoso.example",policy_type="tlsa",result="dnssec-invalid"} 1',
      'domsec_tls_policy_sessions_total{policy_domain="fabrikam.example",policy_type="sts",result="certificate-host-mismatch"} 2',
      'domsec_tls_policy_sessions_total{policy_domain="fabrikam.example",policy_type="sts",result="success"} 1',
    ]);
    assert.match(body, /# TYPE domsec_tls_policy_sessions_total counter/);
    // Read twice, the same values: collect() sets them, it does not add them again.
    assert.equal((await metrics.text()).body, body);
  });
});
