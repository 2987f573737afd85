// Next hops through a real DNS server on loopback: MX by preference, implicit MX, static routes,
// null MX and NXDOMAIN (permanent), SERVFAIL and an unreachable resolver (temporary).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { NextHopError, resolveNextHops, type ResolverSettings } from '../../src/engine/dns.js';
import { startDnsServer, type DnsServer } from '../support/dns-server.js';
import { freePort } from '../support/ports.js';
import { requireDomainName } from '../../src/domain-name.js';
import { replyText } from '../support/replies.js';

describe('resolveNextHops', () => {
  let dns: DnsServer;
  let resolver: ResolverSettings;

  before(async () => {
    dns = await startDnsServer({
      // Listed backwards on purpose: the answer's order must not decide.
      'adatum.com': {
        MX: [
          { preference: 20, exchange: 'backup.adatum.com' },
          { preference: 10, exchange: 'mx1.adatum.com' },
        ],
      },
      'mx1.adatum.com': { A: ['127.0.0.2'] },
      'backup.adatum.com': { A: ['127.0.0.1'], AAAA: ['::1'] },
      'contoso.com': { A: ['127.0.0.5'] },
      'nomail.example': { MX: [{ preference: 0, exchange: '.' }] },
      'empty.example': {},
      'broken.example': { MX: [{ preference: 10, exchange: 'missing.broken.example' }] },
    });
    resolver = { servers: [dns.server], static: {} };
  });
  after(() => dns.close());

  it('orders MX hosts by preference, each with its A then AAAA addresses, on the connector port', async () => {
    const hops = await resolveNextHops(requireDomainName('adatum.com'), resolver, 25);
    assert.deepEqual(hops, [
      { host: 'mx1.adatum.com', address: '127.0.0.2', port: 25, preference: 10 },
      { host: 'backup.adatum.com', address: '127.0.0.1', port: 25, preference: 20 },
      { host: 'backup.adatum.com', address: '::1', port: 25, preference: 20 },
    ]);
  });

  it('ignores case and one trailing dot in the domain', async () => {
    const hops = await resolveNextHops(requireDomainName('Adatum.COM.'), resolver, 2525);
    assert.equal(hops[0]?.host, 'mx1.adatum.com');
    assert.equal(hops[0]?.port, 2525);
  });

  it('uses the domain itself when it has no MX (implicit MX, RFC 5321 §5.1)', async () => {
    const hops = await resolveNextHops(requireDomainName('contoso.com'), resolver, 25);
    assert.deepEqual(hops, [
      { host: 'contoso.com', address: '127.0.0.5', port: 25, preference: 0 },
    ]);
  });

  it('prefers a static route and asks DNS nothing; the route port wins over the connector port', async () => {
    const before = dns.queries.length;
    const hops = await resolveNextHops(
      requireDomainName('adatum.com'),
      {
        servers: [dns.server],
        static: { 'ADATUM.com': [{ host: '127.0.0.9', port: 2526 }, { host: '127.0.0.8' }] },
      },
      25,
    );
    assert.deepEqual(hops, [
      { host: '127.0.0.9', address: '127.0.0.9', port: 2526, preference: 0 },
      { host: '127.0.0.8', address: '127.0.0.8', port: 25, preference: 1 },
    ]);
    assert.equal(dns.queries.length, before);
  });

  it('fails permanently on a null MX (RFC 7505)', async () => {
    await assert.rejects(
      resolveNextHops(requireDomainName('nomail.example'), resolver, 25),
      (error: unknown) => {
        assert.ok(error instanceof NextHopError);
        assert.equal(error.permanent, true);
        assert.match(replyText(error.reply), /^556 5\.1\.10 /);
        return true;
      },
    );
  });

  it('fails permanently on a domain that does not exist (NXDOMAIN)', async () => {
    await assert.rejects(
      resolveNextHops(requireDomainName('nowhere.example'), resolver, 25),
      (error: unknown) => {
        assert.ok(error instanceof NextHopError);
        assert.equal(error.permanent, true);
        assert.match(replyText(error.reply), /^550 5\.1\.2 .*nowhere\.example/);
        return true;
      },
    );
  });

  it('fails temporarily, saying why, on SERVFAIL', async () => {
    dns.failing.add('flaky.example');
    await assert.rejects(
      resolveNextHops(requireDomainName('flaky.example'), resolver, 25),
      (error: unknown) => {
        assert.ok(error instanceof NextHopError);
        assert.equal(error.permanent, false);
        assert.match(
          replyText(error.reply),
          /^451 4\.4\.0 DNS query failed: MX lookup for flaky\.example: ESERVFAIL/,
        );
        return true;
      },
    );
  });

  it('fails temporarily when neither MX nor address records exist, or no MX host resolves', async () => {
    for (const domain of ['empty.example', 'broken.example']) {
      await assert.rejects(
        resolveNextHops(requireDomainName(domain), resolver, 25),
        (error: unknown) => {
          assert.ok(error instanceof NextHopError);
          assert.equal(error.permanent, false, domain);
          assert.match(replyText(error.reply), /^451 4\.4\.0 DNS query failed: /);
          return true;
        },
      );
    }
  });

  it('fails temporarily when the resolver does not answer', async () => {
    const silent = { servers: [`127.0.0.1:${await freePort()}`], static: {} };
    await assert.rejects(
      resolveNextHops(requireDomainName('adatum.com'), silent, 25, { timeoutMs: 200, tries: 1 }),
      (error: unknown) => {
        assert.ok(error instanceof NextHopError);
        assert.equal(error.permanent, false);
        assert.match(
          replyText(error.reply),
          /^451 4\.4\.0 DNS query failed: MX lookup for adatum\.com: E/,
        );
        return true;
      },
    );
  });
});
