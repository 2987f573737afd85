// The queue's journal shared with receive workers: each worker appends to segments of its own, the
// queue adopts their messages, settles them in its own segments and removes a worker's segment
// once it is sealed and spent; a reopened queue recovers every segment of every writer.
import assert from 'node:assert/strict';
import { appendFile, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import fc from 'fast-check';
import { memoryLog } from '../../../src/engine/log.js';
import { WorkerJournal, type JournalLocation } from '../../../src/engine/queue/journal.js';
import { DirectorySyncs } from '../../../src/engine/queue/directory-syncs.js';
import { MessageQueue, recordsForMessage } from '../../../src/engine/queue/queue.js';
import { MessageIds, type ControlRecord } from '../../../src/engine/queue/record.js';
import { QueueStore } from '../../../src/engine/queue/store.js';
import { reply } from '../../support/replies.js';
import { tempDir, type TempDir } from '../../support/tmp.js';

const POLICY = { hostname: 'mail.adatum.com', retrySchedule: [60_000], expireAfter: 3_600_000 };
/** Small segments: a few messages each, so that rotation and retirement happen all the time. */
const QUEUE_SEGMENT_BYTES = 900;
const WORKER_SEGMENT_BYTES = 1_200;
/** For the interleavings: the queue's segments hold two or three D records, a worker's a few A. */
const SMALL_QUEUE_SEGMENT_BYTES = 200;
const LARGE_WORKER_SEGMENT_BYTES = 2_500;

interface Accepted {
  message: string;
  records: ControlRecord[];
  location: JournalLocation;
  body: Buffer;
}

/** What a receive worker does with a message: its records, then one durable append. */
async function acceptInWorker(
  journal: WorkerJournal,
  ids: MessageIds,
  subject: string,
  size: number,
  recipients: string[],
): Promise<Accepted> {
  const body = Buffer.from(`Subject: ${subject}\r\n\r\n${'x'.repeat(size)}\r\n`);
  const message = ids.next(Date.now());
  const envelope = {
    from: 'alice@adatum.com',
    recipients,
    receivedAt: new Date(),
    connector: 'c',
    remoteAddress: '127.0.0.1',
  };
  const records = recordsForMessage(message, envelope, body.length, Date.now());
  const location = await journal.accept(message, records, body);
  return { message, records, location, body };
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function segments(queueDir: string): Promise<string[]> {
  return (await readdir(join(queueDir, 'journal'))).sort();
}

describe('journal segments of receive workers', () => {
  const dirs: TempDir[] = [];
  after(() => Promise.all(dirs.map((dir) => dir.remove())));
  const newQueueDir = async () => {
    const dir = await tempDir('domsec-writers-');
    dirs.push(dir);
    return join(dir.path, 'queue');
  };

  it('names a worker segment after its writer and refuses a writer name that is no name', async () => {
    const queueDir = await newQueueDir();
    const queue = await MessageQueue.open(queueDir, memoryLog());
    const journal = new WorkerJournal(join(queueDir, 'journal'), 'w1', new DirectorySyncs());
    const accepted = await acceptInWorker(journal, new MessageIds(), 'one', 10, [
      'bob@fabrikam.com',
    ]);
    assert.match(accepted.location.segment, /^w1\.[0-9a-f]{16}$/);
    assert.deepEqual(await segments(queueDir), [`${accepted.location.segment}.log`]);
    for (const bad of ['', 'W1', '../x', 'w.1', 'a'.repeat(17)])
      assert.throws(() => new WorkerJournal(join(queueDir, 'journal'), bad, new DirectorySyncs()));
    await journal.close();
    await queue.close();
  });

  it('delivers an adopted message from the worker segment and removes the segment once it is sealed and spent', async () => {
    const queueDir = await newQueueDir();
    const queue = await MessageQueue.open(queueDir, memoryLog(), Date.now, {
      segmentBytes: QUEUE_SEGMENT_BYTES,
    });
    const journal = new WorkerJournal(
      join(queueDir, 'journal'),
      'w1',
      new DirectorySyncs(),
      WORKER_SEGMENT_BYTES,
    );
    const sealed: [string, number][] = [];
    journal.onSeal = (segment, messages) => sealed.push([segment, messages]);
    const ids = new MessageIds();
    const accepted: Accepted[] = [];
    for (let n = 0; n < 12; n += 1) {
      const one = await acceptInWorker(journal, ids, `m${n}`, 200, ['bob@fabrikam.com']);
      assert.equal(queue.adopt(one.message, one.records, one.location), true);
      assert.equal(queue.adopt(one.message, one.records, one.location), false, 'told twice');
      accepted.push(one);
    }
    for (const [segment, messages] of sealed) queue.seal(segment, messages);
    assert.ok(sealed.length >= 2, `${sealed.length} segments sealed`);
    const claimed = queue.claim(accepted.map((one) => one.records[0]?.id ?? ''));
    assert.equal(claimed.length, accepted.length);
    for (const [n, outbound] of claimed.entries())
      assert.deepEqual(await outbound.body(), accepted[n]?.body);
    for (const outbound of claimed)
      await queue.settle(outbound.id, { delivered: ['bob@fabrikam.com'], failures: [] }, POLICY);
    await pause(50);
    const left = await segments(queueDir);
    for (const [segment] of sealed)
      assert.ok(!left.includes(`${segment}.log`), `${segment} is gone`);
    await journal.close();
    await queue.close();
    const reopened = await MessageQueue.open(queueDir, memoryLog());
    assert.deepEqual(reopened.messages(), [], 'nothing delivered comes back');
    await reopened.close();
  });

  it('adopts what a worker that is gone made durable but never told, and ignores its torn tail', async () => {
    const queueDir = await newQueueDir();
    const log = memoryLog();
    const queue = await MessageQueue.open(queueDir, log);
    const journal = new WorkerJournal(
      join(queueDir, 'journal'),
      'w3',
      new DirectorySyncs(),
      WORKER_SEGMENT_BYTES,
    );
    const ids = new MessageIds();
    const accepted: Accepted[] = [];
    for (let n = 0; n < 5; n += 1)
      accepted.push(await acceptInWorker(journal, ids, `m${n}`, 100, ['bob@fabrikam.com']));
    for (const one of accepted.slice(0, 2)) queue.adopt(one.message, one.records, one.location);
    // Killed in the middle of a write it never acknowledged.
    const last = accepted.at(-1)?.location.segment ?? '';
    const path = join(queueDir, 'journal', `${last}.log`);
    const whole = await readFile(path);
    await appendFile(path, whole.subarray(0, 40));

    assert.equal(await queue.writerGone('w3'), 3);
    assert.equal(await queue.writerGone('w3'), 0, 'a second look finds nothing new');
    // Each told as received, whether the worker told it or it was found again.
    assert.equal(log.entries.filter((e) => e.event === 'queue.accepted').length, 5);
    const queued = queue
      .messages()
      .map((m) => m.id)
      .sort();
    assert.deepEqual(queued, accepted.map((one) => one.records[0]?.id).sort());
    const claimed = queue.claim(queued);
    for (const outbound of claimed) {
      const one = accepted.find((candidate) => candidate.records[0]?.id === outbound.id);
      assert.deepEqual(await outbound.body(), one?.body);
      await queue.settle(outbound.id, { delivered: ['bob@fabrikam.com'], failures: [] }, POLICY);
    }
    await pause(50);
    assert.ok(
      !(await segments(queueDir)).some((name) => name.startsWith('w3.')),
      'the gone worker segments are removed once spent',
    );
    await journal.close();
    await queue.close();
  });

  it('adopts a large message a worker that is gone committed to the file store and never told', async () => {
    const queueDir = await newQueueDir();
    const queue = await MessageQueue.open(queueDir, memoryLog());
    const store = new QueueStore(queueDir);
    const told = await acceptInWorker(
      new WorkerJournal(join(queueDir, 'journal'), 'w4', new DirectorySyncs()),
      new MessageIds(),
      'told',
      10,
      ['bob@fabrikam.com'],
    );
    queue.adopt(told.message, told.records, told.location);
    // As the worker commits a large message: its body, then its records, in the file store.
    const message = new MessageIds().next(Date.now());
    const body = Buffer.from('Subject: large\r\n\r\nbody\r\n');
    const envelope = {
      from: 'alice@adatum.com',
      recipients: ['bob@fabrikam.com', 'carol@contoso.com'],
      receivedAt: new Date(),
      connector: 'c',
      remoteAddress: '127.0.0.1',
    };
    const records = recordsForMessage(message, envelope, body.length, Date.now());
    await store.commit(message, body, records);
    assert.equal(await queue.writerGone('w4'), 1);
    assert.equal(await queue.writerGone('w4'), 0, 'a second look finds nothing new');
    const queued = queue
      .messages()
      .map((m) => m.id)
      .sort();
    assert.deepEqual(
      queued,
      [...records.map((r) => r.id), ...told.records.map((r) => r.id)].sort(),
    );
    const [outbound] = queue.claim([records[0]?.id ?? '']);
    assert.deepEqual(await outbound?.body(), body);
    await queue.close();
  });

  it('recovers every acknowledged entry and none that was delivered, whatever the interleaving of writers, settlements and deaths', async () => {
    type Op =
      | { kind: 'accept'; writer: number; size: number; told: boolean; domains: number }
      | { kind: 'deliver'; pick: number }
      | { kind: 'defer'; pick: number }
      | { kind: 'gone'; writer: number };
    const op: fc.Arbitrary<Op> = fc.oneof(
      {
        weight: 5,
        arbitrary: fc.record({
          kind: fc.constant('accept' as const),
          writer: fc.nat(2),
          size: fc.nat(400),
          told: fc.boolean(),
          domains: fc.integer({ min: 1, max: 2 }),
        }),
      },
      {
        weight: 4,
        arbitrary: fc.record({ kind: fc.constant('deliver' as const), pick: fc.nat() }),
      },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('defer' as const), pick: fc.nat() }) },
      {
        weight: 1,
        arbitrary: fc.record({ kind: fc.constant('gone' as const), writer: fc.nat(2) }),
      },
    );
    await fc.assert(
      fc.asyncProperty(
        fc.array(op, { minLength: 1, maxLength: 40 }),
        fc.option(fc.record({ writer: fc.nat(2), bytes: fc.integer({ min: 1, max: 200 }) })),
        async (ops, torn) => {
          const queueDir = await newQueueDir();
          const journalDir = join(queueDir, 'journal');
          const queue = await MessageQueue.open(queueDir, memoryLog(), Date.now, {
            segmentBytes: SMALL_QUEUE_SEGMENT_BYTES,
            rotatedGraceMs: 60_000,
          });
          const ids = new MessageIds();
          let generation = 0;
          interface Writer {
            name: string;
            journal: WorkerJournal;
            /** Its channel broke (a notice was lost): it tells nothing more until it is gone. */
            cut: boolean;
            untold: string[];
          }
          const startWriter = (): Writer => {
            generation += 1;
            const writer: Writer = {
              name: `w${generation}`,
              journal: new WorkerJournal(
                journalDir,
                `w${generation}`,
                new DirectorySyncs(),
                LARGE_WORKER_SEGMENT_BYTES,
              ),
              cut: false,
              untold: [],
            };
            // Told at once, before the notices of the batch's messages (the order a worker's
            // notices may take): the segment must wait for them.
            writer.journal.onSeal = (segment, messages) => {
              if (!writer.cut) queue.seal(segment, messages);
            };
            return writer;
          };
          const writers = [startWriter(), startWriter(), startWriter()];
          const old: WorkerJournal[] = [];
          /** Entry id -> its body: every acknowledged entry not delivered. */
          const live = new Map<string, Buffer>();
          const known = new Set<string>();
          const domains = ['fabrikam.com', 'contoso.com'];
          try {
            for (const step of ops) {
              if (step.kind === 'accept') {
                const writer = writers[step.writer] as Writer;
                const recipients = domains.slice(0, step.domains).map((d) => `bob@${d}`);
                const one = await acceptInWorker(writer.journal, ids, 's', step.size, recipients);
                for (const record of one.records) live.set(record.id, one.body);
                if (!step.told) writer.cut = true;
                if (writer.cut) {
                  for (const record of one.records) writer.untold.push(record.id);
                } else {
                  queue.adopt(one.message, one.records, one.location);
                  for (const record of one.records) known.add(record.id);
                }
              } else if (step.kind === 'gone') {
                const writer = writers[step.writer] as Writer;
                await queue.writerGone(writer.name);
                for (const id of writer.untold) known.add(id);
                old.push(writer.journal);
                writers[step.writer] = startWriter();
              } else {
                const idle = queue.due().filter((entry) => known.has(entry.id));
                const chosen = idle[step.pick % Math.max(idle.length, 1)];
                if (chosen === undefined) continue;
                const [outbound] = queue.claim([chosen.id]);
                assert.ok(outbound !== undefined);
                assert.deepEqual(await outbound.body(), live.get(chosen.id));
                const recipient = outbound.recipients[0] ?? '';
                if (step.kind === 'deliver') {
                  await queue.settle(chosen.id, { delivered: [recipient], failures: [] }, POLICY);
                  live.delete(chosen.id);
                } else {
                  const failure = { recipient, reply: reply('421 4.2.1 Busy'), permanent: false };
                  await queue.settle(chosen.id, { delivered: [], failures: [failure] }, POLICY);
                }
              }
            }
            // Killed: let what was started reach the disk (as the page cache would keep it).
            await pause(20);
            await queue.close();
            for (const writer of writers) await writer.journal.close();
            for (const journal of old) await journal.close();
            await pause(20);
            if (torn !== null) {
              const prefix = `${writers[torn.writer]?.name ?? ''}.`;
              const names = (await segments(queueDir)).filter((name) => name.startsWith(prefix));
              const last = names.at(-1);
              if (last !== undefined) {
                const path = join(journalDir, last);
                const data = await readFile(path);
                if (data.length > 0) await appendFile(path, data.subarray(0, torn.bytes));
              }
            }
            const log = memoryLog();
            const reopened = await MessageQueue.open(queueDir, log);
            try {
              const recovered = reopened
                .messages()
                .map((m) => m.id)
                .sort();
              assert.deepEqual(recovered, [...live.keys()].sort());
              for (const outbound of reopened.claim(recovered))
                assert.deepEqual(await outbound.body(), live.get(outbound.id));
              assert.ok(!log.entries.some((e) => e.event === 'queue.corrupt-journal'));
              assert.deepEqual(await segments(queueDir), [], 'every segment was replayed');
            } finally {
              await reopened.close();
            }
          } finally {
            await queue.close();
            for (const writer of writers) await writer.journal.close();
          }
        },
      ),
      { numRuns: 100, includeErrorInReport: true },
    );
  });
});
