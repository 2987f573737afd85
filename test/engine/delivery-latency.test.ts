// Mail reaches the mailbox when a delivery slot is free, not when some timer fires: a burst to
// local mailboxes through a real `domsec serve` process (nothing else in that process wakes its
// event loop, which is how a dispatch round that waited for an unref'd immediate stalled for
// seconds). Every message must be in new/ well within a second of its 250.
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ServeProcess } from '../reliability/serve-process.js';
import { writePartnerLab, type PartnerLab } from '../reliability/partner-lab.js';
import { submit } from '../support/smtp-submit.js';
import { tempDir, type TempDir } from '../support/tmp.js';

/** The stall was 5 to 8 s; a delivery here takes some 10 to 40 ms. */
const BOUND_MS = 1_500;

describe('delivery latency of local mail', () => {
  let root: TempDir;
  let lab: PartnerLab;
  let serve: ServeProcess;
  let mail: string;

  before(async () => {
    root = await tempDir('domsec-latency-');
    lab = await writePartnerLab(root.path);
    const state = join(root.path, 'state');
    mail = join(state, 'mail', 'treyresearch.net');
    serve = new ServeProcess(['-f', lab.manifests, '--state', state, '--log-format', 'json']);
    await serve.ready();
  });
  after(async () => {
    await serve.stop();
    await root.remove();
  });

  /** When each file first showed up in new/ of the prefix's mailboxes, polled every millisecond. */
  function watchMailboxes(prefix: string): {
    seen: Map<string, number>;
    stop: () => Promise<void>;
  } {
    const seen = new Map<string, number>();
    let running = true;
    const loop = (async () => {
      while (running) {
        const users = await readdir(mail).catch(() => [] as string[]);
        for (const user of users.filter((name) => name.startsWith(prefix))) {
          for (const file of await readdir(join(mail, user, 'new')).catch(() => [] as string[]))
            if (!seen.has(file)) seen.set(file, performance.now());
        }
        await new Promise((resolve) => setTimeout(resolve, 1));
      }
    })();
    return {
      seen,
      stop: async () => {
        running = false;
        await loop;
      },
    };
  }

  async function burst(round: number, concurrent: boolean): Promise<number[]> {
    const mailboxes = watchMailboxes(`user${round}-`);
    const acknowledged: number[] = [];
    const one = async (i: number) => {
      const outcome = await submit(
        lab.port,
        { from: 'someone@adatum.com', to: [`user${round}-${i}@treyresearch.net`] },
        lab.client,
        `From: someone@adatum.com\r\nSubject: burst ${round} ${i}\r\n\r\nhello\r\n`,
      );
      assert.equal(outcome.code, 250, outcome.response);
      acknowledged.push(performance.now());
    };
    if (concurrent) await Promise.all([0, 1, 2, 3, 4].map(one));
    else for (const i of [0, 1, 2, 3, 4]) await one(i);
    const deadline = performance.now() + 10_000;
    while (mailboxes.seen.size < 5 && performance.now() < deadline)
      await new Promise((resolve) => setTimeout(resolve, 5));
    await mailboxes.stop();
    const landed = [...mailboxes.seen.values()].sort((a, b) => a - b);
    acknowledged.sort((a, b) => a - b);
    assert.equal(landed.length, 5, 'all five delivered');
    return landed.map((at, index) => at - (acknowledged[index] ?? at));
  }

  it('delivers every message of a concurrent burst within moments of its 250', async () => {
    const latencies = await burst(1, true);
    for (const latency of latencies) assert.ok(latency < BOUND_MS, `${latencies.join(', ')} ms`);
  });

  it('delivers messages arriving one after another while a delivery is in flight just as fast', async () => {
    const latencies = await burst(2, false);
    for (const latency of latencies) assert.ok(latency < BOUND_MS, `${latencies.join(', ')} ms`);
  });
});
