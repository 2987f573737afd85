// The queue's view of a man in the middle: messages to a DANE domain, an MTA-STS enforce domain
// and a requireTls domain behind a smart host, each met by a peer that strips or refuses STARTTLS,
// wait in the queue (status retry) with a last error that says which policy refused which host,
// and the peer never sees a MAIL FROM, RCPT TO or DATA in cleartext.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { EngineDelivery } from '../../src/engine/delivery/engine-delivery.js';
import { buildGeneration } from '../../src/engine/generation.js';
import { memoryLog } from '../../src/engine/log.js';
import { createCertificateAuthority, issueCertificate } from '../../src/pki/lab.js';
import { startDnsServer } from '../support/dns-server.js';
import { eventually } from '../support/eventually.js';
import { startPolicyHost } from '../support/policy-host.js';
import { runtimeConfig, sendConnector } from '../support/runtime-config.js';
import { tempDir } from '../support/tmp.js';
import { spkiSha256, startRawPeer, TIMEOUTS } from './policy-lab.js';

describe('the queue under a STARTTLS downgrade', () => {
  const cleanup: (() => Promise<void>)[] = [];
  after(async () => {
    for (const step of cleanup.reverse()) await step();
  });

  it('keeps each message queued with its policy named in the last error, nothing sent in cleartext', async () => {
    const webCa = createCertificateAuthority({ commonName: 'Queue Web CA', keyType: 'ecdsa-p256' });
    const mxCertificate = issueCertificate(webCa, {
      commonName: 'mx.sts.example',
      dnsNames: ['mx.sts.example', 'mx.dane.example'],
      keyType: 'ecdsa-p256',
    });
    const state = await tempDir('domsec-attack-queue-');
    // One MX port for every domain: stripped for DANE and smart host mail, 454 for MTA-STS.
    const stripped = await startRawPeer({ certificate: mxCertificate, offerStarttls: false });
    const refused = await startRawPeer({
      certificate: mxCertificate,
      starttlsReply: '454 4.7.0 TLS not available\r\n',
    });
    const policyHost = await startPolicyHost(
      issueCertificate(webCa, {
        commonName: 'mta-sts.sts.example',
        dnsNames: ['mta-sts.sts.example'],
        keyType: 'ecdsa-p256',
      }),
      {
        status: 200,
        contentType: 'text/plain',
        body: 'version: STSv1\nmode: enforce\nmx: mx.sts.example\nmax_age: 3600\n',
      },
    );
    const dns = await startDnsServer({
      'dane.example': { MX: [{ preference: 10, exchange: 'mx.dane.example' }], secure: true },
      'mx.dane.example': { A: ['127.0.0.1'], secure: true },
      [`_${stripped.port}._tcp.mx.dane.example`]: {
        TLSA: [{ usage: 3, selector: 1, matchingType: 1, data: spkiSha256(mxCertificate.certPem) }],
        secure: true,
      },
      'sts.example': { MX: [{ preference: 10, exchange: 'mx.sts.example' }] },
      'mx.sts.example': { A: ['127.0.0.1'] },
      '_mta-sts.sts.example': { TXT: ['v=STSv1; id=queue1'] },
      'mta-sts.sts.example': { A: ['127.0.0.1'] },
    });
    cleanup.push(state.remove, stripped.close, refused.close, policyHost.close, dns.close);

    const generation = buildGeneration(
      {
        ...runtimeConfig({
          organization: {
            resolver: { servers: [dns.server], validating: true, static: {} },
            allowInternalPolicyHosts: true,
          },
          sendConnectors: [
            sendConnector('dane', {
              addressSpaces: ['dane.example'],
              domainSecure: false,
              requireTls: false,
              port: stripped.port,
            }),
            sendConnector('sts', {
              addressSpaces: ['sts.example'],
              domainSecure: false,
              requireTls: false,
              port: refused.port,
            }),
            sendConnector('smarthost', {
              addressSpaces: ['plain.example'],
              domainSecure: false,
              requireTls: false,
              routing: { smartHosts: [`127.0.0.1:${stripped.port}`] },
            }),
          ],
        }),
        tlsPolicies: [
          {
            name: 'encrypt-plain',
            spec: {
              addressSpaces: ['plain.example'],
              dane: 'optional',
              mtaSts: 'optional',
              requireTls: true,
            },
          },
        ],
      },
      1,
    );
    const delivery = await EngineDelivery.open({
      stateDir: state.path,
      log: memoryLog(),
      generation: () => generation,
      timeouts: TIMEOUTS,
      dns: { timeoutMs: 1_000, tries: 1 },
      tlsPolicyLab: { extraCas: [webCa.certPem], mtaStsPort: policyHost.port },
    });
    cleanup.push(() => delivery.close());
    for (const recipient of ['bob@dane.example', 'bob@sts.example', 'bob@plain.example'])
      await delivery.queue.accept({
        from: 'alice@treyresearch.net',
        recipients: [recipient],
        body: Buffer.from('Subject: downgrade\r\n\r\nsecret\r\n'),
        receivedAt: new Date(),
        connector: 'internal',
        remoteAddress: '127.0.0.1',
      });
    delivery.afterApply(undefined, generation);
    await eventually('every first attempt', () =>
      delivery.queue.summaries().every((s) => s.status === 'retry'),
    );
    const lastError = (domain: string) =>
      delivery.queue.summaries().find((s) => s.nextHopDomain === domain)?.lastError ?? '';
    assert.match(
      lastError('dane.example'),
      /454 4\.7\.5 DANE: mx\.dane\.example publishes TLSA records and the session has no TLS \(STARTTLS not offered or stripped\); not sent in plaintext/,
    );
    assert.match(
      lastError('sts.example'),
      /454 4\.7\.5 MTA-STS: the policy of sts\.example is enforce and mx\.sts\.example gave no TLS/,
    );
    assert.match(lastError('plain.example'), /451 4\.7\.3 STARTTLS is required to send mail/);
    assert.equal(delivery.queue.messages().length, 3);
    for (const peer of [stripped, refused]) {
      assert.equal(peer.cleartextTransaction(), undefined, 'a transaction went in cleartext');
      assert.deepEqual(peer.messages, []);
    }
  });
});
