// The MTA-STS texts (RFC 8461 §3.1, §3.2) and MX patterns (§4.1): what parses, what is no policy,
// whatever the bytes; `*.example.com` covers exactly one more label.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  MAX_AGE_LIMIT,
  mxMatches,
  mxPattern,
  parseStsPolicy,
  parseStsRecord,
} from '../../../src/engine/policy/mta-sts-policy.js';
import { requireDomainName } from '../../../src/domain-name.js';

const host = requireDomainName;

describe('MTA-STS TXT record', () => {
  it('reads the id of the one v=STSv1 record, other records ignored', () => {
    assert.deepEqual(parseStsRecord(['v=spf1 -all', 'v=STSv1; id=20260101T000000;']), {
      ok: true,
      value: { id: '20260101T000000' },
    });
    assert.deepEqual(parseStsRecord(['v=STSv1;id=abc;ext=1']), { ok: true, value: { id: 'abc' } });
  });

  it('is no policy with two records, no id, or an id that is not 1-32 letters and digits', () => {
    for (const records of [
      [],
      ['v=STSv1; id=a', 'v=STSv1; id=b'],
      ['v=STSv1;'],
      ['v=STSv1; id='],
      ['v=STSv1; id=a-b'],
      [`v=STSv1; id=${'a'.repeat(33)}`],
      ['v=STSv2; id=a'],
      ['V=STSv1; id=a'],
    ])
      assert.equal(parseStsRecord(records).ok, false, JSON.stringify(records));
  });
});

describe('MTA-STS policy file', () => {
  const good =
    'version: STSv1\nmode: enforce\nmx: mail.example.com\nmx: *.example.net\nmax_age: 86400\n';

  it('reads version, mode, every mx and max_age, with LF or CRLF and unknown keys', () => {
    const expected = {
      ok: true,
      value: { mode: 'enforce', mx: ['mail.example.com', '*.example.net'], maxAge: 86400 },
    };
    assert.deepEqual(parseStsPolicy(good), expected);
    assert.deepEqual(parseStsPolicy(good.replace(/\n/g, '\r\n')), expected);
    assert.deepEqual(parseStsPolicy(`${good}future_key: something\n`), expected);
    assert.deepEqual(
      parseStsPolicy('version:STSv1\r\nmode:  testing \r\nmx: MX.Example.COM.\r\nmax_age: 0'),
      { ok: true, value: { mode: 'testing', mx: ['mx.example.com'], maxAge: 0 } },
    );
  });

  it('caps a huge max_age at one year, refuses more than 10 digits', () => {
    assert.equal(
      (parseStsPolicy(good.replace('86400', '9999999999')) as { value: { maxAge: number } }).value
        .maxAge,
      MAX_AGE_LIMIT,
    );
    assert.equal(parseStsPolicy(good.replace('86400', '99999999999')).ok, false);
    assert.equal(parseStsPolicy(good.replace('86400', '-1')).ok, false);
    assert.equal(parseStsPolicy(good.replace('86400', '1e9')).ok, false);
  });

  it('is no policy without version, mode or max_age, with an unknown mode, or enforce without mx', () => {
    for (const text of [
      good.replace('version: STSv1\n', ''),
      good.replace('STSv1', 'STSv2'),
      good.replace('mode: enforce\n', ''),
      good.replace('enforce', 'Enforce'),
      good.replace('max_age: 86400\n', ''),
      'version: STSv1\nmode: enforce\nmax_age: 60\n',
      good.replace('mail.example.com', 'mail example.com'),
      good.replace('mail.example.com', '*.*.example.com'),
      'x'.repeat(70_000),
    ])
      assert.equal(parseStsPolicy(text).ok, false, JSON.stringify(text.slice(0, 80)));
    assert.deepEqual(parseStsPolicy('version: STSv1\nmode: none\nmax_age: 60\n'), {
      ok: true,
      value: { mode: 'none', mx: [], maxAge: 60 },
    });
  });

  it('gives a policy or a refusal for any bytes, never throws, and its mx are canonical patterns (property)', () => {
    const line = fc
      .oneof(
        fc.constantFrom(
          'version: STSv1',
          'mode: enforce',
          'mode: testing',
          'mode: none',
          'max_age: 604800',
          'mx: mail.example.com',
          'mx: *.example.com',
          'mx: ＭＸ.example.com',
          '',
        ),
        fc.string({ maxLength: 40 }),
        fc.string({ unit: 'binary', maxLength: 40 }),
      )
      .map((text) => text.replace(/[\r\n]/g, '')); // a line holds no line end of its own
    fc.assert(
      fc.property(
        fc.array(line, { maxLength: 12 }),
        fc.constantFrom('\n', '\r\n'),
        (lines, eol) => {
          const result = parseStsPolicy(lines.join(eol));
          if (!result.ok) return;
          assert.ok(['enforce', 'testing', 'none'].includes(result.value.mode));
          assert.ok(result.value.maxAge >= 0 && result.value.maxAge <= MAX_AGE_LIMIT);
          for (const pattern of result.value.mx) assert.equal(mxPattern(pattern), pattern);
          if (result.value.mode !== 'none') assert.ok(result.value.mx.length > 0);
          // The same lines with the other line ending read the same.
          assert.deepEqual(parseStsPolicy(lines.join(eol === '\n' ? '\r\n' : '\n')), result);
        },
      ),
      { numRuns: 1000 },
    );
  });
});

describe('MX patterns', () => {
  it('matches a wildcard by exactly one left-most label, and exact names exactly', () => {
    const patterns = ['*.example.com', 'mail.example.net'];
    assert.equal(mxMatches(patterns, host('mx1.example.com')), true);
    assert.equal(mxMatches(patterns, host('example.com')), false);
    assert.equal(mxMatches(patterns, host('a.b.example.com')), false);
    assert.equal(mxMatches(patterns, host('mxexample.com')), false);
    assert.equal(mxMatches(patterns, host('mail.example.net')), true);
    assert.equal(mxMatches(patterns, host('other.mail.example.net')), false);
  });

  it('decides any spelling of a host as its canonical form, and no pattern covers hosts of other parents (property)', () => {
    const label = fc
      .stringMatching(/^[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?$/)
      // "--" in the third and fourth places is IDNA's (xn--...): such labels are not plain names.
      .filter((text) => !text.includes('--'));
    fc.assert(
      fc.property(
        fc.array(label, { minLength: 1, maxLength: 4 }),
        label,
        fc.boolean(),
        (parts, extra, upper) => {
          const parent = parts.join('.');
          const wildcard = mxPattern(`*.${parent}`);
          if (wildcard === undefined) return;
          const below = `${extra}.${parent}`;
          const spelled = upper ? `${below.toUpperCase()}.` : below;
          const parsed = mxPattern(spelled);
          if (parsed === undefined) return;
          assert.equal(mxMatches([wildcard], host(spelled)), true);
          assert.equal(mxMatches([wildcard], host(parent)), false);
          assert.equal(mxMatches([wildcard], host(`${extra}.${below}`)), false);
          assert.equal(mxMatches([wildcard], host(`${extra}.x${parent}`)), false);
        },
      ),
      { numRuns: 300 },
    );
  });
});
