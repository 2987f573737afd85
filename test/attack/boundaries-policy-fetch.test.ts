// Hostile DNS against the MTA-STS policy fetch and the https: rua of TLS reporting: a recipient
// domain's DNS names mta-sts.<domain> and the rua, so every spelling of an internal address an
// answer can carry must be refused before anything connects (IPv4-mapped, NAT64, 6to4, Teredo,
// IPv4-compatible, the unspecified and metadata addresses, one internal record among public ones,
// CNAME chains), and the address connected to must be the one checked (rebinding).
import assert from 'node:assert/strict';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer, type Server } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import dnsPacket, { type Answer } from 'dns-packet';
import { requireDomainName } from '../../src/domain-name.js';
import {
  fetchStsPolicy,
  policyLookup,
  StsFetchError,
} from '../../src/engine/policy/mta-sts-fetch.js';
import { PolicyResolver } from '../../src/engine/policy/resolver.js';
import { parseTlsRptRecord } from '../../src/engine/tlsrpt/record.js';
import { postReport } from '../../src/engine/tlsrpt/send.js';
import { createCertificateAuthority, issueCertificate } from '../../src/pki/lab.js';

const DOMAIN = requireDomainName('contoso.example');
const HOST = 'mta-sts.contoso.example';
const POLICY = 'version: STSv1\nmode: enforce\nmx: mx.contoso.example\nmax_age: 86400\n';
const REFUSED = /an internal address: not fetched/;

/** What the hostile zone answers: the answer section for a question. */
type Zone = (name: string, type: string) => Answer[];

interface HostileDns {
  server: string;
  questions: string[];
  zone: Zone;
  close(): Promise<void>;
}

/** A UDP DNS server on loopback answering whatever its zone function says (CNAMEs included). */
async function startHostileDns(): Promise<HostileDns> {
  const socket: UdpSocket = createSocket('udp4');
  const dns: HostileDns = {
    server: '',
    questions: [],
    zone: () => [],
    close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };
  socket.on('message', (message, remote) => {
    let query;
    try {
      query = dnsPacket.decode(message);
    } catch {
      return;
    }
    const question = query.questions?.[0];
    if (question === undefined) return;
    const key = `${question.type} ${question.name.toLowerCase()}`;
    dns.questions.push(key);
    const answers = dns.zone(question.name.toLowerCase(), question.type);
    const response = dnsPacket.encode({
      type: 'response',
      id: query.id ?? 0,
      flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE,
      questions: [question],
      answers,
    });
    socket.send(response, remote.port, remote.address);
  });
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', () => resolve()));
  dns.server = `127.0.0.1:${socket.address().port}`;
  return dns;
}

const a = (name: string, address: string): Answer => ({ type: 'A', name, ttl: 0, data: address });
const aaaa = (name: string, address: string): Answer => ({
  type: 'AAAA',
  name,
  ttl: 0,
  data: address,
});
const cname = (name: string, target: string): Answer => ({
  type: 'CNAME',
  name,
  ttl: 0,
  data: target,
});

/** The policy host's answer: one record of the address's family, nothing of the other. */
function answering(address: string): Zone {
  return (name, type) => {
    if (name !== HOST) return [];
    if (type === 'A' && !address.includes(':')) return [a(name, address)];
    if (type === 'AAAA' && address.includes(':')) return [aaaa(name, address)];
    return [];
  };
}

