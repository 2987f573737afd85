// plan, apply and watch against a real engine over the admin API, the CLI run as a user runs it.
import assert from 'node:assert/strict';
import { readFile, writeFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { domsec, RunningCli } from '../support/cli.js';
import { eventually, type RunningEngine } from '../support/engine.js';
import { TREY, partnerManifest } from '../support/manifests.js';
import { startCliLab, type CliLab } from '../support/cli-lab.js';

describe('plan, apply and watch', () => {
  let lab: CliLab;
  let running: RunningEngine;
  let manifests: string;
  let env: Record<string, string>;

  before(async () => {
    lab = await startCliLab();
    ({ running, manifests, env } = lab);
  });

  after(() => lab.stop());

  it('applies the manifests with --auto-approve and the engine runs them', async () => {
    const result = await domsec(
      ['apply', '-f', manifests, '--auto-approve', '--approve-weakening'],
      env,
    );
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /\+ PartnerDomain\/treyresearch/);
    assert.match(result.stdout, /Apply complete: the engine runs generation 1\./);
    const state = await running.client.state();
    assert.equal(state.generation, 1);
    assert.ok(
      state.objects.some((o) => o.kind === 'PartnerDomain' && o.spec.domain === 'treyresearch.net'),
    );
    assert.ok(state.listeners.every((l) => l.listening));
  });

  it('refuses to apply without a terminal and without --auto-approve', async () => {
    await writeFile(
      join(manifests, 'partners', 'contoso.yaml'),
      partnerManifest(
        { name: 'contoso', hostname: 'mail.contoso.com', domain: 'contoso.com' },
        'system',
        false,
      ),
    );
    try {
      const result = await domsec(['apply', '-f', manifests], env);
      assert.equal(result.code, 1);
      assert.match(result.stderr, /no terminal/);
      assert.equal((await running.client.state()).generation, 1);
    } finally {
      await rename(
        join(manifests, 'partners', 'contoso.yaml'),
        join(lab.root.path, 'contoso.yaml.off'),
      );
    }
  });

  it('plan says "No changes" and exits 0 when the engine matches', async () => {
    const result = await domsec(['plan', '-f', manifests, '--detailed-exitcode'], env);
    assert.equal(result.stderr, '');
    assert.equal(result.code, 0);
    assert.equal(result.stdout, 'No changes. The engine matches the manifests.\n');
  });

  it('plan lists an added partner and exits 2 with --detailed-exitcode', async () => {
    const file = join(manifests, 'partners', 'contoso.yaml');
    await writeFile(
      file,
      partnerManifest(
        { name: 'contoso', hostname: 'mail.contoso.com', domain: 'contoso.com' },
        'system',
        false,
      ),
    );
    try {
      const result = await domsec(['plan', '-f', manifests, '--detailed-exitcode'], env);
      assert.equal(result.code, 2, result.stderr);
      assert.match(result.stdout, /\+ PartnerDomain\/contoso/);
      assert.match(result.stdout, /TLSReceiveDomainSecureList \+= contoso\.com/);
      assert.match(result.stdout, /Plan: 1 to add, 0 to change, 0 to delete\./);
      const json = await domsec(['plan', '-f', manifests, '-o', 'json'], env);
      assert.equal(json.code, 0);
      const plan = JSON.parse(json.stdout) as {
        formatVersion: number;
        changes: { name: string; action: string }[];
      };
      assert.equal(plan.formatVersion, 1);
      assert.deepEqual(
        plan.changes.map((c) => `${c.action} ${c.name}`),
        ['create contoso'],
      );
    } finally {
      await rename(file, join(lab.root.path, 'contoso.yaml.off'));
    }
  });

  it('plan exits 1 and says why when the engine is unreachable', async () => {
    const result = await domsec(['plan', '-f', manifests, '--server', 'http://127.0.0.1:9'], {
      DOMSEC_TOKEN: running.token,
    });
    assert.equal(result.code, 1);
    assert.match(result.stderr, /unreachable/);
  });

  it('watch applies a saved edit, refuses a broken one and keeps the last good configuration', async () => {
    // The edit turns domain security off for receiving: weakening, so approved up front.
    const watch = new RunningCli(['watch', '-f', manifests, '--approve-weakening'], env);
    try {
      await watch.waitForOutput(/Watching/);
      const file = join(manifests, 'partners', `${TREY.name}.yaml`);
      const original = await readFile(file, 'utf8');
      const generation = (await running.client.state()).generation;

      // An editor's atomic save: write a temporary file, rename it over the original.
      await writeFile(
        `${file}.tmp`,
        original.replace(
          'domainSecure: {send: true, receive: true}',
          'domainSecure: {send: true, receive: false}',
        ),
      );
      await rename(`${file}.tmp`, file);
      const applied = await eventually('the edit to be applied', async () => {
        const state = await running.client.state();
        return state.generation > generation ? state : undefined;
      });
      const partner = applied.objects.find(
        (o) => o.kind === 'PartnerDomain' && o.name === TREY.name,
      );
      assert.deepEqual(partner?.spec.domainSecure, { send: true, receive: false });

      // A broken edit: refused, printed, and the engine keeps serving generation N.
      await writeFile(
        file,
        'apiVersion: domsec.io/v1alpha1\nkind: PartnerDomain\nmetadata: {name: treyresearch}\nspec: {domain: [unclosed\n',
      );
      await watch.waitForOutput(
        /Refused: \d+ error\(s\); the engine keeps its current configuration\./,
      );
      assert.match(watch.stdout, /treyresearch\.yaml:\d+:\d+/);
      const after = await running.client.state();
      assert.equal(after.generation, applied.generation);
      assert.ok(after.listeners.every((l) => l.listening));
      await writeFile(file, original);
    } finally {
      await watch.stop();
    }
  });
});
