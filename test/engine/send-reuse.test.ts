// Connection reuse per next hop across dispatch rounds (SPEC §4.6): a session kept open after its
// batch carries the next round's messages to the same hop, and is never reused under another
// generation (a new certificate or new anchors must not ride an old verified session).
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SMTPServer } from 'smtp-server';
import { buildGeneration, type Generation } from '../../src/engine/generation.js';
import { memoryLog } from '../../src/engine/log.js';
import type { IncomingMessage } from '../../src/engine/message-sink.js';
import { Dispatcher } from '../../src/engine/queue/dispatcher.js';
import type { OutboundMessage } from '../../src/engine/queue/outcome.js';
import { MessageQueue } from '../../src/engine/queue/queue.js';
import { createRemoteDelivery } from '../../src/engine/send/deliver.js';
import { createLocalDelivery } from '../../src/engine/delivery/maildir.js';
import { eventually } from '../support/eventually.js';
import { lab } from '../support/lab.js';
import { runtimeConfig, trustAnchor } from '../support/runtime-config.js';
import { startSmtpPeer, type SmtpPeer } from '../support/smtp-peer.js';
import { tempDir } from '../support/tmp.js';
import { requireDomainName } from '../../src/domain-name.js';

const TIMEOUTS = { connectMs: 5_000, greetingMs: 5_000, socketMs: 10_000 };
let sequence = 0;

function message(text: string): OutboundMessage {
  const body = Buffer.from(`From: alice@treyresearch.net\r\nSubject: ${text}\r\n\r\n${text}\r\n`);
  sequence += 1;
  return {
    id: `REUSE${sequence}.1`,
    from: 'alice@treyresearch.net',
    recipients: ['bob@adatum.com'],
    size: body.length,
    receivedAt: new Date(),
    body: () => Promise.resolve(body),
  };
}

function incoming(text: string): IncomingMessage {
  return {
    from: 'alice@treyresearch.net',
    recipients: ['bob@adatum.com'],
    body: Buffer.from(`Subject: ${text}\r\n\r\n${text}\r\n`),
    receivedAt: new Date(),
    connector: 'internal',
    remoteAddress: '127.0.0.1',
  };
}

/** treyresearch.net sending adatum.com to the peer; `strangerTrusted` adds a second anchor. */
function generationFor(
  peer: Pick<SmtpPeer, 'host' | 'port'>,
  number: number,
  strangerTrusted = false,
): Generation {
  const { adatumRoot, strangerRoot } = lab();
  return buildGeneration(
    runtimeConfig({
      organization: {
        resolver: { servers: [], static: { 'adatum.com': [{ host: peer.host, port: peer.port }] } },
      },
      trustAnchors: [
        trustAnchor('adatum-root', adatumRoot),
        trustAnchor('stranger-root', strangerRoot),
      ],
      adatum: {
        trustAnchors: strangerTrusted ? ['adatum-root', 'stranger-root'] : ['adatum-root'],
      },
    }),
    number,
  );
}

/** Whether the promise settles within `ms` (the peer's close() waits for every session to end). */
async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  const result = await Promise.race([promise.then(() => true as const), late]);
  clearTimeout(timer);
  return result;
}

