// Disk full and an unwritable queue: a real engine on a small tmpfs answers 452 4.3.1 instead of
// accepting mail it cannot keep (after one failure already at MAIL FROM), leaves nothing
// half-written behind, and accepts again once space (or write access) is back. Needs root for
// mount(8), as CI runs.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, open, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, describe, it } from 'node:test';
import { memoryLog } from '../../src/engine/log.js';
import { StorageGuard } from '../../src/engine/queue/storage-guard.js';
import { startEngine, eventually, type RunningEngine } from '../support/engine.js';
import { LineClient } from '../support/line-client.js';
import { freePort } from '../support/ports.js';
import { receiveConnector, runtimeConfig } from '../support/runtime-config.js';
import { submit, type SubmitOutcome } from '../support/smtp-submit.js';
import { tempDir } from '../support/tmp.js';
import { deliveredIds } from '../reliability/partner-lab.js';

const run = promisify(execFile);

/** How long the engine may take to see storage come back: its check holds ~1 s, margin for CI. */
const RECOVERY_MS = 10_000;

async function mount(target: string, options: string): Promise<void> {
  await run('mount', ['-t', 'tmpfs', '-o', options, 'tmpfs', target]);
}

async function unmount(target: string): Promise<void> {
  await run('umount', [target]).catch(() => run('umount', ['-l', target]));
}

/** Fills the file system holding `dir` with one file until ENOSPC; returns the file. */
async function fill(dir: string): Promise<string> {
  const path = join(dir, 'filler');
  const handle = await open(path, 'w');
  const chunk = Buffer.alloc(16 * 1024, 0x61);
  try {
    for (;;) await handle.write(chunk);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOSPC') throw error;
  } finally {
    await handle.close();
  }
  // Whatever page is left: fill it byte by byte-ish.
  const rest = await open(path, 'a');
  try {
    for (;;) await rest.write(Buffer.alloc(512, 0x61));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOSPC') throw error;
  } finally {
    await rest.close();
  }
  return path;
}

function message(id: string): string {
  return `Subject: ${id}\r\nX-Test-Id: ${id}\r\n\r\n${'0123456789abcdef'.repeat(2048)}\r\n`;
}

