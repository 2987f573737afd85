// DANE and MTA-STS in the send path, over real sockets on loopback: the lab DNS server publishes
// MX, TLSA and the _mta-sts TXT (with AD for signed zones), an HTTPS host serves the policy, and
// a receiving peer's certificate matches or does not. A failed policy defers with a clear last
// error and never sends: the peer never sees MAIL FROM, and a stripped STARTTLS is not plaintext.
import assert from 'node:assert/strict';
import { createHash, X509Certificate } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { requireDomainName } from '../../../src/domain-name.js';
import { buildGeneration, type Generation } from '../../../src/engine/generation.js';
import { memoryLog } from '../../../src/engine/log.js';
import { StsPolicyCache } from '../../../src/engine/policy/mta-sts-cache.js';
import type { OutboundMessage } from '../../../src/engine/queue/outcome.js';
import { createRemoteDelivery } from '../../../src/engine/send/deliver.js';
import type { Named, TlsPolicySpec } from '../../../src/model.js';
import {
  createCertificateAuthority,
  issueCertificate,
  type IssuedCertificate,
} from '../../../src/pki/lab.js';
import { smtpReplyText } from '../../../src/smtp-reply.js';
import { startDnsServer, type DnsServer } from '../../support/dns-server.js';
import { lab } from '../../support/lab.js';
import { startPolicyHost, type PolicyHost } from '../../support/policy-host.js';
import { runtimeConfig, sendConnector } from '../../support/runtime-config.js';
import { startSmtpPeer, type SmtpPeer, type SmtpPeerOptions } from '../../support/smtp-peer.js';
import { tempDir, type TempDir } from '../../support/tmp.js';

const TIMEOUTS = { connectMs: 3_000, greetingMs: 3_000, socketMs: 5_000 };
const ENFORCE = (mx: string) => `version: STSv1\nmode: enforce\nmx: ${mx}\nmax_age: 86400\n`;
let sequence = 0;

function message(recipient: string): OutboundMessage {
  const body = Buffer.from(`From: alice@treyresearch.net\r\nSubject: policy\r\n\r\nhello\r\n`);
  sequence += 1;
  return {
    id: `POLICY${sequence}.1`,
    from: 'alice@treyresearch.net',
    recipients: [recipient],
    size: body.length,
    receivedAt: new Date(),
    body: () => Promise.resolve(body),
  };
}

const spkiSha256 = (pem: string) =>
  createHash('sha256')
    .update(new X509Certificate(pem).publicKey.export({ type: 'spki', format: 'der' }))
    .digest();
const certSha256 = (pem: string) =>
  createHash('sha256').update(new X509Certificate(pem).raw).digest();

