// Receive workers under faults, as `domsec serve --workers 2` runs them: a worker killed with
// SIGKILL amid mutual-TLS clients loses no acknowledged message and is replaced; the primary
// killed with SIGKILL takes its workers down with it, and the state directory stays locked until
// the last of them is gone.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { eventually } from '../support/eventually.js';
import { TREY } from '../support/manifests.js';
import { tempDir } from '../support/tmp.js';
import { deliveredIds, sendMarked, writePartnerLab, type PartnerLab } from './partner-lab.js';
import { ServeProcess } from './serve-process.js';

const WORKER_KILLS = 3;
const CLIENTS = 8;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The processes whose parent is `pid` (Linux /proc). */
async function childrenOf(pid: number): Promise<number[]> {
  const children: number[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const stat = await readFile(`/proc/${name}/stat`, 'utf8').catch(() => '');
    // pid (comm) state ppid ...: comm may hold spaces, so read after its closing parenthesis.
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    if (ppid === pid) children.push(Number(name));
  }
  return children;
}

/** The receive workers of a serve process: its node children (the state lock's holder is sh/cat). */
async function workersOf(pid: number): Promise<number[]> {
  const workers: number[] = [];
  for (const child of await childrenOf(pid)) {
    const cmdline = await readFile(`/proc/${child}/cmdline`, 'utf8').catch(() => '');
    if (cmdline.includes('worker-main')) workers.push(child);
  }
  return workers;
}

/** Running or stopped; a zombie (exited, not yet reaped by whoever adopted it) is gone. */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

