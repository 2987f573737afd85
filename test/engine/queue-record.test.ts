// Control records read back at open (record.ts's check, store.ts's recovery): a record that is
// damaged in any way is quarantined with a log line, the queue still opens, and the message file
// is never lost (moved to corrupt/ beside the record, or copied there while an intact record of
// the same message still needs it). Hostile records are generated with fast-check.
import assert from 'node:assert/strict';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { memoryLog } from '../../src/engine/log.js';
import type { IncomingMessage } from '../../src/engine/message-sink.js';
import { MessageQueue } from '../../src/engine/queue/queue.js';
import { checkControlRecord } from '../../src/engine/queue/record.js';
import { tempDir, type TempDir } from '../support/tmp.js';

const T0 = Date.parse('2026-11-02T10:00:00Z');
const BODY = Buffer.from('From: alice@adatum.com\r\nSubject: kept\r\n\r\nThe body.\r\n');

function incoming(recipients: string[]): IncomingMessage {
  return {
    from: 'alice@adatum.com',
    recipients,
    body: BODY,
    receivedAt: new Date(T0),
    connector: 'from-partners',
    remoteAddress: '127.0.0.1',
  };
}

/** A queue whose one message (to the given recipients) is in the file store: ids and the files. */
async function storedMessage(queueDir: string, recipients: string[]) {
  const first = await MessageQueue.open(queueDir, memoryLog(), () => T0);
  const ids = await first.accept(incoming(recipients));
  await first.close();
  // Reopened: the journal is replayed into data/ and control/.
  await (await MessageQueue.open(queueDir, memoryLog(), () => T0)).close();
  const message = ids[0]?.split('.')[0] ?? '';
  return { ids, message, body: join(queueDir, 'data', `${message}.eml`) };
}

async function corruptFiles(queueDir: string): Promise<string[]> {
  return (await readdir(join(queueDir, 'corrupt')))
    .map((name) => name.replace(/\.\d+$/, ''))
    .sort();
}

