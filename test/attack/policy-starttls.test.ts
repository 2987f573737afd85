// The STARTTLS step itself attacked: plaintext lines injected behind the 220 (RFC 3207 §6: what
// came before the handshake is forgotten), a server that speaks only TLS 1.0/1.1, and requireTls
// on a send connector, a TlsPolicy, a smart host, a static route and the internal relay, each with
// STARTTLS stripped or refused. Nothing of a transaction goes in cleartext where TLS is required.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { requireDomainName } from '../../src/domain-name.js';
import { createRelayDelivery } from '../../src/engine/delivery/relay.js';
import { buildGeneration } from '../../src/engine/generation.js';
import { memoryLog } from '../../src/engine/log.js';
import type { OutboundMessage } from '../../src/engine/queue/outcome.js';
import type { Named, RelayTls, TlsPolicySpec } from '../../src/model.js';
import {
  createCertificateAuthority,
  issueCertificate,
  type IssuedCertificate,
} from '../../src/pki/lab.js';
import { smtpReplyText } from '../../src/smtp-reply.js';
import { startDnsServer, type DnsServer } from '../support/dns-server.js';
import { runtimeConfig } from '../support/runtime-config.js';
import { tempDir, type TempDir } from '../support/tmp.js';
import {
  assertDeferred,
  assertDelivered,
  attackGeneration,
  keptDelivery,
  sendOne,
  spkiSha256,
  startRawPeer,
  TIMEOUTS,
  type GenerationOptions,
  type RawPeer,
  type RawPeerOptions,
} from './policy-lab.js';

