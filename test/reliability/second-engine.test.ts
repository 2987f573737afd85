// A second `domsec serve` on the state directory of one that is running under load: it exits 1
// at once naming the first's PID and touches nothing (every message that got 250 is delivered,
// nothing is found corrupt); after kill -9 of the first, the next engine starts at once.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { eventually } from '../support/eventually.js';
import { TREY } from '../support/manifests.js';
import { domsec } from '../support/cli.js';
import { tempDir } from '../support/tmp.js';
import {
  deliveredIds,
  queueFiles,
  sendMarked,
  writePartnerLab,
  type PartnerLab,
} from './partner-lab.js';
import { ServeProcess } from './serve-process.js';

const CLIENTS = 8;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('a second engine on the same state directory', () => {
  let work: Awaited<ReturnType<typeof tempDir>>;
  let lab: PartnerLab;
  const engines: ServeProcess[] = [];

  before(async () => {
    work = await tempDir('domsec-second-');
    lab = await writePartnerLab(work.path);
  });
  after(async () => {
    for (const engine of engines) await engine.kill();
    await work.remove();
  });

  it('exits 1 at once naming the first PID, and no acknowledged message is lost; after kill -9 the next starts at once', async (t) => {
    const state = join(work.path, 'state');
    const env = { DOMSEC_TOKEN: 'second-engine-token-0123456789abcdef' };
    const first = new ServeProcess(['-f', lab.manifests, '--state', state], env);
    engines.push(first);
    await first.ready();

    const acknowledged = new Set<string>();
    let sending = true;
    const clients = Array.from({ length: CLIENTS }, async (_, client) => {
      for (let n = 0; sending; n += 1) {
        const id = `c${client}-m${n}`;
        const outcome = await sendMarked(lab, id, [`box${client % 4}@${TREY.domain}`]);
        if (outcome.code === 250) acknowledged.add(id);
        else await sleep(50);
      }
    });

    let second;
    let secondMs: number | undefined;
    let acknowledgedBefore: number | undefined;
    try {
      await eventually('50 messages acknowledged', () => acknowledged.size, {
        timeoutMs: 20_000,
        intervalMs: 10,
        until: (count) => count >= 50,
      });
      acknowledgedBefore = acknowledged.size;
      const started = Date.now();
      second = await domsec(['serve', '-f', lab.manifests, '--state', state], env, 15_000);
      secondMs = Date.now() - started;
      // Traffic goes on to the first engine a while after the second one left.
      const more = acknowledged.size;
      await eventually('50 more messages acknowledged', () => acknowledged.size, {
        timeoutMs: 20_000,
        intervalMs: 10,
        until: (count) => count >= more + 50,
      });
    } finally {
      sending = false;
      await Promise.all(clients);
    }
    assert.equal(second.code, 1, second.stderr);
    const lines = second.stderr.split('\n').filter((line) => line !== '');
    assert.equal(lines.length, 1, second.stderr);
    assert.match(
      lines[0] ?? '',
      new RegExp(
        `^domsec: the state directory .* is in use by another domsec engine \\(PID ${first.pid}, started `,
      ),
    );
    assert.ok(
      secondMs !== undefined && secondMs < 3_000,
      `the second engine took ${secondMs} ms to leave`,
    );

    // Every 250 delivered by the first engine; nothing it queued was removed or found corrupt.
    const mail = join(state, 'mail');
    const drain = async () => {
      let delivered = await deliveredIds(mail);
      await eventually(
        'every acknowledged message delivered',
        async () => {
          delivered = await deliveredIds(mail);
          return [...acknowledged].filter((id) => !delivered.has(id)).length;
        },
        { timeoutMs: 30_000, intervalMs: 100, until: (undelivered) => undelivered === 0 },
      );
      return delivered;
    };
    await drain();
    const files = await queueFiles(join(state, 'queue'));
    assert.deepEqual(files.corrupt ?? [], [], 'nothing was marked corrupt');
    assert.ok(
      !first.events().some((e) => e.level === 'error' || /corrupt|orphan/.test(String(e.event))),
      'the first engine logged no error',
    );

    // kill -9: no handler runs; the kernel drops the lock with the process.
    await first.kill();
    const started = Date.now();
    const next = new ServeProcess(['--state', state], env);
    engines.push(next);
    await next.ready();
    const nextMs = Date.now() - started;
    const delivered = await drain();
    assert.equal(await next.stop(), 0);
    const lost = [...acknowledged].filter((id) => !delivered.has(id));
    assert.deepEqual(lost, []);
    const figures = {
      acknowledged: acknowledged.size,
      acknowledgedBeforeSecond: acknowledgedBefore,
      lost: lost.length,
      secondEngineExitMs: secondMs,
      nextEngineReadyAfterKillMs: nextMs,
    };
    t.diagnostic(`figures ${JSON.stringify(figures)}`);
    console.log(`second-engine figures: ${JSON.stringify(figures)}`);
    assert.ok(nextMs < 10_000, `the next engine took ${nextMs} ms`);
  });
});
