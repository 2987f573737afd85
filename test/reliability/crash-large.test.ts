// Crash safety with large messages, whose bodies are written into the queue's data/ as they arrive:
// 4 partner sessions send 3 MB messages while `domsec serve` is killed with SIGKILL mid-DATA. Every
// message that got 250 arrives byte-exact; a body cut short by a kill is never delivered, and
// nothing of it is left in the queue once the engine restarted and drained.
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { eventually } from '../support/eventually.js';
import { TREY } from '../support/manifests.js';
import { tempDir } from '../support/tmp.js';
import { sendLarge, storedBody } from './large-sender.js';
import { queueFiles, writePartnerLab, type PartnerLab } from './partner-lab.js';
import { ServeProcess } from './serve-process.js';

const KILLS = 3;
const CLIENTS = 4;
const MESSAGE_BYTES = 3 * 1024 * 1024;
const TOKEN = 'crash-large-token-0123456789abcdef012';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** X-Test-Id -> body hashes of every message in the Maildirs under root. */
async function delivered(root: string): Promise<Map<string, string[]>> {
  const found = new Map<string, string[]>();
  for (const domain of await readdir(root).catch(() => [] as string[]))
    for (const mailbox of await readdir(join(root, domain)))
      for (const name of await readdir(join(root, domain, mailbox, 'new')).catch(() => [])) {
        const { id, bodyHash } = await storedBody(join(root, domain, mailbox, 'new', name));
        if (id !== undefined) found.set(id, [...(found.get(id) ?? []), bodyHash]);
      }
  return found;
}

describe('crash safety with large messages', { timeout: 180_000 }, () => {
  let work: Awaited<ReturnType<typeof tempDir>>;
  let lab: PartnerLab;
  let engine: ServeProcess | undefined;

  before(async () => {
    work = await tempDir('domsec-crash-large-');
    lab = await writePartnerLab(work.path);
  });
  after(async () => {
    await engine?.kill();
    await work.remove();
  });

  it(`loses no acknowledged 3 MB message and delivers no half-written one across ${KILLS} SIGKILLs mid-DATA`, async (t) => {
    const state = join(work.path, 'state');
    const env = { DOMSEC_TOKEN: TOKEN };
    engine = new ServeProcess(['-f', lab.manifests, '--state', state], env);
    await engine.ready();

    const acknowledged = new Map<string, string>();
    const cut = new Set<string>();
    let sending = true;
    let inFlight = 0;
    const clients = Array.from({ length: CLIENTS }, async (_, client) => {
      for (let n = 0; sending; n += 1) {
        const id = `L${client}-${n}`;
        inFlight += 1;
        const outcome = await sendLarge(lab, id, `box${client}@${TREY.domain}`, MESSAGE_BYTES);
        inFlight -= 1;
        if (outcome.code === 250) acknowledged.set(id, outcome.bodyHash);
        else {
          cut.add(id);
          await sleep(100);
        }
      }
    });
    try {
      for (let kill = 0; kill < KILLS; kill += 1) {
        const before = acknowledged.size;
        await eventually('a message acknowledged', () => acknowledged.size, {
          timeoutMs: 30_000,
          intervalMs: 10,
          until: (count) => count > before,
        });
        // Sessions are mid-DATA most of the time: a kill a moment later cuts bodies being written.
        await sleep(150 + kill * 170);
        t.diagnostic(`kill ${kill + 1} with ${inFlight} sessions in flight`);
        await engine.kill();
        engine = new ServeProcess(['--state', state], env);
        await engine.ready();
      }
    } finally {
      sending = false;
      await Promise.all(clients);
    }

    const mail = join(state, 'mail');
    const queue = join(state, 'queue');
    let found = await delivered(mail);
    await eventually(
      'every acknowledged message delivered and the queue empty',
      async () => {
        found = await delivered(mail);
        const undelivered = [...acknowledged.keys()].filter((id) => !found.has(id)).length;
        return { undelivered, queue: await queueFiles(queue) };
      },
      {
        timeoutMs: 60_000,
        intervalMs: 200,
        until: ({ undelivered, queue: files }) =>
          undelivered === 0 &&
          (files.control ?? []).length === 0 &&
          (files.data ?? []).length === 0,
      },
    );
    assert.equal(await engine.stop(), 0);
    engine = undefined;

    t.diagnostic(
      `figures ${JSON.stringify({ acknowledged: acknowledged.size, cut: cut.size, delivered: found.size })}`,
    );
    for (const [id, hash] of acknowledged) {
      const copies = found.get(id) ?? [];
      assert.ok(copies.length > 0, `acknowledged ${id} was lost`);
      assert.ok(
        copies.every((copy) => copy === hash),
        `${id} arrived altered`,
      );
    }
    // A message cut by a kill may have been committed just before it (delivered without its 250),
    // but never partly: whatever was delivered of it is complete, one hash for all its copies.
    for (const id of cut) {
      const copies = found.get(id) ?? [];
      assert.ok(new Set(copies).size <= 1, `${id} delivered in different forms`);
    }
    assert.ok(cut.size > 0, 'some sessions were cut mid-DATA by a kill');
    const files = await queueFiles(queue);
    assert.deepEqual(files.data, [], 'no body of a cut message is left');
    assert.deepEqual(files.corrupt, [], 'nothing was found corrupt');
  });
});