describe('sending under DANE and MTA-STS', () => {
  const webCa = createCertificateAuthority({ commonName: 'Lab Web CA' });
  const peers: SmtpPeer[] = [];
  let dns: DnsServer;
  let policyHost: PolicyHost;
  let state: TempDir;
  let certificates: Record<'dane' | 'other' | 'sts' | 'stsWrongName' | 'daneTa', IssuedCertificate>;
  let daneCa: IssuedCertificate;

  before(async () => {
    lab();
    daneCa = createCertificateAuthority({ commonName: 'Lab DANE CA' });
    certificates = {
      dane: issueCertificate(lab().strangerRoot, {
        commonName: 'mx.dane.example',
        dnsNames: ['mx.dane.example'],
      }),
      other: issueCertificate(lab().strangerRoot, {
        commonName: 'mx.dane.example',
        dnsNames: ['mx.dane.example'],
      }),
      sts: issueCertificate(webCa, {
        commonName: 'mx1.sts.example',
        dnsNames: ['mx1.sts.example'],
      }),
      stsWrongName: issueCertificate(webCa, {
        commonName: 'www.sts.example',
        dnsNames: ['www.sts.example'],
      }),
      daneTa: issueCertificate(daneCa as never, {
        commonName: 'mx.dane.example',
        dnsNames: ['mx.dane.example'],
      }),
    };
    dns = await startDnsServer({});
    policyHost = await startPolicyHost(
      issueCertificate(webCa, {
        commonName: 'mta-sts.sts.example',
        dnsNames: ['mta-sts.sts.example'],
      }),
      { status: 200, contentType: 'text/plain', body: ENFORCE('*.sts.example') },
    );
    state = await tempDir();
  });
  after(async () => {
    await Promise.all(peers.map((p) => p.close()));
    await policyHost.close();
    await dns.close();
    await state.remove();
  });

  async function peer(options: SmtpPeerOptions): Promise<SmtpPeer> {
    const started = await startSmtpPeer(options);
    peers.push(started);
    return started;
  }

  /** A domain whose one MX host is `host`, every name of it signed or not. */
  function publish(
    domain: string,
    host: string,
    secure: boolean,
    tlsa?: {
      port: number;
      records: { usage: number; selector: number; matchingType: number; data: Buffer }[];
    },
  ) {
    dns.zones.set(domain, { MX: [{ preference: 10, exchange: host }], secure });
    dns.zones.set(host, { A: ['127.0.0.1'], secure });
    if (tlsa !== undefined)
      dns.zones.set(`_${tlsa.port}._tcp.${host}`, { TLSA: tlsa.records, secure });
  }

  function generation(
    port: number,
    options: { validating?: boolean; policies?: Named<TlsPolicySpec>[] } = {},
  ): Generation {
    const config = runtimeConfig({
      organization: {
        resolver: { servers: [dns.server], validating: options.validating ?? true, static: {} },
        allowInternalPolicyHosts: true,
      },
      sendConnectors: [sendConnector('out', { domainSecure: false, requireTls: false, port })],
    });
    return buildGeneration({ ...config, tlsPolicies: options.policies ?? [] }, 1);
  }

  async function send(domain: string, gen: Generation) {
    const log = memoryLog();
    const deliver = createRemoteDelivery({
      log,
      timeouts: TIMEOUTS,
      dns: { timeoutMs: 1_000, tries: 1 },
      tlsPolicy: {
        cache: new StsPolicyCache(`${state.path}/mta-sts-${sequence}`),
        extraCas: [webCa.certPem],
        mtaStsPort: policyHost.port,
        timeoutMs: 1_000,
      },
    });
    const [outcome] = await deliver(
      requireDomainName(domain),
      [message(`bob@${domain}`)],
      gen,
      new AbortController().signal,
    );
    await deliver.close?.();
    assert.ok(outcome);
    return {
      outcome,
      log,
      lastError: outcome.failures.map((f) => smtpReplyText(f.reply)).join('\n'),
    };
  }

  it('delivers over TLS to a host whose certificate matches its DANE-EE record, with no name or CA check', async () => {
    const server = await peer({ certificate: certificates.dane });
    publish('dane.example', 'mx.dane.example', true, {
      port: server.port,
      records: [
        { usage: 3, selector: 1, matchingType: 1, data: spkiSha256(certificates.dane.certPem) },
      ],
    });
    const { outcome, log } = await send('dane.example', generation(server.port));
    assert.deepEqual(outcome.failures, []);
    assert.equal(server.messages[0]?.secure, true);
    assert.ok(log.entries.some((e) => e.event === 'send.dane-verified'));
  });

  it('defers with "454 4.7.5 DANE: no TLSA record matched" and never sends MAIL FROM to a mismatching host', async () => {
    const server = await peer({ certificate: certificates.other });
    publish('dane.example', 'mx.dane.example', true, {
      port: server.port,
      records: [
        { usage: 3, selector: 0, matchingType: 1, data: certSha256(certificates.dane.certPem) },
      ],
    });
    const { outcome, lastError } = await send('dane.example', generation(server.port));
    assert.equal(outcome.failures[0]?.permanent, false);
    assert.match(
      lastError,
      /"454 4\.7\.5 DANE: no TLSA record matched the server certificate \(records: 3 0 1 [0-9a-f]+\.\.\.\) at mx\.dane\.example\."/,
    );
    assert.equal(server.connections, 1);
    assert.deepEqual(server.mailCommands, []);
  });

  it('does not fall back to plaintext when STARTTLS is stripped from a host with TLSA records', async () => {
    const stripped = await peer({ certificate: certificates.dane, starttls: false });
    publish('dane.example', 'mx.dane.example', true, {
      port: stripped.port,
      records: [
        { usage: 3, selector: 1, matchingType: 1, data: spkiSha256(certificates.dane.certPem) },
      ],
    });
    const { lastError } = await send('dane.example', generation(stripped.port));
    assert.match(
      lastError,
      /454 4\.7\.5 DANE: mx\.dane\.example publishes TLSA records and the session has no TLS/,
    );
    assert.deepEqual(stripped.mailCommands, []);
    assert.deepEqual(stripped.messages, []);
  });

  it('matches DANE-TA by the issuer the server sends, with the MX host name checked', async () => {
    const server = await peer({
      certificate: {
        certPem: `${certificates.daneTa.certPem}\n${daneCa.certPem}`,
        keyPem: certificates.daneTa.keyPem,
      },
    });
    publish('dane.example', 'mx.dane.example', true, {
      port: server.port,
      records: [{ usage: 2, selector: 1, matchingType: 1, data: spkiSha256(daneCa.certPem) }],
    });
    const { outcome } = await send('dane.example', generation(server.port));
    assert.deepEqual(outcome.failures, []);
    assert.equal(server.messages.length, 1);
  });

  it('defers without connecting when the TLSA look-up of a signed MX host fails', async () => {
    const server = await peer({ certificate: certificates.dane });
    publish('dane.example', 'mx.dane.example', true);
    dns.failing.add(`_${server.port}._tcp.mx.dane.example`);
    try {
      const { lastError } = await send('dane.example', generation(server.port));
      assert.match(
        lastError,
        /454 4\.7\.5 DANE: TLSA look-up for _\d+\._tcp\.mx\.dane\.example failed \(SERVFAIL\)/,
      );
      assert.equal(server.connections, 0);
    } finally {
      dns.failing.clear();
    }
  });

  it('sends as before where DANE does not apply: unsigned zone, a resolver not named validating, only unusable records', async () => {
    const server = await peer({ certificate: certificates.other });
    const wrong = {
      port: server.port,
      records: [
        { usage: 3, selector: 1, matchingType: 1, data: spkiSha256(certificates.dane.certPem) },
      ],
    };
    publish('dane.example', 'mx.dane.example', false, wrong);
    assert.deepEqual((await send('dane.example', generation(server.port))).outcome.failures, []);
    publish('dane.example', 'mx.dane.example', true, wrong);
    assert.deepEqual(
      (await send('dane.example', generation(server.port, { validating: false }))).outcome.failures,
      [],
    );
    publish('dane.example', 'mx.dane.example', true, {
      port: server.port,
      records: [
        { usage: 1, selector: 1, matchingType: 1, data: spkiSha256(certificates.dane.certPem) },
      ],
    });
    assert.deepEqual((await send('dane.example', generation(server.port))).outcome.failures, []);
    assert.equal(server.messages.length, 3);
  });

  it('defers under dane: require where no TLSA record is published', async () => {
    const server = await peer({ certificate: certificates.dane });
    // A signed zone that denies the TLSA record (NODATA with AD).
    publish('dane.example', 'mx.dane.example', true, { port: server.port, records: [] });
    const policies = [
      {
        name: 'strict',
        spec: {
          addressSpaces: ['dane.example'],
          dane: 'require' as const,
          mtaSts: 'optional' as const,
          requireTls: false,
        },
      },
    ];
    const { lastError } = await send('dane.example', generation(server.port, { policies }));
    assert.match(
      lastError,
      /454 4\.7\.5 DANE: required for dane\.example by TlsPolicy strict, and mx\.dane\.example publishes no TLSA record/,
    );
    assert.equal(server.connections, 0);
  });

  describe('MTA-STS enforce', () => {
    const sts = (body = ENFORCE('*.sts.example')) => {
      policyHost.response = { status: 200, contentType: 'text/plain', body };
      dns.zones.set('_mta-sts.sts.example', { TXT: [`v=STSv1; id=p${sequence}`] });
      dns.zones.set('mta-sts.sts.example', { A: ['127.0.0.1'] });
    };

    it('delivers to a listed MX host whose certificate chains to a trusted CA and names it', async () => {
      const server = await peer({ certificate: certificates.sts });
      publish('sts.example', 'mx1.sts.example', false);
      sts();
      const { outcome, log } = await send('sts.example', generation(server.port));
      assert.deepEqual(outcome.failures, []);
      assert.equal(server.messages[0]?.secure, true);
      assert.ok(log.entries.some((e) => e.event === 'send.mta-sts-verified'));
    });

    it('defers a wrong certificate (untrusted CA, or another name) before MAIL FROM', async () => {
      for (const certificate of [certificates.other, certificates.stsWrongName]) {
        const server = await peer({ certificate });
        publish('sts.example', 'mx1.sts.example', false);
        sts();
        const { lastError } = await send('sts.example', generation(server.port));
        assert.match(
          lastError,
          /454 4\.7\.5 MTA-STS: the certificate (of mx1\.sts\.example does not chain to a trusted CA|names www\.sts\.example, not mx1\.sts\.example)/,
        );
        assert.deepEqual(server.mailCommands, []);
      }
    });

    it('defers a stripped STARTTLS and never sends in plaintext', async () => {
      const stripped = await peer({ certificate: certificates.sts, starttls: false });
      publish('sts.example', 'mx1.sts.example', false);
      sts();
      const { lastError } = await send('sts.example', generation(stripped.port));
      assert.match(
        lastError,
        /454 4\.7\.5 MTA-STS: the policy of sts\.example is enforce and mx1\.sts\.example gave no TLS/,
      );
      assert.deepEqual(stripped.mailCommands, []);
      assert.deepEqual(stripped.messages, []);
    });

    it('does not connect to an MX host the policy does not name', async () => {
      const server = await peer({ certificate: certificates.sts });
      publish('sts.example', 'mx1.sts.example', false);
      sts(ENFORCE('mail.sts.example'));
      const { lastError } = await send('sts.example', generation(server.port));
      assert.match(
        lastError,
        /454 4\.7\.5 MTA-STS: mx1\.sts\.example is not an MX host the policy of sts\.example names \(mx mail\.sts\.example\)/,
      );
      assert.equal(server.connections, 0);
    });

    it('delivers under testing, logging the failure; and ignores the policy under mtaSts: disable', async () => {
      const server = await peer({ certificate: certificates.other });
      publish('sts.example', 'mx1.sts.example', false);
      sts(ENFORCE('*.sts.example').replace('enforce', 'testing'));
      const testing = await send('sts.example', generation(server.port));
      assert.deepEqual(testing.outcome.failures, []);
      assert.ok(testing.log.entries.some((e) => e.event === 'send.mta-sts-testing-failure'));
      sts();
      const policies = [
        {
          name: 'lax',
          spec: {
            addressSpaces: ['*.example'],
            dane: 'optional' as const,
            mtaSts: 'disable' as const,
            requireTls: false,
          },
        },
      ];
      assert.deepEqual(
        (await send('sts.example', generation(server.port, { policies }))).outcome.failures,
        [],
      );
      assert.equal(server.messages.length, 2);
    });
  });

  it('keeps mutual TLS for a send-secure partner whatever a TLS policy says', async () => {
    const impostor = await peer({ certificate: lab().strangerAdatum });
    const config = runtimeConfig({
      organization: {
        resolver: { servers: [dns.server], validating: true, static: {} },
        allowInternalPolicyHosts: true,
      },
      sendConnectors: [sendConnector('out', { port: impostor.port })],
    });
    dns.zones.set('adatum.com', { MX: [{ preference: 10, exchange: 'mail.adatum.com' }] });
    dns.zones.set('mail.adatum.com', { A: ['127.0.0.1'] });
    const gen = buildGeneration(
      {
        ...config,
        tlsPolicies: [
          {
            name: 'off',
            spec: { addressSpaces: ['*'], dane: 'disable', mtaSts: 'disable', requireTls: false },
          },
        ],
      },
      1,
    );
    const { lastError } = await send('adatum.com', gen);
    assert.match(lastError, /454 4\.7\.5 Certificate validation failure/);
    assert.deepEqual(impostor.mailCommands, []);
  });
});
