// Hot reload against receive workers, as an attacker or a careless operator meets it: an apply
// that arrives while a killed worker is being replaced, and one that meets a worker that hangs
// (SIGSTOP). Whatever the timing, a generation either runs in every worker or in none; the
// greeting (the Organization's hostname) tells which generation a session got.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { Engine } from '../../src/engine/engine.js';
import { memoryLog } from '../../src/engine/log.js';
import { banner } from '../support/banner.js';
import { LineClient } from '../support/line-client.js';
import { eventually } from '../support/eventually.js';
import { freePort } from '../support/ports.js';
import { runtimeConfig } from '../support/runtime-config.js';
import { tempDir, type TempDir } from '../support/tmp.js';

const WORKERS = 2;
/** Enough connections that round-robin hands several to each worker. */
const GREETINGS = 12;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function resume(pid: number): void {
  try {
    process.kill(pid, 'SIGCONT');
  } catch {
    // gone already
  }
}

describe('hot reload across receive workers under faults', () => {
  let dir: TempDir;
  let engine: Engine | undefined;
  let port: number;
  const stopped = new Set<number>();
  const config = (hostname: string) =>
    runtimeConfig({
      organization: { hostname },
      receiveConnector: { bindings: [`127.0.0.1:${port}`] },
    });
  /** The hostname each of GREETINGS new sessions is greeted with. */
  const greetings = async () => {
    const seen: string[] = [];
    for (let n = 0; n < GREETINGS; n += 1)
      seen.push(/^220 (\S+)/.exec(await banner(port).catch(() => ''))?.[1] ?? '?');
    return seen;
  };

  before(async () => {
    dir = await tempDir('domsec-attack-reload-');
    port = await freePort();
  });
  afterEach(async () => {
    for (const pid of stopped) resume(pid);
    stopped.clear();
    await engine?.close();
    engine = undefined;
  });
  after(async () => {
    await dir?.remove();
  });

  async function start(name: string): Promise<Engine> {
    engine = await Engine.open({
      stateDir: join(dir.path, name),
      log: memoryLog(),
      workers: WORKERS,
    });
    await engine.apply(config('mx1.treyresearch.net'));
    assert.deepEqual(new Set(await greetings()), new Set(['mx1.treyresearch.net']));
    return engine;
  }

  it(
    'keeps each open session on the generation it started with, in every worker',
    { timeout: 30_000 },
    async () => {
      const running = await start('sessions-keep');
      const sessions = await Promise.all(
        Array.from({ length: GREETINGS }, async () => {
          const client = await LineClient.open(port);
          assert.match(await client.reply(), /^220 mx1\.treyresearch\.net/);
          return client;
        }),
      );
      try {
        await running.apply(config('mx2.treyresearch.net'));
        assert.deepEqual(new Set(await greetings()), new Set(['mx2.treyresearch.net']));
        for (const client of sessions) {
          client.write('EHLO client.adatum.com');
          assert.match(await client.reply(), /^250-mx1\.treyresearch\.net/);
        }
      } finally {
        for (const client of sessions) client.close();
      }
    },
  );

  it(
    'commits an apply that arrives while a killed worker is being replaced, in every worker',
    {
      timeout: 30_000,
    },
    async () => {
      const running = await start('replacing');
      const [victim, pid] = [...running.workerPids()][0] ?? [];
      assert.ok(victim !== undefined && pid !== undefined);
      process.kill(pid, 'SIGKILL');
      // The replacement is forked (listed) before it is ready: apply right then.
      await eventually('a replacement being started', () => running.workerPids(), {
        timeoutMs: 5_000,
        intervalMs: 2,
        until: (now) => now.size === WORKERS && !now.has(victim),
      });
      await running.apply(config('mx2.treyresearch.net'));
      assert.deepEqual(new Set(await greetings()), new Set(['mx2.treyresearch.net']));
    },
  );

  it(
    'runs the committed generation in a worker that replaced one while the apply was being prepared',
    {
      timeout: 30_000,
    },
    async () => {
      const running = await start('prepared-meanwhile');
      const pids = [...running.workerPids()];
      const [victim, victimPid] = pids[0] ?? [];
      const [, slowPid] = pids[1] ?? [];
      assert.ok(victim !== undefined && victimPid !== undefined && slowPid !== undefined);
      // The surviving worker is slow to answer the prepare (stopped for a moment): the apply
      // is under way when the replacement of the killed one comes up.
      process.kill(victimPid, 'SIGKILL');
      await eventually('the killed worker gone from the group', () => running.workerPids(), {
        timeoutMs: 5_000,
        intervalMs: 2,
        until: (now) => !now.has(victim),
      });
      process.kill(slowPid, 'SIGSTOP');
      stopped.add(slowPid);
      const applying = running.apply(config('mx2.treyresearch.net'));
      applying.catch(() => undefined);
      await eventually('a replacement', () => running.workerPids(), {
        timeoutMs: 5_000,
        intervalMs: 10,
        until: (now) => now.size === WORKERS,
      });
      await sleep(1_500); // ready and brought up on what the slot held
      resume(slowPid);
      stopped.delete(slowPid);
      await applying;
      assert.equal(running.currentGeneration, 2);
      assert.deepEqual(new Set(await greetings()), new Set(['mx2.treyresearch.net']));
    },
  );

  it(
    'fails an apply a hung worker does not answer within a bound, and applies nowhere',
    { timeout: 90_000 },
    async () => {
      const running = await start('hung');
      const [, pid] = [...running.workerPids()][0] ?? [];
      assert.ok(pid !== undefined);
      process.kill(pid, 'SIGSTOP');
      stopped.add(pid);
      const started = Date.now();
      // Refused: the worker did not answer, or was taken for hung and killed meanwhile.
      await assert.rejects(running.apply(config('mx2.treyresearch.net')), /did not answer|exited/);
      const waited = Date.now() - started;
      assert.ok(waited < 40_000, `the apply waited ${waited} ms`);
      assert.equal(running.currentGeneration, 1);
      resume(pid);
      stopped.delete(pid);
      // The worker, awake again or replaced, serves the running generation with the other.
      await eventually('two workers greeting with the running generation', () => greetings(), {
        timeoutMs: 20_000,
        intervalMs: 500,
        until: (seen) =>
          running.workerPids().size === WORKERS && seen.every((h) => h === 'mx1.treyresearch.net'),
      });
      // And takes the next generation with the others, once a replacement is brought up.
      await sleep(2_000);
      await running.apply(config('mx3.treyresearch.net'));
      assert.deepEqual(new Set(await greetings()), new Set(['mx3.treyresearch.net']));
    },
  );
});
