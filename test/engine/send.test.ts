// Sending to real SMTP servers on loopback: treyresearch.net (our side, test/support/runtime-config)
// sends to its partner adatum.com over mutual TLS, and to other domains opportunistically.
import { requireDomainName } from '../../src/domain-name.js';
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { StaticRoute } from '../../src/model.js';
import { buildGeneration, type Generation } from '../../src/engine/generation.js';
import { memoryLog } from '../../src/engine/log.js';
import { ProtocolLog } from '../../src/engine/protocol-log.js';
import type { OutboundMessage } from '../../src/engine/queue/outcome.js';
import { createRemoteDelivery, type RemoteDeliveryOptions } from '../../src/engine/send/deliver.js';
import { addressSpaceMatch, chooseSendConnector } from '../../src/engine/send/route.js';
import { startDnsServer } from '../support/dns-server.js';
import { lab } from '../support/lab.js';
import { freePort } from '../support/ports.js';
import { runtimeConfig, sendConnector } from '../support/runtime-config.js';
import { startSmtpPeer, type SmtpPeer, type SmtpPeerOptions } from '../support/smtp-peer.js';
import { tempDir } from '../support/tmp.js';
import { reply, replyText } from '../support/replies.js';

const TIMEOUTS = { connectMs: 3_000, greetingMs: 3_000, socketMs: 5_000 };
let sequence = 0;

function message(recipients: string[], text = 'Q4 results'): OutboundMessage {
  const body = Buffer.from(`From: alice@treyresearch.net\r\nSubject: ${text}\r\n\r\n${text}\r\n`);
  sequence += 1;
  return {
    id: `TEST${sequence}.1`,
    from: 'alice@treyresearch.net',
    recipients,
    size: body.length,
    receivedAt: new Date(),
    body: () => Promise.resolve(body),
  };
}

/** treyresearch.net with every domain in `routes` sent to the given loopback hops. */
function generationFor(
  routes: Record<string, StaticRoute[]>,
  overrides: Parameters<typeof runtimeConfig>[0] = {},
): Generation {
  return buildGeneration(
    runtimeConfig({
      ...overrides,
      organization: { resolver: { servers: [], static: routes }, ...overrides.organization },
    }),
    1,
  );
}

function sender(options: Partial<RemoteDeliveryOptions> = {}) {
  const log = memoryLog();
  const deliver = createRemoteDelivery({ log, timeouts: TIMEOUTS, ...options });
  return {
    log,
    deliver: (domain: string, messages: OutboundMessage[], generation: Generation) =>
      deliver(requireDomainName(domain), messages, generation, new AbortController().signal),
  };
}

