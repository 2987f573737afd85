// DANE against Postfix as the receiving MX host: its certificate matches the published TLSA
// record and the mail is delivered into its Maildir; a record for another key defers the mail
// with the DANE last error and Postfix never gets a message. Postfix is required (CI installs it).
import assert from 'node:assert/strict';
import { createHash, X509Certificate } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { requireDomainName } from '../../src/domain-name.js';
import { buildGeneration } from '../../src/engine/generation.js';
import { memoryLog } from '../../src/engine/log.js';
import { StsPolicyCache } from '../../src/engine/policy/mta-sts-cache.js';
import { createRemoteDelivery } from '../../src/engine/send/deliver.js';
import { issueCertificate } from '../../src/pki/lab.js';
import { smtpReplyText } from '../../src/smtp-reply.js';
import { startDnsServer, type DnsServer } from '../support/dns-server.js';
import { eventually } from '../support/eventually.js';
import { lab } from '../support/lab.js';
import { startPostfix, type Postfix } from '../support/postfix.js';
import { runtimeConfig, sendConnector } from '../support/runtime-config.js';
import { tempDir, type TempDir } from '../support/tmp.js';

const spkiSha256 = (pem: string) =>
  createHash('sha256')
    .update(new X509Certificate(pem).publicKey.export({ type: 'spki', format: 'der' }))
    .digest();

describe('DANE to Postfix', () => {
  // A certificate no CA we know issued: only the TLSA record can vouch for it.
  const mx = issueCertificate(lab().strangerRoot, {
    commonName: 'mx.fabrikam.example',
    dnsNames: ['mx.fabrikam.example'],
  });
  let postfix: Postfix;
  let dns: DnsServer;
  let state: TempDir;

  before(async () => {
    postfix = await startPostfix({
      hostname: 'mx.fabrikam.example',
      mailboxDomains: ['fabrikam.example'],
      certificate: mx,
      clientCa: lab().treyRoot.certPem,
      listeners: { mx: { tls: 'server' } },
    });
    dns = await startDnsServer({
      'fabrikam.example': {
        MX: [{ preference: 10, exchange: 'mx.fabrikam.example' }],
        secure: true,
      },
      'mx.fabrikam.example': { A: ['127.0.0.1'], secure: true },
    });
    state = await tempDir();
  });
  after(async () => {
    await postfix.stop();
    await dns.close();
    await state.remove();
  });

  async function send(data: Buffer) {
    const port = postfix.ports.mx ?? 0;
    dns.zones.set(`_${port}._tcp.mx.fabrikam.example`, {
      TLSA: [{ usage: 3, selector: 1, matchingType: 1, data }],
      secure: true,
    });
    const generation = buildGeneration(
      runtimeConfig({
        organization: { resolver: { servers: [dns.server], validating: true, static: {} } },
        sendConnectors: [sendConnector('out', { domainSecure: false, requireTls: false, port })],
      }),
      1,
    );
    const deliver = createRemoteDelivery({
      log: memoryLog(),
      timeouts: { connectMs: 5_000, greetingMs: 10_000, socketMs: 10_000 },
      tlsPolicy: { cache: new StsPolicyCache(`${state.path}/mta-sts`), timeoutMs: 1_000 },
    });
    const body = Buffer.from('From: alice@treyresearch.net\r\nSubject: dane\r\n\r\nover DANE\r\n');
    const [outcome] = await deliver(
      requireDomainName('fabrikam.example'),
      [
        {
          id: `DANE${data[0] ?? 0}.1`,
          from: 'alice@treyresearch.net',
          recipients: ['bob@fabrikam.example'],
          size: body.length,
          receivedAt: new Date(),
          body: () => Promise.resolve(body),
        },
      ],
      generation,
      new AbortController().signal,
    );
    await deliver.close?.();
    assert.ok(outcome);
    return outcome;
  }

  it('defers when the TLSA record names another key, Postfix receiving nothing', async () => {
    const outcome = await send(spkiSha256(lab().adatumMail.certPem));
    assert.match(
      smtpReplyText(outcome.failures[0]?.reply ?? { code: 0, text: '' }),
      /454 4\.7\.5 DANE: no TLSA record matched the server certificate .* at mx\.fabrikam\.example/,
    );
    assert.deepEqual(await postfix.delivered(), []);
    assert.deepEqual(await postfix.queue(), []);
    // Postfix logs the sender once a MAIL FROM made a queue file: none was ever sent.
    assert.doesNotMatch(await postfix.log(), /from=<alice@treyresearch\.net>/);
  });

  it('delivers over TLS when Postfix presents the key the TLSA record names', async () => {
    const outcome = await send(spkiSha256(mx.certPem));
    assert.deepEqual(outcome.failures, []);
    assert.deepEqual(outcome.delivered, ['bob@fabrikam.example']);
    const delivered = await eventually('Postfix delivers the message', () => postfix.delivered(), {
      until: (files) => files.length === 1,
    });
    assert.match(delivered[0] ?? '', /over DANE/);
    assert.match(await postfix.log(), /TLS connection established from/);
  });
});
