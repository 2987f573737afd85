// The policy resolver against a real DNS server on loopback: AD believed only from a resolver
// named validating, TLSA and TXT decoded, a truncated answer asked again over TCP, SERVFAIL and
// silence as look-up errors within the bound.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { DnsLookupError, PolicyResolver } from '../../../src/engine/policy/resolver.js';
import { startDnsServer, type DnsServer } from '../../support/dns-server.js';

describe('policy resolver', () => {
  let dns: DnsServer;
  const digest = Buffer.alloc(32, 7);

  before(async () => {
    dns = await startDnsServer({
      'signed.example': { MX: [{ preference: 10, exchange: 'mx.signed.example' }], secure: true },
      'mx.signed.example': { A: ['127.0.0.1'], secure: true },
      '_25._tcp.mx.signed.example': {
        TLSA: [{ usage: 3, selector: 1, matchingType: 1, data: digest }],
        secure: true,
      },
      '_mta-sts.signed.example': { TXT: ['v=STSv1; id=20261207'], secure: true },
      'plain.example': { MX: [{ preference: 10, exchange: 'mx.plain.example' }] },
      'big.example': { TXT: ['v=STSv1; id=big'], secure: true },
      'broken.example': {},
      'quiet.example': {},
    });
    dns.truncating.add('big.example');
    dns.failing.add('broken.example');
    dns.failing.add('_25._tcp.broken.example');
    dns.silent.add('quiet.example');
  });
  after(() => dns.close());

  const validating = () =>
    new PolicyResolver({ servers: [dns.server], validating: true, timeoutMs: 500, tries: 1 });

  it('marks an answer secure when the validating resolver sets AD', async () => {
    const mx = await validating().mx('signed.example');
    assert.deepEqual(mx, {
      status: 'answer',
      records: [{ preference: 10, exchange: 'mx.signed.example' }],
      secure: true,
    });
    const plain = await validating().mx('plain.example');
    assert.equal(plain.secure, false);
  });

  it('believes no AD from a resolver not named validating', async () => {
    const resolver = new PolicyResolver({
      servers: [dns.server],
      validating: false,
      timeoutMs: 500,
    });
    assert.equal((await resolver.mx('signed.example')).secure, false);
    assert.equal((await resolver.tlsa('mx.signed.example', 25)).secure, false);
  });

  it('decodes TLSA at _25._tcp.host and TXT records', async () => {
    const tlsa = await validating().tlsa('mx.signed.example', 25);
    assert.equal(tlsa.status, 'answer');
    assert.deepEqual(tlsa.records, [{ usage: 3, selector: 1, matchingType: 1, data: digest }]);
    assert.deepEqual((await validating().txt('_mta-sts.signed.example')).records, [
      'v=STSv1; id=20261207',
    ]);
  });

  it('says nxdomain and nodata, keeping AD on a secure denial', async () => {
    assert.deepEqual(await validating().tlsa('nowhere.example', 25), {
      status: 'nxdomain',
      records: [],
      secure: false,
    });
    assert.deepEqual(await validating().tlsa('mx.signed.example', 587), {
      status: 'nxdomain',
      records: [],
      secure: false,
    });
    assert.deepEqual(await validating().txt('mx.signed.example'), {
      status: 'nodata',
      records: [],
      secure: true,
    });
  });

  it('asks again over TCP when the UDP answer is truncated', async () => {
    const txt = await validating().txt('big.example');
    assert.deepEqual(txt, { status: 'answer', records: ['v=STSv1; id=big'], secure: true });
    assert.ok(dns.queries.includes('TXT big.example tcp'));
  });

  it('fails a look-up on SERVFAIL, and on silence within its bound', async () => {
    await assert.rejects(
      validating()
        .tlsa('broken.example', 25)
        .then(() => undefined),
      (error: unknown) => {
        assert.ok(error instanceof DnsLookupError);
        return true;
      },
    );
    await assert.rejects(validating().txt('broken.example'), /TXT broken\.example: SERVFAIL/);
    const started = Date.now();
    const resolver = new PolicyResolver({
      servers: [dns.server],
      validating: true,
      timeoutMs: 300,
      tries: 2,
    });
    await assert.rejects(resolver.mx('quiet.example'), /MX quiet\.example: timeout after 300 ms/);
    const took = Date.now() - started;
    assert.ok(took >= 550 && took < 3_000, `took ${took} ms`);
  });

  it('refuses a server that is not an address', () => {
    assert.throws(
      () => new PolicyResolver({ servers: ['dns.example'], validating: true }),
      /not an IP address/,
    );
  });
});