describe('receive workers under SIGKILL', () => {
  let work: Awaited<ReturnType<typeof tempDir>>;
  let lab: PartnerLab;
  let engine: ServeProcess | undefined;
  const env = { DOMSEC_TOKEN: 'worker-crash-token-0123456789abcdef01' };

  before(async () => {
    work = await tempDir('domsec-worker-crash-');
    lab = await writePartnerLab(work.path);
  });
  after(async () => {
    await engine?.kill();
    await work.remove();
  });

  it(`loses no acknowledged message across ${WORKER_KILLS} worker SIGKILLs amid ${CLIENTS} clients, each worker replaced`, async (t) => {
    const state = join(work.path, 'state-workers');
    engine = new ServeProcess(['-f', lab.manifests, '--state', state, '--workers', '2'], env);
    await engine.ready();
    const primary = engine.pid ?? 0;
    assert.equal((await workersOf(primary)).length, 2);

    const acknowledged = new Set<string>();
    let sending = true;
    const clients = Array.from({ length: CLIENTS }, async (_, client) => {
      for (let n = 0; sending; n += 1) {
        const id = `w${client}-m${n}`;
        const outcome = await sendMarked(lab, id, [`box${client % 4}@${TREY.domain}`]);
        if (outcome.code === 250) acknowledged.add(id);
        else await sleep(20);
      }
    });
    const killed: number[] = [];
    try {
      for (let kill = 0; kill < WORKER_KILLS; kill += 1) {
        const before = acknowledged.size;
        await eventually('traffic', () => acknowledged.size, {
          timeoutMs: 20_000,
          intervalMs: 5,
          until: (count) => count > before + 20,
        });
        const [victim] = await workersOf(primary);
        assert.ok(victim !== undefined, 'a worker to kill');
        process.kill(victim, 'SIGKILL');
        killed.push(victim);
        await eventually('a replacement worker', () => workersOf(primary), {
          timeoutMs: 10_000,
          until: (now) => now.length === 2 && !now.includes(victim),
        });
      }
    } finally {
      sending = false;
      await Promise.all(clients);
    }
    const mail = join(state, 'mail');
    await eventually('every acknowledged message delivered', () => deliveredIds(mail), {
      timeoutMs: 30_000,
      intervalMs: 100,
      until: (delivered) => [...acknowledged].every((id) => delivered.has(id)),
    });
    const exited = engine.events().filter((e) => e.event === 'workers.worker-exited');
    const replaced = engine.events().filter((e) => e.event === 'workers.worker-replaced');
    t.diagnostic(
      `figures ${JSON.stringify({ acknowledged: acknowledged.size, killed: killed.length, exited: exited.length, replaced: replaced.length })}`,
    );
    assert.equal(exited.length, WORKER_KILLS);
    assert.equal(replaced.length, WORKER_KILLS);
    assert.equal(await engine.stop(), 0);
  });

  it('takes the workers down with a primary killed with SIGKILL, and the next start on the same state delivers everything acknowledged', async () => {
    const state = join(work.path, 'state-primary');
    engine = new ServeProcess(['-f', lab.manifests, '--state', state, '--workers', '2'], env);
    await engine.ready();
    const workers = await workersOf(engine.pid ?? 0);
    assert.equal(workers.length, 2);
    const acknowledged: string[] = [];
    for (let n = 0; n < 10; n += 1) {
      const outcome = await sendMarked(lab, `p-m${n}`, [`box0@${TREY.domain}`]);
      if (outcome.code === 250) acknowledged.push(`p-m${n}`);
    }
    assert.equal(acknowledged.length, 10);
    await engine.kill();
    await eventually('the workers to go with their primary', () => workers.filter(alive), {
      timeoutMs: 5_000,
      intervalMs: 10,
      until: (left) => left.length === 0,
    });
    engine = new ServeProcess(['--state', state, '--workers', '2'], env);
    await engine.ready();
    const mail = join(state, 'mail');
    await eventually('every acknowledged message delivered', () => deliveredIds(mail), {
      timeoutMs: 20_000,
      intervalMs: 100,
      until: (delivered) => acknowledged.every((id) => delivered.has(id)),
    });
    assert.equal(await engine.stop(), 0);
  });

  it('keeps the state directory locked while a worker of a killed primary still runs', async () => {
    const state = join(work.path, 'state-lock');
    engine = new ServeProcess(['-f', lab.manifests, '--state', state, '--workers', '2'], env);
    await engine.ready();
    const workers = await workersOf(engine.pid ?? 0);
    assert.equal(workers.length, 2);
    // Stopped, they cannot notice that their primary is gone.
    for (const worker of workers) process.kill(worker, 'SIGSTOP');
    const primary = engine.pid ?? 0;
    try {
      // Not engine.kill(): its output pipes stay open while the stopped workers hold them.
      process.kill(primary, 'SIGKILL');
      await eventually('the primary to go', () => alive(primary), {
        timeoutMs: 5_000,
        intervalMs: 10,
        until: (running) => !running,
      });
      const second = new ServeProcess(['--state', state, '--workers', '2'], env);
      await assert.rejects(second.ready(), /in use by another domsec engine/);
    } finally {
      for (const worker of workers) process.kill(worker, 'SIGCONT');
    }
    await eventually('the workers to go', () => workers.filter(alive), {
      timeoutMs: 5_000,
      intervalMs: 10,
      until: (left) => left.length === 0,
    });
    await engine.kill();
    engine = new ServeProcess(['--state', state, '--workers', '2'], env);
    await engine.ready();
    assert.equal(await engine.stop(), 0);
  });

  it('stops the group cleanly when a service manager signals every process of it at once', async () => {
    const state = join(work.path, 'state-signals');
    engine = new ServeProcess(['-f', lab.manifests, '--state', state, '--workers', '2'], env);
    await engine.ready();
    const workers = await workersOf(engine.pid ?? 0);
    assert.equal(workers.length, 2);
    // The workers first, as a whole process group may get it in any order.
    for (const worker of workers) process.kill(worker, 'SIGTERM');
    await sleep(300);
    assert.deepEqual(
      workers.filter((worker) => !alive(worker)),
      [],
      'the workers wait for the primary',
    );
    assert.equal(await engine.stop(), 0);
    const errors = engine.events().filter((e) => e.level === 'error');
    assert.deepEqual(errors, []);
    assert.deepEqual(workers.filter(alive), []);
  });
});
