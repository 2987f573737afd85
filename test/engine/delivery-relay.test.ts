// Relay delivery of accepted-domain mail to an internal mailbox server, over real SMTP and LMTP
// servers on loopback: delivered with the marking headers, 4xx kept queued and retried, 5xx
// bounced to the sender, LMTP's per-recipient replies after the data kept apart.
import { requireDomainName } from '../../src/domain-name.js';
import assert from 'node:assert/strict';
import { createServer, type Socket } from 'node:net';
import { after, describe, it } from 'node:test';
import { SMTPServer } from 'smtp-server';
import { EngineDelivery } from '../../src/engine/delivery/engine-delivery.js';
import { relayTarget } from '../../src/engine/delivery/relay.js';
import { buildGeneration, type Generation } from '../../src/engine/generation.js';
import { prepareHeaders } from '../../src/engine/headers.js';
import { memoryLog } from '../../src/engine/log.js';
import type { RelayDelivery } from '../../src/model.js';
import { eventually } from '../support/eventually.js';
import { freePort } from '../support/ports.js';
import { runtimeConfig } from '../support/runtime-config.js';
import { startSmtpPeer, type PeerReply } from '../support/smtp-peer.js';
import { tempDir } from '../support/tmp.js';

/** A message as the receive side queues it: marked as domain-secured mail from adatum.com. */
function markedMessage(): Buffer {
  return prepareHeaders(Buffer.from('Subject: quarterly report\r\n\r\nnumbers\r\n'), {
    hostname: 'mail.treyresearch.net',
    tls: true,
    domainSecured: {
      partner: 'adatum.com',
      certificateSubject: 'CN=mail.adatum.com',
      certificateFingerprint: 'AA:BB',
    },
  });
}

interface LmtpMessage {
  from: string;
  recipients: string[];
  body: Buffer;
}

