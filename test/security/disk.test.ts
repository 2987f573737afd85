// Disk full and an unwritable queue: a real engine on a small tmpfs answers 452 4.3.1 instead of
// accepting mail it cannot keep, leaves nothing half-written behind, and accepts again once space
// (or write access) is back. Needs root for mount(8), as CI runs.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, open, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, describe, it } from 'node:test';
import { startEngine, eventually, type RunningEngine } from '../support/engine.js';
import { freePort } from '../support/ports.js';
import { receiveConnector, runtimeConfig } from '../support/runtime-config.js';
import { submit, type SubmitOutcome } from '../support/smtp-submit.js';
import { tempDir } from '../support/tmp.js';
import { deliveredIds } from '../reliability/partner-lab.js';

const run = promisify(execFile);

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
  async function engineOn(
    state: string,
  ): Promise<{ running: RunningEngine; send: (id: string) => Promise<SubmitOutcome> }> {
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
    return { running, send };
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
        (e) => e.event === 'receive.queue_failed' && e.fields.reply === '452 4.3.1',
      ),
    );

    await rm(filler);
    const after = await send('after');
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
    const accepted = await send('writable-again');
    assert.equal(accepted.code, 250, accepted.response);
    const delivered = await eventually('the message accepted after the remount', async () => {
      const ids = await deliveredIds(join(state, 'mail'));
      return ids.has('writable-again') ? ids : undefined;
    });
    assert.deepEqual([...delivered.keys()], ['writable-again']);
  });
});
