// What each send session under a published policy tells TLS reporting, over real sockets on
// loopback: the lab DNS server (signed zones with AD), the MTA-STS policy host, peers whose
// certificates match or do not. One event per session, with the RFC 8460 result type.
import assert from 'node:assert/strict';
import { createHash, X509Certificate } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { requireDomainName } from '../../../src/domain-name.js';
import { EngineEvents, type EventOf } from '../../../src/engine/events.js';
import { buildGeneration, type Generation } from '../../../src/engine/generation.js';
import { memoryLog } from '../../../src/engine/log.js';
import { StsPolicyCache } from '../../../src/engine/policy/mta-sts-cache.js';
import type { OutboundMessage } from '../../../src/engine/queue/outcome.js';
import { createRemoteDelivery } from '../../../src/engine/send/deliver.js';
import type { Named, TlsPolicySpec } from '../../../src/model.js';
import { createCertificateAuthority, issueCertificate } from '../../../src/pki/lab.js';
import { startDnsServer, type DnsServer } from '../../support/dns-server.js';
import { lab } from '../../support/lab.js';
import { startPolicyHost, type PolicyHost } from '../../support/policy-host.js';
import { runtimeConfig, sendConnector } from '../../support/runtime-config.js';
import { startSmtpPeer, type SmtpPeer, type SmtpPeerOptions } from '../../support/smtp-peer.js';
import { tempDir, type TempDir } from '../../support/tmp.js';

const TIMEOUTS = { connectMs: 3_000, greetingMs: 3_000, socketMs: 5_000 };
let sequence = 0;