describe('sending', () => {
  const peers: SmtpPeer[] = [];
  async function peer(options: SmtpPeerOptions): Promise<SmtpPeer> {
    const started = await startSmtpPeer(options);
    peers.push(started);
    return started;
  }
  const trusted = () => ({ certificate: lab().adatumMail });
  const route = (p: SmtpPeer) => ({ 'adatum.com': [{ host: p.host, port: p.port }] });

  before(() => {
    lab(); // RSA keys take a moment: make them before the first timed session
  });
  after(async () => {
    await Promise.all(peers.map((p) => p.close()));
  });

  it('delivers to a partner whose trusted certificate names it, presenting our certificate', async () => {
    const partner = await peer(trusted());
    const { deliver, log } = sender();
    const [outcome] = await deliver(
      'adatum.com',
      [message(['bob@adatum.com'])],
      generationFor(route(partner)),
    );
    assert.deepEqual(outcome, { delivered: ['bob@adatum.com'], failures: [] });
    assert.equal(partner.messages.length, 1);
    assert.equal(partner.messages[0]?.secure, true);
    assert.equal(partner.clientCertificates[0]?.fingerprint256, lab().treyMail.fingerprint);
    assert.ok(log.entries.some((e) => e.event === 'send.partner-verified'));
  });

  it('refuses a partner certificate from an untrusted CA before MAIL FROM, keeping the message queued', async () => {
    const impostor = await peer({ certificate: lab().strangerAdatum });
    const { deliver } = sender();
    const [outcome] = await deliver(
      'adatum.com',
      [message(['bob@adatum.com'])],
      generationFor(route(impostor)),
    );
    const failure = outcome?.failures[0];
    assert.equal(failure?.permanent, false);
    assert.match(
      replyText(failure?.reply),
      /^451 4\.4\.0 Primary target IP address responded with: "454 4\.7\.5 Certificate validation failure: .*not issued by a trust anchor of partner adatum\.com.*" Attempted failover to alternate host, but that did not succeed\.$/,
    );
    assert.deepEqual(impostor.mailCommands, []);
    assert.deepEqual(impostor.messages, []);
  });

  it('refuses a trusted certificate that does not name the partner', async () => {
    const wrong = await peer({ certificate: lab().adatumWrongName });
    const [outcome] = await sender().deliver(
      'adatum.com',
      [message(['bob@adatum.com'])],
      generationFor(route(wrong)),
    );
    assert.match(
      replyText(outcome?.failures[0]?.reply),
      /"454 4\.7\.5 Certificate validation failure: certificate names mail\.contoso\.com/,
    );
    assert.deepEqual(wrong.mailCommands, []);
  });

  it('never falls back to plaintext when a partner does not offer STARTTLS: 451 4.7.3', async () => {
    const plain = await peer({ starttls: false });
    const [outcome] = await sender().deliver(
      'adatum.com',
      [message(['bob@adatum.com'])],
      generationFor(route(plain)),
    );
    assert.equal(
      replyText(outcome?.failures[0]?.reply),
      '451 4.4.0 Primary target IP address responded with: "451 4.7.3 STARTTLS is required to send mail." Attempted failover to alternate host, but that did not succeed.',
    );
    assert.equal(plain.connections, 1);
    assert.deepEqual(plain.mailCommands, [], 'no MAIL command may go out in plaintext');
  });

  it('verifies a send-secure partner even through a connector without domainSecure (fails closed)', async () => {
    const impostor = await peer({ certificate: lab().strangerAdatum });
    const plain = await peer({ starttls: false });
    const overrides = {
      sendConnectors: [
        sendConnector('loose', {
          addressSpaces: ['adatum.com'],
          domainSecure: false,
          requireTls: false,
        }),
      ],
    };
    for (const target of [impostor, plain]) {
      const [outcome] = await sender().deliver(
        'adatum.com',
        [message(['bob@adatum.com'])],
        generationFor(route(target), overrides),
      );
      assert.match(replyText(outcome?.failures[0]?.reply), /"45[14] 4\.7\.[35] /);
      assert.deepEqual(
        target.mailCommands,
        [],
        'nothing may be sent to a partner without verified MTLS',
      );
    }
  });

  it("quotes the partner's own refusal of MAIL FROM verbatim in Exchange's last error", async () => {
    const refusing = await peer({
      ...trusted(),
      mailFrom: { code: 454, message: '4.7.5 Certificate validation failure' },
    });
    const [outcome] = await sender().deliver(
      'adatum.com',
      [message(['bob@adatum.com'])],
      generationFor(route(refusing)),
    );
    assert.deepEqual(outcome?.failures, [
      {
        recipient: 'bob@adatum.com',
        permanent: false,
        reply: reply(
          '451 4.4.0 Primary target IP address responded with: "454 4.7.5 Certificate validation failure." Attempted failover to alternate host, but that did not succeed.',
        ),
      },
    ]);
    assert.equal(refusing.mailCommands[0]?.secure, true);
  });

  it('delivers the accepted recipients and bounces those refused with 5xx', async () => {
    const partner = await peer({
      ...trusted(),
      rcptTo: (address) =>
        address === 'nobody@adatum.com' ? { code: 550, message: '5.1.1 User unknown' } : undefined,
    });
    const [outcome] = await sender().deliver(
      'adatum.com',
      [message(['bob@adatum.com', 'nobody@adatum.com'])],
      generationFor(route(partner)),
    );
    assert.deepEqual(outcome, {
      delivered: ['bob@adatum.com'],
      failures: [
        { recipient: 'nobody@adatum.com', reply: reply('550 5.1.1 User unknown'), permanent: true },
      ],
    });
    assert.deepEqual(partner.messages[0]?.recipients, ['bob@adatum.com']);
  });

  it('sends every message of a batch over one connection', async () => {
    const partner = await peer(trusted());
    const batch = [message(['a@adatum.com']), message(['b@adatum.com']), message(['c@adatum.com'])];
    const outcomes = await sender().deliver('adatum.com', batch, generationFor(route(partner)));
    assert.deepEqual(
      outcomes.map((o) => o.delivered),
      [['a@adatum.com'], ['b@adatum.com'], ['c@adatum.com']],
    );
    assert.equal(partner.connections, 1);
    assert.equal(new Set(partner.messages.map((m) => m.sessionId)).size, 1);
  });

  it('fails over to the next MX found through DNS, lowest preference first', async () => {
    const backup = await peer({ ...trusted(), host: '127.0.0.1' });
    const dns = await startDnsServer({
      'adatum.com': {
        MX: [
          { preference: 20, exchange: 'backup.adatum.com' },
          { preference: 10, exchange: 'mx1.adatum.com' },
        ],
      },
      'mx1.adatum.com': { A: ['127.0.0.2'] }, // nothing listens there on this port
      'backup.adatum.com': { A: ['127.0.0.1'] },
    });
    try {
      const generation = buildGeneration(
        runtimeConfig({
          organization: { resolver: { servers: [dns.server], static: {} } },
          sendConnector: { addressSpaces: ['adatum.com'], port: backup.port },
        }),
        1,
      );
      const { deliver, log } = sender();
      const [outcome] = await deliver('adatum.com', [message(['bob@adatum.com'])], generation);
      assert.deepEqual(outcome?.delivered, ['bob@adatum.com']);
      const failed = log.entries.filter((e) => e.event === 'send.hop-failed');
      assert.equal(failed.length, 1);
      assert.equal(failed[0]?.fields.host, 'mx1.adatum.com');
      assert.match(
        String(failed[0]?.fields.reply),
        /^421 4\.2\.1 Unable to connect: .*ECONNREFUSED/,
      );
      assert.equal(backup.messages.length, 1);
    } finally {
      await dns.close();
    }
  });

  it("quotes the first hop's error when every hop fails", async () => {
    const [first, second] = [await freePort(), await freePort()];
    const generation = generationFor({
      'adatum.com': [
        { host: '127.0.0.1', port: first },
        { host: '127.0.0.1', port: second },
      ],
    });
    const { deliver, log } = sender();
    const [outcome] = await deliver('adatum.com', [message(['bob@adatum.com'])], generation);
    assert.match(
      replyText(outcome?.failures[0]?.reply),
      new RegExp(
        `^451 4\\.4\\.0 Primary target IP address responded with: "421 4\\.2\\.1 Unable to connect: .*127\\.0\\.0\\.1:${first}\\." Attempted failover`,
      ),
    );
    assert.equal(log.entries.filter((e) => e.event === 'send.hop-failed').length, 2);
  });

  it('sends to other domains with opportunistic TLS and without our certificate', async () => {
    const withTls = await peer({});
    const plain = await peer({ starttls: false });
    const generation = generationFor(
      {
        'fabrikam.com': [{ host: withTls.host, port: withTls.port }],
        'contoso.com': [{ host: plain.host, port: plain.port }],
      },
      {
        sendConnectors: [
          sendConnector('internet', {
            addressSpaces: ['*'],
            domainSecure: false,
            requireTls: false,
          }),
        ],
      },
    );
    const { deliver } = sender();
    const [secured] = await deliver('fabrikam.com', [message(['x@fabrikam.com'])], generation);
    const [plaintext] = await deliver('contoso.com', [message(['y@contoso.com'])], generation);
    assert.deepEqual(secured?.delivered, ['x@fabrikam.com']);
    assert.equal(withTls.messages[0]?.secure, true);
    assert.deepEqual(withTls.clientCertificates, [null], 'no client certificate for a non-partner');
    assert.deepEqual(plaintext?.delivered, ['y@contoso.com']);
    assert.equal(plain.messages[0]?.secure, false);
  });

  it('makes STARTTLS mandatory for other domains when the connector requires TLS', async () => {
    const plain = await peer({ starttls: false });
    const generation = generationFor(
      { 'fabrikam.com': [{ host: plain.host, port: plain.port }] },
      {
        sendConnectors: [
          sendConnector('internet', {
            addressSpaces: ['*'],
            domainSecure: false,
            requireTls: true,
          }),
        ],
      },
    );
    const [outcome] = await sender().deliver(
      'fabrikam.com',
      [message(['x@fabrikam.com'])],
      generation,
    );
    assert.match(
      replyText(outcome?.failures[0]?.reply),
      /"451 4\.7\.3 STARTTLS is required to send mail\."/,
    );
    assert.deepEqual(plain.mailCommands, []);
  });

  it('keeps a domain no send connector covers queued with 451 4.4.0', async () => {
    const [outcome] = await sender().deliver(
      'fabrikam.com',
      [message(['x@fabrikam.com'])],
      generationFor({}),
    );
    assert.deepEqual(outcome?.failures, [
      {
        recipient: 'x@fabrikam.com',
        reply: reply('451 4.4.0 No send connector covers the recipient domain: fabrikam.com'),
        permanent: false,
      },
    ]);
  });

  it('writes connect, commands, replies and the verification to the protocol log, never the body', async () => {
    const partner = await peer(trusted());
    const dir = await tempDir('domsec-protocol-');
    const protocolLog = new ProtocolLog(dir.path);
    try {
      const generation = generationFor(route(partner), {
        sendConnector: { addressSpaces: ['adatum.com'], protocolLogging: 'verbose' },
      });
      await sender({ protocolLog }).deliver(
        'adatum.com',
        [message(['bob@adatum.com'], 'secret body text')],
        generation,
      );
      await protocolLog.close();
      const [file] = await readdir(dir.path);
      const text = await readFile(join(dir.path, file ?? ''), 'utf8');
      assert.match(text, /,\+,connected/);
      assert.match(text, /,>,EHLO mail\.treyresearch\.net/);
      assert.match(text, /,<,220 /);
      assert.match(text, /,\*,"domain security: verified adatum\.com/);
      assert.match(text, /,>,MAIL FROM:<alice@treyresearch\.net>/);
      assert.match(text, /,-,disconnected/);
      assert.doesNotMatch(text, /secret body text/);
    } finally {
      await dir.remove();
    }
  });
});

describe('send connector choice', () => {
  it('matches address spaces exactly, by one-label-or-more wildcard, or *', () => {
    assert.ok(
      addressSpaceMatch('adatum.com', 'ADATUM.com') > addressSpaceMatch('*.com', 'adatum.com'),
    );
    assert.equal(addressSpaceMatch('*.adatum.com', 'adatum.com'), -1);
    assert.ok(addressSpaceMatch('*.adatum.com', 'eu.mail.adatum.com') > 0);
    assert.equal(addressSpaceMatch('*', 'anything.example'), 0);
    assert.equal(addressSpaceMatch('contoso.com', 'adatum.com'), -1);
  });

  it('prefers the most specific address space, then the lowest cost', () => {
    const generation = buildGeneration(
      runtimeConfig({
        sendConnectors: [
          sendConnector('internet', { addressSpaces: ['*'], cost: 1 }),
          sendConnector('eu-cheap', { addressSpaces: ['*.adatum.com'], cost: 1 }),
          sendConnector('eu-dear', { addressSpaces: ['*.adatum.com'], cost: 5 }),
          sendConnector('partner', { addressSpaces: ['adatum.com'], cost: 9 }),
        ],
      }),
      1,
    );
    const pick = (domain: string) => chooseSendConnector(generation.sendConnectors, domain)?.name;
    assert.equal(pick('adatum.com'), 'partner');
    assert.equal(pick('eu.adatum.com'), 'eu-cheap');
    assert.equal(pick('fabrikam.com'), 'internet');
    assert.equal(
      chooseSendConnector(generation.sendConnectors.slice(1), 'fabrikam.com'),
      undefined,
    );
  });
});
