// MTA-STS (RFC 8461) attacked from the MX path, the DNS and the policy host: a stripped or refused
// STARTTLS under enforce, certificates for other names or without a DNS-ID, wildcard patterns,
// a cached policy the attacker tries to remove (id changes, records removed or doubled), max_age
// at its limits, testing mode, redirects, content types, oversize and line-ending mixes. Under an
// enforce policy the MX host gets no MAIL FROM in cleartext and the message waits with a clear error.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { StsPolicyCache } from '../../src/engine/policy/mta-sts-cache.js';
import { parseStsPolicy } from '../../src/engine/policy/mta-sts-policy.js';
import {
  createCertificateAuthority,
  issueCertificate,
  type CertificateAuthority,
  type IssuedCertificate,
} from '../../src/pki/lab.js';
import { startDnsServer, type DnsServer } from '../support/dns-server.js';
import { startPolicyHost, type PolicyHost, type PolicyResponse } from '../support/policy-host.js';
import { tempDir, type TempDir } from '../support/tmp.js';
import {
  assertDeferred,
  assertDelivered,
  attackGeneration,
  sendOne,
  spkiSha256,
  startRawPeer,
  type RawPeer,
  type RawPeerOptions,
} from './policy-lab.js';

const DOMAIN = 'sts.example';
const MX = 'mx1.sts.example';
const DAY = 86_400_000;
const policyText = (mode: string, mx = '*.sts.example', maxAge = '86400') =>
  `version: STSv1\nmode: ${mode}\nmx: ${mx}\nmax_age: ${maxAge}\n`;
const NO_TLS =
  /454 4\.7\.5 MTA-STS: the policy of sts\.example is enforce and mx1\.sts\.example gave no TLS/;

