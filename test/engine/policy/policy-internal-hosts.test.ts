// An MTA-STS policy host is named by the recipient domain's DNS (mta-sts.<domain>): when it
// resolves to loopback, a private, link-local, ULA, multicast or reserved address the fetch fails
// as a fetch error and nothing connects there, unless the Organization allows internal policy
// hosts (labs); an answer mixing public and internal addresses is refused whole; and the address
// connected to is the one checked, resolved once per fetch (no DNS rebinding between check and
// connect).
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { requireDomainName } from '../../../src/domain-name.js';
import { isInternalAddress } from '../../../src/engine/policy/internal-addresses.js';
import { fetchStsPolicy, StsFetchError } from '../../../src/engine/policy/mta-sts-fetch.js';
import { PolicyResolver } from '../../../src/engine/policy/resolver.js';
import { createCertificateAuthority, issueCertificate } from '../../../src/pki/lab.js';
import { startDnsServer, type DnsServer } from '../../support/dns-server.js';

const fabrikam = requireDomainName('fabrikam.example');
const POLICY = 'version: STSv1\nmode: enforce\nmx: *.fabrikam.example\nmax_age: 86400\n';

const octet = fc.integer({ min: 0, max: 255 });
const v4 = (first: fc.Arbitrary<number>, second: fc.Arbitrary<number> = octet) =>
  fc.tuple(first, second, octet, octet).map((parts) => parts.join('.'));
const hex = fc.integer({ min: 0, max: 0xffff }).map((n) => n.toString(16));
const v6 = (head: fc.Arbitrary<string>) =>
  fc
    .tuple(head, fc.array(hex, { minLength: 7, maxLength: 7 }))
    .map(([h, rest]) => [h, ...rest].join(':'));

describe('internal addresses', () => {
  it('refuses every address of the internal ranges, in IPv4 and IPv6 spellings', () => {
    const internal = fc.oneof(
      v4(fc.constant(0)),
      v4(fc.constant(10)),
      v4(fc.constant(127)),
      v4(fc.constant(169), fc.constant(254)),
      v4(fc.constant(172), fc.integer({ min: 16, max: 31 })),
      v4(fc.constant(192), fc.constant(168)),
      v4(fc.constant(100), fc.integer({ min: 64, max: 127 })),
      v4(fc.integer({ min: 224, max: 255 })),
      v6(fc.integer({ min: 0xfc00, max: 0xfdff }).map((n) => n.toString(16))),
      v6(fc.integer({ min: 0xfe80, max: 0xfebf }).map((n) => n.toString(16))),
      v6(fc.integer({ min: 0xff00, max: 0xffff }).map((n) => n.toString(16))),
      v4(fc.constant(127)).map((a) => `::ffff:${a}`),
      v4(fc.constant(10)).map((a) => `::FFFF:${a}`),
      fc.constantFrom(
        '::1',
        '0:0:0:0:0:0:0:1',
        '::',
        '::0',
        '0000::0001',
        'FE80::1',
        'not an address',
      ),
    );
    fc.assert(
      fc.property(internal, (address) => isInternalAddress(address)),
      { numRuns: 500 },
    );
  });

  it('lets public addresses through', () => {
    for (const address of [
      '8.8.8.8',
      '1.1.1.1',
      '172.32.0.1',
      '100.128.0.1',
      '2001:4860:4860::8888',
      '2a00:1450::1',
      // 6to4 and NAT64 (DNS64's answer on an IPv6-only host) of a public IPv4 address are
      // judged by that address.
      '2002:808:808::1',
      '64:ff9b::808:808',
      '64:ff9b::8.8.8.8',
    ])
      assert.equal(isInternalAddress(address), false, address);
  });

  it('judges a 6to4 or NAT64 address by the IPv4 address it embeds (fast-check)', () => {
    const halves = (address: string) => {
      const [a, b, c, d] = address.split('.').map(Number) as [number, number, number, number];
      return [((a << 8) | b).toString(16), ((c << 8) | d).toString(16)];
    };
    const sixToFour = (address: string) => `2002:${halves(address).join(':')}::1`;
    const nat64 = (address: string) => `64:ff9b::${halves(address).join(':')}`;
    fc.assert(
      fc.property(v4(octet), (address) => {
        assert.equal(isInternalAddress(sixToFour(address)), isInternalAddress(address), address);
        assert.equal(isInternalAddress(nat64(address)), isInternalAddress(address), address);
      }),
      { numRuns: 500 },
    );
  });
});