const DOMAIN = 'dane.example';
const MX = 'mx.dane.example';
const PLAIN = 'plain.example';
const STRIPPED = { offerStarttls: false } as const;
const REFUSED = { starttlsReply: '454 4.7.0 TLS not available due to temporary reason\r\n' };
/** A server that will not speak TLS 1.2 or later (OpenSSL needs level 0 to offer 1.0/1.1 at all). */
const OLD_TLS = {
  tls: { minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' },
} as const;
const REQUIRED = /451 4\.7\.3 STARTTLS is required to send mail/;

const requireTlsPolicy = (addressSpace: string): Named<TlsPolicySpec> => ({
  name: 'encrypt',
  spec: { addressSpaces: [addressSpace], dane: 'optional', mtaSts: 'optional', requireTls: true },
});

describe('STARTTLS under attack', () => {
  let dns: DnsServer;
  let state: TempDir;
  let certificate: IssuedCertificate;
  const peers: RawPeer[] = [];

  before(async () => {
    const ca = createCertificateAuthority({ commonName: 'Nobody', keyType: 'ecdsa-p256' });
    certificate = issueCertificate(ca, { commonName: MX, dnsNames: [MX], keyType: 'ecdsa-p256' });
    dns = await startDnsServer({});
    state = await tempDir();
  });
  after(async () => {
    await Promise.all(peers.map((p) => p.close()));
    await dns.close();
    await state.remove();
  });

  async function peer(options: Partial<RawPeerOptions> = {}): Promise<RawPeer> {
    const started = await startRawPeer({ certificate, ...options });
    peers.push(started);
    return started;
  }

  /** dane.example with a DANE-EE record for the peer's key; plain.example publishing nothing. */
  function publish(port: number): void {
    dns.zones.clear();
    dns.zones.set(DOMAIN, { MX: [{ preference: 10, exchange: MX }], secure: true });
    dns.zones.set(MX, { A: ['127.0.0.1'], secure: true });
    dns.zones.set(`_${port}._tcp.${MX}`, {
      TLSA: [{ usage: 3, selector: 1, matchingType: 1, data: spkiSha256(certificate.certPem) }],
      secure: true,
    });
    dns.zones.set(PLAIN, { MX: [{ preference: 10, exchange: `mx.${PLAIN}` }] });
    dns.zones.set(`mx.${PLAIN}`, { A: ['127.0.0.1'] });
  }

  const send = (domain: string, port: number, options: GenerationOptions = {}) =>
    sendOne(domain, attackGeneration(dns.server, port, options), { stateDir: state.path });

  function assertNothingInCleartext(server: RawPeer): void {
    assert.equal(server.cleartextTransaction(), undefined, 'a transaction went in cleartext');
    assert.deepEqual(server.messages, []);
  }

  it('forgets plaintext lines injected behind the 220 to STARTTLS: the session goes on with what came over TLS', async () => {
    for (const injected of [
      '220 2.0.0 ready\r\n250 injected\r\n',
      '220 2.0.0 ready\r\n250-mx.attack.example\r\n250 AUTH PLAIN\r\n250 2.0.0 ok\r\n250 2.0.0 ok\r\n354 go\r\n250 2.0.0 queued as forged\r\n',
      '220 2.0.0 ready\r\n250 half a li',
    ]) {
      const server = await peer({ starttlsReply: injected });
      publish(server.port);
      for (const domain of [DOMAIN, PLAIN]) {
        const sent = await send(domain, server.port);
        assertDelivered(sent);
      }
      assert.equal(server.messages.length, 2, JSON.stringify(injected));
      assert.ok(server.messages.every((m) => m.secure));
      // The second EHLO and the whole transaction over TLS, in order, nothing skipped.
      const secure = server.commands.filter((c) => c.secure).map((c) => c.line.split(/[ :]/)[0]);
      assert.deepEqual(secure.slice(0, 5), ['EHLO', 'MAIL', 'RCPT', 'DATA', 'QUIT']);
      assert.equal(server.cleartextTransaction(), undefined);
    }
  });

  it('does not speak TLS 1.0 or 1.1, and never retries in plaintext after the failed handshake', async () => {
    const server = await peer(OLD_TLS);
    publish(server.port);
    assertDeferred(await send(DOMAIN, server.port), /451 4\.4\.0/);
    assertDeferred(await send(PLAIN, server.port, { requireTls: true }), /451 4\.4\.0/);
    // Opportunistic TLS too: a handshake that fails is a failed hop, not a reason for plaintext.
    assertDeferred(await send(PLAIN, server.port), /451 4\.4\.0/);
    assert.equal(server.handshakes, 0);
    assertNothingInCleartext(server);
  });

  it('holds requireTls of the send connector against a stripped and a refused STARTTLS', async () => {
    for (const options of [STRIPPED, REFUSED]) {
      const server = await peer(options);
      publish(server.port);
      assertDeferred(await send(PLAIN, server.port, { requireTls: true }), REQUIRED);
      assertNothingInCleartext(server);
    }
  });

  it("holds a TlsPolicy's requireTls for a domain that publishes nothing, by MX, smart host and static route", async () => {
    for (const options of [STRIPPED, REFUSED]) {
      const server = await peer(options);
      publish(server.port);
      const policies = [requireTlsPolicy(PLAIN)];
      assertDeferred(await send(PLAIN, server.port, { policies }), REQUIRED);
      assertDeferred(
        await send(PLAIN, server.port, {
          policies,
          routing: { smartHosts: [`127.0.0.1:${server.port}`] },
        }),
        REQUIRED,
      );
      assertDeferred(
        await send(PLAIN, server.port, {
          policies,
          static: { [PLAIN]: [{ host: '127.0.0.1', port: server.port }] },
        }),
        REQUIRED,
      );
      assertNothingInCleartext(server);
    }
  });

  it('holds requireTls of a connector through its smart host, named by host name or address, and a static route', async () => {
    const server = await peer(STRIPPED);
    publish(server.port);
    dns.zones.set('smarthost.example', { A: ['127.0.0.1'] });
    for (const smartHost of [`127.0.0.1:${server.port}`, `smarthost.example:${server.port}`]) {
      assertDeferred(
        await send(PLAIN, server.port, { requireTls: true, routing: { smartHosts: [smartHost] } }),
        REQUIRED,
      );
    }
    assertDeferred(
      await send(PLAIN, server.port, {
        requireTls: true,
        static: { [PLAIN]: [{ host: '127.0.0.1', port: server.port }] },
      }),
      REQUIRED,
    );
    assertNothingInCleartext(server);
  });

  it('keeps DANE where the MX host also answers for an opportunistic domain: a stripped session is not shared', async () => {
    // The same MX address serves a domain without a policy first; DANE's domain must not reuse
    // whatever that session was (cleartext here).
    const server = await peer(STRIPPED);
    publish(server.port);
    dns.zones.set(PLAIN, { MX: [{ preference: 10, exchange: MX }] });
    const delivery = keptDelivery(state.path, 5_000);
    const generation = attackGeneration(dns.server, server.port);
    try {
      const services = { stateDir: state.path, delivery };
      assertDelivered(await sendOne(PLAIN, generation, services));
      assertDelivered(await sendOne(PLAIN, generation, services));
      assert.equal(server.connections, 1, 'the plaintext session was kept and reused');
      assertDeferred(await sendOne(DOMAIN, generation, services), /454 4\.7\.5 DANE: .*no TLS/);
      assert.equal(server.messages.length, 2);
      assert.ok(server.messages.every((m) => !m.secure));
    } finally {
      await delivery.deliver.close?.();
    }
  });

  describe('the internal relay', () => {
    let sequence = 0;
    async function relay(tls: RelayTls, server: RawPeer) {
      sequence += 1;
      const generation = buildGeneration(
        runtimeConfig({
          organization: {
            delivery: { relay: { host: `127.0.0.1:${server.port}`, protocol: 'smtp', tls } },
          },
        }),
        1,
      );
      const deliver = createRelayDelivery({ log: memoryLog(), timeouts: TIMEOUTS });
      const body = Buffer.from('Subject: relay\r\n\r\nsecret\r\n');
      const message: OutboundMessage = {
        id: `RELAY${sequence}.1`,
        from: 'alice@treyresearch.net',
        recipients: ['bob@adatum.com'],
        size: body.length,
        receivedAt: new Date(),
        body: () => Promise.resolve(body),
      };
      try {
        return await deliver(message, generation);
      } finally {
        await deliver.close();
      }
    }

    it('keeps mail queued when tls is required and STARTTLS is stripped, refused or only TLS 1.1', async () => {
      for (const options of [STRIPPED, REFUSED, OLD_TLS]) {
        const server = await peer(options);
        const outcome = await relay('required', server);
        assert.equal(outcome.failures.length, 1);
        assert.equal(outcome.failures[0]?.permanent, false);
        assert.match(
          smtpReplyText(outcome.failures[0]?.reply ?? { code: 0, text: '' }),
          /4\.\d\.\d/,
        );
        assertNothingInCleartext(server);
      }
      assert.ok(requireDomainName('adatum.com'));
    });
  });
});