describe('control records read back', () => {
  let dir: TempDir;
  let n = 0;
  const fresh = () => join(dir.path, `queue-${(n += 1)}`);
  before(async () => (dir = await tempDir('domsec-record-')));
  after(() => dir.remove());

  it('moves the body of a message whose only record does not parse to corrupt/ with it, never removing it', async () => {
    const queueDir = fresh();
    const { ids, message, body } = await storedMessage(queueDir, ['bob@fabrikam.com']);
    const record = join(queueDir, 'control', `${ids[0]}.json`);
    const text = await readFile(record, 'utf8');
    await writeFile(record, text.slice(0, text.length / 2));
    const log = memoryLog();
    const queue = await MessageQueue.open(queueDir, log, () => T0);
    assert.deepEqual(queue.messages(), []);
    await queue.close();
    assert.deepEqual(await readdir(join(queueDir, 'data')), []);
    assert.deepEqual(await corruptFiles(queueDir), [`${ids[0]}.json`, `${message}.eml`].sort());
    const kept = (await readdir(join(queueDir, 'corrupt'))).find((f) => f.includes('.eml'));
    assert.deepEqual(await readFile(join(queueDir, 'corrupt', kept ?? '')), BODY);
    assert.ok(!log.entries.some((e) => e.event === 'queue.orphan-removed'));
    const line = log.entries.find((e) => e.event === 'queue.corrupt-body');
    assert.equal(line?.level, 'error');
    assert.ok(body.endsWith(`${message}.eml`));
  });

  it('keeps the body for the intact record of the same message and copies it to corrupt/ for the damaged one', async () => {
    const queueDir = fresh();
    const { ids, message, body } = await storedMessage(queueDir, [
      'bob@fabrikam.com',
      'carol@treyresearch.net',
    ]);
    assert.equal(ids.length, 2);
    const damaged = join(queueDir, 'control', `${ids[1]}.json`);
    const record = JSON.parse(await readFile(damaged, 'utf8')) as Record<string, unknown>;
    await writeFile(damaged, JSON.stringify({ ...record, version: 2 }));
    const log = memoryLog();
    const queue = await MessageQueue.open(queueDir, log, () => T0);
    assert.deepEqual(
      queue.messages().map((m) => m.id),
      [ids[0]],
    );
    const [claimed] = queue.claim([ids[0] ?? '']);
    assert.deepEqual(await claimed?.body(), BODY);
    await queue.close();
    assert.deepEqual(await readFile(body), BODY);
    assert.deepEqual(await corruptFiles(queueDir), [`${ids[1]}.json`, `${message}.eml`].sort());
    const line = log.entries.find((e) => e.event === 'queue.corrupt-control');
    assert.match(String(line?.fields.reason), /unknown version 2/);
  });

  it('quarantines a record that cannot be read at all (a directory in its place) and still opens', async () => {
    const queueDir = fresh();
    const { ids, message } = await storedMessage(queueDir, ['bob@fabrikam.com']);
    const record = join(queueDir, 'control', `${ids[0]}.json`);
    await rm(record);
    await mkdir(record);
    const log = memoryLog();
    const queue = await MessageQueue.open(queueDir, log, () => T0);
    assert.deepEqual(queue.messages(), []);
    await queue.close();
    const line = log.entries.find((e) => e.event === 'queue.corrupt-control');
    assert.match(String(line?.fields.reason), /^unreadable: EISDIR/);
    assert.deepEqual(await corruptFiles(queueDir), [`${ids[0]}.json`, `${message}.eml`].sort());
  });

  it('opens whatever a record holds, keeping it or quarantining it, and never loses the body', async () => {
    const queueDir = fresh();
    const { ids, message } = await storedMessage(queueDir, ['bob@fabrikam.com']);
    const recordPath = join(queueDir, 'control', `${ids[0]}.json`);
    const original = JSON.parse(await readFile(recordPath, 'utf8')) as Record<string, unknown>;
    const fields = Object.keys(original);
    const damage = fc.oneof(
      // A field replaced by any JSON value, or removed.
      fc
        .record({
          field: fc.constantFrom(...fields),
          value: fc.option(fc.jsonValue(), { nil: undefined }),
        })
        .map(({ field, value }) => JSON.stringify({ ...original, [field]: value })),
      // The text cut anywhere, or bytes of anything.
      fc
        .nat()
        .map((cut) => JSON.stringify(original).slice(0, cut % JSON.stringify(original).length)),
      fc.uint8Array({ maxLength: 200 }).map((bytes) => Buffer.from(bytes).toString('latin1')),
      fc.jsonValue().map((value) => JSON.stringify(value)),
    );
    const pristine = await readFile(recordPath);
    const body = await readFile(join(queueDir, 'data', `${message}.eml`));
    await fc.assert(
      fc.asyncProperty(damage, async (text) => {
        await rm(join(queueDir, 'corrupt'), { recursive: true, force: true });
        await mkdir(join(queueDir, 'corrupt'));
        await writeFile(join(queueDir, 'data', `${message}.eml`), body);
        await writeFile(recordPath, text);
        const queue = await MessageQueue.open(queueDir, memoryLog(), () => T0);
        const kept = queue.messages().length === 1;
        await queue.close();
        const corrupt = await corruptFiles(queueDir);
        if (kept) {
          // What passed the check is a whole record for the body it names.
          assert.deepEqual(corrupt, []);
          assert.deepEqual(await readdir(join(queueDir, 'data')), [`${message}.eml`]);
          assert.equal(typeof checkControlRecord(JSON.parse(text), ids[0] ?? ''), 'object');
        } else {
          assert.deepEqual(corrupt, [`${ids[0]}.json`, `${message}.eml`].sort());
          assert.deepEqual(await readdir(join(queueDir, 'data')), []);
        }
        await writeFile(recordPath, pristine);
      }),
      { numRuns: 40 },
    );
  });

  it('the check never throws, whatever value it is given', () => {
    fc.assert(
      fc.property(fc.anything(), fc.string(), (value, id) => {
        const result = checkControlRecord(value, id);
        assert.ok(typeof result === 'string' || typeof result === 'object');
      }),
      { numRuns: 3_000 },
    );
  });
});
