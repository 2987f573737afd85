// A worker building a generation it was asked to prepare says nothing meanwhile (its event loop is
// busy for as long as the build takes): that is not the silence of a hung worker. Stopped with
// SIGSTOP in the middle of a prepare for longer than the silence bound, it is not killed, and the
// apply commits once it goes on; a worker silent with no prepare asked is still killed.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Engine } from '../../../src/engine/engine.js';
import { memoryLog } from '../../../src/engine/log.js';
import { eventually } from '../../support/eventually.js';
import { freePort } from '../../support/ports.js';
import { runtimeConfig } from '../../support/runtime-config.js';
import { tempDir } from '../../support/tmp.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('receive workers and the silence bound', () => {
  it(
    'does not take a worker preparing a generation for hung, but one silent without',
    { timeout: 60_000 },
    async () => {
      const dir = await tempDir('domsec-workers-silence-');
      const log = memoryLog();
      const engine = await Engine.open({
        stateDir: join(dir.path, 'state'),
        log,
        workers: 2,
        workerTimeouts: { silenceMs: 1_500, prepareMs: 20_000 },
      });
      const stopped = new Set<number>();
      try {
        const port = await freePort();
        const binding = `127.0.0.1:${port}`;
        await engine.apply(runtimeConfig({ receiveConnector: { bindings: [binding] } }));
        const [slow] = [...engine.workerPids().values()];
        assert.ok(slow !== undefined);
        process.kill(slow, 'SIGSTOP');
        stopped.add(slow);
        // Asked to prepare while it cannot answer: the prepare is in flight for 3 s, twice the bound.
        const applying = engine.apply(
          runtimeConfig({ receiveConnector: { bindings: [binding], maxInboundConnection: 77 } }),
        );
        await sleep(3_000);
        process.kill(slow, 'SIGCONT');
        stopped.delete(slow);
        await applying;
        assert.ok([...engine.workerPids().values()].includes(slow), 'the preparing worker lives');
        assert.equal(
          log.entries.filter((e) => e.event === 'workers.worker-unresponsive').length,
          0,
        );

        // Silent with nothing asked of it: hung, killed and replaced.
        process.kill(slow, 'SIGSTOP');
        stopped.add(slow);
        await eventually(
          'the silent worker killed',
          () => log.entries.some((e) => e.event === 'workers.worker-unresponsive'),
          10_000,
        );
        stopped.delete(slow);
      } finally {
        for (const pid of stopped) process.kill(pid, 'SIGCONT');
        await engine.close();
        await dir.remove();
      }
    },
  );
});
