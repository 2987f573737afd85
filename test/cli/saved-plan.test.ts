// plan --out FILE and apply FILE against a real engine: the saved plan is 0600 and carries its
// configuration, applies exactly, is refused once stale; a locked engine refuses a second apply.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFile, rename, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { register as registerApply } from '../../src/cli/apply.js';
import { register as registerHistory } from '../../src/cli/history.js';
import { register as registerPlan } from '../../src/cli/plan.js';
import type { SavedPlan } from '../../src/model.js';
import { domsecInProcess } from '../support/cli.js';
import { startEngine, type RunningEngine } from '../support/engine.js';
import { ADATUM, TREY, partnerManifest, writeLab, writeManifests } from '../support/manifests.js';
import { tempDir } from '../support/tmp.js';

const CONTOSO = { name: 'contoso', hostname: 'mail.contoso.com', domain: 'contoso.com' };
const commands = [registerPlan, registerApply, registerHistory];

describe('saved plans: plan --out, apply FILE', () => {
  let lab: Awaited<ReturnType<typeof tempDir>>;
  let running: RunningEngine;
  let manifests: string;
  let target: string[];
  const cli = (...args: string[]) => domsecInProcess(commands, [...args, ...target]);

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
    // The manifests are a Git checkout: the applied generation records its revision.
    const git = (...args: string[]) =>
      execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@example.com', ...args], {
        cwd: manifests,
        stdio: 'pipe',
      });
    git('init', '-q');
    git('add', '.');
    git('commit', '-q', '-m', 'adatum');
    running = await startEngine(join(lab.path, 'state'));
    target = ['--server', running.control.url];
    process.env.DOMSEC_TOKEN = running.token;
  });

  after(async () => {
    delete process.env.DOMSEC_TOKEN;
    await running.stop();
    await lab.remove();
  });

  it('saves the plan with its configuration, mode 0600, and says it holds the private key', async () => {
    const file = join(lab.path, 'first.plan');
    const result = await cli('plan', '-f', manifests, '--out', file, '-o', 'json');
    assert.equal(result.code, 0, result.stderr);
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    assert.match(result.stderr, /mode 0600: it contains the private key/);
    const saved = JSON.parse(await readFile(file, 'utf8')) as SavedPlan;
    assert.equal(saved.kind, 'SavedPlan');
    assert.equal(saved.formatVersion, 1);
    assert.equal(saved.plan.baseGeneration, 0);
    assert.deepEqual(saved.plan, JSON.parse(result.stdout));
    assert.match(saved.config.certificates[0]?.spec.keyPem ?? '', /PRIVATE KEY/);
    assert.doesNotMatch(result.stdout, /PRIVATE KEY/);
  });

  it('applies exactly the saved plan, prints the new generation and records the Git revision', async () => {
    const file = join(lab.path, 'first.plan');
    // The manifests change after the plan was saved: apply FILE must not read them.
    await writeFile(
      join(manifests, 'partners', 'contoso.yaml'),
      partnerManifest(CONTOSO, 'system', false),
    );
    try {
      const result = await cli('apply', file, '--auto-approve', '--approve-weakening');
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stdout, /Apply complete: the engine runs generation 1\./);
      // It holds the private key and has done its job.
      await assert.rejects(stat(file), { code: 'ENOENT' });
      assert.match(result.stderr, /Deleted .*first\.plan/);
      const state = await running.client.state();
      assert.equal(state.generation, 1);
      assert.ok(!state.objects.some((o) => o.name === 'contoso'), 'only what was planned');
      const head = execFileSync('git', ['rev-parse', 'HEAD'], { cwd: manifests }).toString().trim();
      assert.equal(state.source?.revision, head);
      const history = await cli('history');
      assert.match(history.stdout, new RegExp(`\\*1 .* ${head.slice(0, 12)} `));
    } finally {
      await rename(join(manifests, 'partners', 'contoso.yaml'), join(lab.path, 'contoso.off'));
    }
  });

  it('refuses a saved plan once the engine moved since (stale plan, exit 1), changing nothing', async () => {
    const file = join(lab.path, 'stale.plan');
    await writeFile(
      join(manifests, 'partners', 'contoso.yaml'),
      partnerManifest(CONTOSO, 'system', false),
    );
    try {
      const planned = await cli('plan', '-f', manifests, '--out', file, '--detailed-exitcode');
      assert.equal(planned.code, 2, planned.stderr);
      const moved = await cli('apply', '-f', manifests, '--auto-approve');
      assert.equal(moved.code, 0, moved.stderr);
      const generation = (await running.client.state()).generation;
      // contoso.yaml is not committed: the revision alone would claim what was applied.
      const head = execFileSync('git', ['rev-parse', 'HEAD'], { cwd: manifests }).toString().trim();
      const history = await cli('history');
      assert.match(history.stdout, new RegExp(`\\*${generation} .* ${head.slice(0, 12)}\\+dirty `));

      const result = await cli('apply', file, '--auto-approve');
      assert.equal(result.code, 1);
      assert.match(
        result.stderr,
        new RegExp(
          `stale plan: the plan was made against generation 1, the engine is now at ${generation}`,
        ),
      );
      assert.equal((await running.client.state()).generation, generation);
      await stat(file); // a refused plan is kept, for its user to see why
    } finally {
      await rename(join(manifests, 'partners', 'contoso.yaml'), join(lab.path, 'contoso.off'));
    }
  });

  it('refuses a saved plan without a terminal unless --auto-approve', async () => {
    const file = join(lab.path, 'unapproved.plan');
    const planned = await cli('plan', '-f', manifests, '--out', file);
    assert.equal(planned.code, 0, planned.stderr);
    const generation = (await running.client.state()).generation;
    const result = await cli('apply', file);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /no terminal; pass --auto-approve/);
    assert.equal((await running.client.state()).generation, generation);
  });

  it('refuses a directory given as the plan file, asking whether -f was meant', async () => {
    const result = await cli('apply', manifests, '--auto-approve');
    assert.equal(result.code, 1);
    assert.equal(
      result.stderr,
      `domsec: ${manifests} is a directory, not a plan saved by plan --out: did you mean -f ${manifests}?\n`,
    );
  });

  it('refuses plan -o json output as a saved plan, and a plan file given with -f', async () => {
    const json = await cli('plan', '-f', manifests, '-o', 'json');
    const file = join(lab.path, 'not-saved.json');
    await writeFile(file, json.stdout);
    const result = await cli('apply', file, '--auto-approve');
    assert.equal(result.code, 1);
    assert.match(result.stderr, /is not a saved plan: make one with `domsec plan --out/);
    const both = await cli('apply', file, '-f', manifests, '--auto-approve');
    assert.equal(both.code, 1);
    assert.match(both.stderr, /either -f manifests or a saved plan file/);
  });

  it('exits 1 on invalid manifests, 2 with changes, 0 without (--detailed-exitcode)', async () => {
    const now = await cli('plan', '-f', manifests, '--detailed-exitcode');
    assert.equal(now.code, 2, 'the engine still runs contoso, which the manifests dropped');
    const synced = await cli('apply', '-f', manifests, '--auto-approve', '--approve-weakening');
    assert.equal(synced.code, 0, synced.stderr);
    assert.equal((await cli('plan', '-f', manifests, '--detailed-exitcode')).code, 0);
    const broken = join(manifests, 'partners', 'broken.yaml');
    await writeFile(
      broken,
      'apiVersion: domsec.io/v1alpha1\nkind: PartnerDomain\nmetadata: {name: x}\nspec: {}\n',
    );
    try {
      const result = await cli('plan', '-f', manifests, '--detailed-exitcode');
      assert.equal(result.code, 1);
      assert.match(result.stderr, /broken\.yaml:\d+:\d+/);
    } finally {
      await rename(broken, join(lab.path, 'broken.off'));
    }
  });
});
