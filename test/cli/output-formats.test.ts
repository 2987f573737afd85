// Every command takes the same -o text|json: JSON objects carry formatVersion, and any other
// format is refused in one line with exit 1 (never a usage dump, never text printed instead).
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { writeFile } from 'node:fs/promises';
import { domsec, RunningCli } from '../support/cli.js';
import { partnerManifest } from '../support/manifests.js';
import { startCliLab, type CliLab } from '../support/cli-lab.js';

const COMMANDS = [
  ['validate'],
  ['plan'],
  ['apply', '--auto-approve'],
  ['rollback', '1', '--auto-approve'],
  ['status'],
  ['history'],
  ['queue', 'list'],
  ['queue', 'show', 'some-id'],
  ['probe', 'adatum.com'],
  ['watch'],
];

describe('output formats', () => {
  let lab: CliLab;
  let manifests: string;
  let env: Record<string, string>;

  before(async () => {
    lab = await startCliLab();
    ({ manifests, env } = lab);
  });

  after(() => lab.stop());

  for (const command of COMMANDS) {
    it(`${command.join(' ')} refuses -o xml in one line with exit 1`, async () => {
      const result = await domsec([...command, '-f', manifests, '-o', 'xml'], env, 15_000);
      assert.equal(result.code, 1, result.stderr);
      assert.equal(result.stdout, '');
      assert.equal(result.stderr, 'domsec: -o xml: the output format is text or json\n');
    });
  }

  it('apply -o json prints one object with formatVersion, the plan and the generation', async () => {
    const result = await domsec(
      ['apply', '-f', manifests, '--auto-approve', '--approve-weakening', '-o', 'json'],
      env,
    );
    assert.equal(result.code, 0, result.stderr);
    const applied = JSON.parse(result.stdout) as {
      formatVersion: number;
      applied: boolean;
      generation: number;
      plan: { changes: { kind: string; name: string }[] };
    };
    assert.equal(applied.formatVersion, 1);
    assert.equal(applied.applied, true);
    assert.equal(applied.generation, 1);
    assert.ok(applied.plan.changes.some((c) => c.kind === 'PartnerDomain'));

    const again = await domsec(['apply', '-f', manifests, '--auto-approve', '-o', 'json'], env);
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual(
      (({ formatVersion, applied: done, generation }) => ({ formatVersion, done, generation }))(
        JSON.parse(again.stdout) as { formatVersion: number; applied: boolean; generation: number },
      ),
      { formatVersion: 1, done: false, generation: 1 },
    );
  });

  it('apply and rollback -o json refuse to run without --auto-approve', async () => {
    for (const command of [['apply'], ['rollback', '1']]) {
      const result = await domsec([...command, '-f', manifests, '-o', 'json'], env);
      assert.equal(result.code, 1);
      assert.equal(result.stdout, '');
      assert.match(
        result.stderr,
        /^domsec: -o json prints no plan to confirm: pass --auto-approve/,
      );
    }
  });

  it('rollback -o json prints one object with formatVersion and the new generation', async () => {
    const result = await domsec(
      ['rollback', '1', '-f', manifests, '--auto-approve', '-o', 'json'],
      env,
    );
    assert.equal(result.code, 0, result.stderr);
    const rolled = JSON.parse(result.stdout) as {
      formatVersion: number;
      rolledBackTo: number;
      generation: number;
    };
    assert.equal(rolled.formatVersion, 1);
    assert.equal(rolled.rolledBackTo, 1);
    assert.equal(rolled.generation, 2);
  });

  it('queue list and status -o json carry formatVersion', async () => {
    for (const command of [['queue', 'list'], ['status']]) {
      const result = await domsec([...command, '-f', manifests, '-o', 'json'], env);
      assert.equal(result.code, 0, result.stderr);
      assert.equal((JSON.parse(result.stdout) as { formatVersion: number }).formatVersion, 1);
    }
  });

  it('watch -o json prints one object per event, one per line, each with formatVersion', async () => {
    const watch = new RunningCli(
      ['watch', '-f', manifests, '--settle', '200ms', '-o', 'json'],
      env,
    );
    try {
      await watch.waitForOutput(/"event":"watching"/);
      await writeFile(
        join(manifests, 'partners', 'contoso.yaml'),
        partnerManifest(
          { name: 'contoso', hostname: 'mail.contoso.com', domain: 'contoso.com' },
          'system',
          false,
        ),
      );
      await watch.waitForOutput(/"event":"applied"/);
    } finally {
      await watch.stop();
    }
    const events = watch.stdout
      .trimEnd()
      .split('\n')
      .map((line) => JSON.parse(line) as { formatVersion: number; event: string });
    assert.ok(
      events.every((e) => e.formatVersion === 1),
      watch.stdout,
    );
    assert.deepEqual(
      events.map((e) => e.event),
      ['watching', 'plan', 'applied'],
      watch.stdout,
    );
  });
});
