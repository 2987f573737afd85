// A receive worker that dies just as the queue removes one of its spent segments: the queue
// reads the dead worker's segments again (writerGone) while that removal is under way. The
// message the worker made durable in its next segment and never told must be found, and only
// it: the messages of the spent segment were delivered and must not come back, whatever the
// interleaving.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { memoryLog } from '../../src/engine/log.js';
import { DirectorySyncs } from '../../src/engine/queue/directory-syncs.js';
import { Journal, WorkerJournal, type JournalLocation } from '../../src/engine/queue/journal.js';
import { recordsForMessage } from '../../src/engine/queue/queue.js';
import { MessageIds, type ControlRecord } from '../../src/engine/queue/record.js';
import { tempDir, type TempDir } from '../support/tmp.js';

const ROUNDS = 200;

interface Accepted {
  message: string;
  records: ControlRecord[];
  location: JournalLocation;
}

async function accept(journal: WorkerJournal, ids: MessageIds, n: number): Promise<Accepted> {
  const body = Buffer.from(`Subject: ${n}\r\n\r\n${'x'.repeat(200)}\r\n`);
  const message = ids.next(Date.now());
  const records = recordsForMessage(
    message,
    {
      from: 'alice@adatum.com',
      recipients: ['bob@treyresearch.net'],
      receivedAt: new Date(),
      connector: 'from-partners',
      remoteAddress: '127.0.0.1',
    },
    body.length,
    Date.now(),
  );
  return { message, records, location: await journal.accept(message, records, body) };
}

describe('a worker gone while its spent segment is being removed', () => {
  const dirs: TempDir[] = [];
  after(() => Promise.all(dirs.map((dir) => dir.remove())));

  it(
    `finds the message it never told in its next segment, in each of ${ROUNDS} rounds`,
    {
      timeout: 60_000,
    },
    async (t) => {
      const failures: string[] = [];
      // Two messages fill a worker segment: the first two seal it, the third opens the next.
      const probe = await tempDir('domsec-attack-race-');
      dirs.push(probe);
      const measuring = new WorkerJournal(probe.path, 'w1', new DirectorySyncs());
      const one = await accept(measuring, new MessageIds(), 0);
      await measuring.close();
      const segmentBytes = Math.ceil((one.location.offset + one.location.length) * 1.5);
      for (let round = 0; round < ROUNDS; round += 1) {
        const dir = await tempDir('domsec-attack-race-');
        dirs.push(dir);
        const directory = join(dir.path, 'journal');
        const syncs = new DirectorySyncs();
        const { journal } = await Journal.replay(directory, memoryLog(), syncs, {
          segmentBytes: 4_096,
        });
        const worker = new WorkerJournal(directory, 'w1', syncs, segmentBytes);
        const sealed: { id: string; messages: number }[] = [];
        worker.onSeal = (id, messages) => sealed.push({ id, messages });
        const ids = new MessageIds();
        const told = [await accept(worker, ids, 1), await accept(worker, ids, 2)];
        const untold = await accept(worker, ids, 3);
        assert.equal(sealed.length, 1, 'the first segment sealed');
        assert.notEqual(untold.location.segment, told[0]?.location.segment);
        for (const message of told)
          journal.adopt(message.message, message.location, message.records.length);
        const first = sealed[0];
        assert.ok(first !== undefined);
        journal.seal(first.id, first.messages);
        // The last delivery settles: the sealed segment is spent and goes, and the worker dies.
        for (const message of told)
          for (const record of message.records) journal.done(record.id, message.location.segment);
        const outcome = await journal.writerGone('w1').then(
          (found) => found.map((held) => held.message).join(','),
          (error: Error) => `failed: ${error.message}`,
        );
        if (outcome !== untold.message) failures.push(`round ${round}: ${outcome}`);
        await worker.close();
        await journal.close();
      }
      t.diagnostic(`figures ${JSON.stringify({ rounds: ROUNDS, failed: failures.length })}`);
      assert.deepEqual(failures, []);
    },
  );
});