describe('MTA-STS under attack', () => {
  let webCa: CertificateAuthority;
  let certificates: Record<
    'mx' | 'otherName' | 'cnOnly' | 'expired' | 'wildcard',
    IssuedCertificate
  >;
  let dns: DnsServer;
  let policyHost: PolicyHost;
  let state: TempDir;
  const peers: RawPeer[] = [];
  let id = 0;

  before(async () => {
    webCa = createCertificateAuthority({ commonName: 'Lab Web CA', keyType: 'ecdsa-p256' });
    const leaf = (commonName: string, dnsNames: string[] | undefined, expired = false) =>
      issueCertificate(webCa, {
        commonName,
        keyType: 'ecdsa-p256',
        ...(dnsNames === undefined ? {} : { dnsNames }),
        ...(expired
          ? { notBefore: new Date(Date.now() - 30 * DAY), notAfter: new Date(Date.now() - DAY) }
          : {}),
      });
    certificates = {
      mx: leaf(MX, [MX]),
      otherName: leaf('www.sts.example', ['www.sts.example']),
      cnOnly: leaf(MX, undefined),
      expired: leaf(MX, [MX], true),
      wildcard: leaf('*.sts.example', ['*.sts.example']),
    };
    dns = await startDnsServer({});
    policyHost = await startPolicyHost(
      issueCertificate(webCa, {
        commonName: `mta-sts.${DOMAIN}`,
        dnsNames: [`mta-sts.${DOMAIN}`],
        keyType: 'ecdsa-p256',
      }),
      { status: 200, contentType: 'text/plain', body: policyText('enforce') },
    );
    state = await tempDir();
  });
  after(async () => {
    await Promise.all(peers.map((p) => p.close()));
    await policyHost.close();
    await dns.close();
    await state.remove();
  });

  async function peer(options: Partial<RawPeerOptions> = {}): Promise<RawPeer> {
    const started = await startRawPeer({ certificate: certificates.mx, ...options });
    peers.push(started);
    return started;
  }

  /** sts.example: one MX host (unsigned zone), a fresh TXT id, the policy host's answer. */
  function publish(response: Partial<PolicyResponse> = {}, host = MX): void {
    id += 1;
    dns.zones.clear();
    dns.zones.set(DOMAIN, { MX: [{ preference: 10, exchange: host }] });
    dns.zones.set(host, { A: ['127.0.0.1'] });
    dns.zones.set(`_mta-sts.${DOMAIN}`, { TXT: [`v=STSv1; id=attack${id}`] });
    dns.zones.set(`mta-sts.${DOMAIN}`, { A: ['127.0.0.1'] });
    policyHost.response = {
      status: 200,
      contentType: 'text/plain',
      body: policyText('enforce'),
      ...response,
    };
  }

  const send = (port: number, cache?: StsPolicyCache) =>
    sendOne(DOMAIN, attackGeneration(dns.server, port), {
      stateDir: state.path,
      extraCas: [webCa.certPem],
      mtaStsPort: policyHost.port,
      ...(cache === undefined ? {} : { cache }),
    });

  function assertNoTransaction(server: RawPeer): void {
    assert.equal(server.cleartextTransaction(), undefined, 'a transaction went in cleartext');
    assert.deepEqual(server.messages, []);
  }

  it('defers a stripped STARTTLS and a STARTTLS answered 454 under enforce, never sending in plaintext', async () => {
    for (const options of [
      { offerStarttls: false },
      { starttlsReply: '454 4.7.0 TLS not available due to temporary reason\r\n' },
    ]) {
      const server = await peer(options);
      publish();
      assertDeferred(await send(server.port), NO_TLS);
      assertNoTransaction(server);
    }
  });

  it('refuses before MAIL FROM a certificate for another name, an expired one, and a wildcard two labels up', async () => {
    const cases: [IssuedCertificate, string, RegExp][] = [
      [certificates.otherName, MX, /MTA-STS: the certificate names www\.sts\.example, not mx1/],
      [
        certificates.expired,
        MX,
        /MTA-STS: the certificate of mx1\.sts\.example does not chain to a trusted CA \(CERT_HAS_EXPIRED\)/,
      ],
      [
        certificates.wildcard,
        'a.mx.sts.example',
        /MTA-STS: the certificate names \*\.sts\.example, not a\.mx\.sts\.example/,
      ],
    ];
    for (const [certificate, host, error] of cases) {
      const server = await peer({ certificate });
      publish({ body: policyText('enforce', host) }, host);
      assertDeferred(await send(server.port), error);
      assert.equal(server.handshakes, 1);
      assertNoTransaction(server);
      assert.deepEqual(
        server.commands.filter((c) => /^MAIL/.test(c.line)),
        [],
      );
    }
  });

  it('refuses a certificate that names the MX host only in its subject CN (RFC 8461 §4.2: a DNS-ID in the SAN)', async () => {
    const server = await peer({ certificate: certificates.cnOnly });
    publish();
    assertDeferred(await send(server.port), /454 4\.7\.5 MTA-STS: the certificate names/);
    assertNoTransaction(server);
  });

  it('matches a *. pattern by one label only: a.b.sts.example and sts.example itself are not connected to', async () => {
    for (const host of ['a.b.sts.example', DOMAIN]) {
      const server = await peer();
      publish({}, host);
      if (host === DOMAIN) dns.zones.set(DOMAIN, { A: ['127.0.0.1'] }); // no MX: the domain is its host
      assertDeferred(
        await send(server.port),
        new RegExp(
          `MTA-STS: ${host.replace(/\./g, '\\.')} is not an MX host the policy of sts\\.example names`,
        ),
      );
      assert.equal(server.connections, 0, host);
    }
  });

  it('keeps a cached enforce policy when the attacker changes the id, removes the record, doubles it or fails the look-up', async () => {
    const cache = new StsPolicyCache(`${state.path}/kept`);
    const server = await peer({ offerStarttls: false });
    publish();
    assertDeferred(await send(server.port, cache), NO_TLS);
    const attacks: [string, () => void][] = [
      [
        'a new id whose policy host answers 500',
        () => {
          dns.zones.set(`_mta-sts.${DOMAIN}`, { TXT: ['v=STSv1; id=changed1'] });
          policyHost.response = { status: 500, contentType: 'text/plain', body: '' };
        },
      ],
      [
        'a new id whose policy does not parse',
        () => {
          dns.zones.set(`_mta-sts.${DOMAIN}`, { TXT: ['v=STSv1; id=changed2'] });
          policyHost.response = {
            status: 200,
            contentType: 'text/plain',
            body: 'version: STSv1\nmode: off\n',
          };
        },
      ],
      ['the record removed', () => dns.zones.delete(`_mta-sts.${DOMAIN}`)],
      [
        'two v=STSv1 records',
        () => dns.zones.set(`_mta-sts.${DOMAIN}`, { TXT: ['v=STSv1; id=a1', 'v=STSv1; id=a2'] }),
      ],
      ['the TXT look-up failing', () => dns.failing.add(`_mta-sts.${DOMAIN}`)],
    ];
    for (const [what, attack] of attacks) {
      attack();
      try {
        assertDeferred(await send(server.port, cache), NO_TLS);
      } catch (error) {
        assert.fail(`${what}: ${(error as Error).message}`);
      } finally {
        dns.failing.clear();
      }
    }
    assertNoTransaction(server);
  });

  it('replaces a cached policy only by one fetched over verified HTTPS (a new id with mode none)', async () => {
    const cache = new StsPolicyCache(`${state.path}/replaced`);
    const server = await peer({ offerStarttls: false });
    publish();
    assertDeferred(await send(server.port, cache), NO_TLS);
    dns.zones.set(`_mta-sts.${DOMAIN}`, { TXT: ['v=STSv1; id=retired'] });
    policyHost.response = {
      status: 200,
      contentType: 'text/plain',
      body: 'version: STSv1\nmode: none\nmax_age: 86400\n',
    };
    assertDelivered(await send(server.port, cache));
  });

  it('keeps a policy in use fresh: blocking the TXT look-up the moment its first max_age ends does not remove it', async () => {
    const start = Date.now();
    let clock = start;
    const cache = new StsPolicyCache(`${state.path}/warm`, () => clock);
    const server = await peer({ offerStarttls: false });
    publish({ body: policyText('enforce', '*.sts.example', '3600') });
    assertDeferred(await send(server.port, cache), NO_TLS);
    // Mail keeps flowing to the domain; its record and policy do not change.
    for (const minutes of [20, 40, 55]) {
      clock = start + minutes * 60_000;
      assertDeferred(await send(server.port, cache), NO_TLS);
    }
    clock = start + 65 * 60_000;
    dns.failing.add(`_mta-sts.${DOMAIN}`);
    try {
      assertDeferred(await send(server.port, cache), NO_TLS);
    } finally {
      dns.failing.clear();
    }
    assertNoTransaction(server);
  });

  it('caps a huge max_age at one year, refuses an 11-digit one, and enforces a max_age of 0 for the delivery at hand', async () => {
    const cache = new StsPolicyCache(`${state.path}/ages`);
    const server = await peer({ offerStarttls: false });
    publish({ body: policyText('enforce', '*.sts.example', '9999999999') });
    assertDeferred(await send(server.port, cache), NO_TLS);
    const kept = JSON.parse(await readFile(`${state.path}/ages/${DOMAIN}.json`, 'utf8')) as {
      policy: { maxAge: number };
    };
    assert.equal(kept.policy.maxAge, 31_557_600);

    const zero = new StsPolicyCache(`${state.path}/zero`);
    publish({ body: policyText('enforce', '*.sts.example', '0') });
    const before = policyHost.requests.length;
    assertDeferred(await send(server.port, zero), NO_TLS);
    assertDeferred(await send(server.port, zero), NO_TLS);
    assert.equal(policyHost.requests.length - before, 2, 'max_age 0 is fetched again each time');

    publish({ body: policyText('enforce', '*.sts.example', '99999999999') });
    const sent = await send(server.port);
    // Not a policy (max_age is 1*10DIGIT): the domain is as without one, opportunistic.
    assertDelivered(sent);
  });

  it('delivers under testing mode despite a stripped STARTTLS, and counts the failure', async () => {
    const server = await peer({ offerStarttls: false });
    publish({ body: policyText('testing') });
    const sent = await send(server.port);
    assertDelivered(sent);
    assert.ok(sent.log.entries.some((e) => e.event === 'send.tls-result'));
  });

  it('does not take a policy from a redirect, an HTML page or an oversize file: the domain has none', async () => {
    const answers: Partial<PolicyResponse>[] = [
      { status: 301, headers: { location: `https://mta-sts.${DOMAIN}/elsewhere.txt` } },
      { contentType: 'text/html' },
      { contentType: 'text/plainx' },
      { body: `${policyText('enforce')}${'x: y\n'.repeat(14_000)}` },
    ];
    for (const answer of answers) {
      const server = await peer({ offerStarttls: false });
      const requests = policyHost.requests.length;
      publish(answer);
      const sent = await send(server.port);
      assertDelivered(sent);
      assert.equal(policyHost.requests.length - requests, 1, 'one request, no redirect followed');
      assert.ok(
        sent.log.entries.some((e) => JSON.stringify(e.fields).includes('policy fetch failed')),
        JSON.stringify(answer.status ?? answer.contentType),
      );
    }
    const server = await peer({ offerStarttls: false });
    publish({ contentType: 'text/plain; charset=utf-8' });
    assertDeferred(await send(server.port), NO_TLS);
  });

  it('takes no policy from a policy host whose certificate names another host, or names it only in its CN', async () => {
    const hosts = await Promise.all(
      [
        { commonName: 'www.sts.example', dnsNames: ['www.sts.example'] },
        { commonName: `mta-sts.${DOMAIN}` },
        { commonName: `mta-sts.${DOMAIN}`, dnsNames: [`mta-sts.${DOMAIN}`] },
      ].map((names) =>
        startPolicyHost(issueCertificate(webCa, { ...names, keyType: 'ecdsa-p256' }), {
          status: 200,
          contentType: 'text/plain',
          body: policyText('enforce'),
        }),
      ),
    );
    try {
      const results: string[] = [];
      for (const host of hosts) {
        const server = await peer({ offerStarttls: false });
        publish();
        const sent = await sendOne(DOMAIN, attackGeneration(dns.server, server.port), {
          stateDir: state.path,
          extraCas: [webCa.certPem],
          mtaStsPort: host.port,
        });
        results.push(sent.outcome.failures.length === 0 ? 'no policy' : 'enforced');
      }
      // Only the host with a DNS-ID for mta-sts.sts.example serves a policy.
      assert.deepEqual(results, ['no policy', 'no policy', 'enforced']);
    } finally {
      await Promise.all(hosts.map((host) => host.close()));
    }
  });

  it('does not let MTA-STS override a failing DANE check: a web-CA certificate for the host is refused where TLSA names another key', async () => {
    const server = await peer({ certificate: certificates.mx });
    publish();
    // The same domain signed, its MX host publishing a DANE-EE record for a key the server lacks.
    dns.zones.set(DOMAIN, { MX: [{ preference: 10, exchange: MX }], secure: true });
    dns.zones.set(MX, { A: ['127.0.0.1'], secure: true });
    dns.zones.set(`_${server.port}._tcp.${MX}`, {
      TLSA: [
        {
          usage: 3,
          selector: 1,
          matchingType: 1,
          data: spkiSha256(certificates.otherName.certPem),
        },
      ],
      secure: true,
    });
    const sent = await send(server.port);
    assertDeferred(sent, /454 4\.7\.5 DANE: no TLSA record matched the server certificate/);
    assertNoTransaction(server);
    assert.deepEqual(
      server.commands.filter((c) => /^MAIL/.test(c.line)),
      [],
    );
  });

  it('reads a policy the same whatever mix of LF and CRLF ends its lines, or not at all (property)', () => {
    const lines = [
      'version: STSv1',
      'mode: enforce',
      'mx: mx1.sts.example',
      'mx: *.backup.example',
      'max_age: 604800',
    ];
    const canonical = parseStsPolicy(`${lines.join('\n')}\n`);
    assert.ok(canonical.ok);
    fc.assert(
      fc.property(
        fc.array(fc.constantFrom('\n', '\r\n', '\r', '\n\n', ' \r\n'), {
          minLength: lines.length,
          maxLength: lines.length,
        }),
        (endings) => {
          const text = lines.map((line, i) => `${line}${endings[i] ?? '\n'}`).join('');
          const parsed = parseStsPolicy(text);
          // Either the same policy, or none: never another mode, mx list or age.
          if (parsed.ok) assert.deepEqual(parsed.value, canonical.value);
          if (!endings.includes('\r')) assert.ok(parsed.ok, JSON.stringify(text));
        },
      ),
      { numRuns: 300 },
    );
  });
});
