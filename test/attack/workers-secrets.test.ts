// What a receive worker of `domsec serve --workers 2` carries and says: the admin token is the
// primary's alone (a worker serves no admin API), and neither the token nor the private key
// appears in any log line the group writes, the workers' lines included, through mail, a failed
// reload and a worker killed with SIGKILL.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadConfiguration } from '../../src/config/index.js';
import { ControlClient } from '../../src/control/client.js';
import { eventually } from '../support/eventually.js';
import { ADATUM, TREY } from '../support/manifests.js';
import { tempDir, type TempDir } from '../support/tmp.js';
import { sendMarked, writePartnerLab, type PartnerLab } from '../reliability/partner-lab.js';
import { ServeProcess } from '../reliability/serve-process.js';
import { environmentOf, workersOf } from './worker-processes.js';

const TOKEN = 'attack-workers-token-7f3a9c2e5b1d4f60a8';

/** The base64 lines of a PEM private key: any one of them in a log is a leak. */
function keyLines(pem: string): string[] {
  return pem
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line.length >= 40 && !line.startsWith('-----'));
}

describe('secrets and receive workers', () => {
  let work: TempDir;
  let lab: PartnerLab;
  let engine: ServeProcess | undefined;

  before(async () => {
    work = await tempDir('domsec-attack-secrets-');
    lab = await writePartnerLab(work.path);
  });
  after(async () => {
    await engine?.kill();
    await work?.remove();
  });

  it(
    'starts the workers without the admin token in their environment',
    { timeout: 60_000 },
    async () => {
      engine = new ServeProcess(
        ['-f', lab.manifests, '--state', join(work.path, 'state-env'), '--workers', '2'],
        { DOMSEC_TOKEN: TOKEN },
      );
      await engine.ready();
      const workers = await workersOf(engine.pid ?? 0);
      const environments = await Promise.all(workers.map((worker) => environmentOf(worker)));
      assert.equal(await engine.stop(), 0);
      engine = undefined;
      assert.equal(workers.length, 2);
      for (const [n, worker] of workers.entries()) {
        const environment = environments[n] ?? [];
        assert.ok(
          environment.some((entry) => entry.startsWith('DOMSEC_WORKER_WRITER=')),
          'a worker environment',
        );
        const holding = environment.filter((entry) => entry.includes(TOKEN));
        assert.deepEqual(
          holding.map((entry) => entry.slice(0, entry.indexOf('='))),
          [],
          `worker ${worker}`,
        );
      }
    },
  );

  it(
    'writes neither the admin token nor the private key in any line of the group log',
    { timeout: 90_000 },
    async () => {
      const state = join(work.path, 'state-log');
      engine = new ServeProcess(
        ['-f', lab.manifests, '--state', state, '--workers', '2', '--log-level', 'debug'],
        { DOMSEC_TOKEN: TOKEN },
      );
      await engine.ready();
      for (let n = 0; n < 6; n += 1)
        assert.equal((await sendMarked(lab, `s-m${n}`, [`box@${TREY.domain}`])).code, 250);
      // A reload the workers refuse to prepare: a certificate whose key is not its key.
      const client = new ControlClient(`http://${lab.admin}`, TOKEN);
      const keyFile = join(lab.manifests, 'pki', `${TREY.hostname}.key`);
      const key = await readFile(keyFile, 'utf8');
      const otherKey = await readFile(
        join(work.path, ADATUM.name, 'pki', `${ADATUM.hostname}.key`),
        'utf8',
      );
      const { config } = await loadConfiguration([lab.manifests]);
      assert.ok(config !== undefined);
      for (const certificate of config.certificates) certificate.spec.keyPem = otherKey;
      await assert.rejects(client.apply(config));
      // A worker killed with SIGKILL: its replacement is started and told the generation.
      const [victim] = await workersOf(engine.pid ?? 0);
      assert.ok(victim !== undefined);
      process.kill(victim, 'SIGKILL');
      await eventually('a replacement worker', () => workersOf(engine?.pid ?? 0), {
        timeoutMs: 10_000,
        until: (now) => now.length === 2 && !now.includes(victim),
      });
      assert.equal((await sendMarked(lab, 's-last', [`box@${TREY.domain}`])).code, 250);
      await engine.stop();
      const log = `${engine.stdout}\n${engine.stderr}`;
      assert.ok(
        engine.events().some((e) => e.worker !== undefined),
        'lines from the workers',
      );
      assert.ok(!log.includes(TOKEN), 'the admin token is in the log');
      for (const line of [...keyLines(key), ...keyLines(otherKey)])
        assert.ok(!log.includes(line), 'a line of a private key is in the log');
      engine = undefined;
    },
  );
});
