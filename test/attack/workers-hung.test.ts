// A receive worker that hangs (SIGSTOP: alive, its channel open, answering nothing) against the
// rest of the group: within a bound, every new connection is greeted by a worker that runs (the
// primary hands a worker its next connection only once it took the last one).
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Engine } from '../../src/engine/engine.js';
import { memoryLog } from '../../src/engine/log.js';
import { banner } from '../support/banner.js';
import { freePort } from '../support/ports.js';
import { runtimeConfig } from '../support/runtime-config.js';
import { tempDir, type TempDir } from '../support/tmp.js';

const WORKERS = 2;
const PROBES = 8;
/** How long a hung worker may keep getting connections. */
const BOUND_MS = 60_000;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('a hung receive worker', () => {
  let dir: TempDir;
  let engine: Engine | undefined;
  let stopped: number | undefined;

  before(async () => {
    dir = await tempDir('domsec-attack-hung-');
  });
  after(async () => {
    if (stopped !== undefined) process.kill(stopped, 'SIGCONT');
    await engine?.close();
    await dir?.remove();
  });

  it(
    'greets every new connection within a bound while one worker hangs',
    { timeout: BOUND_MS + 30_000 },
    async (t) => {
      const port = await freePort();
      engine = await Engine.open({
        stateDir: join(dir.path, 'state'),
        log: memoryLog(),
        workers: WORKERS,
      });
      await engine.apply(runtimeConfig({ receiveConnector: { bindings: [`127.0.0.1:${port}`] } }));
      const greeted = async () => {
        const outcomes = await Promise.all(
          Array.from({ length: PROBES }, () =>
            Promise.race([
              banner(port).then(
                () => true,
                () => false,
              ),
              sleep(2_000).then(() => false),
            ]),
          ),
        );
        return outcomes.filter(Boolean).length;
      };
      assert.equal(await greeted(), PROBES);
      const [, pid] = [...engine.workerPids()][0] ?? [];
      assert.ok(pid !== undefined);
      process.kill(pid, 'SIGSTOP');
      stopped = pid;
      const started = Date.now();
      const first = await greeted();
      let now = first;
      while (now < PROBES && Date.now() - started < BOUND_MS) {
        await sleep(2_000);
        now = await greeted();
      }
      t.diagnostic(
        `figures ${JSON.stringify({ greetedRightAfterStop: `${first}/${PROBES}`, greetedAtEnd: `${now}/${PROBES}`, waitedMs: Date.now() - started })}`,
      );
      assert.equal(now, PROBES);
    },
  );
});