function message(recipient: string): OutboundMessage {
  const body = Buffer.from('Subject: tlsrpt\r\n\r\nhello\r\n');
  sequence += 1;
  return {
    id: `TLSRPT${sequence}.1`,
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

type Result = EventOf<'send.tls-result'>;

describe('send sessions tell TLS reporting their result', () => {
  const webCa = createCertificateAuthority({ commonName: 'Results Web CA' });
  const peers: SmtpPeer[] = [];
  let dns: DnsServer;
  let policyHost: PolicyHost;
  let state: TempDir;

  before(async () => {
    dns = await startDnsServer({});
    policyHost = await startPolicyHost(
      issueCertificate(webCa, {
        commonName: 'mta-sts.sts.example',
        dnsNames: ['mta-sts.sts.example'],
      }),
      {
        status: 200,
        contentType: 'text/plain',
        body: 'version: STSv1\nmode: enforce\nmx: mail.sts.example\nmx: mx1.sts.example\nmax_age: 86400\n',
      },
    );
    state = await tempDir('domsec-tlsrpt-send-');
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

  function publish(
    domain: string,
    host: string,
    secure: boolean,
    tlsa?: { port: number; data: Buffer },
  ) {
    dns.zones.set(domain, { MX: [{ preference: 10, exchange: host }], secure });
    dns.zones.set(host, { A: ['127.0.0.1'], secure });
    if (tlsa !== undefined)
      dns.zones.set(`_${tlsa.port}._tcp.${host}`, {
        TLSA: [{ usage: 3, selector: 1, matchingType: 1, data: tlsa.data }],
        secure,
      });
  }

  function generation(port: number, policies: Named<TlsPolicySpec>[] = []): Generation {
    const config = runtimeConfig({
      organization: {
        resolver: { servers: [dns.server], validating: true, static: {} },
        allowInternalPolicyHosts: true,
      },
      sendConnectors: [sendConnector('out', { domainSecure: false, requireTls: false, port })],
    });
    return buildGeneration({ ...config, tlsPolicies: policies }, 1);
  }

  async function results(domain: string, gen: Generation): Promise<Result[]> {
    const events = new EngineEvents();
    const seen: Result[] = [];
    events.subscribe((event) => {
      if (event.type === 'send.tls-result') seen.push(event);
    });
    const deliver = createRemoteDelivery({
      log: memoryLog(),
      events,
      timeouts: TIMEOUTS,
      dns: { timeoutMs: 1_000, tries: 1 },
      tlsPolicy: {
        cache: new StsPolicyCache(`${state.path}/mta-sts-${sequence}`),
        extraCas: [webCa.certPem],
        mtaStsPort: policyHost.port,
        timeoutMs: 1_000,
      },
    });
    await deliver(
      requireDomainName(domain),
      [message(`bob@${domain}`)],
      gen,
      new AbortController().signal,
    );
    await deliver.close?.();
    return seen;
  }

  const brief = (r: Result) => [r.domain, r.policyType, r.result, r.host];

  it('DANE: a matching key is a success naming the TLSA record; another key is tlsa-invalid', async () => {
    const good = issueCertificate(lab().strangerRoot, {
      commonName: 'mx.dane.example',
      dnsNames: ['mx.dane.example'],
    });
    const other = issueCertificate(lab().strangerRoot, {
      commonName: 'mx.dane.example',
      dnsNames: ['mx.dane.example'],
    });
    const matching = await peer({ certificate: good });
    publish('dane.example', 'mx.dane.example', true, {
      port: matching.port,
      data: spkiSha256(good.certPem),
    });
    const [success, ...none] = await results('dane.example', generation(matching.port));
    assert.deepEqual(none, []);
    assert.deepEqual(brief(success as Result), [
      'dane.example',
      'tlsa',
      'success',
      'mx.dane.example',
    ]);
    assert.deepEqual(success?.policyStrings, [`3 1 1 ${spkiSha256(good.certPem).toString('hex')}`]);

    const wrong = await peer({ certificate: other });
    publish('dane2.example', 'mx.dane2.example', true, {
      port: wrong.port,
      data: spkiSha256(good.certPem),
    });
    const [failure] = await results('dane2.example', generation(wrong.port));
    assert.deepEqual(brief(failure as Result), [
      'dane2.example',
      'tlsa',
      'tlsa-invalid',
      'mx.dane2.example',
    ]);
    assert.equal(failure?.address, '127.0.0.1');
    assert.equal(failure?.localAddress, '127.0.0.1');
    assert.match(failure?.reason ?? '', /no TLSA record matched/i);
  });

  it('a stripped STARTTLS under DANE is starttls-not-supported; dane: require without TLSA is dane-required, with no connection', async () => {
    const plain = await peer({ starttls: false });
    publish('strip.example', 'mx.strip.example', true, {
      port: plain.port,
      data: Buffer.alloc(32, 1),
    });
    const [stripped] = await results('strip.example', generation(plain.port));
    assert.deepEqual(brief(stripped as Result), [
      'strip.example',
      'tlsa',
      'starttls-not-supported',
      'mx.strip.example',
    ]);

    const unsigned = await peer({});
    publish('nodane.example', 'mx.nodane.example', false);
    const before = unsigned.connections;
    const [required] = await results(
      'nodane.example',
      generation(unsigned.port, [
        {
          name: 'strict',
          spec: {
            addressSpaces: ['nodane.example'],
            dane: 'require',
            mtaSts: 'disable',
            requireTls: false,
          },
        },
      ]),
    );
    assert.deepEqual(brief(required as Result), [
      'nodane.example',
      'tlsa',
      'dane-required',
      'mx.nodane.example',
    ]);
    assert.equal(required?.localAddress, null);
    assert.equal(unsigned.connections, before);
  });

  it('a domain that publishes neither DANE nor MTA-STS: no-policy-found, success over TLS and starttls-not-supported in plaintext; nothing through a static route', async () => {
    const tls = await peer({ certificate: lab().strangerAdatum });
    publish('plain.example', 'mx.plain.example', false);
    const overTls = await results('plain.example', generation(tls.port));
    assert.deepEqual(overTls.map(brief), [
      ['plain.example', 'no-policy-found', 'success', 'mx.plain.example'],
    ]);
    assert.equal(tls.messages.length, 1);
    assert.equal(overTls[0]?.localAddress, '127.0.0.1');

    const plain = await peer({ starttls: false });
    publish('cleartext.example', 'mx.cleartext.example', false);
    const inClear = await results('cleartext.example', generation(plain.port));
    assert.deepEqual(inClear.map(brief), [
      ['cleartext.example', 'no-policy-found', 'starttls-not-supported', 'mx.cleartext.example'],
    ]);
    // Opportunistic TLS: the mail still went, and the report will say how.
    assert.equal(plain.messages.length, 1);

    // A static route is a lab's override of DNS, not the domain's MX: nothing to report to it.
    const routed = runtimeConfig({
      organization: {
        resolver: {
          servers: [dns.server],
          validating: true,
          static: { 'routed.example': [{ host: '127.0.0.1', port: tls.port }] },
        },
      },
      sendConnectors: [
        sendConnector('out', { domainSecure: false, requireTls: false, port: tls.port }),
      ],
    });
    assert.deepEqual(await results('routed.example', buildGeneration(routed, 1)), []);
    assert.equal(tls.messages.length, 2);
  });

  it('MTA-STS: a wrong name is certificate-host-mismatch, an MX host the policy does not name validation-failure, both with the policy', async () => {
    const misnamed = await peer({
      certificate: issueCertificate(webCa, {
        commonName: 'www.sts.example',
        dnsNames: ['www.sts.example'],
      }),
    });
    publish('sts.example', 'mx1.sts.example', false);
    dns.zones.set('_mta-sts.sts.example', { TXT: ['v=STSv1; id=r1'] });
    dns.zones.set('mta-sts.sts.example', { A: ['127.0.0.1'] });
    const [mismatch] = await results('sts.example', generation(misnamed.port));
    assert.deepEqual(brief(mismatch as Result), [
      'sts.example',
      'sts',
      'certificate-host-mismatch',
      'mx1.sts.example',
    ]);
    assert.deepEqual(mismatch?.policyStrings, [
      'version: STSv1',
      'mode: enforce',
      'mx: mail.sts.example',
      'mx: mx1.sts.example',
      'max_age: 86400',
    ]);
    assert.deepEqual(mismatch?.mxHost, ['mail.sts.example', 'mx1.sts.example']);

    dns.zones.set('sts.example', { MX: [{ preference: 10, exchange: 'mx9.sts.example' }] });
    dns.zones.set('mx9.sts.example', { A: ['127.0.0.1'] });
    const [unnamed] = await results('sts.example', generation(misnamed.port));
    assert.deepEqual(brief(unnamed as Result), [
      'sts.example',
      'sts',
      'validation-failure',
      'mx9.sts.example',
    ]);
    assert.match(unnamed?.reason ?? '', /not an MX host the policy of sts\.example names/);
  });
  it('a domain-secure partner: verified is a no-policy-found success, refused a failure; expired is certificate-expired', async () => {
    dns.zones.set('adatum.com', { MX: [{ preference: 10, exchange: 'mail.adatum.com' }] });
    dns.zones.set('mail.adatum.com', { A: ['127.0.0.1'] });
    const partnerGeneration = (port: number) =>
      buildGeneration(
        runtimeConfig({
          organization: {
            resolver: { servers: [dns.server], validating: true, static: {} },
            allowInternalPolicyHosts: true,
          },
          sendConnectors: [sendConnector('out', { port })],
        }),
        1,
      );
    const genuine = await peer({ certificate: lab().adatumMail });
    const [verified] = await results('adatum.com', partnerGeneration(genuine.port));
    assert.deepEqual(brief(verified as Result), [
      'adatum.com',
      'no-policy-found',
      'success',
      'mail.adatum.com',
    ]);
    assert.equal(genuine.messages.length, 1);

    const impostor = await peer({ certificate: lab().strangerAdatum });
    const [refused] = await results('adatum.com', partnerGeneration(impostor.port));
    assert.deepEqual(brief(refused as Result), [
      'adatum.com',
      'no-policy-found',
      'validation-failure',
      'mail.adatum.com',
    ]);
    assert.deepEqual(impostor.mailCommands, []);

    const expired = await peer({ certificate: lab().adatumExpired });
    const [old] = await results('adatum.com', partnerGeneration(expired.port));
    assert.deepEqual(brief(old as Result), [
      'adatum.com',
      'no-policy-found',
      'certificate-expired',
      'mail.adatum.com',
    ]);
  });
  it('an MTA-STS policy that cannot be fetched, does not parse, or is on a host without a valid certificate: reported, sent as without one', async () => {
    const receiver = await peer({});
    const withPolicy = (domain: string) => {
      publish(domain, `mx.${domain}`, false);
      dns.zones.set(`_mta-sts.${domain}`, { TXT: ['v=STSv1; id=f1'] });
      dns.zones.set(`mta-sts.${domain}`, { A: ['127.0.0.1'] });
    };
    withPolicy('sts.example');
    const kept = policyHost.response;
    try {
      policyHost.response = { status: 404, contentType: 'text/plain', body: 'no' };
      const [missing] = await results('sts.example', generation(receiver.port));
      assert.deepEqual(brief(missing as Result), [
        'sts.example',
        'sts',
        'sts-policy-fetch-error',
        'mx.sts.example',
      ]);
      policyHost.response = { status: 200, contentType: 'text/plain', body: 'version: STSv9\n' };
      const [invalid] = await results('sts.example', generation(receiver.port));
      assert.deepEqual(brief(invalid as Result), [
        'sts.example',
        'sts',
        'sts-policy-invalid',
        'mx.sts.example',
      ]);
    } finally {
      policyHost.response = kept;
    }
    // The policy host's certificate names mta-sts.sts.example, not mta-sts.webpki.example.
    withPolicy('webpki.example');
    const [webpki] = await results('webpki.example', generation(receiver.port));
    assert.deepEqual(brief(webpki as Result), [
      'webpki.example',
      'sts',
      'sts-webpki-invalid',
      'mx.webpki.example',
    ]);
    assert.equal(receiver.messages.length, 3);
  });
});
