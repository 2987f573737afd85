// Gaps of the negative matrix, both directions over real sockets: certificates not yet valid,
// one partner's valid certificate used for another partner's domain, and forged marking headers.
import { requireDomainName } from '../../src/domain-name.js';
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { buildGeneration } from '../../src/engine/generation.js';
import { memoryLog } from '../../src/engine/log.js';
import type { OutboundMessage } from '../../src/engine/queue/outcome.js';
import { createRemoteDelivery } from '../../src/engine/send/deliver.js';
import {
  createCertificateAuthority,
  issueCertificate,
  type CertificateAuthority,
  type IssuedCertificate,
} from '../../src/pki/lab.js';
import { lab } from '../support/lab.js';
import {
  partnerDomain,
  runtimeConfig,
  sendConnector,
  trustAnchor,
  type RuntimeConfigOverrides,
} from '../support/runtime-config.js';
import { receiving, refusedReason } from '../support/receiving.js';
import { startSmtpPeer, type SmtpPeer } from '../support/smtp-peer.js';
import { submit, type SubmitClient } from '../support/smtp-submit.js';
import { replyText } from '../support/replies.js';

const DAY = 86_400_000;
const ADATUM = { commonName: 'mail.adatum.com', dnsNames: ['mail.adatum.com', 'adatum.com'] };

let notYetValid: IssuedCertificate;
let fabrikamRoot: CertificateAuthority;
let fabrikamMail: IssuedCertificate;
before(() => {
  const { adatumRoot } = lab();
  notYetValid = issueCertificate(adatumRoot, {
    ...ADATUM,
    notBefore: new Date(Date.now() + DAY),
    notAfter: new Date(Date.now() + 30 * DAY),
  });
  fabrikamRoot = createCertificateAuthority({ commonName: 'Fabrikam Root CA', pathLength: 0 });
  fabrikamMail = issueCertificate(fabrikamRoot, {
    commonName: 'mail.fabrikam.com',
    dnsNames: ['mail.fabrikam.com', 'fabrikam.com'],
  });
});

/** Partners adatum.com and fabrikam.com, each with its own root unless `sharedAnchor`. */
function twoPartners(sharedAnchor: boolean): RuntimeConfigOverrides {
  return {
    trustAnchors: [
      trustAnchor('adatum-root', lab().adatumRoot),
      trustAnchor('fabrikam-root', fabrikamRoot),
    ],
    partners: [
      partnerDomain('adatum', { domain: 'adatum.com' }),
      partnerDomain('fabrikam', {
        domain: 'fabrikam.com',
        trustAnchors: [sharedAnchor ? 'adatum-root' : 'fabrikam-root'],
      }),
    ],
  };
}

const BODY = 'From: a@example\r\nSubject: matrix\r\n\r\nbody\r\n';
const client = (certificate?: IssuedCertificate): SubmitClient => ({
  serverCa: lab().treyRoot.certPem,
  ...(certificate === undefined ? {} : { certificate }),
});

describe('negative matrix: receiving', () => {
  it('refuses a partner certificate that is not yet valid: 454 4.7.5, reason logged', async (t) => {
    const { port, messages, log } = await receiving(t, buildGeneration(runtimeConfig(), 1));
    const outcome = await submit(
      port,
      { from: 'a@adatum.com', to: ['u@treyresearch.net'] },
      client(notYetValid),
      BODY,
    );
    assert.match(outcome.response, /^454 4\.7\.5 /);
    assert.equal(messages.length, 0);
    assert.match(refusedReason(log), /not valid before/);
  });

  it('refuses partner A’s certificate with MAIL FROM of partner B (own anchors): 454 4.7.5', async (t) => {
    const generation = buildGeneration(runtimeConfig(twoPartners(false)), 1);
    const { port, messages, log } = await receiving(t, generation);
    const envelope = { from: 'a@fabrikam.com', to: ['u@treyresearch.net'] };
    const outcome = await submit(port, envelope, client(lab().adatumMail), BODY);
    assert.match(outcome.response, /^454 4\.7\.5 /);
    assert.equal(messages.length, 0);
    assert.match(refusedReason(log), /trust anchor of partner fabrikam\.com/);
    // The same certificate for its own domain still passes: the refusal is about the pairing.
    const own = await submit(
      port,
      { from: 'a@adatum.com', to: ['u@treyresearch.net'] },
      client(lab().adatumMail),
      BODY,
    );
    assert.match(own.response, /^250 /);
    assert.equal(messages[0]?.domainSecured?.partner, 'adatum.com');
  });

  it('refuses partner A’s certificate for partner B even when both trust the same CA (name check)', async (t) => {
    const generation = buildGeneration(runtimeConfig(twoPartners(true)), 1);
    const { port, messages, log } = await receiving(t, generation);
    const envelope = { from: 'a@fabrikam.com', to: ['u@treyresearch.net'] };
    const outcome = await submit(port, envelope, client(lab().adatumMail), BODY);
    assert.match(outcome.response, /^454 4\.7\.5 /);
    assert.equal(messages.length, 0);
    assert.match(refusedReason(log), /expected fabrikam\.com/);
  });

  it('replaces forged X-Domsec-* and our Authentication-Results in a domain-secured message', async (t) => {
    const { port, messages } = await receiving(t, buildGeneration(runtimeConfig(), 1));
    const forged = [
      'X-Domsec-AuthAs: Partner',
      'x-domsec-partner: fabrikam.com',
      'Authentication-Results: MAIL.TREYRESEARCH.NET.; x-domsec=pass smtp.mailfrom=fabrikam.com',
      'Authentication-Results: mx.elsewhere.example; spf=pass',
      BODY,
    ].join('\r\n');
    const envelope = { from: 'a@adatum.com', to: ['u@treyresearch.net'] };
    const outcome = await submit(port, envelope, client(lab().adatumMail), forged);
    assert.match(outcome.response, /^250 /);
    const header = messages[0]?.body.toString().split('\r\n\r\n')[0] ?? '';
    assert.equal(header.match(/^X-Domsec-AuthAs:/gim)?.length, 1);
    assert.equal(header.match(/^X-Domsec-Partner: adatum\.com$/gim)?.length, 1);
    assert.doesNotMatch(header, /fabrikam/i);
    assert.match(header, /mx\.elsewhere\.example; spf=pass/, 'a foreign result is kept');
  });
});

