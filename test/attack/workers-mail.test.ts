// Acknowledged mail against `domsec serve --workers 2` under SIGKILL, counted in the Maildirs:
// workers killed right after answering 250, amid large messages (spooled) and small ones
// (journaled); the primary killed with messages adopted and not yet delivered. Every
// message answered 250 must be delivered; with the primary alive, exactly once.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { eventually } from '../support/eventually.js';
import { LineClient } from '../support/line-client.js';
import { ADATUM, TREY } from '../support/manifests.js';
import { submit, type SubmitOutcome } from '../support/smtp-submit.js';
import { tempDir, type TempDir } from '../support/tmp.js';
import { deliveredIds, writePartnerLab, type PartnerLab } from '../reliability/partner-lab.js';
import { ControlClient } from '../../src/control/client.js';
import { ServeProcess } from '../reliability/serve-process.js';
import { alive, workersOf } from './worker-processes.js';

const CLIENTS = 4;
/** Messages for the partner, whose port is closed: they wait in the queue. */
const DEFERRED = 10;
const WORKER_KILLS = 6;
/** Above the receive side's memory limit: spooled into the file store as it arrives. */
const LARGE_BODY_BYTES = 1024 * 1024;
/** Per session while the primary is stopped: enough notices to fill the channel's buffers. */
const SLOW_PRIMARY_MESSAGES = 250;
/** Recipients of each of them: a longer notice each. */
const SLOW_PRIMARY_RECIPIENTS = 20;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function marked(lab: PartnerLab, id: string, bodyBytes: number): Promise<SubmitOutcome> {
  const line = `${id} `.padEnd(76, 'x');
  const body = Array.from({ length: Math.ceil(bodyBytes / 78) }, () => line).join('\r\n');
  const message = [
    `From: sender@${ADATUM.domain}`,
    `To: box@${TREY.domain}`,
    `Subject: message ${id}`,
    `Message-ID: <${id}@${ADATUM.domain}>`,
    `X-Test-Id: ${id}`,
    '',
    body,
    '',
  ].join('\r\n');
  return submit(
    lab.port,
    { from: `sender@${ADATUM.domain}`, to: [`box@${TREY.domain}`] },
    { ...lab.client, name: ADATUM.hostname },
    message,
  ).catch((error: Error) => ({ code: 0, response: error.message }));
}

/** The acknowledged ids not delivered, and those delivered more than once. */
function tally(acknowledged: Iterable<string>, delivered: Map<string, number>) {
  const missing: string[] = [];
  const twice: string[] = [];
  for (const id of acknowledged) {
    const count = delivered.get(id) ?? 0;
    if (count === 0) missing.push(id);
    if (count > 1) twice.push(id);
  }
  return { missing, twice };
}