describe('connection reuse across rounds', () => {
  const peers: SmtpPeer[] = [];
  const closers: (() => Promise<void>)[] = [];
  async function partner(): Promise<SmtpPeer> {
    const started = await startSmtpPeer({ certificate: lab().adatumMail });
    peers.push(started);
    return started;
  }

  before(() => {
    lab(); // RSA keys take a moment: make them before the first timed session
  });
  after(async () => {
    for (const close of closers.reverse()) await close();
    await Promise.all(peers.map((p) => p.close()));
  });

  it('sends two batches to the same hop over one connection, and QUITs it on close()', async () => {
    const peer = await partner();
    const log = memoryLog();
    const deliver = createRemoteDelivery({ log, timeouts: TIMEOUTS, connectionCacheMs: 10_000 });
    closers.push(() => deliver.close?.() ?? Promise.resolve());
    const generation = generationFor(peer, 1);
    const signal = new AbortController().signal;

    const [first] = await deliver(
      requireDomainName('adatum.com'),
      [message('one')],
      generation,
      signal,
    );
    const [second] = await deliver(
      requireDomainName('adatum.com'),
      [message('two')],
      generation,
      signal,
    );
    assert.deepEqual(first?.delivered, ['bob@adatum.com']);
    assert.deepEqual(second?.delivered, ['bob@adatum.com']);
    assert.equal(peer.connections, 1);
    assert.equal(new Set(peer.messages.map((m) => m.sessionId)).size, 1);
    assert.equal(
      log.entries.filter((e) => e.event === 'send.partner-verified').length,
      1,
      'the partner was verified once, on the connection that carried both',
    );

    await deliver.close?.();
    peers.splice(peers.indexOf(peer), 1);
    assert.equal(
      await settlesWithin(peer.close(), 3_000),
      true,
      'the peer closes at once: no session of ours is left open',
    );
  });

  it('connects again after a generation that changes the partner’s trust', async () => {
    const peer = await partner();
    const deliver = createRemoteDelivery({
      log: memoryLog(),
      timeouts: TIMEOUTS,
      connectionCacheMs: 10_000,
    });
    closers.push(() => deliver.close?.() ?? Promise.resolve());
    const signal = new AbortController().signal;

    await deliver(
      requireDomainName('adatum.com'),
      [message('before')],
      generationFor(peer, 1),
      signal,
    );
    const [outcome] = await deliver(
      requireDomainName('adatum.com'),
      [message('after')],
      generationFor(peer, 2, true),
      signal,
    );
    assert.deepEqual(outcome?.delivered, ['bob@adatum.com']);
    assert.equal(peer.connections, 2);
    assert.equal(new Set(peer.messages.map((m) => m.sessionId)).size, 2);
  });

  it('closes a connection idle longer than the window; the next batch connects again', async () => {
    const peer = await partner();
    const deliver = createRemoteDelivery({
      log: memoryLog(),
      timeouts: TIMEOUTS,
      connectionCacheMs: 200,
    });
    closers.push(() => deliver.close?.() ?? Promise.resolve());
    const generation = generationFor(peer, 1);
    const signal = new AbortController().signal;

    await deliver(requireDomainName('adatum.com'), [message('one')], generation, signal);
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    await deliver(requireDomainName('adatum.com'), [message('two')], generation, signal);
    assert.equal(peer.connections, 2);
    assert.equal(peer.messages.length, 2);
  });

  it('the dispatcher ends a kept connection as soon as it sees a new generation', async () => {
    const closed: string[] = [];
    const server = new SMTPServer({
      key: lab().adatumMail.keyPem,
      cert: lab().adatumMail.certPem,
      secure: false,
      authOptional: true,
      disabledCommands: ['AUTH'],
      logger: false,
      onData(stream, _session, callback) {
        stream.resume();
        stream.on('end', () => callback(null, 'queued'));
      },
      onClose(session) {
        closed.push(session.id);
      },
    });
    server.on('error', () => undefined);
    const port = await new Promise<number>((resolve) =>
      server.listen(0, '127.0.0.1', () => resolve((server.server.address() as AddressInfo).port)),
    );
    closers.push(() => new Promise((resolve) => server.close(() => resolve())));
    const hop = { host: '127.0.0.1', port };
    const dir = await tempDir('domsec-reuse-');
    closers.push(() => dir.remove());
    const log = memoryLog();
    const queue = await MessageQueue.open(join(dir.path, 'queue'), log);
    let generation = generationFor(hop, 1);
    const dispatcher = new Dispatcher({
      queue,
      generation: () => generation,
      deliverLocal: createLocalDelivery({ stateDir: dir.path }),
      deliverRemote: createRemoteDelivery({ log, timeouts: TIMEOUTS, connectionCacheMs: 60_000 }),
      log,
    });
    closers.push(async () => {
      await dispatcher.close();
      await queue.close();
    });
    dispatcher.start();
    await queue.accept(incoming('one'));
    await eventually('the delivery', () => queue.messages().length === 0);
    assert.deepEqual(closed, [], 'kept open for the next round');

    generation = generationFor(hop, 2, true); // an apply
    dispatcher.retry(); // what the engine does after an apply that changes a queue's partner
    await eventually('the kept session to end', () => closed.length === 1);
  });

  it('connects again, without a hop failure, when the hop closed the kept connection meanwhile', async () => {
    // A partner whose idle timeout (300 ms) is shorter than our window: it says 421 and hangs up.
    const sessions = new Set<string>();
    const received: string[] = [];
    const server = new SMTPServer({
      key: lab().adatumMail.keyPem,
      cert: lab().adatumMail.certPem,
      secure: false,
      authOptional: true,
      disabledCommands: ['AUTH'],
      socketTimeout: 300,
      logger: false,
      onConnect(session, callback) {
        sessions.add(session.id);
        callback();
      },
      onData(stream, session, callback) {
        stream.resume();
        stream.on('end', () => {
          received.push(session.id);
          callback(null, 'queued');
        });
      },
    });
    server.on('error', () => undefined);
    const port = await new Promise<number>((resolve) =>
      server.listen(0, '127.0.0.1', () => resolve((server.server.address() as AddressInfo).port)),
    );
    closers.push(() => new Promise((resolve) => server.close(() => resolve())));
    const log = memoryLog();
    const deliver = createRemoteDelivery({ log, timeouts: TIMEOUTS, connectionCacheMs: 10_000 });
    closers.push(() => deliver.close?.() ?? Promise.resolve());
    const generation = generationFor({ host: '127.0.0.1', port }, 1);
    const signal = new AbortController().signal;

    await deliver(requireDomainName('adatum.com'), [message('one')], generation, signal);
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const [second] = await deliver(
      requireDomainName('adatum.com'),
      [message('two')],
      generation,
      signal,
    );
    assert.deepEqual(second?.delivered, ['bob@adatum.com']);
    assert.equal(sessions.size, 2);
    assert.equal(received.length, 2);
    assert.deepEqual(
      log.entries.filter((e) => e.event === 'send.hop-failed'),
      [],
      'a connection the hop closed while idle is no failure of the hop',
    );
  });

  it('keeps nothing open without a connection cache (connectionCacheMs 0)', async () => {
    const peer = await partner();
    const deliver = createRemoteDelivery({ log: memoryLog(), timeouts: TIMEOUTS });
    const generation = generationFor(peer, 1);
    const signal = new AbortController().signal;
    await deliver(requireDomainName('adatum.com'), [message('one')], generation, signal);
    await deliver(requireDomainName('adatum.com'), [message('two')], generation, signal);
    assert.equal(peer.connections, 2);
    peers.splice(peers.indexOf(peer), 1);
    assert.equal(await settlesWithin(peer.close(), 3_000), true);
  });

  it('the dispatcher sends messages queued one after the other over one connection, a new one after an apply, and ends it on close()', async () => {
    const peer = await partner();
    const dir = await tempDir('domsec-reuse-');
    closers.push(() => dir.remove());
    const log = memoryLog();
    const queue = await MessageQueue.open(join(dir.path, 'queue'), log);
    let generation = generationFor(peer, 1);
    const dispatcher = new Dispatcher({
      queue,
      generation: () => generation,
      deliverLocal: createLocalDelivery({ stateDir: dir.path }),
      deliverRemote: createRemoteDelivery({ log, timeouts: TIMEOUTS, connectionCacheMs: 10_000 }),
      log,
    });
    let open = true;
    closers.push(async () => {
      if (open) await dispatcher.close();
      await queue.close();
    });
    dispatcher.start();

    await queue.accept(incoming('one'));
    await eventually('the first message', () => peer.messages.length === 1);
    await eventually('the first round to settle', () => queue.messages().length === 0);
    await queue.accept(incoming('two'));
    await eventually('the second message', () => peer.messages.length === 2);
    assert.equal(peer.connections, 1, 'the second round reused the first round’s connection');

    await eventually('the second round to settle', () => queue.messages().length === 0);
    generation = generationFor(peer, 2, true); // what an apply of new trust anchors makes
    await queue.accept(incoming('three'));
    await eventually('the third message', () => peer.messages.length === 3);
    assert.equal(peer.connections, 2, 'the new generation did not ride the old session');
    const sessions = peer.messages.map((m) => m.sessionId);
    assert.equal(sessions[0], sessions[1]);
    assert.notEqual(sessions[1], sessions[2]);

    await eventually('the third round to settle', () => queue.messages().length === 0);
    await dispatcher.close();
    open = false;
    peers.splice(peers.indexOf(peer), 1);
    assert.equal(await settlesWithin(peer.close(), 3_000), true, 'close() ended the kept session');
  });
});