describe('negative matrix: sending', () => {
  const peers: SmtpPeer[] = [];
  after(async () => {
    await Promise.all(peers.map((peer) => peer.close()));
  });

  async function send(certificate: IssuedCertificate, overrides: RuntimeConfigOverrides = {}) {
    const peer = await startSmtpPeer({ certificate });
    peers.push(peer);
    const generation = buildGeneration(
      runtimeConfig({
        ...overrides,
        sendConnectors: [
          sendConnector('to-partners', { addressSpaces: ['adatum.com', 'fabrikam.com'] }),
        ],
        organization: {
          resolver: {
            servers: [],
            static: {
              'adatum.com': [{ host: peer.host, port: peer.port }],
              'fabrikam.com': [{ host: peer.host, port: peer.port }],
            },
          },
        },
      }),
      1,
    );
    const deliver = createRemoteDelivery({
      log: memoryLog(),
      timeouts: { connectMs: 3_000, greetingMs: 3_000, socketMs: 5_000 },
    });
    const body = Buffer.from(BODY);
    const domain = overrides.partners === undefined ? 'adatum.com' : 'fabrikam.com';
    const message: OutboundMessage = {
      id: `M${peers.length}.1`,
      from: 'alice@treyresearch.net',
      recipients: [`bob@${domain}`],
      size: body.length,
      receivedAt: new Date(),
      body: () => Promise.resolve(body),
    };
    const [outcome] = await deliver(
      requireDomainName(domain),
      [message],
      generation,
      new AbortController().signal,
    );
    return { outcome, peer };
  }

  it('refuses a partner server certificate that is not yet valid, before MAIL FROM', async () => {
    const { outcome, peer } = await send(notYetValid);
    assert.equal(outcome?.failures[0]?.permanent, false);
    assert.match(
      replyText(outcome?.failures[0]?.reply),
      /454 4\.7\.5 Certificate validation failure: .*not valid before/,
    );
    assert.deepEqual(peer.mailCommands, []);
  });

  it('refuses partner A’s server certificate when sending to partner B, even with a shared CA', async () => {
    const { outcome, peer } = await send(lab().adatumMail, twoPartners(true));
    assert.match(
      replyText(outcome?.failures[0]?.reply),
      /454 4\.7\.5 Certificate validation failure: .*expected fabrikam\.com/,
    );
    assert.deepEqual(peer.mailCommands, []);
  });

  it('accepts partner B’s certificate when sending to B and refuses it when sending to A', async () => {
    const { outcome, peer } = await send(fabrikamMail, twoPartners(false));
    // Sent to fabrikam.com, B's certificate passes; A's domain with B's certificate must not.
    assert.deepEqual(outcome?.failures, []);
    const second = await send(fabrikamMail, { ...twoPartners(false), partners: undefined });
    assert.match(
      replyText(second.outcome?.failures[0]?.reply),
      /454 4\.7\.5 Certificate validation failure/,
    );
    assert.equal(peer.messages.length, 1);
  });
});