describe('acknowledged mail and receive workers killed with SIGKILL', () => {
  let work: TempDir;
  let lab: PartnerLab;
  let engine: ServeProcess | undefined;

  before(async () => {
    work = await tempDir('domsec-attack-mail-');
    lab = await writePartnerLab(work.path);
  });
  let paused: number | undefined;
  after(async () => {
    if (paused !== undefined) process.kill(paused, 'SIGCONT');
    await engine?.kill();
    await work?.remove();
  });

  it(
    `delivers every message answered 250 exactly once across ${WORKER_KILLS} workers killed right after a 250, large and small messages`,
    { timeout: 180_000 },
    async (t) => {
      const state = join(work.path, 'state-workers');
      engine = new ServeProcess(['-f', lab.manifests, '--state', state, '--workers', '2']);
      await engine.ready();
      const primary = engine.pid ?? 0;
      const acknowledged = new Set<string>();
      let kills = 0;
      let lastKill = 0;
      let sending = true;
      const killAfterAnswer = async () => {
        // Right after a 250, at most once in 800 ms (the replacement comes up in between).
        if (kills >= WORKER_KILLS || Date.now() - lastKill < 800) return;
        lastKill = Date.now();
        const workers = await workersOf(primary);
        const victim = workers[kills % workers.length];
        if (victim === undefined) return;
        kills += 1;
        process.kill(victim, 'SIGKILL');
      };
      const clients = Array.from({ length: CLIENTS }, async (_, client) => {
        for (let n = 0; sending; n += 1) {
          const id = `k${client}-m${n}`;
          const outcome = await marked(lab, id, n % 3 === 0 ? 2_000 : LARGE_BODY_BYTES);
          if (outcome.code === 250) {
            acknowledged.add(id);
            await killAfterAnswer();
          } else await sleep(20);
        }
      });
      const deadline = Date.now() + 90_000;
      while (kills < WORKER_KILLS && Date.now() < deadline) await sleep(100);
      await sleep(1_000);
      sending = false;
      await Promise.all(clients);
      assert.equal(kills, WORKER_KILLS);
      const mail = join(state, 'mail');
      await eventually('every acknowledged message delivered', () => deliveredIds(mail), {
        timeoutMs: 60_000,
        intervalMs: 200,
        until: (delivered) => tally(acknowledged, delivered).missing.length === 0,
        explain: () => engine?.stderr.slice(-3000),
      });
      await sleep(2_000); // a second delivery of any of them would show by now
      const counts = tally(acknowledged, await deliveredIds(mail));
      t.diagnostic(
        `figures ${JSON.stringify({ acknowledged: acknowledged.size, kills, twice: counts.twice.length })}`,
      );
      assert.deepEqual(counts, { missing: [], twice: [] });
      assert.equal(await engine.stop(), 0);
      engine = undefined;
    },
  );

  it(
    'delivers every message answered 250 after the primary is killed with SIGKILL mid-burst and started again',
    { timeout: 120_000 },
    async (t) => {
      const state = join(work.path, 'state-primary');
      engine = new ServeProcess(['-f', lab.manifests, '--state', state, '--workers', '2']);
      await engine.ready();
      const workers = await workersOf(engine.pid ?? 0);
      const acknowledged = new Set<string>();
      const running = engine;
      let killed = false;
      const clients = Array.from({ length: CLIENTS }, async (_, client) => {
        for (let n = 0; !killed; n += 1) {
          const id = `p${client}-m${n}`;
          const outcome = await marked(lab, id, n % 2 === 0 ? 2_000 : 256 * 1024);
          if (outcome.code === 250) {
            acknowledged.add(id);
            // The primary goes right after a 250: adopted, perhaps not delivered yet.
            if (acknowledged.size >= 40 && !killed) {
              killed = true;
              await running.kill();
            }
          }
        }
      });
      await Promise.all(clients);
      await eventually('the workers gone with their primary', () => workers.filter(alive), {
        timeoutMs: 5_000,
        intervalMs: 10,
        until: (left) => left.length === 0,
      });
      const mail = join(state, 'mail');
      const before = tally(acknowledged, await deliveredIds(mail));
      engine = new ServeProcess(['--state', state, '--workers', '2']);
      await engine.ready();
      await eventually('every acknowledged message delivered', () => deliveredIds(mail), {
        timeoutMs: 30_000,
        intervalMs: 100,
        until: (delivered) => tally(acknowledged, delivered).missing.length === 0,
      });
      await sleep(2_000);
      const after = tally(acknowledged, await deliveredIds(mail));
      t.diagnostic(
        `figures ${JSON.stringify({ acknowledged: acknowledged.size, undeliveredAtKill: before.missing.length, deliveredTwice: after.twice.length })}`,
      );
      assert.deepEqual(after.missing, []);
      assert.equal(await engine.stop(), 0);
      engine = undefined;
    },
  );

  it(
    'delivers no message a worker refused with 4xx while its primary was slow to read, and refuses none for that alone',
    {
      timeout: 120_000,
    },
    async (t) => {
      const state = join(work.path, 'state-slow-primary');
      engine = new ServeProcess(['-f', lab.manifests, '--state', state, '--workers', '2']);
      await engine.ready();
      const primary = engine.pid ?? 0;
      // Sessions opened first: while the primary is stopped, no new connection is handed out.
      const sessions = await Promise.all(
        Array.from({ length: CLIENTS }, async () => {
          const client = await LineClient.open(lab.internalPort);
          await client.reply();
          client.write('EHLO relay.treyresearch.net');
          await client.reply();
          return client;
        }),
      );
      const answers = new Map<string, number>();
      let refusal: string | undefined;
      process.kill(primary, 'SIGSTOP');
      paused = primary;
      const deadline = Date.now() + 30_000;
      try {
        await Promise.all(
          sessions.map(async (client, c) => {
            for (let n = 0; n < SLOW_PRIMARY_MESSAGES && Date.now() < deadline; n += 1) {
              const id = `slow${c}-m${n}`;
              client.write(`MAIL FROM:<app@${TREY.domain}>`);
              for (let r = 0; r < SLOW_PRIMARY_RECIPIENTS; r += 1)
                client.write(`RCPT TO:<box${r}@${TREY.domain}>`);
              client.write('DATA');
              for (let reply = 0; reply < SLOW_PRIMARY_RECIPIENTS + 2; reply += 1)
                await client.reply(10_000);
              client.write(`Subject: ${id}\r\nX-Test-Id: ${id}\r\n\r\n${'y'.repeat(200)}\r\n.`);
              const reply = await client.reply(10_000);
              answers.set(id, Number(reply.slice(0, 3)));
              if (!reply.startsWith('250')) refusal ??= reply;
            }
          }),
        );
      } finally {
        process.kill(primary, 'SIGCONT');
        paused = undefined;
      }
      const accepted = [...answers].filter(([, code]) => code === 250).map(([id]) => id);
      const refused = [...answers].filter(([, code]) => code !== 250).map(([id]) => id);
      const mail = join(state, 'mail');
      await eventually('every acknowledged message delivered', () => deliveredIds(mail), {
        timeoutMs: 30_000,
        intervalMs: 200,
        until: (delivered) => tally(accepted, delivered).missing.length === 0,
      });
      await sleep(3_000);
      const delivered = await deliveredIds(mail);
      const refusedYetDelivered = refused.filter((id) => delivered.has(id));
      t.diagnostic(
        `figures ${JSON.stringify({ answered: answers.size, accepted: accepted.length, refused: refused.length, refusedYetDelivered: refusedYetDelivered.length, refusal })}`,
      );
      assert.equal(refusedYetDelivered.length, 0, 'refused with 4xx, and delivered all the same');
      assert.equal(refused.length, 0, `refused with the primary alive: ${refusal}`);
      assert.equal(await engine.stop(), 0);
      engine = undefined;
    },
  );

  it(
    'keeps every deferred message adopted from the workers exactly once across a primary killed with SIGKILL',
    { timeout: 90_000 },
    async () => {
      const state = join(work.path, 'state-deferred');
      const env = { DOMSEC_TOKEN: 'attack-workers-mail-token-5d1c8e2a9f' };
      engine = new ServeProcess(['-f', lab.manifests, '--state', state, '--workers', '2'], env);
      await engine.ready();
      const workers = await workersOf(engine.pid ?? 0);
      for (let n = 0; n < DEFERRED; n += 1) {
        const outcome = await submit(
          lab.internalPort,
          { from: `app@${TREY.domain}`, to: [`partner${n}@${ADATUM.domain}`] },
          { plaintext: true, serverCa: '' },
          `Subject: deferred ${n}\r\nX-Test-Id: d-m${n}\r\n\r\nFor the partner.\r\n`,
        );
        assert.equal(outcome.code, 250, outcome.response);
      }
      const client = new ControlClient(`http://${lab.admin}`, env.DOMSEC_TOKEN);
      const queued = async () =>
        (await client.queues()).messages
          .filter((m) => m.nextHopDomain === ADATUM.domain)
          .map((m) => m.id)
          .sort();
      // Adopted and tried once (the partner's port is closed): deferred, not delivered.
      const before = await eventually(
        'every message deferred',
        async () => {
          const { messages } = await client.queues();
          const tried = messages.filter((m) => m.nextHopDomain === ADATUM.domain && m.attempts > 0);
          return tried.length === DEFERRED ? messages.map((m) => m.id).sort() : undefined;
        },
        { timeoutMs: 20_000, intervalMs: 100 },
      );
      await engine.kill();
      await eventually('the workers gone with their primary', () => workers.filter(alive), {
        timeoutMs: 5_000,
        intervalMs: 10,
        until: (left) => left.length === 0,
      });
      engine = new ServeProcess(['--state', state, '--workers', '2'], env);
      await engine.ready();
      assert.deepEqual(await queued(), before);
      assert.equal(await engine.stop(), 0);
      engine = undefined;
    },
  );
});
