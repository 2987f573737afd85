// One engine per state directory: a second Engine.open is refused at once naming the holder's
// PID, a holder killed with SIGKILL leaves no stale lock, an engine whose lock child dies stops,
// a missing flock(1) is one line naming util-linux, and bad state paths are refused in one line.
import assert from 'node:assert/strict';
import { mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Engine } from '../../src/engine/engine.js';
import { memoryLog } from '../../src/engine/log.js';
import { prepareStateDirectory, StateDirectoryError } from '../../src/engine/state-directory.js';
import { StateLock, StateLockedError, StateLockError } from '../../src/engine/state-lock.js';
import { eventually } from '../support/engine.js';
import { runUntilKilled } from '../support/killed-script.js';
import { tempDir } from '../support/tmp.js';

describe('the state directory lock', () => {
  let work: Awaited<ReturnType<typeof tempDir>>;
  before(async () => {
    work = await tempDir('domsec-lock-');
  });
  after(async () => work.remove());

  it('refuses a second engine at once, naming the PID that holds the directory', async () => {
    const state = join(work.path, 'shared');
    const first = await Engine.open({ stateDir: state, log: memoryLog() });
    try {
      const started = Date.now();
      await assert.rejects(
        Engine.open({ stateDir: state, log: memoryLog() }),
        (error: unknown) =>
          error instanceof StateLockedError &&
          error.holder?.pid === process.pid &&
          new RegExp(`in use by another domsec engine \\(PID ${process.pid}, started `).test(
            error.message,
          ) &&
          !error.message.includes('\n'),
      );
      assert.ok(Date.now() - started < 2_000, 'refused without waiting');
      const holder = JSON.parse(await readFile(join(state, 'lock'), 'utf8')) as { pid: number };
      assert.equal(holder.pid, process.pid);
    } finally {
      await first.close();
    }
    // Closed: the next one takes it.
    const next = await Engine.open({ stateDir: state, log: memoryLog() });
    await next.close();
  });

  it('is released by the kernel when its holder is killed with SIGKILL: the next engine starts at once', async () => {
    const state = join(work.path, 'killed');
    const engineModule = new URL('../../src/engine/engine.ts', import.meta.url).href;
    const logModule = new URL('../../src/engine/log.ts', import.meta.url).href;
    const printed = await runUntilKilled(`
      const { Engine } = await import(${JSON.stringify(engineModule)});
      const { memoryLog } = await import(${JSON.stringify(logModule)});
      await Engine.open({ stateDir: ${JSON.stringify(state)}, log: memoryLog() });
      console.log('holding ' + process.pid);
      process.kill(process.pid, 'SIGKILL');
    `);
    assert.match(printed, /holding \d+/);
    const started = Date.now();
    // The lock child sees the pipe close and exits: a moment, never a timeout.
    const engine = await eventually(
      'the lock to be free',
      () =>
        Engine.open({ stateDir: state, log: memoryLog() }).catch((error: unknown) => {
          if (error instanceof StateLockedError) return undefined;
          throw error;
        }),
      5_000,
    );
    const ms = Date.now() - started;
    await engine.close();
    assert.ok(ms < 1_000, `the next engine waited ${ms} ms`);
  });

  it('stops the engine when the process holding its lock dies: never runs unlocked', async () => {
    const state = join(work.path, 'lost');
    const log = memoryLog();
    const engine = await Engine.open({ stateDir: state, log });
    const lock = engine['lock'] as StateLock;
    assert.ok(lock.holderPid !== undefined);
    process.kill(lock.holderPid, 'SIGKILL');
    await eventually('the engine to halt', () => (engine.halted.aborted ? true : undefined));
    assert.match((engine.halted.reason as Error).message, /ended \(SIGKILL\)/);
    await engine.shutdown();
    assert.ok(log.entries.some((e) => e.event === 'engine.lock-lost' && e.level === 'error'));
    // Its close released nothing it did not hold; another engine may now take the directory.
    const next = await Engine.open({ stateDir: state, log: memoryLog() });
    await next.close();
  });

  it('says in one line that flock is missing and which package provides it', async () => {
    const bin = join(work.path, 'bin-without-flock');
    await mkdir(bin);
    await symlink('/bin/sh', join(bin, 'sh'));
    await symlink('/bin/cat', join(bin, 'cat'));
    const path = process.env.PATH;
    process.env.PATH = bin;
    try {
      await assert.rejects(
        StateLock.acquire(await prepareStateDirectory(join(work.path, 'no-flock')), {
          onLost: () => undefined,
        }),
        (error: unknown) =>
          error instanceof StateLockError &&
          /the flock command is missing; install util-linux/.test(error.message) &&
          !error.message.includes('\n'),
      );
    } finally {
      process.env.PATH = path;
    }
  });

  it('refuses state paths that cannot hold a queue, each in one line, without creating them', async () => {
    const file = join(work.path, 'plain-file');
    await writeFile(file, 'x');
    const dangling = join(work.path, 'dangling');
    await symlink(join(work.path, 'gone'), dangling);
    const linked = join(work.path, 'linked');
    await mkdir(join(work.path, 'real'));
    await symlink(join(work.path, 'real'), linked);
    for (const [path, expected] of [
      ['/proc/nope', /\/proc\/nope is on proc, a virtual file system/],
      ['/proc/self/nope/deeper', /is on proc/],
      [file, /plain-file is a file$/],
      [join(file, 'x', 'y'), /\(its ancestor .*plain-file\) is a file$/],
      [dangling, /dangling is a dangling symbolic link \(to .*gone\)$/],
      [join(dangling, 'x'), /\(its ancestor .*dangling\) is a dangling symbolic link/],
    ] as const) {
      await assert.rejects(
        prepareStateDirectory(path),
        (error: unknown) =>
          error instanceof StateDirectoryError &&
          expected.test(error.message) &&
          !error.message.includes('\n'),
        path,
      );
    }
    // A link to a directory is a directory; missing components are made 0700.
    assert.equal(await prepareStateDirectory(linked), linked);
    const made = await prepareStateDirectory(join(work.path, 'a', 'b', 'c'));
    assert.equal(made, join(work.path, 'a', 'b', 'c'));
  });
});