describe('MTA-STS policy fetch against hostile DNS answers', () => {
  const ca = createCertificateAuthority({ commonName: 'Hostile DNS CA' });
  const certificate = issueCertificate(ca, { commonName: HOST, dnsNames: [HOST] });
  let dns: HostileDns;
  let server: Server;
  let port: number;
  const connections: string[] = [];

  before(async () => {
    server = createServer({ cert: certificate.certPem, key: certificate.keyPem }, (_, reply) => {
      reply.writeHead(200, { 'content-type': 'text/plain' });
      reply.end(POLICY);
    });
    server.on('connection', (socket: Socket) => connections.push(socket.localAddress ?? ''));
    // Every local address the machine answers on: IPv4 loopback and the dual-stack wildcard.
    await new Promise<void>((resolve) => server.listen(0, '::', () => resolve()));
    port = (server.address() as AddressInfo).port;
    dns = await startHostileDns();
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await dns.close();
  });

  const resolver = () =>
    new PolicyResolver({ servers: [dns.server], validating: false, timeoutMs: 500, tries: 1 });
  const fetch = (allowInternalAddresses = false) =>
    fetchStsPolicy(DOMAIN, {
      resolver: resolver(),
      extraCas: [ca.certPem],
      port,
      timeoutMs: 2_000,
      allowInternalAddresses,
    });
  /** The lookup the fetch connects through, asked as net asks it (every address, any family). */
  const lookup = (): Promise<{ error: NodeJS.ErrnoException | null; addresses: unknown }> =>
    new Promise((resolve) => {
      policyLookup(resolver(), false)(HOST, { all: true, family: 0 }, (error, addresses) =>
        resolve({ error, addresses }),
      );
    });

  it('fetches through the hostile server when internal hosts are allowed (the harness works)', async () => {
    dns.zone = answering('127.0.0.1');
    connections.length = 0;
    assert.equal((await fetch(true)).mode, 'enforce');
    assert.equal(connections.length, 1);
  });

  // Each spelling is what the AAAA or A record's bytes decode to; the connection is refused
  // before it is made, so the HTTPS server here (on every local address) sees nothing.
  for (const address of [
    '127.0.0.1',
    '127.255.255.254',
    '0.0.0.0',
    '10.0.0.1',
    '100.64.0.1',
    '169.254.169.254',
    '172.31.255.255',
    '192.168.1.1',
    '::1',
    '::',
    '::ffff:127.0.0.1',
    '::ffff:7f00:1',
    '::ffff:169.254.169.254',
    '::ffff:0.0.0.0',
    '64:ff9b::7f00:1',
    '64:ff9b::a9fe:a9fe',
    'fc00::1',
    'fd00:ec2::254',
    'fe80::1',
    'ff02::1',
  ])
    it(`refuses a policy host at ${address} and connects nowhere`, async () => {
      dns.zone = answering(address);
      connections.length = 0;
      await assert.rejects(fetch(), (error: Error) => {
        assert.ok(error instanceof StsFetchError, String(error));
        assert.equal(error.failure, 'sts-policy-fetch-error');
        assert.match(error.message, REFUSED);
        return true;
      });
      assert.deepEqual(connections, []);
    });

  it('refuses an answer with one internal record among public ones, in either family', async () => {
    for (const zone of [
      (name: string, type: string) =>
        type === 'A' && name === HOST
          ? [a(name, '192.88.99.1'), a(name, '198.41.0.4'), a(name, '127.0.0.1')]
          : [],
      (name: string, type: string) =>
        name !== HOST
          ? []
          : type === 'A'
            ? [a(name, '198.41.0.4')]
            : [aaaa(name, '2001:503:ba3e::2:30'), aaaa(name, '::ffff:10.0.0.1')],
    ]) {
      dns.zone = zone;
      connections.length = 0;
      await assert.rejects(fetch(), REFUSED);
      assert.deepEqual(connections, []);
    }
  });

  it('refuses a CNAME chain that ends at an internal address', async () => {
    dns.zone = (name, type) =>
      name !== HOST
        ? []
        : type === 'A'
          ? [
              cname(HOST, 'cdn.attacker.example'),
              cname('cdn.attacker.example', 'edge.attacker.example'),
              a('edge.attacker.example', '169.254.169.254'),
            ]
          : [cname(HOST, 'cdn.attacker.example'), cname('cdn.attacker.example', 'localhost')];
    connections.length = 0;
    await assert.rejects(fetch(), REFUSED);
    assert.deepEqual(connections, []);
    // A chain that names an internal host but carries no address is no address at all.
    dns.zone = (name) => (name === HOST ? [cname(HOST, 'localhost')] : []);
    await assert.rejects(fetch(), /no address for mta-sts\.contoso\.example/);
    assert.deepEqual(connections, []);
  });

  it('connects only to the address it checked: an answer that turns internal afterwards is never reached', async () => {
    // First answer public (nothing listens there: the fetch times out), every later one loopback,
    // where the server waits. A second resolution between check and connect would land there.
    let asked = 0;
    dns.zone = (name, type) => {
      if (name !== HOST || type !== 'A') return [];
      asked += 1;
      return [a(name, asked === 1 ? '192.88.99.1' : '127.0.0.1')];
    };
    dns.questions.length = 0;
    connections.length = 0;
    await assert.rejects(fetch(), StsFetchError);
    assert.deepEqual(connections, []);
    assert.deepEqual(
      dns.questions.filter((q) => q.startsWith('A ')),
      [`A ${HOST}`],
      'one A look-up per fetch',
    );
  });

  // The embedded-IPv4 transition prefixes: each address below carries 127.0.0.1, 10.0.0.1 or
  // 169.254.169.254 and reaches it through a 6to4 relay, a local-use NAT64 gateway, a Teredo
  // relay or an SIIT translator on the path. Asked at the lookup the connection goes through.
  for (const [address, what] of [
    ['2002:7f00:1::1', '6to4 (2002::/16) of 127.0.0.1'],
    ['2002:a00:1::1', '6to4 of 10.0.0.1'],
    ['2002:a9fe:a9fe::1', '6to4 of 169.254.169.254'],
    ['64:ff9b:1::a00:1', 'local-use NAT64 (64:ff9b:1::/48, RFC 8215) of 10.0.0.1'],
    ['::7f00:1', 'IPv4-compatible (::/96) 127.0.0.1'],
    ['::ffff:0:7f00:1', 'SIIT IPv4-translated (::ffff:0:0:0/96) 127.0.0.1'],
    ['2001:0:4136:e378:8000:63bf:80ff:fffe', 'Teredo (2001::/32) of client 127.0.0.1'],
  ] as const)
    it(`refuses a policy host at ${address}, ${what}`, async () => {
      dns.zone = answering(address);
      const { error } = await lookup();
      assert.equal(error?.code, 'EADDRNOTAVAIL', `${address}: ${String(error)}`);
      assert.match(error?.message ?? '', REFUSED);
    });
});