describe('storage failures', () => {
  const cleanup: (() => Promise<void>)[] = [];
  after(async () => {
    for (const step of cleanup.reverse()) await step().catch(() => undefined);
  });

  /** An engine on `state` with a plaintext connector for fabrikam.com's mail to treyresearch.net. */
  async function engineOn(state: string): Promise<{
    running: RunningEngine;
    port: number;
    send: (id: string) => Promise<SubmitOutcome>;
  }> {
    const running = await startEngine(state);
    cleanup.push(() => running.stop());
    const port = await freePort();
    await running.client.apply(
      runtimeConfig({
        receiveConnectors: [
          receiveConnector('open', {
            bindings: [`127.0.0.1:${port}`],
            domainSecure: false,
            requireTls: false,
          }),
        ],
      }),
    );
    const send = (id: string) =>
      submit(
        port,
        { from: 'someone@fabrikam.com', to: ['user@treyresearch.net'] },
        { plaintext: true, serverCa: '', name: 'mail.fabrikam.com' },
        message(id),
      );
    return { running, port, send };
  }

  async function queueCounts(queue: string): Promise<{ control: number; data: number }> {
    return {
      control: (await readdir(join(queue, 'control'))).length,
      data: (await readdir(join(queue, 'data'))).length,
    };
  }

  it('answers 452 4.3.1 on a full disk, keeps nothing of the refused message, and accepts once space is freed', async () => {
    const work = await tempDir('domsec-disk-');
    cleanup.push(work.remove);
    const state = join(work.path, 'state');
    await mkdir(state);
    await mount(state, 'size=2m,mode=0700');
    cleanup.push(() => unmount(state));
    const { running, send } = await engineOn(state);
    const mail = join(state, 'mail');

    assert.equal((await send('before')).code, 250);
    await eventually('the first message in its Maildir', async () =>
      (await deliveredIds(mail)).has('before') ? true : undefined,
    );
    const filler = await fill(state);
    const queue = join(state, 'queue');
    const before = await queueCounts(queue);
    const full = await send('while-full');
    assert.equal(full.code, 452, full.response);
    assert.match(full.response, /^452 4\.3\.1 Insufficient system storage/);
    assert.deepEqual(await queueCounts(queue), before, 'no body or record of the refused message');
    assert.ok(
      running.log.entries.some(
        (e) => e.event === 'receive.queue-failed' && e.fields.reply === '452 4.3.1',
      ),
    );

    await rm(filler);
    // Refused at MAIL FROM until the engine has seen the space come back (a bounded wait).
    const after = await eventually(
      'MAIL FROM accepted again',
      async () => {
        const outcome = await send('after');
        if (outcome.code === 250) return outcome;
        assert.match(outcome.response, /^452 4\.3\.1 /);
        return undefined;
      },
      RECOVERY_MS,
    );
    assert.equal(after.code, 250, after.response);
    const delivered = await eventually('the message accepted after space came back', async () => {
      const ids = await deliveredIds(mail);
      return ids.has('after') ? ids : undefined;
    });
    assert.equal(delivered.has('while-full'), false);
  });

  it('answers 452 4.3.1 while the queue directory is read-only, never 250, and accepts again when it is writable', async () => {
    const work = await tempDir('domsec-ro-');
    cleanup.push(work.remove);
    const state = join(work.path, 'state');
    const queue = join(state, 'queue');
    await mkdir(queue, { recursive: true });
    await mount(queue, 'size=4m,mode=0700');
    cleanup.push(() => unmount(queue));
    const { send } = await engineOn(state);

    await run('mount', ['-o', 'remount,ro', queue]);
    for (const id of ['read-only-1', 'read-only-2']) {
      const refused = await send(id);
      assert.equal(refused.code, 452, refused.response);
      assert.match(refused.response, /^452 4\.3\.1 /);
    }
    await run('mount', ['-o', 'remount,rw', queue]);
    assert.deepEqual(await queueCounts(queue), { control: 0, data: 0 });
    const accepted = await eventually(
      'MAIL FROM accepted once writable',
      async () => {
        const outcome = await send('writable-again');
        if (outcome.code === 250) return outcome;
        assert.match(outcome.response, /^452 4\.3\.1 /);
        return undefined;
      },
      RECOVERY_MS,
    );
    assert.equal(accepted.code, 250, accepted.response);
    const delivered = await eventually('the message accepted after the remount', async () => {
      const ids = await deliveredIds(join(state, 'mail'));
      return ids.has('writable-again') ? ids : undefined;
    });
    assert.deepEqual([...delivered.keys()], ['writable-again']);
  });

  it('after a full disk refuses MAIL FROM at once with 452 4.3.1, and accepts it again by itself once space is freed', async (t) => {
    const work = await tempDir('domsec-guard-');
    cleanup.push(work.remove);
    const state = join(work.path, 'state');
    await mkdir(state);
    await mount(state, 'size=4m,mode=0700');
    cleanup.push(() => unmount(state));
    const { running, port, send } = await engineOn(state);

    assert.equal((await send('before')).code, 250);
    const filler = await fill(state);
    const full = await send('while-full');
    assert.match(full.response, /^452 4\.3\.1 Insufficient system storage/);

    // The next transaction is refused before any data: at MAIL FROM, at once.
    const client = await LineClient.open(port);
    cleanup.push(() => Promise.resolve(client.close()));
    assert.match(await client.reply(), /^220 /);
    client.write('EHLO mail.fabrikam.com');
    assert.match(await client.reply(), /^250[- ]/);
    const asked = Date.now();
    client.write('MAIL FROM:<someone@fabrikam.com>');
    assert.equal(await client.reply(), '452 4.3.1 Insufficient system storage');
    const refusedIn = Date.now() - asked;
    assert.ok(refusedIn < 2_000, `refused in ${refusedIn} ms`);
    assert.ok(
      running.log.entries.some((e) => e.event === 'queue.storage-short'),
      'the engine says its queue storage is short',
    );

    // Space comes back: the same session's MAIL FROM is accepted again within a bounded wait.
    await rm(filler);
    const freed = Date.now();
    await eventually(
      'MAIL FROM accepted after space came back',
      async () => {
        client.write('MAIL FROM:<someone@fabrikam.com>');
        const reply = await client.reply();
        if (reply.startsWith('250 ')) return reply;
        assert.equal(reply, '452 4.3.1 Insufficient system storage');
        return undefined;
      },
      RECOVERY_MS,
    );
    const recoveredIn = Date.now() - freed;
    client.write('RCPT TO:<user@treyresearch.net>');
    assert.match(await client.reply(), /^250 /);
    client.write('DATA');
    assert.match(await client.reply(), /^354 /);
    client.write(`${message('after-guard').trimEnd()}\r\n.`);
    assert.match(await client.reply(), /^250 2\.6\.0 /);
    client.write('QUIT');
    assert.ok(
      running.log.entries.some((e) => e.event === 'queue.storage-recovered'),
      'the engine says its queue storage is back',
    );
    t.diagnostic(`MAIL FROM refused in ${refusedIn} ms; accepted ${recoveredIn} ms after freeing`);
  });
});

