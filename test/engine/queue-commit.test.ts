// The commit protocol of an accept: the message is appended to the journal and synced (one sync
// for all that arrived meanwhile) before accept resolves; reopening moves it to the file store.
// A kill -9 in the middle of many concurrent accepts loses none that resolved and leaves no record
// without its body; a failed write leaves nothing behind, and a failed move loses nothing.
import assert from 'node:assert/strict';
import { readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, beforeEach, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { memoryLog } from '../../src/engine/log.js';
import { MessageQueue } from '../../src/engine/queue/queue.js';
import { runUntilKilled } from '../support/killed-script.js';
import { tempDir } from '../support/tmp.js';
import { reply } from '../support/replies.js';

describe('MessageQueue commit', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  beforeEach(async () => {
    await dir?.remove();
    dir = await tempDir('domsec-queue-commit-');
  });
  after(() => dir.remove());

  it('recovers every accept that resolved when killed with SIGKILL amid concurrent accepts', async () => {
    const queueDir = join(dir.path, 'queue');
    const module = fileURLToPath(new URL('../../src/engine/queue/queue.ts', import.meta.url));
    // 64 accepts in flight at once, two next-hop domains each; the process kills itself as soon
    // as the 16th resolves, so the others die anywhere between staging and renaming.
    const script = `
      const { MessageQueue } = await import(${JSON.stringify(module)});
      const queue = await MessageQueue.open(${JSON.stringify(queueDir)}, { log() {} });
      let resolved = 0;
      for (let n = 0; n < 64; n += 1) {
        queue.accept({ from: 'a@adatum.com', recipients: ['b@fabrikam.com', 'c@contoso.com'],
          body: Buffer.alloc(64 * 1024, 0x61 + (n % 26)), receivedAt: new Date(),
          connector: 'c', remoteAddress: '127.0.0.1' }).then((ids) => {
            resolved += 1;
            const last = resolved === 16;
            process.stdout.write(ids.join(',') + '\\n', () => { if (last) process.kill(process.pid, 'SIGKILL'); });
          });
      }`;
    const output = await runUntilKilled(script);
    const acknowledged = output.split('\n').flatMap((line) => (line === '' ? [] : line.split(',')));
    assert.ok(acknowledged.length >= 32, `at least 16 accepts answered: ${output}`);

    const log = memoryLog();
    const queue = await MessageQueue.open(queueDir, log);
    const recovered = new Set(queue.messages().map((m) => m.id));
    for (const id of acknowledged) assert.ok(recovered.has(id), `acknowledged ${id} was lost`);
    // A message is recovered whole or not at all: both its records, and its full body.
    const messages = new Map<string, number>();
    for (const id of recovered) {
      const [message = ''] = id.split('.');
      messages.set(message, (messages.get(message) ?? 0) + 1);
    }
    assert.deepEqual(
      [...messages.values()].filter((count) => count !== 2),
      [],
    );
    assert.ok(
      !log.entries.some((e) => e.event === 'queue.corrupt-control'),
      'no record without its body',
    );
    assert.deepEqual(await readdir(join(queueDir, 'corrupt')), []);
    assert.deepEqual(
      (await readdir(join(queueDir, 'control'))).filter((name) => !name.endsWith('.json')),
      [],
    );
    assert.equal((await readdir(join(queueDir, 'data'))).length, messages.size);
    for (const message of messages.keys()) {
      const claimed = queue.claim([`${message}.1`])[0];
      assert.equal((await claimed?.body())?.length, 64 * 1024);
    }
    await queue.close();
  });

  it('acknowledges nothing and leaves nothing when the journal cannot be written', async () => {
    const queueDir = join(dir.path, 'queue');
    const queue = await MessageQueue.open(queueDir, memoryLog());
    // journal/ becomes a file: creating the first segment fails.
    await rm(join(queueDir, 'journal'), { recursive: true });
    await writeFile(join(queueDir, 'journal'), 'not a directory');
    await assert.rejects(queue.accept(message()), { code: 'ENOTDIR' });
    assert.deepEqual(await readdir(join(queueDir, 'data')), []);
    assert.deepEqual(queue.messages(), []);
    await queue.close();
  });

  it('keeps a message in the journal when moving it to the file store fails', async () => {
    const queueDir = join(dir.path, 'queue');
    const queue = await MessageQueue.open(queueDir, memoryLog());
    const [id = ''] = await queue.accept(message());
    // control/ becomes a file: the deferral's move cannot stage the record.
    await rm(join(queueDir, 'control'), { recursive: true });
    await writeFile(join(queueDir, 'control'), 'not a directory');
    queue.claim([id]);
    const deferral = {
      delivered: [],
      failures: [
        {
          recipient: 'b@fabrikam.com',
          reply: reply('421 4.2.1 Unable to connect'),
          permanent: false,
        },
      ],
    };
    const policy = { hostname: 'mail.adatum.com', retrySchedule: [60_000], expireAfter: 3_600_000 };
    await assert.rejects(queue.settle(id, deferral, policy), { code: 'ENOTDIR' });
    assert.deepEqual(await readdir(join(queueDir, 'data')), [], 'the half-made move is taken back');
    await queue.close();

    await rm(join(queueDir, 'control'));
    const reopened = await MessageQueue.open(queueDir, memoryLog());
    assert.deepEqual(
      reopened.messages().map((m) => [m.id, m.attempts]),
      [[id, 0]],
    );
    assert.equal((await reopened.claim([id])[0]?.body())?.toString(), 'Subject: x\r\n\r\nx\r\n');
    await reopened.close();
  });
});

function message() {
  return {
    from: 'a@adatum.com',
    recipients: ['b@fabrikam.com'],
    body: Buffer.from('Subject: x\r\n\r\nx\r\n'),
    receivedAt: new Date(),
    connector: 'c',
    remoteAddress: '127.0.0.1',
  };
}
