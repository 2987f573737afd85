// DANE (RFC 7672) attacked from the MX path and the DNS: TLSA records that do not match the
// certificate an impostor presents, usable and unusable records mixed, DANE-TA chains, expiry,
// insecure and failing look-ups, CNAME'd and oddly written MX host names, and answers from an
// address that was not asked. Whatever the attacker does, a host DANE applies to gets no MAIL FROM
// in cleartext and no message over a certificate the records do not name.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import {
  createCertificateAuthority,
  issueCertificate,
  type CertificateAuthority,
  type IssuedCertificate,
} from '../../src/pki/lab.js';
import { startDnsServer, type DnsServer, type DnsZone } from '../support/dns-server.js';
import { tempDir, type TempDir } from '../support/tmp.js';
import {
  assertDeferred,
  assertDelivered,
  attackGeneration,
  certDigest,
  sendOne,
  spkiSha256,
  startDnsResponder,
  startRawPeer,
  type RawPeer,
  type RawPeerOptions,
} from './policy-lab.js';

const DOMAIN = 'dane.example';
const MX = 'mx.dane.example';
const DAY = 86_400_000;

type Tlsa = NonNullable<DnsZone['TLSA']>[number];

describe('DANE under attack', () => {
  let dns: DnsServer;
  let state: TempDir;
  const peers: RawPeer[] = [];
  let genuine: IssuedCertificate;
  let impostor: IssuedCertificate;
  let daneCa: CertificateAuthority;
  let underCa: IssuedCertificate;
  let expiredUnderCa: IssuedCertificate;
  let expiredSelfIssued: IssuedCertificate;

  before(async () => {
    const stranger = createCertificateAuthority({
      commonName: 'Nobody Trusts Me',
      keyType: 'ecdsa-p256',
    });
    genuine = issueCertificate(stranger, { commonName: MX, dnsNames: [MX], keyType: 'ecdsa-p256' });
    impostor = issueCertificate(stranger, {
      commonName: MX,
      dnsNames: [MX],
      keyType: 'ecdsa-p256',
    });
    daneCa = createCertificateAuthority({ commonName: 'DANE-TA Root', keyType: 'ecdsa-p256' });
    underCa = issueCertificate(daneCa, { commonName: MX, dnsNames: [MX], keyType: 'ecdsa-p256' });
    expiredUnderCa = issueCertificate(daneCa, {
      commonName: MX,
      dnsNames: [MX],
      keyType: 'ecdsa-p256',
      notBefore: new Date(Date.now() - 30 * DAY),
      notAfter: new Date(Date.now() - DAY),
    });
    expiredSelfIssued = issueCertificate(stranger, {
      commonName: 'not.the.host.example',
      dnsNames: ['not.the.host.example'],
      keyType: 'ecdsa-p256',
      notBefore: new Date(Date.now() - 30 * DAY),
      notAfter: new Date(Date.now() - DAY),
    });
    dns = await startDnsServer({});
    state = await tempDir();
  });
  after(async () => {
    await Promise.all(peers.map((p) => p.close()));
    await dns.close();
    await state.remove();
  });

  async function peer(options: RawPeerOptions): Promise<RawPeer> {
    const started = await startRawPeer(options);
    peers.push(started);
    return started;
  }

  /** dane.example's MX, its address and its TLSA records at the port actually connected to. */
  function publish(port: number, records: Tlsa[] | undefined, secure = true): void {
    dns.zones.clear();
    dns.zones.set(DOMAIN, { MX: [{ preference: 10, exchange: MX }], secure });
    dns.zones.set(MX, { A: ['127.0.0.1'], secure });
    if (records !== undefined) dns.zones.set(`_${port}._tcp.${MX}`, { TLSA: records, secure });
  }

  const send = (port: number, validating = true) =>
    sendOne(DOMAIN, attackGeneration(dns.server, port, { validating }), { stateDir: state.path });

  const NO_MATCH = /454 4\.7\.5 DANE: no TLSA record matched the server certificate/;

  it('refuses an impostor whatever record form names the genuine certificate: digest, selector, full, SHA-512', async () => {
    const forms: Tlsa[] = [
      { usage: 3, selector: 1, matchingType: 1, data: spkiSha256(genuine.certPem) },
      { usage: 3, selector: 0, matchingType: 1, data: certDigest(genuine.certPem, 'sha256') },
      { usage: 3, selector: 0, matchingType: 2, data: certDigest(genuine.certPem, 'sha512') },
      { usage: 3, selector: 0, matchingType: 0, data: new X509Certificate(genuine.certPem).raw },
      // The right digest under the wrong selector: the certificate's hash read as its key's.
      { usage: 3, selector: 1, matchingType: 1, data: certDigest(impostor.certPem, 'sha256') },
    ];
    for (const record of forms) {
      const server = await peer({ certificate: impostor });
      publish(server.port, [record]);
      const sent = await send(server.port);
      assertDeferred(sent, NO_MATCH);
      assert.equal(server.handshakes, 1, 'the impostor is judged after the handshake');
      assert.deepEqual(
        server.commands.filter((c) => /^(MAIL|RCPT|DATA)/.test(c.line)),
        [],
        `record ${record.usage} ${record.selector} ${record.matchingType}: no transaction`,
      );
    }
  });

  it('accepts the genuine certificate by each of those forms', async () => {
    const forms: Tlsa[] = [
      { usage: 3, selector: 0, matchingType: 2, data: certDigest(genuine.certPem, 'sha512') },
      { usage: 3, selector: 0, matchingType: 0, data: new X509Certificate(genuine.certPem).raw },
      {
        usage: 3,
        selector: 1,
        matchingType: 0,
        data: new X509Certificate(genuine.certPem).publicKey.export({
          type: 'spki',
          format: 'der',
        }),
      },
    ];
    for (const record of forms) {
      const server = await peer({ certificate: genuine });
      publish(server.port, [record]);
      assertDelivered(await send(server.port));
      assert.equal(server.messages.length, 1);
      assert.equal(server.messages[0]?.secure, true);
    }
  });

  it('ignores unusable records beside a usable one: a PKIX-EE record naming the impostor does not let it in', async () => {
    const server = await peer({ certificate: impostor });
    publish(server.port, [
      { usage: 1, selector: 1, matchingType: 1, data: spkiSha256(impostor.certPem) },
      { usage: 0, selector: 0, matchingType: 1, data: certDigest(impostor.certPem, 'sha256') },
      { usage: 3, selector: 7, matchingType: 1, data: spkiSha256(impostor.certPem) },
      { usage: 3, selector: 1, matchingType: 9, data: spkiSha256(impostor.certPem) },
      { usage: 3, selector: 1, matchingType: 1, data: spkiSha256(impostor.certPem).subarray(1) },
      { usage: 3, selector: 1, matchingType: 1, data: spkiSha256(genuine.certPem) },
    ]);
    assertDeferred(await send(server.port), NO_MATCH);
    assert.equal(server.cleartextTransaction(), undefined);
    assert.deepEqual(server.messages, []);
  });

  it('refuses DANE-TA when the server does not send the trust anchor, and a leaf under it that has expired', async () => {
    const ta: Tlsa = { usage: 2, selector: 1, matchingType: 1, data: spkiSha256(daneCa.certPem) };
    const leafOnly = await peer({ certificate: underCa });
    publish(leafOnly.port, [ta]);
    assertDeferred(await send(leafOnly.port), NO_MATCH);
    assert.deepEqual(leafOnly.messages, []);

    const expired = await peer({
      certificate: {
        certPem: `${expiredUnderCa.certPem}\n${daneCa.certPem}`,
        keyPem: expiredUnderCa.keyPem,
      },
    });
    publish(expired.port, [ta]);
    assertDeferred(
      await send(expired.port),
      /DANE: DANE-TA 2 1 1 .* matched, but .* outside its validity/,
    );
    assert.deepEqual(expired.messages, []);

    const good = await peer({
      certificate: { certPem: `${underCa.certPem}\n${daneCa.certPem}`, keyPem: underCa.keyPem },
    });
    publish(good.port, [ta]);
    assertDelivered(await send(good.port));
    assert.equal(good.messages.length, 1);
  });

  it('accepts under DANE-EE an expired certificate naming another host: the record is the trust', async () => {
    const server = await peer({ certificate: expiredSelfIssued });
    publish(server.port, [
      { usage: 3, selector: 1, matchingType: 1, data: spkiSha256(expiredSelfIssued.certPem) },
    ]);
    assertDelivered(await send(server.port));
    assert.equal(server.messages[0]?.secure, true);
  });

  it('does not let a stripped STARTTLS or a refused one send in plaintext to a host with usable records', async () => {
    for (const options of [
      { offerStarttls: false },
      { starttlsReply: '454 4.7.0 TLS not available\r\n' },
    ]) {
      const server = await peer({ certificate: genuine, ...options });
      publish(server.port, [
        { usage: 3, selector: 1, matchingType: 1, data: spkiSha256(genuine.certPem) },
      ]);
      assertDeferred(
        await send(server.port),
        /454 4\.7\.5 DANE: mx\.dane\.example publishes TLSA records and the session has no TLS/,
      );
      assert.equal(server.cleartextTransaction(), undefined);
      assert.deepEqual(server.messages, []);
    }
  });

  it('keeps TLS mandatory when every TLSA record is unusable (RFC 7672 §2.2): a stripped STARTTLS defers', async () => {
    const server = await peer({ certificate: genuine, offerStarttls: false });
    publish(server.port, [
      { usage: 1, selector: 1, matchingType: 1, data: spkiSha256(genuine.certPem) },
      { usage: 3, selector: 1, matchingType: 7, data: spkiSha256(genuine.certPem) },
    ]);
    const sent = await send(server.port);
    assert.equal(server.cleartextTransaction(), undefined, 'MAIL FROM went in cleartext');
    // Mandatory TLS, not DANE authentication: the reply is the one for a route that requires TLS.
    assertDeferred(sent, /4\.7\.3 STARTTLS is required to send mail/);
  });

  it('under all-unusable records takes TLS with any certificate, but not a refused STARTTLS, TLS 1.1, or dane: require', async () => {
    const unusable: Tlsa[] = [
      { usage: 0, selector: 0, matchingType: 1, data: certDigest(genuine.certPem, 'sha256') },
      { usage: 3, selector: 1, matchingType: 1, data: spkiSha256(genuine.certPem).subarray(4) },
    ];
    const anyCertificate = await peer({ certificate: expiredSelfIssued });
    publish(anyCertificate.port, unusable);
    assertDelivered(await send(anyCertificate.port));
    assert.equal(anyCertificate.messages[0]?.secure, true);

    for (const options of [
      { starttlsReply: '454 4.7.0 TLS not available\r\n' },
      {
        tls: { minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' },
      } as const,
    ]) {
      const server = await peer({ certificate: genuine, ...options });
      publish(server.port, unusable);
      assertDeferred(await send(server.port), /451 4\.[47]\.\d/);
      assert.equal(server.cleartextTransaction(), undefined);
    }

    const strict = await peer({ certificate: genuine });
    publish(strict.port, unusable);
    const policies = [
      {
        name: 'dane-only',
        spec: {
          addressSpaces: [DOMAIN],
          dane: 'require' as const,
          mtaSts: 'optional' as const,
          requireTls: false,
        },
      },
    ];
    assertDeferred(
      await sendOne(DOMAIN, attackGeneration(dns.server, strict.port, { policies }), {
        stateDir: state.path,
      }),
      /454 4\.7\.5 DANE: required for dane\.example by TlsPolicy dane-only/,
    );
    assert.equal(strict.connections, 0);
  });

  it('does not apply TLSA records (signed or not) when the MX answer is not signed, nor any answer when the resolver is not named validating', async () => {
    // An attacker who forges the unsigned MX answer also picks the host: its TLSA proves nothing.
    const server = await peer({ certificate: impostor });
    publish(server.port, undefined, false);
    dns.zones.set(MX, { A: ['127.0.0.1'], secure: true });
    dns.zones.set(`_${server.port}._tcp.${MX}`, {
      TLSA: [{ usage: 3, selector: 1, matchingType: 1, data: spkiSha256(genuine.certPem) }],
      secure: true,
    });
    assertDelivered(await send(server.port));
    publish(server.port, [
      { usage: 3, selector: 1, matchingType: 1, data: spkiSha256(genuine.certPem) },
    ]);
    assertDelivered(await send(server.port, false));
    assert.equal(server.messages.length, 2);
    assert.ok(dns.queries.every((q) => !q.startsWith('TLSA') || q.includes(MX)));
  });

  it('treats a signed denial of the TLSA record (NXDOMAIN with AD) as no DANE: opportunistic, delivered', async () => {
    const server = await peer({ certificate: impostor });
    publish(server.port, undefined, true);
    assertDelivered(await send(server.port));
    assert.equal(server.messages[0]?.secure, true);
  });

  it('defers without connecting when the TLSA look-up times out or fails, never downgrading', async () => {
    for (const failure of ['silent', 'failing'] as const) {
      const server = await peer({ certificate: impostor, offerStarttls: false });
      publish(server.port, [
        { usage: 3, selector: 1, matchingType: 1, data: spkiSha256(genuine.certPem) },
      ]);
      dns[failure].add(`_${server.port}._tcp.${MX}`);
      try {
        assertDeferred(
          await send(server.port),
          /454 4\.7\.5 DANE: TLSA look-up for _\d+\._tcp\.mx\.dane\.example failed/,
        );
        assert.equal(server.connections, 0, failure);
      } finally {
        dns[failure].clear();
      }
    }
  });

  it('applies DANE to an MX host written with a trailing dot and mixed case', async () => {
    const server = await peer({ certificate: impostor });
    publish(server.port, [
      { usage: 3, selector: 1, matchingType: 1, data: spkiSha256(genuine.certPem) },
    ]);
    dns.zones.set(DOMAIN, {
      MX: [{ preference: 10, exchange: 'Mx.DANE.Example.' }],
      secure: true,
    });
    assertDeferred(await send(server.port), NO_MATCH);
    assert.deepEqual(server.messages, []);
  });

  it('does not use a secure TLSA record for another port than the one connected to', async () => {
    // _25._tcp names port 25; the session goes to another port, where nothing is published.
    const server = await peer({ certificate: impostor });
    publish(server.port, undefined);
    dns.zones.set(`_25._tcp.${MX}`, {
      TLSA: [{ usage: 3, selector: 1, matchingType: 1, data: spkiSha256(genuine.certPem) }],
      secure: true,
    });
    assertDelivered(await send(server.port));
    assert.ok(dns.queries.includes(`TLSA _${server.port}._tcp.${MX}`));
  });

  describe('CNAME and spoofed answers', () => {
    const ALIAS = 'mx.dane.example';
    const TARGET = 'mx.hosting.example';

    function cnameZone(port: number, tlsaAt: string, records: Tlsa[]) {
      return (q: { name: string; type: string }) => {
        const cname = {
          type: 'CNAME' as const,
          name: ALIAS,
          ttl: 60,
          data: TARGET,
        };
        if (q.name === DOMAIN && q.type === 'MX')
          return {
            secure: true,
            answers: [
              {
                type: 'MX' as const,
                name: DOMAIN,
                ttl: 60,
                data: { preference: 10, exchange: ALIAS },
              },
            ],
          };
        if (q.name === ALIAS && (q.type === 'A' || q.type === 'AAAA'))
          return {
            secure: true,
            answers:
              q.type === 'A'
                ? [cname, { type: 'A' as const, name: TARGET, ttl: 60, data: '127.0.0.1' }]
                : [cname],
          };
        if (q.name === TARGET && q.type === 'A')
          return {
            secure: true,
            answers: [{ type: 'A' as const, name: TARGET, ttl: 60, data: '127.0.0.1' }],
          };
        if (q.name === `_${port}._tcp.${tlsaAt}` && q.type === 'TLSA')
          return {
            secure: true,
            answers: records.map((r) => ({
              type: 'TLSA' as const,
              name: q.name,
              ttl: 60,
              data: { ...r, certificate: r.data },
            })),
          };
        return { secure: true, rcode: 'NXDOMAIN' as const };
      };
    }

    it('applies the TLSA records of an MX host reached through a signed CNAME, published at the original name', async () => {
      const server = await peer({ certificate: impostor });
      const records = [
        { usage: 3, selector: 1, matchingType: 1, data: spkiSha256(genuine.certPem) },
      ];
      const responder = await startDnsResponder(cnameZone(server.port, ALIAS, records));
      try {
        const sent = await sendOne(DOMAIN, attackGeneration(responder.server, server.port), {
          stateDir: state.path,
        });
        assertDeferred(sent, NO_MATCH);
        assert.deepEqual(server.messages, []);
      } finally {
        await responder.close();
      }
    });

    it('looks for TLSA records at the CNAME-expanded name first (RFC 7672 §2.2.2): an impostor there is refused', async () => {
      const server = await peer({ certificate: impostor, offerStarttls: false });
      const records = [
        { usage: 3, selector: 1, matchingType: 1, data: spkiSha256(genuine.certPem) },
      ];
      const responder = await startDnsResponder(cnameZone(server.port, TARGET, records));
      try {
        const sent = await sendOne(DOMAIN, attackGeneration(responder.server, server.port), {
          stateDir: state.path,
        });
        assert.equal(server.cleartextTransaction(), undefined, 'MAIL FROM went in cleartext');
        assertDeferred(sent, /454 4\.7\.5 DANE/);
      } finally {
        await responder.close();
      }
    });

    it('does not connect to an MX host that only the unsigned answer routing gets lists', async () => {
      // The signed MX answer names mx.dane.example; the attacker adds evil.example to the answer
      // routing gets (no DO bit). Its TLSA, were it asked, would name the impostor.
      const genuineServer = await peer({ certificate: genuine });
      const responder = await startDnsResponder((q) => {
        const mx = (exchange: string, preference: number) => ({
          type: 'MX' as const,
          name: DOMAIN,
          ttl: 60,
          data: { preference, exchange },
        });
        if (q.name === DOMAIN && q.type === 'MX')
          return q.dnssecOk
            ? { secure: true, answers: [mx(MX, 20)] }
            : { answers: [mx('evil.example', 10), mx(MX, 20)] };
        if ((q.name === MX || q.name === 'evil.example') && q.type === 'A')
          return {
            secure: q.name === MX,
            answers: [{ type: 'A' as const, name: q.name, ttl: 60, data: '127.0.0.1' }],
          };
        if (q.type === 'TLSA' && q.name === `_${genuineServer.port}._tcp.${MX}`)
          return {
            secure: true,
            answers: [
              {
                type: 'TLSA' as const,
                name: q.name,
                ttl: 60,
                data: {
                  usage: 3,
                  selector: 1,
                  matchingType: 1,
                  certificate: spkiSha256(genuine.certPem),
                },
              },
            ],
          };
        return { secure: true, rcode: 'NXDOMAIN' as const };
      });
      try {
        const sent = await sendOne(DOMAIN, attackGeneration(responder.server, genuineServer.port), {
          stateDir: state.path,
        });
        assertDelivered(sent);
        assert.ok(
          sent.log.entries.some(
            (e) =>
              e.event === 'send.hop-refused-by-policy' &&
              /evil\.example is not among the DNSSEC-validated MX hosts of dane\.example/.test(
                JSON.stringify(e.fields),
              ),
          ),
          'evil.example was refused by DANE',
        );
        assert.ok(
          !responder.queries.some((q) => q.includes('evil.example') && q.startsWith('TLSA')),
        );
        assert.equal(genuineServer.messages.length, 1);
        assert.equal(genuineServer.connections, 1, 'only the genuine host was connected to');
      } finally {
        await responder.close();
      }
    });

    it('ignores a TLSA answer with AD that comes from another address than the resolver asked: the look-up fails closed', async () => {
      const server = await peer({ certificate: impostor });
      // The genuine resolver says nothing about the TLSA name; an attacker on 127.0.0.2 answers it
      // "securely" with the impostor's key. Believed, the impostor would get the message.
      const responder = await startDnsResponder(
        (q) => {
          if (q.name === DOMAIN && q.type === 'MX')
            return {
              secure: true,
              answers: [
                { type: 'MX', name: DOMAIN, ttl: 60, data: { preference: 10, exchange: MX } },
              ],
            };
          if (q.name === MX && q.type === 'A')
            return { secure: true, answers: [{ type: 'A', name: MX, ttl: 60, data: '127.0.0.1' }] };
          if (q.type === 'TLSA')
            return {
              secure: true,
              spoofed: true,
              answers: [
                {
                  type: 'TLSA',
                  name: q.name,
                  ttl: 60,
                  data: {
                    usage: 3,
                    selector: 1,
                    matchingType: 1,
                    certificate: spkiSha256(impostor.certPem),
                  },
                },
              ],
            };
          return { secure: true, rcode: 'NXDOMAIN' };
        },
        { replyFrom: '127.0.0.2' },
      );
      try {
        const sent = await sendOne(DOMAIN, attackGeneration(responder.server, server.port), {
          stateDir: state.path,
        });
        assertDeferred(sent, /454 4\.7\.5 DANE: TLSA look-up for .* failed \(timeout/);
        assert.equal(server.connections, 0);
        assert.ok(responder.queries.some((q) => q.startsWith('TLSA')));
      } finally {
        await responder.close();
      }
    });
  });
});
