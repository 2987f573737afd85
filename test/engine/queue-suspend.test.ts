// Suspending a next-hop domain's queue (Exchange's Suspend-Queue / Resume-Queue) on a real engine
// with a real partner server: held mail is never sent, the hold survives a restart, resume
// delivers at once, held mail still expires, and the admin API wants the token like every route.
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { RuntimeConfig } from '../../src/model.js';
import { eventually, startEngine, type RunningEngine } from '../support/engine.js';
import { lab } from '../support/lab.js';
import { internalConnector, runtimeConfig, sendConnector } from '../support/runtime-config.js';
import { startSmtpPeer, type SmtpPeer } from '../support/smtp-peer.js';
import { submit } from '../support/smtp-submit.js';
import { tempDir, type TempDir } from '../support/tmp.js';

const INTERNAL = '127.0.0.1:0';

/** treyresearch.net sending to its partner adatum.com (the peer), with an internal relay connector. */
function config(partner: SmtpPeer, expireAfter = '2d'): RuntimeConfig {
  return runtimeConfig({
    organization: {
      queue: { retry: ['1m'], expireAfter, delayNotice: '4h' },
      resolver: {
        servers: [],
        static: { 'adatum.com': [{ host: partner.host, port: partner.port }] },
      },
    },
    sendConnectors: [sendConnector('to-partners', { addressSpaces: ['adatum.com'] })],
    receiveConnectors: [internalConnector(INTERNAL)],
  });
}

