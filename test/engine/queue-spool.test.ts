// Spooled bodies (a large message written into the queue's data/ as it arrives): committed with
// their control records and never through the journal; read back in chunks for delivery; a
// discarded or never-committed one (a refusal, a kill -9 mid-DATA) leaves nothing to deliver.
import assert from 'node:assert/strict';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { after, beforeEach, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Maildir } from '../../src/engine/delivery/maildir.js';
import { memoryLog } from '../../src/engine/log.js';
import { contentHead, hasEightBitBytes } from '../../src/engine/queue/message-body.js';
import { MessageQueue } from '../../src/engine/queue/queue.js';
import { runUntilKilled } from '../support/killed-script.js';
import { tempDir } from '../support/tmp.js';

const ENVELOPE = {
  from: 'a@adatum.com',
  recipients: ['b@treyresearch.net', 'c@fabrikam.com'],
  receivedAt: new Date(),
  connector: 'from-partners',
  remoteAddress: '127.0.0.1',
};

/** A 2 MB message in 64 KB pieces, each piece its own byte. */
function pieces(): Buffer[] {
  return [
    Buffer.from('Subject: large\r\n\r\n', 'latin1'),
    ...Array.from({ length: 32 }, (_, n) => Buffer.alloc(64 * 1024, 0x41 + (n % 26))),
  ];
}

async function journalBytes(queueDir: string): Promise<number> {
  const dir = join(queueDir, 'journal');
  let total = 0;
  for (const name of await readdir(dir).catch(() => [] as string[]))
    total += (await stat(join(dir, name))).size;
  return total;
}

describe('MessageQueue spooled bodies', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  beforeEach(async () => {
    await dir?.remove();
    dir = await tempDir('domsec-queue-spool-');
  });
  after(() => dir.remove());

  it('commits a spooled body in the file store, one record per next hop, nothing in the journal', async () => {
    const queueDir = join(dir.path, 'queue');
    const queue = await MessageQueue.open(queueDir, memoryLog());
    const body = await queue.spool.open();
    for (const piece of pieces()) await body.write([piece]);
    const ids = await queue.spool.accept({ ...ENVELOPE, body });
    assert.equal(ids.length, 2);
    const expected = Buffer.concat(pieces());
    const [message] = (ids[0] ?? '').split('.');
    assert.deepEqual(await readFile(join(queueDir, 'data', `${message}.eml`)), expected);
    assert.deepEqual(
      (await readdir(join(queueDir, 'control'))).sort(),
      ids.map((id) => `${id}.json`).sort(),
    );
    assert.ok((await journalBytes(queueDir)) < 1024, 'the body never went through the journal');

    const [claimed] = queue.claim([ids[0] ?? '']);
    const content = await claimed?.content?.();
    assert.ok(content !== undefined && !Buffer.isBuffer(content), 'delivery reads it from disk');
    assert.equal(content.size, expected.length);
    assert.equal((await contentHead(content, 18)).toString('latin1'), 'Subject: large\r\n\r\n');
    assert.equal(await hasEightBitBytes(content), false);
    const copy = await new Maildir(join(dir.path, 'mail')).deliver('b@treyresearch.net', content);
    assert.deepEqual(await readFile(copy), expected, 'copied to the Maildir byte-exact');
    await queue.close();
  });

  it('recovers a committed spooled message after a restart, and removes its body with its last entry', async () => {
    const queueDir = join(dir.path, 'queue');
    let queue = await MessageQueue.open(queueDir, memoryLog());
    const body = await queue.spool.open();
    await body.write(pieces());
    const ids = await queue.spool.accept({ ...ENVELOPE, body });
    await queue.close();
    queue = await MessageQueue.open(queueDir, memoryLog());
    assert.deepEqual(
      queue
        .messages()
        .map((m) => m.id)
        .sort(),
      [...ids].sort(),
    );
    const policy = { hostname: 'mx', retrySchedule: [60_000], expireAfter: 3_600_000 };
    for (const id of ids) {
      const [claimed] = queue.claim([id]);
      assert.ok(claimed !== undefined);
      await queue.settle(id, { delivered: claimed.recipients, failures: [] }, policy);
    }
    assert.deepEqual(await readdir(join(queueDir, 'data')), []);
    assert.deepEqual(await readdir(join(queueDir, 'control')), []);
    await queue.close();
  });

  it('leaves nothing behind for a discarded body, or one a refused accept wrote', async () => {
    const queueDir = join(dir.path, 'queue');
    const queue = await MessageQueue.open(queueDir, memoryLog());
    const discarded = await queue.spool.open();
    await discarded.write(pieces());
    await discarded.discard();
    const refused = await queue.spool.open();
    await refused.write(pieces());
    await assert.rejects(
      queue.spool.accept({ ...ENVELOPE, recipients: [], body: refused }),
      RangeError,
    );
    assert.deepEqual(await readdir(join(queueDir, 'data')), []);
    assert.deepEqual(queue.messages(), []);
    await queue.close();
  });

  it('delivers nothing of a body half-written when the engine was killed with SIGKILL', async () => {
    const queueDir = join(dir.path, 'queue');
    const module = fileURLToPath(new URL('../../src/engine/queue/queue.ts', import.meta.url));
    // One body committed, one still being written when the process dies.
    const script = `
      const { MessageQueue } = await import(${JSON.stringify(module)});
      const queue = await MessageQueue.open(${JSON.stringify(queueDir)}, { log() {} });
      const envelope = { from: 'a@adatum.com', recipients: ['b@treyresearch.net'], receivedAt: new Date(),
        connector: 'c', remoteAddress: '127.0.0.1' };
      const done = await queue.spool.open();
      await done.write([Buffer.alloc(1024 * 1024, 0x61)]);
      const ids = await queue.spool.accept({ ...envelope, body: done });
      const half = await queue.spool.open();
      await half.write([Buffer.alloc(1024 * 1024, 0x62)]);
      process.stdout.write(ids.join(',') + '\\n', () => process.kill(process.pid, 'SIGKILL'));`;
    const output = await runUntilKilled(script);
    const acknowledged = output.trim().split(',');
    assert.equal((await readdir(join(queueDir, 'data'))).length, 2, 'both bodies are on disk');
    const log = memoryLog();
    const queue = await MessageQueue.open(queueDir, log);
    assert.deepEqual(
      queue.messages().map((m) => m.id),
      acknowledged,
    );
    const [message] = (acknowledged[0] ?? '').split('.');
    assert.deepEqual(
      await readdir(join(queueDir, 'data')),
      [`${message}.eml`],
      'the half-written body is gone',
    );
    assert.ok(log.entries.some((e) => e.event === 'queue.orphan-removed'));
    await queue.close();
  });
});