describe('MTA-STS policy hosts at internal addresses', () => {
  const ca = createCertificateAuthority({ commonName: 'Internal Hosts CA' });
  const certificate = issueCertificate(ca, {
    commonName: 'mta-sts.fabrikam.example',
    dnsNames: ['mta-sts.fabrikam.example'],
  });
  let dns: DnsServer;
  let server: Server;
  let port: number;
  const connections: string[] = [];

  before(async () => {
    server = createServer(
      { cert: certificate.certPem, key: certificate.keyPem },
      (request, reply) => {
        reply.writeHead(200, { 'content-type': 'text/plain' });
        reply.end(POLICY);
      },
    );
    server.on('connection', (socket: Socket) => connections.push(socket.localAddress ?? ''));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    port = (server.address() as AddressInfo).port;
    dns = await startDnsServer({ 'mta-sts.fabrikam.example': { A: ['127.0.0.1'] } });
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await dns.close();
  });

  const resolver = () =>
    new PolicyResolver({ servers: [dns.server], validating: false, timeoutMs: 500, tries: 1 });
  const fetch = (allowInternalAddresses: boolean, policyResolver = resolver()) =>
    fetchStsPolicy(fabrikam, {
      resolver: policyResolver,
      extraCas: [ca.certPem],
      port,
      timeoutMs: 3_000,
      allowInternalAddresses,
    });

  it('fails as a fetch error, and connects nowhere, for a policy host on loopback', async () => {
    connections.length = 0;
    await assert.rejects(fetch(false), (error: Error) => {
      assert.ok(error instanceof StsFetchError);
      assert.equal(error.failure, 'sts-policy-fetch-error');
      assert.match(
        error.message,
        /mta-sts\.fabrikam\.example is at 127\.0\.0\.1, an internal address: not fetched/,
      );
      return true;
    });
    assert.deepEqual(connections, []);
  });

  it('refuses an answer that mixes a public address with an internal one, whole', async () => {
    dns.zones.set('mta-sts.fabrikam.example', { A: ['8.8.8.8', '10.1.2.3'] });
    try {
      await assert.rejects(fetch(false), /is at 10\.1\.2\.3, an internal address: not fetched/);
      dns.zones.set('mta-sts.fabrikam.example', { A: ['8.8.8.8'], AAAA: ['fd00::1'] });
      await assert.rejects(fetch(false), /is at fd00::1, an internal address: not fetched/);
    } finally {
      dns.zones.set('mta-sts.fabrikam.example', { A: ['127.0.0.1'] });
    }
  });

  it('fetches from it when internal policy hosts are allowed', async () => {
    connections.length = 0;
    const policy = await fetch(true);
    assert.equal(policy.mode, 'enforce');
    assert.deepEqual(connections, ['127.0.0.1']);
  });

  it('connects to the address it checked, resolved once per fetch (no rebinding in between)', async () => {
    // A resolver that answers loopback once and then an address nothing listens on: a second
    // resolution between the check and the connection would land there and fail.
    const answers = ['127.0.0.1', '127.0.0.9'];
    const questions: string[] = [];
    const rebinding = resolver();
    const addresses = rebinding.addresses.bind(rebinding);
    rebinding.addresses = async (name, type) => {
      questions.push(`${type} ${name}`);
      const answer = await addresses(name, type);
      if (type !== 'A') return answer;
      return { ...answer, records: [answers.shift() ?? '127.0.0.9'] };
    };
    connections.length = 0;
    assert.equal((await fetch(true, rebinding)).mode, 'enforce');
    assert.deepEqual(questions, ['A mta-sts.fabrikam.example', 'AAAA mta-sts.fabrikam.example']);
    assert.deepEqual(connections, ['127.0.0.1']);
  });
});
