import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { requireDomainName } from '../../../src/domain-name.js';
import { PolicyResolver } from '../../../src/engine/policy/resolver.js';
import {
  DnsLookupError,
  lookupTlsRpt,
  MAX_RUA,
  parseTlsRptRecord,
} from '../../../src/engine/tlsrpt/record.js';
import { startDnsServer } from '../../support/dns-server.js';

test('a TLSRPT record: mailto and https rua, whitespace around delimiters, a trailing ;', () => {
  const parsed = parseTlsRptRecord(
    'v=TLSRPTv1 ; rua=mailto:tls-reports@Example.NET , https://reports.example.net/v1/tlsrpt;',
  );
  assert.ok(parsed.ok, parsed.ok ? '' : parsed.reason);
  assert.deepEqual(
    parsed.rua.map((uri) => (uri.kind === 'mailto' ? uri.address : uri.url.href)),
    ['tls-reports@example.net', 'https://reports.example.net/v1/tlsrpt'],
  );
  assert.ok(parseTlsRptRecord('v=TLSRPTv1;rua=mailto:a@b.example;ext_1=x!y').ok);
});

test('TLSRPT records the RFC grammar or this reader refuses', () => {
  for (const [text, why] of [
    ['v=TLSRPTv1', 'has no rua'],
    ['v=TLSRPTv2;rua=mailto:a@b.example', 'does not begin'],
    ['rua=mailto:a@b.example;v=TLSRPTv1', 'does not begin'],
    ['V=TLSRPTv1;rua=mailto:a@b.example', 'does not begin'],
    ['v=TLSRPTv1;rua=mailto:a@b.example;rua=mailto:c@d.example', 'more than once'],
    ['v=TLSRPTv1;rua=http://insecure.example/r', 'neither mailto: nor https:'],
    ['v=TLSRPTv1;rua=mailto:a@b.example?subject=x', 'one address only'],
    ['v=TLSRPTv1;rua=mailto:no-at-sign', 'local-part@domain'],
    ['v=TLSRPTv1;rua=mailto:a@[192.0.2.1]', 'not a domain name'],
    ['v=TLSRPTv1;rua=mailto:a@b..example', 'not a domain name'],
    ['v=TLSRPTv1;rua=https://user:pw@r.example/', 'credentials'],
    ['v=TLSRPTv1;rua=https://127.0.0.1/r', 'IP address'],
    ['v=TLSRPTv1;rua=https://[::1]:8443/r', 'IP address'],
    ['v=TLSRPTv1;;rua=mailto:a@b.example', 'not name=value'],
    ['v=TLSRPTv1;rua=mailto:a@b.example;=x', 'not name=value'],
    ['v=TLSRPTv1;rua=mailto:a@b.example;x=', 'not an extension value'],
    ['v=TLSRPTv1;rua=mailto:a@b.example;-x=1', 'not an extension name'],
    ['v=TLSRPTv1;rua=mailto:a%ZZ@b.example', 'percent-encoding'],
    ['v=TLSRPTv1;rua=mailto:a@b.example,', 'is empty'],
    ['v=TLSRPTv1;rua=mailto:a\u00e9@b.example', 'printable ASCII'],
    ['v=TLSRPTv1;rua=mailto:a@b.example\u0000', 'printable ASCII'],
    [
      `v=TLSRPTv1;rua=${Array.from({ length: MAX_RUA + 1 }, (_, i) => `mailto:r${i}@b.example`).join(',')}`,
      'more than',
    ],
    [`v=TLSRPTv1;rua=https://r.example/${'a'.repeat(2100)}`, 'longer than'],
  ] as const) {
    const parsed = parseTlsRptRecord(text);
    assert.equal(parsed.ok, false, text);
    if (!parsed.ok)
      assert.match(parsed.reason, new RegExp(why.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')), text);
  }
});

const label = fc
  .stringMatching(/^[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?$/)
  .filter((l) => !l.includes('--'));
const domain = fc
  .tuple(fc.array(label, { minLength: 1, maxLength: 3 }), fc.constantFrom('example', 'test', 'net'))
  .map(([labels, tld]) => [...labels, tld].join('.'));
const local = fc.stringMatching(/^[a-z0-9][a-z0-9._+-]{0,10}$/);
const uri = fc.oneof(
  fc.tuple(local, domain).map(([l, d]) => ({ text: `mailto:${l}@${d}`, expect: `${l}@${d}` })),
  fc.tuple(domain, fc.stringMatching(/^[a-z0-9/_-]{0,20}$/)).map(([d, p]) => ({
    text: `https://${d}/${p}`,
    expect: new URL(`https://${d}/${p}`).href,
  })),
);
const wsp = fc.constantFrom('', ' ', '\t', '  ');

test('property: any record written by the grammar parses to its rua URIs, in order', () => {
  fc.assert(
    fc.property(
      fc.uniqueArray(uri, { minLength: 1, maxLength: MAX_RUA, selector: (u) => u.text }),
      wsp,
      wsp,
      fc.boolean(),
      (uris, before, after, trailing) => {
        const text = `v=TLSRPTv1${before};${after}rua=${uris.map((u) => u.text).join(`${before},${after}`)}${trailing ? ';' : ''}`;
        const parsed = parseTlsRptRecord(text);
        assert.ok(parsed.ok, `${text}: ${parsed.ok ? '' : parsed.reason}`);
        assert.deepEqual(
          parsed.rua.map((u) => (u.kind === 'mailto' ? u.address : u.url.href)),
          uris.map((u) => u.expect),
        );
      },
    ),
    { numRuns: 300 },
  );
});

test('property: hostile text never throws, and what parses names only mailto: and https: targets', () => {
  const hostile = fc.oneof(
    fc.string({ unit: 'binary', maxLength: 300 }),
    fc.string({ maxLength: 300 }).map((s) => `v=TLSRPTv1;rua=${s}`),
    fc
      .array(
        fc.constantFrom(
          'v=TLSRPTv1',
          ';',
          ',',
          ' ',
          'rua=',
          'mailto:',
          'https://',
          '@',
          'a',
          '.',
          'example',
          '%',
          '=',
          '\u0000',
          '\u00ff',
          '?',
        ),
        { maxLength: 40 },
      )
      .map((parts) => parts.join('')),
  );
  fc.assert(
    fc.property(hostile, (text) => {
      const parsed = parseTlsRptRecord(text);
      if (!parsed.ok) return;
      assert.ok(text.startsWith('v=TLSRPTv1'));
      assert.ok(parsed.rua.length >= 1 && parsed.rua.length <= MAX_RUA);
      for (const target of parsed.rua) {
        if (target.kind === 'https') assert.equal(target.url.protocol, 'https:');
        else assert.match(target.address, /^[\x21-\x7e]+@[a-z0-9.-]+$/);
      }
    }),
    { numRuns: 2_000 },
  );
});

test('the record looked up over DNS: one TLSRPTv1 TXT among others; two, none or a failure are not one', async () => {
  const dns = await startDnsServer({
    '_smtp._tls.one.example': { TXT: ['v=spf1 -all', 'v=TLSRPTv1; rua=mailto:r@one.example'] },
    '_smtp._tls.two.example': {
      TXT: ['v=TLSRPTv1; rua=mailto:a@two.example', 'v=TLSRPTv1; rua=mailto:b@two.example'],
    },
    '_smtp._tls.bad.example': { TXT: ['v=TLSRPTv1; rua=ftp://x.example'] },
    '_smtp._tls.empty.example': { TXT: [] },
  });
  try {
    dns.failing.add('_smtp._tls.fail.example');
    const resolver = new PolicyResolver({
      servers: [dns.server],
      validating: false,
      timeoutMs: 1_000,
      tries: 1,
    });
    const one = await lookupTlsRpt(resolver, requireDomainName('one.example'));
    assert.equal(one.kind, 'record');
    if (one.kind === 'record')
      assert.deepEqual(
        one.rua.map((u) => u.uri),
        ['mailto:r@one.example'],
      );
    for (const name of ['two.example', 'bad.example', 'empty.example', 'absent.example'])
      assert.equal((await lookupTlsRpt(resolver, requireDomainName(name))).kind, 'none', name);
    await assert.rejects(lookupTlsRpt(resolver, requireDomainName('fail.example')), DnsLookupError);
    assert.ok(dns.queries.includes('TXT _smtp._tls.one.example'));
  } finally {
    await dns.close();
  }
});