describe('StorageGuard', () => {
  const cleanup: (() => Promise<void>)[] = [];
  after(async () => {
    for (const step of cleanup.reverse()) await step().catch(() => undefined);
  });

  /** A guard on a real directory with a clock the test moves. */
  async function guardOn(reserveBytes: number, directory?: string) {
    const work = await tempDir('domsec-guard-unit-');
    cleanup.push(work.remove);
    const clock = { now: 1_000_000 };
    const log = memoryLog();
    const guard = new StorageGuard({
      directory: directory ?? work.path,
      log,
      reserveBytes,
      recheckMs: 1_000,
      now: () => clock.now,
    });
    return { guard, clock, log };
  }

  it('is not short before any failure, whatever the free space', async () => {
    const { guard } = await guardOn(Number.MAX_SAFE_INTEGER);
    assert.equal(await guard.isShort(), false);
  });

  it('holds a failure for the recheck time, then clears by itself once the directory has room', async () => {
    const { guard, clock, log } = await guardOn(1);
    guard.noteFailure('ENOSPC');
    assert.equal(await guard.isShort(), true);
    clock.now += 999;
    assert.equal(await guard.isShort(), true, 'the failure holds until the recheck');
    clock.now += 1;
    assert.equal(await guard.isShort(), false);
    assert.equal(guard.suspected, false);
    assert.deepEqual(
      log.entries.map((e) => e.event),
      ['queue.storage-short', 'queue.storage-recovered'],
    );
  });

  it('stays short while free space is under the reserve, and while the directory is gone', async () => {
    const short = await guardOn(Number.MAX_SAFE_INTEGER);
    short.guard.noteFailure('ENOSPC');
    short.clock.now += 5_000;
    assert.equal(await short.guard.isShort(), true);
    const gone = await guardOn(1, '/nonexistent/domsec-queue');
    gone.guard.noteFailure('EACCES');
    gone.clock.now += 5_000;
    assert.equal(await gone.guard.isShort(), true);
  });

  it('keeps a failure noted while a check runs: the check cannot clear it', async () => {
    const { guard, clock } = await guardOn(1);
    guard.noteFailure('ENOSPC');
    clock.now += 5_000;
    const checking = guard.isShort();
    guard.noteFailure('ENOSPC');
    assert.equal(await checking, true);
    assert.equal(await guard.isShort(), true);
    assert.equal(guard.suspected, true);
  });
});
