// Property: whatever sessions are counted (any strings in reasons, policy lines and host names,
// any mix of result types), the report is valid by RFC 8460's schema, its totals are the sessions
// counted, and every failure detail's count adds up to the failures.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { Ajv } from 'ajv';
import addFormatsModule from 'ajv-formats';
import fc from 'fast-check';
import { requireDomainName } from '../../../src/domain-name.js';
import { buildReport, gzipReport } from '../../../src/engine/tlsrpt/report.js';
import {
  addResult,
  RESULT_TYPES,
  type DomainDay,
  type SessionResult,
} from '../../../src/engine/tlsrpt/results.js';

const addFormats = addFormatsModule as unknown as (ajv: Ajv) => Ajv;
const SCHEMA = new URL('../../fixtures/tlsrpt/rfc8460-report.schema.json', import.meta.url);
const DOMAIN = requireDomainName('fabrikam.example');

test('property: any sessions make a report valid by RFC 8460 whose totals are the sessions', async () => {
  const ajv = new Ajv({ allErrors: true, strict: true });
  addFormats(ajv);
  const validate = ajv.compile(JSON.parse(await readFile(SCHEMA, 'utf8')) as object);
  const hostile = fc.string({ unit: 'binary', maxLength: 40 });
  const ip = fc.oneof(fc.ipV4(), fc.ipV6());
  const session: fc.Arbitrary<SessionResult> = fc.record({
    policyDomain: fc.constant(DOMAIN),
    policyType: fc.constantFrom('tlsa', 'sts', 'no-policy-found'),
    policyStrings: fc.array(hostile, { maxLength: 3 }),
    mxHost: fc.array(hostile, { maxLength: 2 }),
    result: fc.constantFrom('success' as const, ...RESULT_TYPES),
    sendingMtaIp: fc.option(ip, { nil: undefined }),
    receivingMxHostname: fc.option(
      hostile.filter((s) => s !== ''),
      { nil: undefined },
    ),
    receivingIp: fc.option(ip, { nil: undefined }),
    reason: fc.option(fc.string({ unit: 'binary', maxLength: 400 }), { nil: undefined }),
  });
  fc.assert(
    fc.property(fc.array(session, { minLength: 1, maxLength: 60 }), (sessions) => {
      const day: DomainDay = { version: 1, domain: DOMAIN, day: '2026-12-06', policies: [] };
      for (const s of sessions) addResult(day, s);
      const report = JSON.parse(
        gunzipSync(gzipReport(buildReport(day, submitter, 'id-1'))).toString('utf8'),
      ) as {
        policies: {
          summary: Record<string, number>;
          'failure-details'?: { 'failed-session-count': number }[];
        }[];
      };
      assert.ok(validate(report), JSON.stringify(validate.errors));
      const successes = sessions.filter((s) => s.result === 'success').length;
      const sum = (key: string) => report.policies.reduce((n, p) => n + (p.summary[key] ?? 0), 0);
      assert.equal(sum('total-successful-session-count'), successes);
      assert.equal(sum('total-failure-session-count'), sessions.length - successes);
      for (const policy of report.policies)
        assert.equal(
          (policy['failure-details'] ?? []).reduce((n, d) => n + d['failed-session-count'], 0),
          policy.summary['total-failure-session-count'],
        );
    }),
    { numRuns: 200 },
  );
});

const submitter = {
  organizationName: 'Adatum',
  contactInfo: 'postmaster@adatum.example',
  domain: requireDomainName('adatum.example'),
  from: 'tlsrpt-noreply@adatum.example',
};
