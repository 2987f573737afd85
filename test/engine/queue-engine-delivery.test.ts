// EngineDelivery, the engine's delivery side: the queue under <state>/queue, nothing sent before
// the first apply, and an apply that changes what a queue depends on retries it at once (SPEC §8).
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { EngineDelivery } from '../../src/engine/delivery/engine-delivery.js';
import { buildGeneration, type Generation } from '../../src/engine/generation.js';
import { memoryLog } from '../../src/engine/log.js';
import { eventually } from '../support/eventually.js';
import { lab } from '../support/lab.js';
import { runtimeConfig } from '../support/runtime-config.js';
import { startSmtpPeer, type SmtpPeer } from '../support/smtp-peer.js';
import { tempDir } from '../support/tmp.js';

describe('EngineDelivery', () => {
  const cleanup: (() => Promise<void>)[] = [];
  after(async () => {
    for (const step of cleanup.reverse()) await step();
  });

  it('starts on the first apply and retries a queue at once when an apply changes its route', async () => {
    const state = await tempDir('domsec-engine-delivery-');
    const impostor = await startSmtpPeer({ certificate: lab().strangerAdatum });
    const partner = await startSmtpPeer({ certificate: lab().adatumMail });
    cleanup.push(state.remove, impostor.close, partner.close);
    const generationFor = (peer: SmtpPeer, number: number) =>
      buildGeneration(
        runtimeConfig({
          organization: {
            resolver: {
              servers: [],
              static: { 'adatum.com': [{ host: peer.host, port: peer.port }] },
            },
          },
        }),
        number,
      );
    let current: Generation | undefined;
    const delivery = await EngineDelivery.open({
      stateDir: state.path,
      log: memoryLog(),
      generation: () => current,
      timeouts: { connectMs: 3_000, greetingMs: 3_000, socketMs: 5_000 },
    });
    cleanup.push(() => delivery.close());

    await delivery.queue.accept({
      from: 'alice@treyresearch.net',
      recipients: ['bob@adatum.com'],
      body: Buffer.from('Subject: hi\r\n\r\nhello\r\n'),
      receivedAt: new Date(),
      connector: 'internal',
      remoteAddress: '127.0.0.1',
    });
    assert.equal(delivery.queue.messages().length, 1);
    assert.equal((await readdir(join(state.path, 'queue', 'journal'))).length, 1);
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(impostor.connections, 0, 'nothing is sent before the first apply');

    const first = generationFor(impostor, 1);
    current = first;
    delivery.afterApply(undefined, first);
    await eventually('the first attempt', () => delivery.queue.summaries()[0]?.status === 'retry');

    // The same configuration again changes nothing the queue depends on: it keeps its schedule.
    const same = generationFor(impostor, 2);
    current = same;
    delivery.afterApply(first, same);
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(delivery.queue.messages()[0]?.attempts, 1);

    const fixed = generationFor(partner, 3);
    current = fixed;
    delivery.afterApply(same, fixed);
    await eventually('delivery after the apply', () => delivery.queue.messages().length === 0);
    assert.deepEqual(
      partner.messages.map((m) => m.recipients),
      [['bob@adatum.com']],
    );
    assert.equal(delivery.retry(), 0);
  });
});