describe('https: rua of TLS reporting against hostile names', () => {
  it('refuses every spelling of an address in the rua itself', () => {
    for (const url of [
      'https://127.0.0.1/r',
      'https://127.1/r',
      'https://0x7f000001/r',
      'https://2130706433/r',
      'https://0177.0.0.1/r',
      'https://127.0.0.1./r',
      'https://%31%32%37.0.0.1/r',
      'https://[::1]/r',
      'https://[0::1]:8443/r',
      'https://[::ffff:127.0.0.1]/r',
      'https://[::ffff:a9fe:a9fe]/r',
      'https://169.254.169.254/latest/meta-data/',
      'https://[fe80::1%25lo]/r',
    ]) {
      const parsed = parseTlsRptRecord(`v=TLSRPTv1; rua=${url}`);
      assert.equal(parsed.ok, false, url);
    }
  });

  it('posts nothing to a collector whose name resolves to loopback', async () => {
    const ca = createCertificateAuthority({ commonName: 'Collector CA' });
    const issued = issueCertificate(ca, { commonName: 'localhost', dnsNames: ['localhost'] });
    const posts: string[] = [];
    const collector = createServer({ cert: issued.certPem, key: issued.keyPem }, (q, reply) => {
      posts.push(q.url ?? '');
      reply.end();
    });
    await new Promise<void>((resolve) => collector.listen(0, '127.0.0.1', () => resolve()));
    const { port } = collector.address() as AddressInfo;
    try {
      for (const host of ['localhost', 'LOCALHOST', 'localhost.'])
        await assert.rejects(
          postReport(new URL(`https://${host}:${port}/r`), Buffer.from('x'), {
            extraCas: [ca.certPem],
            timeoutMs: 2_000,
          }),
          /an internal address: not posted to|a single label: not posted to|ENOTFOUND|no address/,
          host,
        );
      assert.deepEqual(posts, []);
    } finally {
      collector.closeAllConnections();
      await new Promise<void>((resolve) => collector.close(() => resolve()));
    }
  });

  it('posts nothing to an https: rua whose host is a single label, as it refuses such a mailto:', async () => {
    // The system resolver completes one label with our own search domains: a host of our network.
    for (const url of [
      'https://intranet/r',
      'https://localhost/r',
      'https://localhost./r',
      'https://vm:8443/r',
    ])
      await assert.rejects(
        postReport(new URL(url), Buffer.from('x'), { timeoutMs: 2_000 }),
        /a single label: not posted to/,
        url,
      );
    // The same single label as a mailto: is refused when the record is read.
    assert.equal(parseTlsRptRecord('v=TLSRPTv1; rua=mailto:r@intranet').ok, false);
  });
});
