// The state lock against `domsec serve --workers 2`, as a careless operator (or a restart loop)
// meets it: a second serve on the same state while a worker of a primary killed with SIGKILL is
// still alive (stopped, so it stays), and two serve --workers 2 started at once on one state.
// Only one group may ever write the state's journal; the one refused starts no worker.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { eventually } from '../support/eventually.js';
import { TREY } from '../support/manifests.js';
import { tempDir, type TempDir } from '../support/tmp.js';
import {
  deliveredIds,
  sendMarked,
  writePartnerLab,
  type PartnerLab,
} from '../reliability/partner-lab.js';
import { ServeProcess } from '../reliability/serve-process.js';
import { alive, processState, workersOf, workersOfState } from './worker-processes.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Whether the process ended by itself within `ms`. */
async function endedWithin(engine: ServeProcess, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (!alive(engine.pid ?? 0)) return true;
    await sleep(50);
  }
  return false;
}

describe('the state lock and receive workers', () => {
  let work: TempDir;
  let lab: PartnerLab;
  const engines: ServeProcess[] = [];
  const stopped = new Set<number>();

  before(async () => {
    work = await tempDir('domsec-attack-lock-');
    lab = await writePartnerLab(work.path);
  });
  after(async () => {
    for (const pid of stopped) if (alive(pid)) process.kill(pid, 'SIGCONT');
    await Promise.all(engines.map((engine) => engine.kill()));
    await work?.remove();
  });

  function serve(args: string[]): ServeProcess {
    const engine = new ServeProcess(args);
    engines.push(engine);
    return engine;
  }

  it(
    'refuses a second serve on the state while a worker of a killed primary lives, then starts once it is gone',
    { timeout: 90_000 },
    async () => {
      const state = join(work.path, 'state-orphan');
      const first = serve(['-f', lab.manifests, '--state', state, '--workers', '2']);
      await first.ready();
      const acknowledged: string[] = [];
      for (let n = 0; n < 6; n += 1)
        if ((await sendMarked(lab, `o-m${n}`, [`box@${TREY.domain}`])).code === 250)
          acknowledged.push(`o-m${n}`);
      const [orphan, other] = await workersOf(first.pid ?? 0);
      assert.ok(orphan !== undefined && other !== undefined);
      process.kill(orphan, 'SIGSTOP');
      stopped.add(orphan);
      // Not first.kill(): that waits for the output pipes, which the stopped worker holds too.
      process.kill(first.pid ?? 0, 'SIGKILL');
      await eventually('the primary gone', () => alive(first.pid ?? 0), {
        timeoutMs: 5_000,
        intervalMs: 10,
        until: (living) => !living,
      });
      await eventually('the other worker gone with its primary', () => alive(other), {
        timeoutMs: 5_000,
        intervalMs: 10,
        until: (living) => !living,
      });
      assert.equal(await processState(orphan), 'T', 'the stopped worker outlives its primary');

      const second = serve(['--state', state, '--workers', '2']);
      assert.ok(
        await endedWithin(second, 15_000),
        `a second serve runs beside a live worker of the first:\n${second.stdout}\n${second.stderr.slice(-1500)}`,
      );
      assert.match(second.stderr, /in use by another domsec engine/);
      assert.deepEqual(await workersOfState(state), [orphan], 'the refused serve started workers');

      process.kill(orphan, 'SIGCONT');
      stopped.delete(orphan);
      await eventually('the orphan worker to end', () => alive(orphan), {
        timeoutMs: 5_000,
        intervalMs: 10,
        until: (living) => !living,
      });
      const third = serve(['--state', state, '--workers', '2']);
      await third.ready();
      await eventually(
        'every acknowledged message delivered',
        () => deliveredIds(join(state, 'mail')),
        {
          timeoutMs: 20_000,
          intervalMs: 100,
          until: (delivered) => acknowledged.every((id) => delivered.has(id)),
        },
      );
      assert.equal(await third.stop(), 0);
    },
  );

  it(
    'lets one of two serve --workers 2 started at once on one state run, and the other starts no worker',
    { timeout: 90_000 },
    async () => {
      const state = join(work.path, 'state-twice');
      const pair = [
        serve(['-f', lab.manifests, '--state', state, '--workers', '2']),
        serve(['-f', lab.manifests, '--state', state, '--workers', '2']),
      ];
      const outcomes = await Promise.all(
        pair.map((engine) =>
          engine.ready(30_000).then(
            () => 'ready',
            () => 'refused',
          ),
        ),
      );
      assert.deepEqual([...outcomes].sort(), ['ready', 'refused']);
      const winner = pair[outcomes.indexOf('ready')];
      const loser = pair[outcomes.indexOf('refused')];
      assert.ok(winner !== undefined && loser !== undefined);
      assert.match(loser.stderr, /in use by another domsec engine/);
      const workers = await workersOfState(state);
      assert.deepEqual(workers, await workersOf(winner.pid ?? 0));
      assert.equal(workers.length, 2);
      assert.equal((await sendMarked(lab, 't-m0', [`box@${TREY.domain}`])).code, 250);
      assert.equal(await winner.stop(), 0);
    },
  );
  it(
    'starts a serve given right after a kill -9 once what the killed engine left lets go of the lock',
    { timeout: 60_000 },
    async () => {
      const state = join(work.path, 'state-restart');
      const first = serve(['-f', lab.manifests, '--state', state, '--workers', '2']);
      await first.ready();
      const workers = await workersOf(first.pid ?? 0);
      assert.equal(workers.length, 2);
      // Stopped, the workers cannot end with their primary: they hold the lock a while longer,
      // as busy ones would under load.
      for (const pid of workers) {
        process.kill(pid, 'SIGSTOP');
        stopped.add(pid);
      }
      process.kill(first.pid ?? 0, 'SIGKILL');
      await eventually('the primary gone', () => alive(first.pid ?? 0), {
        timeoutMs: 5_000,
        intervalMs: 10,
        until: (living) => !living,
      });
      const restart = serve(['-f', lab.manifests, '--state', state, '--workers', '2']);
      await sleep(1_000);
      for (const pid of workers) {
        process.kill(pid, 'SIGCONT');
        stopped.delete(pid);
      }
      await restart.ready(20_000);
      assert.doesNotMatch(restart.stderr, /in use by another domsec engine/);
      assert.equal((await sendMarked(lab, 'r-m0', [`box@${TREY.domain}`])).code, 250);
      assert.equal(await restart.stop(), 0);
    },
  );
});
