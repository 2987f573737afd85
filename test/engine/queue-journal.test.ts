// The queue's journal on disk: what a reopened queue makes of segments as a crash or a failing
// disk leaves them, what a settled entry leaves behind, and segment rotation.
import assert from 'node:assert/strict';
import { appendFile, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, beforeEach, describe, it } from 'node:test';
import { memoryLog } from '../../src/engine/log.js';
import { SEGMENT_BYTES } from '../../src/engine/queue/journal.js';
import { MessageQueue } from '../../src/engine/queue/queue.js';
import { eventually } from '../support/eventually.js';
import { tempDir } from '../support/tmp.js';
import { reply } from '../support/replies.js';

const POLICY = { hostname: 'mail.adatum.com', retrySchedule: [60_000], expireAfter: 3_600_000 };

function message(subject: string, size = 0, to = 'bob@fabrikam.com') {
  return {
    from: 'alice@adatum.com',
    recipients: [to],
    body: Buffer.from(`Subject: ${subject}\r\n\r\n${'x'.repeat(size)}\r\n`),
    receivedAt: new Date(),
    connector: 'c',
    remoteAddress: '127.0.0.1',
  };
}

describe('queue journal', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let queueDir: string;
  const journalDir = () => join(queueDir, 'journal');
  const segmentPath = async () => {
    const [name] = await readdir(journalDir());
    assert.ok(name !== undefined, 'a journal segment');
    return join(journalDir(), name);
  };
  beforeEach(async () => {
    await dir?.remove();
    dir = await tempDir('domsec-journal-');
    queueDir = join(dir.path, 'queue');
  });
  after(() => dir.remove());

  it('drops a record cut short at the end of a segment quietly and keeps everything before it', async () => {
    const queue = await MessageQueue.open(queueDir, memoryLog());
    const [first] = await queue.accept(message('first'));
    const [second] = await queue.accept(message('second'));
    const path = await segmentPath();
    await queue.close();
    // Half of a third record: a crash in the middle of a write that was never acknowledged.
    const whole = await readFile(path);
    await appendFile(path, whole.subarray(0, Math.floor(whole.length / 3)));

    const log = memoryLog();
    const reopened = await MessageQueue.open(queueDir, log);
    assert.deepEqual(
      reopened
        .messages()
        .map((m) => m.id)
        .sort(),
      [first, second].sort(),
    );
    assert.ok(log.entries.some((e) => e.event === 'queue.journal-torn-tail'));
    assert.ok(!log.entries.some((e) => e.event === 'queue.corrupt-journal'));
    assert.deepEqual(await readdir(journalDir()), [], 'the segment is removed after the replay');
    assert.deepEqual(await readdir(join(queueDir, 'corrupt')), []);
    await reopened.close();
  });

  it('skips a damaged record in the middle, keeps the others and moves the segment to corrupt/', async () => {
    const queue = await MessageQueue.open(queueDir, memoryLog());
    await queue.accept(message('damaged'));
    const [kept] = await queue.accept(message('kept'));
    const path = await segmentPath();
    await queue.close();
    const data = await readFile(path);
    const at = data.indexOf('Subject: damaged');
    data[at + 9] = 'D'.charCodeAt(0); // one byte of the body: the CRC no longer matches
    await writeFile(path, data);

    const log = memoryLog();
    const reopened = await MessageQueue.open(queueDir, log);
    assert.deepEqual(
      reopened.messages().map((m) => m.id),
      [kept],
    );
    assert.ok(log.entries.some((e) => e.event === 'queue.corrupt-journal'));
    assert.deepEqual(await readdir(journalDir()), []);
    const corrupt = await readdir(join(queueDir, 'corrupt'));
    assert.equal(corrupt.length, 1);
    assert.match(corrupt[0] ?? '', /^journal-[0-9a-f]{16}\.log\.\d+$/);
    await reopened.close();
  });

  it('does not bring back a delivered entry, nor a moved one twice', async () => {
    const queue = await MessageQueue.open(queueDir, memoryLog());
    const [delivered = ''] = await queue.accept(message('delivered'));
    const [deferred = ''] = await queue.accept(message('deferred'));
    queue.claim([delivered, deferred]);
    await queue.settle(delivered, { delivered: ['bob@fabrikam.com'], failures: [] }, POLICY);
    const failure = {
      recipient: 'bob@fabrikam.com',
      reply: reply('421 4.2.1 Busy'),
      permanent: false,
    };
    await queue.settle(deferred, { delivered: [], failures: [failure] }, POLICY);
    // The deferred one moved to the file store, with its attempt.
    assert.deepEqual(await readdir(join(queueDir, 'control')), [`${deferred}.json`]);
    // Killed: no close (the D record may still be in the page cache, as after a kill -9).
    const reopened = await MessageQueue.open(queueDir, memoryLog());
    assert.deepEqual(
      reopened.messages().map((m) => [m.id, m.attempts, m.lastError]),
      [[deferred, 1, '421 4.2.1 Busy']],
    );
    await reopened.close();
    await queue.close();
  });

  it('moves the idle messages of a rotated-out segment to the file store and removes it', async () => {
    const queue = await MessageQueue.open(queueDir, memoryLog(), Date.now, { rotatedGraceMs: 200 });
    const size = 256 * 1024;
    const count = Math.ceil(SEGMENT_BYTES / size) + 2;
    const ids: string[] = [];
    for (let n = 0; n < count; n += 1) {
      ids.push(...(await queue.accept(message(`m${n}`, size))));
    }
    // The first segment filled up; its messages, still idle after the grace, moved to the files.
    await eventually('the filled segment to go', async () => readdir(journalDir()), {
      until: (segments) => segments.length <= 1,
    });
    assert.equal((await readdir(journalDir())).length, 1, 'only the segment in use is left');
    const moved = await readdir(join(queueDir, 'control'));
    assert.ok(moved.length >= count - 3, `${moved.length} of ${count} moved`);
    assert.equal(queue.messages().length, count);
    // Delivering them all from either place leaves no file and no segment with a live entry.
    queue.claim(ids);
    for (const id of ids)
      await queue.settle(id, { delivered: ['bob@fabrikam.com'], failures: [] }, POLICY);
    assert.deepEqual(await readdir(join(queueDir, 'control')), []);
    assert.deepEqual(await readdir(join(queueDir, 'data')), []);
    await queue.close();
    const reopened = await MessageQueue.open(queueDir, memoryLog());
    assert.deepEqual(reopened.messages(), []);
    await reopened.close();
  });

  it('keeps a segment holding records about an older one until that one is gone', async () => {
    const queue = await MessageQueue.open(queueDir, memoryLog(), Date.now, { rotatedGraceMs: 100 });
    const size = 256 * 1024;
    const perSegment = Math.ceil(SEGMENT_BYTES / size);
    const first: string[] = [];
    for (let n = 0; n < perSegment; n += 1)
      first.push(...(await queue.accept(message(`a${n}`, size))));
    const [held = '', ...idle] = first;
    queue.claim([held]); // in delivery: it keeps the first segment live
    // The idle ones move to the file store; their M records go to the second segment.
    await eventually('the idle messages to move', async () => readdir(join(queueDir, 'control')), {
      until: (moved) => moved.length >= idle.length,
    });
    const deliveredMoved = idle.slice(0, 10);
    queue.claim(deliveredMoved);
    for (const id of deliveredMoved)
      await queue.settle(id, { delivered: ['bob@fabrikam.com'], failures: [] }, POLICY);
    // The second segment fills with mail delivered at once, and rotates out with nothing live.
    for (let n = 0; n < perSegment; n += 1) {
      const [id = ''] = await queue.accept(message(`b${n}`, size));
      queue.claim([id]);
      await queue.settle(id, { delivered: ['bob@fabrikam.com'], failures: [] }, POLICY);
    }
    assert.ok((await readdir(journalDir())).length >= 3, 'the second segment outlives the first');

    // Killed now: the replay must still see the M records, or moved mail would come back.
    const reopened = await MessageQueue.open(queueDir, memoryLog());
    const ids = new Set(reopened.messages().map((m) => m.id));
    assert.equal(ids.size, 1 + idle.length - deliveredMoved.length);
    for (const id of deliveredMoved) assert.ok(!ids.has(id), `${id} was delivered`);
    assert.ok(ids.has(held));
    await reopened.close();
    await queue.close();
  });
});
