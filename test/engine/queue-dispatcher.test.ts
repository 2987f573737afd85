// The dispatcher over a real queue: nothing before a configuration, a kick on accept, one batch
// per next-hop domain, retry now; then the whole path to a real partner server and a Maildir.
import { requireDomainName } from '../../src/domain-name.js';
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, afterEach, beforeEach, describe, it } from 'node:test';
import { buildGeneration, type Generation } from '../../src/engine/generation.js';
import { memoryLog } from '../../src/engine/log.js';
import type { IncomingMessage } from '../../src/engine/message-sink.js';
import { createLocalDelivery } from '../../src/engine/delivery/maildir.js';
import {
  Dispatcher,
  type DeliverLocal,
  type DeliverRemote,
} from '../../src/engine/queue/dispatcher.js';
import type { DeliveryOutcome, OutboundMessage } from '../../src/engine/queue/outcome.js';
import { MessageQueue } from '../../src/engine/queue/queue.js';
import { createRemoteDelivery } from '../../src/engine/send/deliver.js';
import { eventually } from '../support/eventually.js';
import { lab } from '../support/lab.js';
import { runtimeConfig } from '../support/runtime-config.js';
import { startSmtpPeer, type SmtpPeer } from '../support/smtp-peer.js';
import { tempDir } from '../support/tmp.js';
import { reply } from '../support/replies.js';

function incoming(recipients: string[]): IncomingMessage {
  return {
    from: 'alice@treyresearch.net',
    recipients,
    body: Buffer.from('Subject: hi\r\n\r\nhello\r\n'),
    receivedAt: new Date(),
    connector: 'internal',
    remoteAddress: '127.0.0.1',
  };
}

const delivered = (m: OutboundMessage): DeliveryOutcome => ({
  delivered: [...m.recipients],
  failures: [],
});

describe('Dispatcher', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let queue: MessageQueue;
  let dispatcher: Dispatcher | undefined;
  let remoteCalls: { domain: string; ids: string[] }[];
  let localCalls: string[];
  let remoteOutcome: (m: OutboundMessage) => DeliveryOutcome;
  const generation = buildGeneration(runtimeConfig(), 1); // accepts treyresearch.net
  const deliverRemote: DeliverRemote = (domain, messages) => {
    remoteCalls.push({ domain, ids: messages.map((m) => m.id) });
    return Promise.resolve(messages.map(remoteOutcome));
  };
  const deliverLocal: DeliverLocal = (message) => {
    localCalls.push(message.id);
    return Promise.resolve(delivered(message));
  };
  const start = (current: () => Generation | undefined = () => generation) => {
    dispatcher = new Dispatcher({
      queue,
      generation: current,
      deliverLocal,
      deliverRemote,
      log: memoryLog(),
    });
    dispatcher.start();
    return dispatcher;
  };

  beforeEach(async () => {
    dir = await tempDir('domsec-dispatch-');
    queue = await MessageQueue.open(join(dir.path, 'queue'), memoryLog());
    remoteCalls = [];
    localCalls = [];
    remoteOutcome = delivered;
  });
  afterEach(async () => {
    await dispatcher?.close();
    dispatcher = undefined;
    await queue.close();
    await dir.remove();
  });

  it('dispatches nothing before a configuration is applied, and everything once one is', async () => {
    const applied: { generation?: Generation } = {};
    const running = start(() => applied.generation);
    await queue.accept(incoming(['bob@adatum.com']));
    await running.dispatchDue();
    assert.deepEqual(remoteCalls, []);
    assert.equal(queue.summaries()[0]?.status, 'ready');
    applied.generation = generation;
    running.kick();
    await eventually('the delivery', () => remoteCalls.length === 1);
  });

  it('dispatches a message right after accept, without a polling delay', async () => {
    start();
    const began = Date.now();
    await queue.accept(incoming(['bob@adatum.com']));
    await eventually('the delivery', () => queue.messages().length === 0, {
      timeoutMs: 1_000,
      intervalMs: 10,
    });
    assert.ok(Date.now() - began < 500);
    assert.equal(remoteCalls.length, 1);
  });

  it('hands all due messages of a next-hop domain over in one batch; local domains go to local delivery', async () => {
    const ids = [
      ...(await queue.accept(incoming(['a@adatum.com']))),
      ...(await queue.accept(incoming(['b@adatum.com', 'bob@treyresearch.net']))),
      ...(await queue.accept(incoming(['c@ADATUM.com']))),
    ];
    start();
    await eventually('an empty queue', () => queue.messages().length === 0);
    assert.deepEqual(remoteCalls, [{ domain: 'adatum.com', ids: [ids[0], ids[1], ids[3]] }]);
    assert.deepEqual(localCalls, [ids[2]]);
  });

  it('retry(domain) dispatches a waiting entry at once and counts it', async () => {
    remoteOutcome = (m) => ({
      delivered: [],
      failures: m.recipients.map((recipient) => ({
        recipient,
        reply: reply('451 4.4.0 later'),
        permanent: false,
      })),
    });
    const running = start();
    await queue.accept(incoming(['bob@adatum.com']));
    await eventually('the first attempt', () =>
      queue.summaries()[0]?.status === 'retry' ? true : undefined,
    );
    assert.equal(remoteCalls.length, 1);
    assert.equal(running.retry(requireDomainName('fabrikam.com')), 0);
    remoteOutcome = delivered;
    assert.equal(running.retry(requireDomainName('adatum.com')), 1);
    await eventually('the retry', () => queue.messages().length === 0, 1_000);
    assert.equal(remoteCalls.length, 2);
  });

  it('writes the local copies of a batch side by side, up to localConcurrency at once', async () => {
    for (const [concurrency, expected] of [
      [4, 4],
      [1, 1],
    ] as const) {
      let inFlight = 0;
      let most = 0;
      const settledAt: number[] = [];
      const slowLocal: DeliverLocal = async (message) => {
        inFlight += 1;
        most = Math.max(most, inFlight);
        await new Promise((resolve) => setTimeout(resolve, 20));
        inFlight -= 1;
        settledAt.push(Date.now());
        return delivered(message);
      };
      const running = new Dispatcher({
        queue,
        generation: () => generation,
        deliverLocal: slowLocal,
        deliverRemote,
        localConcurrency: () => concurrency,
        log: memoryLog(),
      });
      running.start();
      // Twelve accepts in a burst: the copies of each round's batch are written side by side.
      await Promise.all(
        Array.from({ length: 12 }, () => queue.accept(incoming(['bob@treyresearch.net']))),
      );
      await eventually('twelve deliveries', () => settledAt.length === 12);
      await running.close();
      assert.equal(most, expected, `at most ${concurrency} at once, and that many were`);
      settledAt.length = 0;
    }
  });

  it('close() aborts deliveries in flight and waits for their outcome', async () => {
    let aborted = false;
    dispatcher = new Dispatcher({
      queue,
      generation: () => generation,
      deliverLocal,
      deliverRemote: (_domain, messages, _generation, signal) =>
        new Promise((resolve) => {
          signal.addEventListener('abort', () => {
            aborted = true;
            resolve(
              messages.map((m) => ({
                delivered: [],
                failures: m.recipients.map((recipient) => ({
                  recipient,
                  reply: reply('421 4.4.2 aborted'),
                  permanent: false,
                })),
              })),
            );
          });
        }),
      log: memoryLog(),
    });
    dispatcher.start();
    await queue.accept(incoming(['bob@adatum.com']));
    await eventually('the attempt to start', () =>
      queue.summaries()[0]?.status === 'active' ? true : undefined,
    );
    await dispatcher.close();
    assert.equal(aborted, true);
    assert.equal(queue.messages()[0]?.lastError, '421 4.4.2 aborted');
  });
});

