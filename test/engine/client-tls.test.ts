// The client TLS options towards a next hop come from one builder, used by delivery and by probe:
// both send SNI for a host name and none for an IP literal (any spelling net.isIP accepts), so
// probe tests the handshake a delivery makes. Real peers on loopback record what SNI they saw.
import assert from 'node:assert/strict';
import { isIP } from 'node:net';
import { after, describe, it } from 'node:test';
import fc from 'fast-check';
import { requireDomainName } from '../../src/domain-name.js';
import { buildGeneration, type Generation } from '../../src/engine/generation.js';
import { memoryLog } from '../../src/engine/log.js';
import type { OutboundMessage } from '../../src/engine/queue/outcome.js';
import { clientTlsOptions, sniServerName } from '../../src/engine/send/client-tls.js';
import { createRemoteDelivery } from '../../src/engine/send/deliver.js';
import { probeDomain } from '../../src/engine/send/probe.js';
import { startDnsServer } from '../support/dns-server.js';
import { lab } from '../support/lab.js';
import { runtimeConfig } from '../support/runtime-config.js';
import { startSmtpPeer, type SmtpPeer } from '../support/smtp-peer.js';

describe('client TLS options', () => {
  it('never names an IP literal in SNI, in any spelling', () => {
    const literal = fc.oneof(
      fc.ipV4(),
      fc.ipV6(),
      fc.ipV6().map((v6) => `[${v6}]`),
      fc.ipV4().map((v4) => `::ffff:${v4}`),
    );
    fc.assert(
      fc.property(literal, (host) => {
        assert.equal(sniServerName(host), undefined, host);
        const options = clientTlsOptions({ kind: 'opportunistic' }, host);
        assert.equal('servername' in options, false, host);
      }),
      { numRuns: 500 },
    );
  });

  it('names a host name in SNI as it is, without a trailing dot', () => {
    fc.assert(
      fc.property(fc.domain(), fc.boolean(), (name, dotted) => {
        fc.pre(isIP(name) === 0);
        const host = dotted ? `${name}.` : name;
        assert.equal(sniServerName(host), name);
        assert.equal(clientTlsOptions({ kind: 'required' }, host).servername, name);
      }),
      { numRuns: 300 },
    );
  });

  it('leaves every verdict to verifyPeer: OpenSSL never rejects, no hostname check', () => {
    const options = clientTlsOptions({ kind: 'required' }, 'mx1.adatum.com');
    assert.equal(options.rejectUnauthorized, false);
    assert.equal(options.checkServerIdentity?.('mx1.adatum.com', {} as never), undefined);
    assert.equal(options.minVersion, 'TLSv1.2');
  });
});

describe('delivery and probe make the same handshake', () => {
  const cleanups: (() => Promise<void>)[] = [];
  after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  async function adatumPeer(): Promise<SmtpPeer> {
    const peer = await startSmtpPeer({ certificate: lab().adatumMail });
    cleanups.push(() => peer.close());
    return peer;
  }

  function routedTo(host: string, port: number, servers: string[] = []): Generation {
    return buildGeneration(
      runtimeConfig({
        organization: {
          resolver: { servers, static: { 'adatum.com': [{ host, port }] } },
        },
      }),
      1,
    );
  }

  async function deliverOne(generation: Generation): Promise<void> {
    const deliver = createRemoteDelivery({
      log: memoryLog(),
      timeouts: { connectMs: 5_000, greetingMs: 5_000, socketMs: 10_000 },
    });
    const body = Buffer.from('Subject: sni\r\n\r\nsni\r\n');
    const message: OutboundMessage = {
      id: 'SNI.1',
      from: 'alice@treyresearch.net',
      recipients: ['bob@adatum.com'],
      size: body.length,
      receivedAt: new Date(),
      body: () => Promise.resolve(body),
    };
    const [outcome] = await deliver(
      requireDomainName('adatum.com'),
      [message],
      generation,
      new AbortController().signal,
    );
    assert.deepEqual(outcome, { delivered: ['bob@adatum.com'], failures: [] });
  }

  async function probeOk(generation: Generation): Promise<void> {
    const report = await probeDomain(generation, 'adatum.com', { timeoutMs: 5_000 });
    assert.ok(report.ok, JSON.stringify(report.steps, null, 2));
  }

  // An IPv4-mapped IPv6 literal with hex digits reaches the IPv4 loopback listener; a pattern of
  // digits, dots and colons took it for a name and sent it as SNI.
  for (const host of ['127.0.0.1', '::ffff:7f00:1']) {
    it(`sends no SNI to the IP literal ${host}, delivering and probing`, async () => {
      const peer = await adatumPeer();
      const generation = routedTo(host, peer.port);
      await deliverOne(generation);
      await probeOk(generation);
      assert.deepEqual(peer.serverNames, [false, false]);
      assert.equal(peer.clientCertificates.length, 2);
      for (const cert of peer.clientCertificates) {
        assert.equal(cert?.fingerprint256, lab().treyMail.fingerprint);
      }
    });
  }

  it('sends the hop host name as SNI, delivering and probing', async () => {
    const peer = await adatumPeer();
    const dns = await startDnsServer({ 'mx1.adatum.com': { A: ['127.0.0.1'] } });
    cleanups.push(() => dns.close());
    const generation = routedTo('mx1.adatum.com', peer.port, [dns.server]);
    await deliverOne(generation);
    await probeOk(generation);
    assert.deepEqual(peer.serverNames, ['mx1.adatum.com', 'mx1.adatum.com']);
  });
});
