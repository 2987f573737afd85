// Stopping the group while a worker is still starting: a message sent to a cluster worker before
// it listens for messages is dropped, so the stop must reach it once it says it is ready, or the
// engine's close would wait for the worker's stop bound (a minute) and a service manager kill it.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Engine } from '../../../src/engine/engine.js';
import { memoryLog } from '../../../src/engine/log.js';
import { eventually } from '../../support/eventually.js';
import { freePort } from '../../support/ports.js';
import { runtimeConfig } from '../../support/runtime-config.js';
import { tempDir } from '../../support/tmp.js';

describe('receive workers stopping', () => {
  it(
    'stops at once while a replacement worker is still starting',
    { timeout: 40_000 },
    async () => {
      const dir = await tempDir('domsec-workers-stop-');
      const log = memoryLog();
      const engine = await Engine.open({ stateDir: join(dir.path, 'state'), log, workers: 2 });
      try {
        const port = await freePort();
        await engine.apply(
          runtimeConfig({ receiveConnector: { bindings: [`127.0.0.1:${port}`] } }),
        );
        const before = [...engine.workerPids().values()];
        const [victim] = before;
        assert.ok(victim !== undefined);
        process.kill(victim, 'SIGKILL');
        // The replacement is forked half a second later; catch it before it is ready.
        await eventually(
          'a replacement forked',
          () => [...engine.workerPids().values()].some((pid) => !before.includes(pid)),
          { timeoutMs: 10_000, intervalMs: 5 },
        );
        assert.equal(
          log.entries.some((e) => e.event === 'workers.worker-replaced'),
          false,
          'the replacement was caught while starting',
        );
        const started = Date.now();
        await engine.close();
        const took = Date.now() - started;
        assert.ok(took < 15_000, `close took ${took} ms`);
        for (const pid of engine.workerPids().values())
          assert.throws(() => process.kill(pid, 0), 'every worker gone');
      } finally {
        await engine.close();
        await dir.remove();
      }
    },
  );
});
