// watch applies whole saves only and never goes deaf, by real file operations against a real
// engine: a rename over, a directory removed and recreated, a symbolic link swapped (of the -f
// directory, and Kubernetes' `..data`), a certificate and key rewritten in place outside the
// manifests, a save written in two chunks, and a truncated file, which deletes nothing without
// --prune.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { cp, mkdir, open, readFile, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { EngineState, ReconcileStatus } from '../../src/model.js';
import { issueCertificate } from '../../src/pki/lab.js';
import { watchManifests, type WatchOptions, type WatchOutcome } from '../../src/reconcile/watch.js';
import { eventually, startEngine, type RunningEngine } from '../support/engine.js';
import { ADATUM, TREY, writeLab, writeManifests } from '../support/manifests.js';
import { freePort } from '../support/ports.js';
import { tempDir } from '../support/tmp.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const FROM_PARTNERS = '  authMechanisms: [tls]\n  domainSecure: true';

/** connectors.yaml with the partner connector's size limit set (an edit seen in the state). */
function withSize(connectors: string, size: number): string {
  const edited = connectors.replace(
    FROM_PARTNERS,
    `${FROM_PARTNERS}\n  maxMessageSize: "${size}B"`,
  );
  assert.notEqual(edited, connectors);
  return edited;
}

/** connectors.yaml with the send connector's cost set. */
function withCost(connectors: string): string {
  const edited = connectors.replace(
    'domainSecure: true\n---',
    'domainSecure: true\n  cost: 5\n---',
  );
  assert.notEqual(edited, connectors);
  return edited;
}

/** Puts an environment variable back as it was. */
function restore(
  name: 'CHOKIDAR_USEPOLLING' | 'CHOKIDAR_INTERVAL',
  value: string | undefined,
): void {
  if (value !== undefined) process.env[name] = value;
  else if (name === 'CHOKIDAR_USEPOLLING') delete process.env.CHOKIDAR_USEPOLLING;
  else delete process.env.CHOKIDAR_INTERVAL;
}

function sizeOf(state: EngineState): unknown {
  return state.objects.find((o) => o.kind === 'ReceiveConnector' && o.name === 'from-partners')
    ?.spec.maxMessageSize;
}

function has(state: EngineState, kind: string, name: string): boolean {
  return state.objects.some((o) => o.kind === kind && o.name === name);
}

