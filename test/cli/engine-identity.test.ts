// Plans are bound to an engine, not only to a generation number: two engines on two state
// directories at the same generation each refuse what was planned against the other as stale.
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { register as registerApply } from '../../src/cli/apply.js';
import { register as registerPlan } from '../../src/cli/plan.js';
import { ControlError } from '../../src/control/client.js';
import { Engine } from '../../src/engine/engine.js';
import { memoryLog } from '../../src/engine/log.js';
import type { SavedPlan } from '../../src/model.js';
import { domsecInProcess } from '../support/cli.js';
import { startEngine, type RunningEngine } from '../support/engine.js';
import { ADATUM, TREY, writeLab, writeManifests } from '../support/manifests.js';
import { tempDir } from '../support/tmp.js';

describe('plans bound to an engine', () => {
  let lab: Awaited<ReturnType<typeof tempDir>>;
  let first: RunningEngine;
  let second: RunningEngine;
  let manifests: string;
  const cli = (engine: RunningEngine, ...args: string[]) => {
    process.env.DOMSEC_TOKEN = engine.token;
    return domsecInProcess(
      [registerPlan, registerApply],
      [...args, '--server', engine.control.url],
    );
  };

  before(async () => {
    lab = await tempDir();
    await writeLab(lab.path);
    manifests = await writeManifests({
      root: lab.path,
      org: ADATUM,
      partner: TREY,
      partnerBinding: '127.0.0.1:0',
      internalBinding: '127.0.0.1:0',
      adminListen: '127.0.0.1:1',
      partnerRoute: { host: '127.0.0.1', port: 9 },
      trust: 'root',
    });
    first = await startEngine(join(lab.path, 'first'));
    second = await startEngine(join(lab.path, 'second'));
  });

  after(async () => {
    delete process.env.DOMSEC_TOKEN;
    await first.stop();
    await second.stop();
    await lab.remove();
  });

  it('gives each state directory its own identity, kept across restarts', async () => {
    const a = (await first.client.state()).engineId;
    const b = (await second.client.state()).engineId;
    assert.match(a ?? '', /^[0-9a-f-]{36}$/);
    assert.notEqual(a, b);
    assert.equal((await readFile(join(lab.path, 'first', 'engine-id'), 'utf8')).trim(), a);
    const again = await Engine.open({ stateDir: join(lab.path, 'third'), log: memoryLog() });
    const id = again.identity;
    await again.close();
    const reopened = await Engine.open({ stateDir: join(lab.path, 'third'), log: memoryLog() });
    try {
      assert.equal(reopened.identity, id);
    } finally {
      await reopened.close();
    }
  });

  it("refuses engine A's saved plan on engine B at the same generation as stale, changing nothing", async () => {
    const file = join(lab.path, 'a.plan');
    const planned = await cli(first, 'plan', '-f', manifests, '--out', file);
    assert.equal(planned.code, 0, planned.stderr);
    const saved = JSON.parse(await readFile(file, 'utf8')) as SavedPlan;
    // Kept for the next test: apply deletes a saved plan once the engine runs it.
    await writeFile(join(lab.path, 'a-kept.plan'), JSON.stringify(saved), { mode: 0o600 });
    assert.equal(saved.engineId, (await first.client.state()).engineId);
    assert.equal((await second.client.state()).generation, saved.plan.baseGeneration);

    const refused = await cli(second, 'apply', file, '--auto-approve');
    assert.equal(refused.code, 1);
    assert.match(
      refused.stderr,
      new RegExp(
        `^domsec: stale plan: .*a\\.plan was made against engine ${saved.engineId}, this is engine ${(await second.client.state()).engineId} .*plan --out .*\\n$`,
      ),
    );
    assert.equal((await second.client.state()).generation, 0, 'engine B changed nothing');

    const applied = await cli(first, 'apply', file, '--auto-approve', '--approve-weakening');
    assert.equal(applied.code, 0, applied.stderr);
    assert.equal((await first.client.state()).generation, 1);
  });

  it('refuses a plan file that names no engine, and an apply bound to another engine', async () => {
    const file = join(lab.path, 'a-kept.plan');
    const saved = JSON.parse(await readFile(file, 'utf8')) as SavedPlan;
    delete saved.engineId;
    const unbound = join(lab.path, 'unbound.plan');
    await writeFile(unbound, JSON.stringify(saved), { mode: 0o600 });
    const refused = await cli(second, 'apply', unbound, '--auto-approve');
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /stale plan: .*names no engine/);

    // The engine's own check, for any client: the identity travels with the apply.
    const config = saved.config;
    const other = (await first.client.state()).engineId;
    await assert.rejects(
      second.client.apply(config, 0, other),
      (error: unknown) =>
        error instanceof ControlError &&
        error.code === 'stale-plan' &&
        /made against engine .*, this is engine .*even if at the same generation/.test(
          error.message,
        ),
    );
    assert.equal((await second.client.state()).generation, 0);
  });
});
