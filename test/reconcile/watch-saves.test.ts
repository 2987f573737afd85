// watch never applies a half-written save: a manifest truncated and written a moment later (a
// non-atomic save), or a file renamed away while an editor keeps a backup, is read again once it
// settles, and the partner it holds is never deleted in between.
import assert from 'node:assert/strict';
import { readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadConfiguration } from '../../src/config/index.js';
import { watchManifests, type WatchOutcome } from '../../src/reconcile/watch.js';
import { eventually, startEngine, type RunningEngine } from '../support/engine.js';
import { ADATUM, TREY, writeLab, writeManifests } from '../support/manifests.js';
import { freePort } from '../support/ports.js';
import { tempDir } from '../support/tmp.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('watch and saves in progress', () => {
  let lab: Awaited<ReturnType<typeof tempDir>>;
  let running: RunningEngine;
  let manifests: string;
  let partnerFile: string;

  before(async () => {
    lab = await tempDir();
    await writeLab(lab.path);
    manifests = await writeManifests({
      root: lab.path,
      org: ADATUM,
      partner: TREY,
      partnerBinding: `127.0.0.1:${await freePort()}`,
      internalBinding: '127.0.0.1:0',
      adminListen: '127.0.0.1:1',
      partnerRoute: { host: '127.0.0.1', port: 9 },
      trust: 'root',
    });
    partnerFile = join(manifests, 'partners', `${TREY.name}.yaml`);
    running = await startEngine(join(lab.path, 'state'));
    const load = await loadConfiguration([manifests]);
    assert.ok(load.config !== undefined);
    await running.client.apply(load.config);
  });

  after(async () => {
    await running.stop();
    await lab.remove();
  });

  /** Runs watch while `edit` runs; every generation the engine ran meanwhile kept the partner. */
  async function watching(edit: () => Promise<void>): Promise<WatchOutcome[]> {
    const controller = new AbortController();
    const outcomes: WatchOutcome[] = [];
    const printed: string[] = [];
    const start = (await running.client.state()).generation;
    const done = watchManifests({
      paths: [manifests],
      client: running.client,
      signal: controller.signal,
      print: (text) => printed.push(text),
      onReconciled: (outcome) => outcomes.push(outcome),
    });
    try {
      await eventually('the first reconcile', async () => (outcomes.length > 0 ? true : undefined));
      await edit();
      // Let watch see the end of the save, then settle.
      await sleep(1_500);
      const history = await running.client.history();
      for (const entry of history.entries.filter((e) => e.generation > start)) {
        assert.fail(`generation ${entry.generation} was applied while saving: ${printed.join('')}`);
      }
      const partner = (await running.client.state()).objects.find(
        (o) => o.kind === 'PartnerDomain' && o.name === TREY.name,
      );
      assert.ok(partner !== undefined, 'the partner is still configured');
      return outcomes;
    } finally {
      controller.abort();
      await done;
    }
  }

  it('waits for a manifest truncated now and written 400 ms later, and applies nothing', async () => {
    const original = await readFile(partnerFile, 'utf8');
    const outcomes = await watching(async () => {
      await writeFile(partnerFile, ''); // an editor truncating in place...
      await sleep(400); // ...and writing the content back a moment later
      await writeFile(partnerFile, original);
    });
    assert.ok(
      outcomes.every((o) => o.status === 'unchanged'),
      JSON.stringify(outcomes),
    );
  });

  it('waits while an editor renames the file to its backup and writes it anew', async () => {
    const original = await readFile(partnerFile, 'utf8');
    const outcomes = await watching(async () => {
      await rename(partnerFile, `${partnerFile}~`); // the backup (ignored by the loader)
      await sleep(60);
      await writeFile(partnerFile, original);
    });
    assert.ok(
      outcomes.every((o) => o.status === 'unchanged'),
      JSON.stringify(outcomes),
    );
  });

  it('refuses a weakening edit unless started with --approve-weakening, keeping the running generation', async () => {
    const original = await readFile(partnerFile, 'utf8');
    const weakened = original.replace(
      'domainSecure: {send: true, receive: true}',
      'domainSecure: {send: true, receive: false}',
    );
    assert.notEqual(weakened, original);
    const run = async (approveWeakening: boolean) => {
      const controller = new AbortController();
      const outcomes: WatchOutcome[] = [];
      const printed: string[] = [];
      const done = watchManifests({
        paths: [manifests],
        client: running.client,
        signal: controller.signal,
        print: (text) => printed.push(text),
        onReconciled: (outcome) => outcomes.push(outcome),
        approveWeakening,
      });
      try {
        await eventually('the first reconcile', async () =>
          outcomes.length > 0 ? true : undefined,
        );
        await writeFile(`${partnerFile}.tmp`, weakened);
        await rename(`${partnerFile}.tmp`, partnerFile);
        return await eventually('the edit to be reconciled', async () => {
          const last = outcomes.at(-1);
          return outcomes.length > 1 && last !== undefined && last.status !== 'unchanged'
            ? { last, printed: printed.join('') }
            : undefined;
        });
      } finally {
        controller.abort();
        await done;
        await writeFile(partnerFile, original);
      }
    };
    const before = (await running.client.state()).generation;
    const refused = await run(false);
    assert.equal(refused.last.status, 'failed');
    assert.match(
      refused.printed,
      /Refused: changes that weaken domain security need --approve-weakening: PartnerDomain\/treyresearch/,
    );
    assert.equal((await running.client.state()).generation, before, 'nothing applied');
    assert.match(String((await running.client.status()).lastAttemptError), /--approve-weakening/);

    const applied = await run(true);
    assert.equal(applied.last.status, 'applied');
    assert.equal((await running.client.state()).generation, before + 1);
    // Each attempt was reported with its duration: the engine's metrics time the reconciler.
    const metrics = await fetch(`${running.control.url}/metrics`, {
      headers: { authorization: `Bearer ${running.token}` },
    });
    const text = await metrics.text();
    assert.match(text, /^domsec_reconcile_duration_seconds_count\{outcome="applied"\} [1-9]/m);
    assert.match(text, /^domsec_reconcile_duration_seconds_count\{outcome="failed"\} [1-9]/m);
  });
});