describe('watch follows whole saves wherever the files go', () => {
  let lab: Awaited<ReturnType<typeof tempDir>>;
  /** The manifests as written, copied for each test; their pki/ stays beside them. */
  let template: string;
  let pki: string;
  let connectors: string;
  let count = 0;

  before(async () => {
    lab = await tempDir();
    await writeLab(lab.path);
    template = await writeManifests({
      root: lab.path,
      org: ADATUM,
      partner: TREY,
      partnerBinding: `127.0.0.1:${await freePort()}`,
      internalBinding: '127.0.0.1:0',
      adminListen: '127.0.0.1:1',
      partnerRoute: { host: '127.0.0.1', port: 9 },
      trust: 'root',
    });
    pki = join(template, 'pki');
    connectors = await readFile(join(template, 'connectors.yaml'), 'utf8');
  });

  after(async () => {
    await lab.remove();
  });

  /** A fresh copy of the manifests (pki/ included) under a new directory of the lab. */
  async function copy(to = join(lab.path, `copy-${++count}`)): Promise<string> {
    await cp(template, to, { recursive: true });
    return to;
  }

  interface Watching {
    engine: RunningEngine;
    printed: () => string;
    outcomes: WatchOutcome[];
    /** Waits (bounded) for the engine to run a generation the probe accepts. */
    until: (what: string, probe: (state: EngineState) => boolean) => Promise<EngineState>;
    status: (what: string, probe: (status: ReconcileStatus) => boolean) => Promise<ReconcileStatus>;
  }

  /** Runs watch on `paths` against a new engine while `body` runs; stops both after. */
  async function watching(
    paths: string[],
    body: (watch: Watching) => Promise<void>,
    options: Partial<WatchOptions> = {},
  ): Promise<void> {
    const engine = await startEngine(join(lab.path, `state-${++count}`));
    const controller = new AbortController();
    const printed: string[] = [];
    const outcomes: WatchOutcome[] = [];
    const done = watchManifests({
      paths,
      client: engine.client,
      signal: controller.signal,
      print: (text) => printed.push(text),
      onReconciled: (outcome) => outcomes.push(outcome),
      settleMs: 300,
      retryMs: 200,
      approveWeakening: true, // what protects here is the settle window and --prune, not the gate
      ...options,
    });
    const watch: Watching = {
      engine,
      printed: () => printed.join(''),
      outcomes,
      until: (what, probe) =>
        eventually(
          what,
          async () => {
            const state = await engine.client.state();
            return probe(state) ? state : undefined;
          },
          15_000,
        ),
      status: (what, probe) =>
        eventually(
          what,
          async () => {
            const status = await engine.client.status();
            return probe(status) ? status : undefined;
          },
          15_000,
        ),
    };
    try {
      await watch.until('the first reconcile', (state) => state.generation === 1);
      await body(watch);
    } catch (error) {
      throw new Error(`${(error as Error).message}\nwatch printed:\n${watch.printed()}`, {
        cause: error,
      });
    } finally {
      controller.abort();
      await done;
      await engine.stop();
    }
  }

  it('applies an editor save renamed over the file, once', async () => {
    const dir = await copy();
    await watching([dir], async (watch) => {
      const file = join(dir, 'connectors.yaml');
      await writeFile(`${file}.tmp`, withSize(connectors, 1_000_001));
      await rename(`${file}.tmp`, file);
      await watch.until('the save', (state) => sizeOf(state) === '1000001B');
      await sleep(600); // two settle windows: nothing more to apply
      assert.equal((await watch.engine.client.state()).generation, 2);
    });
  });

  it('is not held off by a busy file under the directory that no manifest reads', async () => {
    const dir = await copy();
    await watching([dir], async (watch) => {
      // A log kept beside the manifests, written every 50 ms: shorter than any settle window.
      const busy = setInterval(() => void writeFile(join(dir, 'notes.log'), `${Date.now()}\n`), 50);
      try {
        await writeFile(join(dir, 'connectors.yaml'), withSize(connectors, 1_000_012));
        await watch.until('the save', (state) => sizeOf(state) === '1000012B');
      } finally {
        clearInterval(busy);
      }
    });
  });

  it('follows its directory removed and recreated: Ready=False with the reason meanwhile, then applies every later save', async () => {
    const dir = await copy();
    await watching([dir], async (watch) => {
      await rm(dir, { recursive: true, force: true });
      const deaf = await watch.status('the status to say it cannot watch', (s) =>
        /cannot watch/.test(String(s.lastAttemptError)),
      );
      assert.equal(deaf.ready, false);
      assert.match(String(deaf.lastAttemptError), /cannot watch .*: it does not exist; retrying/);
      assert.equal((await watch.engine.client.state()).generation, 1, 'nothing applied');
      assert.ok(has(await watch.engine.client.state(), 'ReceiveConnector', 'from-partners'));

      // A deploy puts the directory back, with a change.
      await copy(dir);
      await writeFile(join(dir, 'connectors.yaml'), withSize(connectors, 1_000_002));
      await watch.until('the recreated directory', (state) => sizeOf(state) === '1000002B');
      await watch.status('Ready again', (s) => s.ready && s.lastAttemptError === null);

      // And it is not deaf afterwards: the next save in place applies too.
      await writeFile(join(dir, 'connectors.yaml'), withSize(connectors, 1_000_003));
      await watch.until('a later save', (state) => sizeOf(state) === '1000003B');
      assert.match(watch.printed(), /Not watching: cannot watch .*\n/);
      assert.match(watch.printed(), /Watching .* again\.\n/);
    });
  });

  it('follows a symbolic link of the -f directory swapped to another release', async () => {
    const release1 = await copy();
    const release2 = await copy();
    await writeFile(join(release2, 'connectors.yaml'), withSize(connectors, 1_000_004));
    const current = join(lab.path, `current-${++count}`);
    await symlink(release1, current);
    await watching([current], async (watch) => {
      await symlink(release2, `${current}.tmp`);
      await rename(`${current}.tmp`, current); // atomic, as deploy tools swap releases
      await watch.until('the swapped release', (state) => sizeOf(state) === '1000004B');
      // It watches where the link leads now.
      await writeFile(join(release2, 'connectors.yaml'), withSize(connectors, 1_000_005));
      await watch.until('a save in the new release', (state) => sizeOf(state) === '1000005B');
    });
  });

  it("follows Kubernetes' ..data link swapped atomically, with the certificate files outside the mount", async () => {
    // The kubelet's layout of a ConfigMap: dir/file.yaml -> ..data/file.yaml, ..data -> a version.
    const mount = join(lab.path, `configmap-${++count}`);
    const version = async (name: string, size?: number) => {
      await mkdir(join(mount, name), { recursive: true });
      const files: Record<string, string> = {
        'organization.yaml': await readFile(join(template, 'organization.yaml'), 'utf8'),
        'connectors.yaml': size === undefined ? connectors : withSize(connectors, size),
        'treyresearch.yaml': await readFile(
          join(template, 'partners', 'treyresearch.yaml'),
          'utf8',
        ),
      };
      for (const [file, text] of Object.entries(files)) {
        // A Secret mounted elsewhere holds the PKI: absolute paths, outside the watched mount.
        const absolute = text.replace(/(certFile|keyFile|pemFile): (\.\.\/)?pki\//g, `$1: ${pki}/`);
        await writeFile(join(mount, name, file), absolute);
      }
    };
    await version('..2026_12_06_01');
    await symlink('..2026_12_06_01', join(mount, '..data'));
    for (const file of ['organization.yaml', 'connectors.yaml', 'treyresearch.yaml'])
      await symlink(join('..data', file), join(mount, file));
    await watching([mount], async (watch) => {
      // An update: a new version, a new link renamed over ..data, the old version removed.
      await version('..2026_12_06_02', 1_000_006);
      await symlink('..2026_12_06_02', join(mount, '..data_tmp'));
      await rename(join(mount, '..data_tmp'), join(mount, '..data'));
      await rm(join(mount, '..2026_12_06_01'), { recursive: true });
      await watch.until('the new ConfigMap version', (state) => sizeOf(state) === '1000006B');
      // And the next update too.
      await version('..2026_12_06_03', 1_000_007);
      await symlink('..2026_12_06_03', join(mount, '..data_tmp'));
      await rename(join(mount, '..data_tmp'), join(mount, '..data'));
      await rm(join(mount, '..2026_12_06_02'), { recursive: true });
      await watch.until('the next ConfigMap version', (state) => sizeOf(state) === '1000007B');
    });
  });

  it('picks up a certificate and key rewritten in place outside the manifests, without --resync', async () => {
    const dir = await copy();
    const secrets = join(lab.path, `secrets-${++count}`);
    await cp(pki, secrets, { recursive: true });
    const organization = join(dir, 'organization.yaml');
    const text = await readFile(organization, 'utf8');
    await writeFile(organization, text.replace(/(certFile|keyFile): pki\//g, `$1: ${secrets}/`));
    await watching([dir], async (watch) => {
      const before = (await watch.engine.client.state()).objects.find(
        (o) => o.kind === 'Certificate',
      )?.spec.fingerprint;
      const renewed = issueCertificate(
        {
          commonName: 'adatum Root CA',
          certPem: await readFile(join(secrets, 'adatum-root.crt'), 'utf8'),
          keyPem: await readFile(join(secrets, 'adatum-root.key'), 'utf8'),
          fingerprint: '',
        },
        { commonName: ADATUM.hostname, dnsNames: [ADATUM.hostname, ADATUM.domain] },
      );
      const expected = new X509Certificate(renewed.certPem).fingerprint256;
      assert.notEqual(before, expected);
      // A renewal tool writing the pair in place, key first: the pair is taken once both settle.
      await writeFile(join(secrets, `${ADATUM.hostname}.key`), renewed.keyPem, { mode: 0o600 });
      await sleep(100);
      await writeFile(join(secrets, `${ADATUM.hostname}.crt`), renewed.certPem);
      const state = await watch.until(
        'the renewed certificate',
        (s) => s.objects.find((o) => o.kind === 'Certificate')?.spec.fingerprint === expected,
      );
      assert.equal(state.generation, 2, 'one generation for the pair');
      assert.ok(
        watch.outcomes.every((o) => o.status !== 'failed' && o.status !== 'invalid'),
        JSON.stringify(watch.outcomes),
      );
    });
  });

  it('--resync notices a change no event reported, by content', async () => {
    const dir = await copy();
    const file = join(dir, 'connectors.yaml');
    // Polling once a minute, as a slow network file system's watcher: within the test no event
    // comes, whatever changes, and only the resync's digests can see it.
    const polling = {
      use: process.env.CHOKIDAR_USEPOLLING,
      interval: process.env.CHOKIDAR_INTERVAL,
    };
    process.env.CHOKIDAR_USEPOLLING = '1';
    process.env.CHOKIDAR_INTERVAL = '60000';
    try {
      await watching(
        [dir],
        async (watch) => {
          await writeFile(file, withSize(connectors, 1_000_010));
          await sleep(1_000); // several settle windows: no event came
          assert.equal((await watch.engine.client.state()).generation, 1, 'an event came');
          await watch.until('the resync', (state) => sizeOf(state) === '1000010B');
          assert.match(watch.printed(), /Resync: .*connectors\.yaml changed\.\n/);
        },
        { resyncMs: 2_000 },
      );
    } finally {
      restore('CHOKIDAR_USEPOLLING', polling.use);
      restore('CHOKIDAR_INTERVAL', polling.interval);
    }
  });

  it('applies nothing between two chunks of a save written 600 ms apart, then the whole save once', async () => {
    const dir = await copy();
    const file = join(dir, 'connectors.yaml');
    // The save changes both connectors written first; the internal connector comes after them.
    const saved = withCost(withSize(connectors, 1_000_008));
    // Cut before the last document: what was written first is a valid configuration without
    // the internal receive connector.
    const cut = saved.lastIndexOf('---');
    await watching(
      [dir],
      async (watch) => {
        const handle = await open(file, 'w'); // truncates, as a non-atomic save does
        try {
          await handle.write(saved.slice(0, cut)); // parses and validates
          await handle.sync();
          await sleep(600);
          assert.equal((await watch.engine.client.state()).generation, 1, 'applied a half save');
          await handle.write(saved.slice(cut));
        } finally {
          await handle.close();
        }
        const state = await watch.until('the whole save', (s) => s.generation > 1);
        assert.equal(state.generation, 2);
        assert.equal(sizeOf(state), '1000008B');
        assert.ok(has(state, 'ReceiveConnector', 'internal'));
        assert.ok(state.listeners.every((l) => l.listening));
        await sleep(1_200);
        assert.equal((await watch.engine.client.state()).generation, 2, 'applied once');
      },
      // The default window, and --prune: a half save taken would delete the internal connector.
      { settleMs: undefined, prune: true },
    );
  });

  it('deletes nothing for a truncated file without --prune, says what it would delete, and applies the rest', async () => {
    const dir = await copy();
    await watching([dir], async (watch) => {
      await writeFile(join(dir, 'partners', 'treyresearch.yaml'), '');
      // Cut after its first document: the send connector, with a change, and no receivers.
      const cut = withCost(connectors);
      await writeFile(join(dir, 'connectors.yaml'), cut.slice(0, cut.indexOf('---')));
      const state = await watch.until('the rest of the save', (s) => s.generation > 1);
      assert.equal(
        state.objects.find((o) => o.kind === 'SendConnector')?.spec.cost,
        5,
        'the send connector changed',
      );
      for (const [kind, name] of [
        ['PartnerDomain', 'treyresearch'],
        ['TrustAnchor', 'treyresearch-root'],
        ['ReceiveConnector', 'from-partners'],
        ['ReceiveConnector', 'internal'],
      ] as const) {
        assert.ok(has(state, kind, name), `${kind}/${name} kept`);
      }
      assert.ok(state.listeners.every((l) => l.listening));
      assert.match(
        watch.printed(),
        /Not deleting \(watch runs without --prune\): PartnerDomain\/treyresearch, ReceiveConnector\/from-partners, ReceiveConnector\/internal, TrustAnchor\/treyresearch-root\.\n/,
      );
    });
  });

  it('deletes what the manifests dropped when run with --prune', async () => {
    const dir = await copy();
    await watching(
      [dir],
      async (watch) => {
        await rm(join(dir, 'partners', 'treyresearch.yaml'));
        const state = await watch.until('the deletion', (s) => s.generation > 1);
        assert.ok(!has(state, 'PartnerDomain', 'treyresearch'));
        assert.ok(!has(state, 'TrustAnchor', 'treyresearch-root'));
        assert.doesNotMatch(watch.printed(), /Not deleting/);
      },
      { prune: true },
    );
  });
});
