// Receive workers killed with SIGKILL while their notices to the primary are still queued in the
// channel (the primary stopped for a moment, SIGSTOP, so that it reads nothing): the messages
// they answered 250 for are found again in their journal segments and delivered, and counted
// like any message received (domsec_messages_received_total, queue.accepted in the log).
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { eventually } from '../support/eventually.js';
import { LineClient } from '../support/line-client.js';
import { TREY } from '../support/manifests.js';
import { tempDir, type TempDir } from '../support/tmp.js';
import { deliveredIds, writePartnerLab, type PartnerLab } from '../reliability/partner-lab.js';
import { ServeProcess } from '../reliability/serve-process.js';
import { processState, workersOf } from './worker-processes.js';

const TOKEN = 'attack-workers-channel-token-8e4b2f7a1c';
const SESSIONS = 4;
const MESSAGES_PER_SESSION = 400;
const RECIPIENTS = 20;

describe('receive workers killed with their notices still in the channel', () => {
  let work: TempDir;
  let lab: PartnerLab;
  let engine: ServeProcess | undefined;
  let paused: number | undefined;
  const figures = { accepted: [] as string[], refused: [] as string[], recovered: 0 };

  before(async () => {
    work = await tempDir('domsec-attack-channel-');
    lab = await writePartnerLab(work.path);
  });
  after(async () => {
    if (paused !== undefined) process.kill(paused, 'SIGCONT');
    await engine?.kill();
    await work?.remove();
  });

  const metric = async (name: string): Promise<number> => {
    const response = await fetch(`http://${lab.admin}/metrics`, {
      headers: { authorization: `Bearer ${TOKEN}` },
      signal: AbortSignal.timeout(5_000),
    });
    let sum = 0;
    for (const line of (await response.text()).split('\n'))
      if (line.startsWith(`${name}{`)) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
    return sum;
  };

  it(
    'delivers every message answered 250 by workers killed while the primary was not reading',
    { timeout: 120_000 },
    async (t) => {
      const state = join(work.path, 'state');
      engine = new ServeProcess(['-f', lab.manifests, '--state', state, '--workers', '2'], {
        DOMSEC_TOKEN: TOKEN,
      });
      await engine.ready();
      const primary = engine.pid ?? 0;
      const workers = await workersOf(primary);
      const sessions = await Promise.all(
        Array.from({ length: SESSIONS }, async () => {
          const client = await LineClient.open(lab.internalPort);
          await client.reply();
          client.write('EHLO relay.treyresearch.net');
          await client.reply();
          return client;
        }),
      );
      process.kill(primary, 'SIGSTOP');
      paused = primary;
      let refusedOnce = false;
      const deadline = Date.now() + 30_000;
      try {
        // Until the first refusal: the channel's backlog is then as large as a worker lets it be.
        await Promise.all(
          sessions.map(async (client, c) => {
            for (
              let n = 0;
              n < MESSAGES_PER_SESSION && !refusedOnce && Date.now() < deadline;
              n++
            ) {
              const id = `ch${c}-m${n}`;
              client.write(`MAIL FROM:<app@${TREY.domain}>`);
              for (let r = 0; r < RECIPIENTS; r += 1)
                client.write(`RCPT TO:<box${r}@${TREY.domain}>`);
              client.write('DATA');
              for (let reply = 0; reply < RECIPIENTS + 2; reply += 1) await client.reply(10_000);
              client.write(`Subject: ${id}\r\nX-Test-Id: ${id}\r\n\r\n${'z'.repeat(200)}\r\n.`);
              const reply = await client.reply(10_000);
              if (reply.startsWith('250')) figures.accepted.push(id);
              else {
                figures.refused.push(id);
                refusedOnce = true;
              }
            }
          }),
        );
        for (const worker of workers) process.kill(worker, 'SIGKILL');
        // Their parent is stopped and cannot reap them: gone means a zombie here.
        await eventually(
          'the workers gone',
          async () => (await Promise.all(workers.map(processState))).filter((s) => s !== 'Z'),
          { timeoutMs: 5_000, intervalMs: 10, until: (left) => left.every((s) => s === undefined) },
        );
      } finally {
        process.kill(primary, 'SIGCONT');
        paused = undefined;
        for (const client of sessions) client.close();
      }
      const mail = join(state, 'mail');
      await eventually('every acknowledged message delivered', () => deliveredIds(mail), {
        timeoutMs: 60_000,
        intervalMs: 200,
        until: (delivered) => figures.accepted.every((id) => delivered.has(id)),
      });
      figures.recovered = engine
        .events()
        .filter((e) => e.event === 'workers.journal-recovered')
        .reduce((sum, e) => sum + Number(e.messages), 0);
      t.diagnostic(
        `figures ${JSON.stringify({ accepted: figures.accepted.length, refused: figures.refused.length, recovered: figures.recovered })}`,
      );
      assert.ok(figures.accepted.length > 0);
    },
  );

  it(
    'counts the messages found again in the killed workers’ segments as received',
    {
      timeout: 30_000,
    },
    async () => {
      assert.ok(figures.recovered > 0, 'no message was found again: nothing to count');
      const counted = await metric('domsec_messages_received_total');
      const acceptedLines = engine?.events().filter((e) => e.event === 'queue.accepted').length;
      assert.ok(
        counted >= figures.accepted.length,
        `${counted} counted, ${figures.accepted.length} answered 250`,
      );
      assert.ok((acceptedLines ?? 0) >= figures.accepted.length, `${acceptedLines} log lines`);
      assert.equal(await engine?.stop(), 0);
      engine = undefined;
    },
  );
});