/** An internal user's message for adatum.com, through the engine's own SMTP listener. */
async function send(running: RunningEngine, subject: string): Promise<void> {
  const address = running.engine.listenerAddress(INTERNAL);
  assert.ok(address !== null, 'the internal connector listens');
  const outcome = await submit(
    address.port,
    { from: 'alice@treyresearch.net', to: ['bob@adatum.com'] },
    { plaintext: true, name: 'workstation.treyresearch.net', serverCa: lab().treyRoot.certPem },
    `Subject: ${subject}\r\n\r\nhello\r\n`,
  );
  assert.equal(outcome.code, 250, outcome.response);
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function adatumQueue(running: RunningEngine) {
  return running.engine.state().queues.find((q) => q.nextHopDomain === 'adatum.com');
}

describe('queue suspend and resume', () => {
  let state: TempDir;
  let partner: SmtpPeer;
  let running: RunningEngine | undefined;

  before(async () => {
    state = await tempDir('domsec-suspend-');
    partner = await startSmtpPeer({ certificate: lab().adatumMail });
  });
  after(async () => {
    await running?.stop();
    await partner.close();
    await state.remove();
  });

  it('holds mail for a suspended domain across dispatch rounds and a restart, and resume delivers it at once', async () => {
    let engine = await startEngine(join(state.path, 'engine'));
    running = engine;
    await engine.client.apply(config(partner));

    // Suspending a domain with nothing queued is allowed: mail queued later waits.
    assert.deepEqual(await engine.client.suspend('AdAtum.com'), {
      domain: 'adatum.com',
      suspended: true,
      messages: 0,
    });
    assert.equal((await engine.client.suspend('adatum.com')).suspended, false, 'already held');
    assert.deepEqual(
      (await engine.client.queues()).queues.map((q) => [q.nextHopDomain, q.status, q.messageCount]),
      [['adatum.com', 'suspended', 0]],
    );

    // Receive is not affected: the message is accepted and queued.
    await send(engine, 'held');
    await eventually(
      'the message queued',
      () => adatumQueue(engine)?.messageCount === 1 || undefined,
    );
    // Several dispatch rounds (each retry kicks one), and time for any timer: nothing is sent.
    for (let round = 0; round < 5; round++) {
      const retried = await engine.client.retry('adatum.com');
      assert.deepEqual(retried, { retried: 0, suspended: ['adatum.com'] });
      assert.equal((await engine.client.retry()).retried, 0);
      await sleep(200);
    }
    assert.equal(partner.connections, 0, 'no session to the partner while suspended');
    assert.equal(partner.messages.length, 0);
    const held = adatumQueue(engine);
    assert.equal(held?.status, 'suspended');
    assert.equal(held?.nextRetryAt, null);
    assert.equal(engine.engine.queuedMessages()[0]?.attempts, 0, 'never attempted');

    // The gauge says so too.
    const metrics = await (
      await fetch(`${engine.control.url}/metrics`, {
        headers: { authorization: `Bearer ${engine.token}` },
      })
    ).text();
    assert.match(metrics, /domsec_queue_suspended\{next_hop_domain="adatum.com"\} 1/);

    // Operational state in the queue directory, not in the applied configuration.
    const saved = JSON.parse(
      await readFile(join(state.path, 'engine', 'queue', 'suspended.json'), 'utf8'),
    ) as unknown;
    assert.deepEqual(saved, { formatVersion: 1, domains: ['adatum.com'] });
    const applied = await readFile(join(state.path, 'engine', 'applied-config.json'), 'utf8');
    assert.doesNotMatch(applied, /suspend/i);

    // Restart with the same state directory: still suspended, still not sent.
    await engine.stop();
    running = undefined;
    engine = await startEngine(join(state.path, 'engine'));
    running = engine;
    assert.ok((await engine.engine.resume()) !== undefined, 'the last configuration comes back');
    assert.deepEqual(engine.engine.suspendedQueues(), ['adatum.com']);
    await sleep(1_000);
    assert.equal(adatumQueue(engine)?.status, 'suspended');
    assert.equal(adatumQueue(engine)?.messageCount, 1);
    assert.equal(partner.connections, 0, 'the restart did not lift the hold');

    // Resume: delivered at once (the retry schedule would otherwise wait a minute).
    const resumed = await engine.client.resume('adatum.com');
    assert.deepEqual(resumed, { domain: 'adatum.com', resumed: true, retried: 1 });
    await eventually('delivery after resume', () => partner.messages.length === 1 || undefined);
    assert.match(partner.messages[0]?.body.toString() ?? '', /Subject: held/);
    assert.equal(partner.messages[0]?.secure, true);
    await eventually('the queue emptied', () => adatumQueue(engine) === undefined || undefined);
    assert.deepEqual(engine.engine.suspendedQueues(), []);

    // Resuming a queue that is not suspended changes nothing and says so.
    assert.deepEqual(await engine.client.resume('adatum.com'), {
      domain: 'adatum.com',
      resumed: false,
      retried: 0,
    });
    const after = JSON.parse(
      await readFile(join(state.path, 'engine', 'queue', 'suspended.json'), 'utf8'),
    ) as unknown;
    assert.deepEqual(after, { formatVersion: 1, domains: [] });
  });

  it('refuses suspend and resume without the token (401) and a request that names no domain (400)', async () => {
    running ??= await startEngine(join(state.path, 'engine'));
    for (const path of ['/v1/queues/suspend', '/v1/queues/resume']) {
      const response = await fetch(`${running.control.url}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ domain: 'adatum.com' }),
      });
      assert.equal(response.status, 401, path);
      const wrong = await fetch(`${running.control.url}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: 'Bearer not-the-token' },
        body: JSON.stringify({ domain: 'adatum.com' }),
      });
      assert.equal(wrong.status, 401, path);
      for (const body of [{}, { domain: '' }, { domain: 'a b/c' }, { domain: 42 }]) {
        const bad = await fetch(`${running.control.url}${path}`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${running.token}` },
          body: JSON.stringify(body),
        });
        assert.equal(bad.status, 400, `${path} ${JSON.stringify(body)}`);
      }
    }
    assert.deepEqual(running.engine.suspendedQueues(), [], 'nothing was suspended');
  });

  it('still expires held mail, with a non-delivery report to the sender, and never sends it', async () => {
    const directory = await tempDir('domsec-suspend-expiry-');
    const other = await startSmtpPeer({ certificate: lab().adatumMail });
    const engine = await startEngine(directory.path);
    try {
      await engine.client.apply(config(other, '3s'));
      await engine.client.suspend('adatum.com');
      await send(engine, 'will expire');
      await eventually(
        'the message queued',
        () => adatumQueue(engine)?.messageCount === 1 || undefined,
      );
      // No kick after the accept helps here: the dispatcher's timer must wake for the expiry.
      await eventually(
        'the held message to expire',
        () => (adatumQueue(engine)?.messageCount === 0 ? true : undefined),
        15_000,
      );
      assert.equal(adatumQueue(engine)?.status, 'suspended', 'the hold stays');
      assert.equal(other.connections, 0, 'expiry does not deliver');
      const bounced = engine.log.entries.find((e) => e.event === 'queue.bounced');
      assert.ok(bounced !== undefined, 'a non-delivery report was queued');
      assert.equal(bounced.fields.to, 'alice@treyresearch.net');
      // The report goes to alice's local mailbox.
      const mailbox = await eventually('the report delivered', async () => {
        const files = await readdir(
          join(directory.path, 'mail', 'treyresearch.net', 'alice', 'new'),
        ).catch(() => []);
        return files.length > 0 ? files : undefined;
      });
      const report = await readFile(
        join(directory.path, 'mail', 'treyresearch.net', 'alice', 'new', mailbox[0] ?? ''),
        'utf8',
      );
      assert.match(report, /5\.4\.7/);
      assert.match(report, /suspended/);
    } finally {
      await engine.stop();
      await other.close();
      await directory.remove();
    }
  });
});
