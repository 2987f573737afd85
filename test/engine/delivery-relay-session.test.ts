// Relay delivery on the send side's client session and connection cache, over real SMTP servers on
// loopback: the relay's TLS settings (required encrypts without judging or presenting a
// certificate, none ignores STARTTLS), idle sessions per relay kept for concurrent accepted
// domains, and closed when the engine closes.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { after, describe, it } from 'node:test';
import { SMTPServer } from 'smtp-server';
import { EngineDelivery } from '../../src/engine/delivery/engine-delivery.js';
import { buildGeneration } from '../../src/engine/generation.js';
import { memoryLog } from '../../src/engine/log.js';
import type { RelayDelivery } from '../../src/model.js';
import { eventually } from '../support/eventually.js';
import { runtimeConfig } from '../support/runtime-config.js';
import { startSmtpPeer } from '../support/smtp-peer.js';
import { tempDir } from '../support/tmp.js';

const ACCEPTED = ['treyresearch.net', 'research.treyresearch.net'];
const QUEUE = { retry: ['1h'], expireAfter: '2d', delayNotice: '4h' };

/**
 * A real SMTP server (no STARTTLS) that counts sessions opened and closed, and holds each reply to
 * DATA until `together` messages are in DATA at once (at most 5 s): deliveries that overlap.
 */
async function startCountingServer(together: number) {
  const state = { opened: 0, closed: 0, messages: [] as string[] };
  let waiting: (() => void)[] = [];
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['AUTH', 'STARTTLS'],
    logger: false,
    onConnect(_session, callback) {
      state.opened += 1;
      callback();
    },
    onClose() {
      state.closed += 1;
    },
    onData(stream, session, callback) {
      stream.resume();
      stream.on('end', () => {
        state.messages.push(...session.envelope.rcptTo.map((r) => r.address));
        const answer = () => callback(null, 'delivered');
        waiting.push(answer);
        if (waiting.length >= together) {
          for (const release of waiting) release();
          waiting = [];
        } else {
          setTimeout(() => {
            if (!waiting.includes(answer)) return;
            waiting = waiting.filter((w) => w !== answer);
            answer();
          }, 5_000).unref();
        }
      });
    },
  });
  server.on('error', () => undefined);
  server.listen(0, '127.0.0.1');
  await once(server.server, 'listening'); // rejects on 'error'
  const { port } = server.server.address() as AddressInfo;
  return Object.assign(state, {
    port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  });
}

describe('relay delivery sessions', () => {
  const cleanup: (() => Promise<void>)[] = [];
  after(async () => {
    for (const step of cleanup.reverse()) await step();
  });

  /** An EngineDelivery relaying every accepted domain to 127.0.0.1:<port> as `tls` says. */
  async function relayingTo(port: number, tls: RelayDelivery['tls']) {
    const state = await tempDir('domsec-relay-session-');
    const relay: RelayDelivery = { host: `127.0.0.1:${port}`, protocol: 'smtp', tls };
    const organization = { acceptedDomains: ACCEPTED, delivery: { relay }, queue: QUEUE };
    const generation = buildGeneration(runtimeConfig({ organization }), 1);
    const timeouts = { connectMs: 3_000, greetingMs: 3_000, socketMs: 10_000 };
    const delivery = await EngineDelivery.open({
      generation: () => generation,
      log: memoryLog(),
      stateDir: state.path,
      timeouts,
    });
    cleanup.push(state.remove, () => delivery.close());
    delivery.afterApply(undefined, generation);
    const body = Buffer.from('Subject: relay\r\n\r\nbody\r\n');
    const envelope = { from: 'ceo@adatum.com', connector: 'from-partners' };
    return {
      /** Resolves once the queue is empty again. */
      emptied: () => eventually('the queue to empty', () => delivery.queue.messages().length === 0),
      close: () => delivery.close(),
      accept: (recipients: string[]) =>
        delivery.queue.accept({
          ...envelope,
          recipients,
          body,
          receivedAt: new Date(),
          remoteAddress: '127.0.0.1',
        }),
    };
  }

  // smtp-server's built-in self-signed certificate, and it asks for a client certificate.
  const tlsCases = [
    {
      name: 'encrypts to a relay with tls required without judging its certificate or presenting ours',
      tls: 'required',
      secure: true,
      clientCertificates: [null],
    },
    {
      name: 'ignores the STARTTLS a relay offers when tls is none',
      tls: 'none',
      secure: false,
      clientCertificates: [],
    },
  ] as const;
  for (const expected of tlsCases) {
    it(expected.name, async () => {
      const server = await startSmtpPeer({ name: 'mailbox.treyresearch.net' });
      cleanup.push(server.close);
      const relaying = await relayingTo(server.port, expected.tls);
      await relaying.accept(['kim@treyresearch.net']);
      await eventually('the relay to take the message', () => server.messages.length === 1);
      await relaying.emptied();
      assert.equal(server.messages[0]?.secure, expected.secure);
      assert.deepEqual(server.clientCertificates, expected.clientCertificates);
    });
  }

  it('keeps one session per accepted domain delivered at once, and closes them when the engine closes', async () => {
    const server = await startCountingServer(2);
    cleanup.push(server.close);
    const { accept, emptied, close } = await relayingTo(server.port, 'none');
    // Two accepted domains are two dispatches at once, so two sessions; both are kept.
    await accept(['kim@treyresearch.net']);
    await accept(['lee@research.treyresearch.net']);
    await eventually('the first two messages', () => server.messages.length === 2);
    await emptied();
    assert.equal(server.opened, 2);
    // The next two go over the two sessions kept (the cache keeps 2 s; this round is at once).
    await accept(['max@treyresearch.net']);
    await accept(['ann@research.treyresearch.net']);
    await eventually('the next two messages', () => server.messages.length === 4);
    await emptied();
    assert.equal(server.opened, 2, 'both kept sessions were reused');
    assert.equal(server.closed, 0);

    await close();
    await eventually('the kept sessions to close', () => server.closed === 2, 1_500);
  });
});