describe('queue to partner and mailbox', () => {
  const peers: SmtpPeer[] = [];
  let dir: Awaited<ReturnType<typeof tempDir>>;
  after(async () => {
    await Promise.all(peers.map((p) => p.close()));
    await dir?.remove();
  });

  it('delivers to a trusted partner, keeps mail for an untrusted one queued with Exchange’s error, and fills Maildirs', async () => {
    dir = await tempDir('domsec-pipeline-');
    const trusted = await startSmtpPeer({ certificate: lab().adatumMail });
    const impostor = await startSmtpPeer({ certificate: lab().strangerAdatum });
    peers.push(trusted, impostor);
    const config = (peer: SmtpPeer) =>
      runtimeConfig({
        organization: {
          resolver: {
            servers: [],
            static: { 'adatum.com': [{ host: peer.host, port: peer.port }] },
          },
        },
      });
    let generation = buildGeneration(config(impostor), 1);
    const log = memoryLog();
    const queue = await MessageQueue.open(join(dir.path, 'state', 'queue'), log);
    const dispatcher = new Dispatcher({
      queue,
      generation: () => generation,
      deliverLocal: createLocalDelivery({ stateDir: join(dir.path, 'state') }),
      deliverRemote: createRemoteDelivery({
        log,
        timeouts: { connectMs: 3_000, greetingMs: 3_000, socketMs: 5_000 },
      }),
      log,
    });
    try {
      dispatcher.start();
      await queue.accept(incoming(['bob@adatum.com', 'carol@treyresearch.net']));
      const summary = await eventually('the first attempt', () =>
        queue.summaries().find((s) => s.lastError !== null),
      );
      assert.equal(summary.nextHopDomain, 'adatum.com');
      assert.equal(summary.status, 'retry');
      assert.match(
        summary.lastError ?? '',
        /^451 4\.4\.0 Primary target IP address responded with: "454 4\.7\.5 Certificate validation failure/,
      );
      assert.deepEqual(impostor.messages, []);
      await eventually('carol', async () =>
        (
          await readdir(join(dir.path, 'state', 'mail', 'treyresearch.net', 'carol', 'new')).catch(
            () => [],
          )
        ).length === 1
          ? true
          : undefined,
      );

      generation = buildGeneration(config(trusted), 2);
      assert.equal(dispatcher.retry(requireDomainName('adatum.com')), 1);
      await eventually('an empty queue', () => queue.messages().length === 0);
      assert.deepEqual(
        trusted.messages.map((m) => m.recipients),
        [['bob@adatum.com']],
      );
    } finally {
      await dispatcher.close();
      await queue.close();
    }
  });
});