/** A real LMTP server (smtp-server, lmtp: true) that answers each recipient after the data. */
async function startLmtpServer(
  answer: (recipient: string) => PeerReply | undefined,
): Promise<{ port: number; messages: LmtpMessage[]; close: () => Promise<void> }> {
  const messages: LmtpMessage[] = [];
  const server = new SMTPServer({
    lmtp: true,
    authOptional: true,
    disabledCommands: ['AUTH', 'STARTTLS'],
    logger: false,
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('end', () => {
        const recipients = session.envelope.rcptTo.map((r) => r.address);
        messages.push({
          from: session.envelope.mailFrom === false ? '' : session.envelope.mailFrom.address,
          recipients,
          body: Buffer.concat(chunks),
        });
        const replies = recipients.map((recipient) => {
          const reply = answer(recipient);
          return reply === undefined
            ? 'delivered'
            : Object.assign(new Error(reply.message), { responseCode: reply.code });
        });
        // smtp-server's LMTP form: one entry per recipient, an Error refuses that one.
        callback(null, replies as unknown as string);
      });
    },
  });
  server.on('error', () => undefined);
  const port = await new Promise<number>((resolve, reject) => {
    server.server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.server.address();
      resolve(typeof address === 'object' && address !== null ? address.port : 0);
    });
  });
  return { port, messages, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

/**
 * A scripted SMTP server on a raw socket: it takes messages like any server, except that on its
 * first connection it hangs up when a second MAIL FROM comes (an idle session it ended as we spoke).
 */
async function startHangingUpServer(): Promise<{
  port: number;
  connections: number;
  delivered: string[];
  close: () => Promise<void>;
}> {
  const state = { connections: 0, delivered: [] as string[] };
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    const connection = ++state.connections;
    let transactions = 0;
    let inData = false;
    let recipients: string[] = [];
    let buffer = '';
    socket.write('220 mailbox.treyresearch.net ESMTP\r\n');
    socket.on('data', (chunk: Buffer) => {
      buffer += chunk.toString('latin1');
      for (let end = buffer.indexOf('\r\n'); end !== -1; end = buffer.indexOf('\r\n')) {
        const line = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        if (inData) {
          if (line !== '.') continue;
          inData = false;
          state.delivered.push(...recipients);
          socket.write('250 2.0.0 Ok: delivered\r\n');
          continue;
        }
        const verb = line.slice(0, 4).toUpperCase();
        if (verb === 'MAIL') {
          transactions += 1;
          if (connection === 1 && transactions === 2) {
            socket.destroy();
            return;
          }
          recipients = [];
        }
        if (verb === 'RCPT') recipients.push(/<(.*)>/.exec(line)?.[1] ?? '');
        if (verb === 'DATA') inData = true;
        socket.write(
          verb === 'EHLO'
            ? '250-mailbox.treyresearch.net\r\n250 8BITMIME\r\n'
            : verb === 'DATA'
              ? '354 End data with <CR><LF>.<CR><LF>\r\n'
              : verb === 'QUIT'
                ? '221 2.0.0 Bye\r\n'
                : '250 2.0.0 Ok\r\n',
        );
        if (verb === 'QUIT') socket.end();
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  return Object.assign(state, {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  });
}

describe('relay delivery to an internal mailbox server', () => {
  const cleanup: (() => Promise<void>)[] = [];
  after(async () => {
    for (const step of cleanup.reverse()) await step();
  });

  /** An EngineDelivery whose Organization relays accepted domains as `relay` says. */
  async function relayingTo(relay: RelayDelivery, queue = queuePolicy) {
    const state = await tempDir('domsec-relay-');
    let current: Generation = buildGeneration(
      runtimeConfig({ organization: { delivery: { relay }, queue } }),
      1,
    );
    const delivery = await EngineDelivery.open({
      stateDir: state.path,
      log: memoryLog(),
      generation: () => current,
      timeouts: { connectMs: 3_000, greetingMs: 3_000, socketMs: 5_000 },
    });
    cleanup.push(state.remove, () => delivery.close());
    delivery.afterApply(undefined, current);
    return {
      delivery,
      accept: (from: string, recipients: string[], body = markedMessage()) =>
        delivery.queue.accept({
          from,
          recipients,
          body,
          receivedAt: new Date(),
          connector: 'from-partners',
          remoteAddress: '127.0.0.1',
        }),
      reapply: (next: RelayDelivery) => {
        const previous = current;
        current = buildGeneration(
          runtimeConfig({ organization: { delivery: { relay: next }, queue } }),
          previous.number + 1,
        );
        delivery.afterApply(previous, current);
      },
    };
  }

  const queuePolicy = { retry: ['1h'], expireAfter: '2d', delayNotice: '4h' };

  it('relays over SMTP with the domain-secured marking and empties the queue', async () => {
    const server = await startSmtpPeer({ name: 'mailbox.treyresearch.net' });
    cleanup.push(server.close);
    const { delivery, accept } = await relayingTo({
      host: `127.0.0.1:${server.port}`,
      protocol: 'smtp',
      tls: 'opportunistic',
    });
    await accept('ceo@adatum.com', ['kim@treyresearch.net', 'lee@treyresearch.net']);
    await eventually('the relay to take the message', () => server.messages.length === 1);
    await eventually('the queue to empty', () => delivery.queue.messages().length === 0);
    const [message] = server.messages;
    assert.equal(message?.from, 'ceo@adatum.com');
    assert.deepEqual(message?.recipients, ['kim@treyresearch.net', 'lee@treyresearch.net']);
    assert.equal(message?.secure, true, 'opportunistic TLS used the STARTTLS the server offered');
    const text = message?.body.toString('latin1') ?? '';
    assert.match(text, /^X-Domsec-AuthAs: Partner\r\n/m);
    assert.match(text, /^X-Domsec-Partner: adatum\.com\r\n/m);
    assert.match(text, /x-domsec=pass \(mutual TLS\)/);
  });

  it('keeps a message the relay answers 4xx queued, and delivers it on a retry', async () => {
    let refusing = true;
    const server = await startSmtpPeer({
      starttls: false,
      rcptTo: () =>
        refusing ? { code: 451, message: '4.3.0 Mailbox store busy, try later' } : undefined,
    });
    cleanup.push(server.close);
    const { delivery, accept } = await relayingTo({
      host: `127.0.0.1:${server.port}`,
      protocol: 'smtp',
      tls: 'none',
    });
    await accept('ceo@adatum.com', ['kim@treyresearch.net']);
    await eventually(
      'the first attempt',
      () => (delivery.queue.messages()[0]?.attempts ?? 0) === 1,
    );
    const [queued] = delivery.queue.messages();
    assert.equal(queued?.lastError, '451 4.3.0 Mailbox store busy, try later');
    assert.deepEqual(queued?.recipients, ['kim@treyresearch.net']);
    assert.equal(server.messages.length, 0);

    refusing = false;
    assert.equal(delivery.retry(requireDomainName('treyresearch.net')), 1);
    await eventually('the retry to deliver', () => server.messages.length === 1);
    await eventually('the queue to empty', () => delivery.queue.messages().length === 0);
  });

  it('bounces a recipient the relay refuses with 5xx: a non-delivery report goes to the sender', async () => {
    const server = await startSmtpPeer({
      starttls: false,
      rcptTo: (address) =>
        address.startsWith('gone@') ? { code: 550, message: '5.1.1 User unknown' } : undefined,
    });
    cleanup.push(server.close);
    const { delivery, accept } = await relayingTo({
      host: `127.0.0.1:${server.port}`,
      protocol: 'smtp',
      tls: 'none',
    });
    // A local sender: the report comes back through the same relay.
    await accept('kim@treyresearch.net', ['gone@treyresearch.net', 'lee@treyresearch.net']);
    await eventually('the message and the report', () => server.messages.length === 2);
    await eventually('the queue to empty', () => delivery.queue.messages().length === 0);
    const [message, report] = server.messages;
    assert.deepEqual(message?.recipients, ['lee@treyresearch.net']);
    assert.equal(report?.from, '', 'a report has the null sender');
    assert.deepEqual(report?.recipients, ['kim@treyresearch.net']);
    const text = report?.body.toString('latin1') ?? '';
    assert.match(text, /Final-Recipient: rfc822;\s*gone@treyresearch\.net/i);
    assert.match(text, /550 5\.1\.1 User unknown/);
  });

  it('keeps every recipient queued when the relay cannot be reached', async () => {
    const port = await freePort();
    const { delivery, accept } = await relayingTo({
      host: `127.0.0.1:${port}`,
      protocol: 'smtp',
      tls: 'none',
    });
    await accept('ceo@adatum.com', ['kim@treyresearch.net']);
    await eventually(
      'the first attempt',
      () => (delivery.queue.messages()[0]?.attempts ?? 0) === 1,
    );
    assert.match(delivery.queue.messages()[0]?.lastError ?? '', /^421 4\.2\.1 Unable to connect/);
  });

  it('keeps the message queued when tls is required and the relay offers no STARTTLS', async () => {
    const server = await startSmtpPeer({ starttls: false });
    cleanup.push(server.close);
    const { delivery, accept } = await relayingTo({
      host: `127.0.0.1:${server.port}`,
      protocol: 'smtp',
      tls: 'required',
    });
    await accept('ceo@adatum.com', ['kim@treyresearch.net']);
    await eventually(
      'the first attempt',
      () => (delivery.queue.messages()[0]?.attempts ?? 0) === 1,
    );
    assert.equal(
      delivery.queue.messages()[0]?.lastError,
      '451 4.7.3 STARTTLS is required to send mail',
    );
    assert.equal(server.messages.length, 0, 'nothing went in plaintext');
  });

  it('keeps LMTP’s per-recipient replies apart: delivered, bounced, kept queued', async () => {
    const server = await startLmtpServer((recipient) => {
      if (recipient.startsWith('full@')) return { code: 552, message: '5.2.2 Mailbox full' };
      if (recipient.startsWith('locked@')) return { code: 452, message: '4.2.1 Mailbox locked' };
      return undefined;
    });
    cleanup.push(server.close);
    const { delivery, accept } = await relayingTo({
      host: `127.0.0.1:${server.port}`,
      protocol: 'lmtp',
      tls: 'none',
    });
    await accept('kim@treyresearch.net', [
      'lee@treyresearch.net',
      'full@treyresearch.net',
      'locked@treyresearch.net',
    ]);
    await eventually('the message and the report', () => server.messages.length === 2);
    await eventually('the report to be delivered', () =>
      delivery.queue.messages().every((m) => m.from !== ''),
    );
    const [message, report] = server.messages;
    assert.deepEqual(message?.recipients, [
      'lee@treyresearch.net',
      'full@treyresearch.net',
      'locked@treyresearch.net',
    ]);
    assert.match(report?.body.toString('latin1') ?? '', /552 5\.2\.2 Mailbox full/);
    assert.doesNotMatch(report?.body.toString('latin1') ?? '', /locked@/);
    const queued = delivery.queue.messages();
    assert.equal(queued.length, 1);
    assert.deepEqual(queued[0]?.recipients, ['locked@treyresearch.net']);
    assert.equal(queued[0]?.lastError, '452 4.2.1 Mailbox locked');
  });

  it('reads the relay at each attempt: an apply redirects mail still queued', async () => {
    const broken = await startSmtpPeer({
      starttls: false,
      rcptTo: () => ({ code: 421, message: '4.3.2 Service not available' }),
    });
    const fixed = await startLmtpServer(() => undefined);
    cleanup.push(broken.close, fixed.close);
    const { delivery, accept, reapply } = await relayingTo({
      host: `127.0.0.1:${broken.port}`,
      protocol: 'smtp',
      tls: 'none',
    });
    await accept('ceo@adatum.com', ['kim@treyresearch.net']);
    await eventually(
      'the first attempt',
      () => (delivery.queue.messages()[0]?.attempts ?? 0) === 1,
    );
    reapply({ host: `127.0.0.1:${fixed.port}`, protocol: 'lmtp', tls: 'none' });
    await eventually('the new relay to take it', () => fixed.messages.length === 1);
    await eventually('the queue to empty', () => delivery.queue.messages().length === 0);
  });

  it('sends one delay notice after queue.delayNotice and keeps the message queued', async () => {
    const server = await startSmtpPeer({
      starttls: false,
      rcptTo: (address) =>
        address.startsWith('slow@') ? { code: 451, message: '4.2.1 Mailbox busy' } : undefined,
    });
    cleanup.push(server.close);
    const { delivery, accept } = await relayingTo(
      { host: `127.0.0.1:${server.port}`, protocol: 'smtp', tls: 'none' },
      { retry: ['150ms'], expireAfter: '2d', delayNotice: '400ms' },
    );
    // A local sender: the notice comes back through the same relay.
    await accept('kim@treyresearch.net', ['slow@treyresearch.net']);
    const original = () => delivery.queue.messages().find((m) => m.from === 'kim@treyresearch.net');
    // Each deferral rewrites the entry durably: under a busy disk (the suite runs the crash tests
    // beside this one) six attempts can take longer than the default bound.
    await eventually(
      'several attempts past the notice time',
      () => (original()?.attempts ?? 0) >= 6,
      30_000,
    );
    await eventually('the notice to be delivered', () =>
      delivery.queue.messages().every((m) => m.from !== ''),
    );
    const notices = server.messages.filter((m) => m.from === '');
    assert.equal(notices.length, 1, 'one notice, however many attempts follow');
    assert.deepEqual(notices[0]?.recipients, ['kim@treyresearch.net']);
    const text = notices[0]?.body.toString('latin1') ?? '';
    assert.match(text, /^Subject: Delivery Delayed: quarterly report/m);
    assert.match(text, /^Action: delayed/m);
    assert.match(text, /451 4\.2\.1 Mailbox busy/);
    assert.deepEqual(original()?.recipients, ['slow@treyresearch.net'], 'still queued');
  });

  it('delivers one message after another over one session', async () => {
    const server = await startSmtpPeer({ starttls: false });
    cleanup.push(server.close);
    const { delivery, accept } = await relayingTo({
      host: `127.0.0.1:${server.port}`,
      protocol: 'smtp',
      tls: 'none',
    });
    for (const name of ['kim', 'lee', 'max', 'ann']) {
      await accept('ceo@adatum.com', [`${name}@treyresearch.net`]);
    }
    await eventually('four messages', () => server.messages.length === 4);
    await eventually('the queue to empty', () => delivery.queue.messages().length === 0);
    assert.equal(server.connections, 1, 'the session was kept for the next message');
  });

  it('sends again on a new session when the server ended the one kept open', async () => {
    const server = await startHangingUpServer();
    cleanup.push(server.close);
    const { delivery, accept } = await relayingTo({
      host: `127.0.0.1:${server.port}`,
      protocol: 'smtp',
      tls: 'none',
    });
    await accept('ceo@adatum.com', ['kim@treyresearch.net']);
    await eventually('the first message', () => server.delivered.length === 1);
    await eventually('the queue to empty', () => delivery.queue.messages().length === 0);
    await accept('ceo@adatum.com', ['lee@treyresearch.net']);
    await eventually('the second message', () => server.delivered.length === 2);
    await eventually('the queue to empty again', () => delivery.queue.messages().length === 0);
    assert.deepEqual(server.delivered, ['kim@treyresearch.net', 'lee@treyresearch.net']);
    assert.equal(server.connections, 2);
  });

  it('takes the protocol’s port when the host names none', () => {
    assert.deepEqual(relayTarget({ host: 'mailbox.internal', protocol: 'smtp', tls: 'none' }), {
      host: 'mailbox.internal',
      port: 25,
    });
    assert.deepEqual(relayTarget({ host: 'mailbox.internal', protocol: 'lmtp', tls: 'none' }), {
      host: 'mailbox.internal',
      port: 24,
    });
    assert.deepEqual(relayTarget({ host: '[::1]:2424', protocol: 'lmtp', tls: 'none' }), {
      host: '::1',
      port: 2424,
    });
  });
});
