// The one gate over real processes: a rollback to a weaker generation and serve -f with weaker
// manifests on a state directory that ran stricter ones are refused without
// --approve-weakening, and go through with it.
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ControlClient } from '../../src/control/client.js';
import { domsec, RunningCli } from '../support/cli.js';
import { ADATUM, TREY, writeLab, writeManifests } from '../support/manifests.js';
import { freePort } from '../support/ports.js';
import { tempDir } from '../support/tmp.js';

const STRICT = 'domainSecure: {send: true, receive: true}';
const WEAK = 'domainSecure: {send: true, receive: false}';

describe('the weakening gate over real processes', () => {
  let lab: Awaited<ReturnType<typeof tempDir>>;
  let manifests: string;
  let partnerFile: string;
  let admin: string;
  const token = 'weakening-gate-token-0123456789abcdef';
  const env = { DOMSEC_TOKEN: token };
  const client = () => new ControlClient(`http://${admin}`, token);
  const partnerSecurity = async () =>
    (await client().state()).objects.find((o) => o.kind === 'PartnerDomain')?.spec.domainSecure;
  const strictness = async (text: string) =>
    writeFile(
      partnerFile,
      (await readFile(partnerFile, 'utf8')).replace(text === STRICT ? WEAK : STRICT, text),
    );

  before(async () => {
    lab = await tempDir();
    await writeLab(lab.path);
    admin = `127.0.0.1:${await freePort()}`;
    manifests = await writeManifests({
      root: lab.path,
      org: ADATUM,
      partner: TREY,
      partnerBinding: `127.0.0.1:${await freePort()}`,
      internalBinding: `127.0.0.1:${await freePort()}`,
      adminListen: admin,
      partnerRoute: { host: '127.0.0.1', port: 9 },
      trust: 'root',
    });
    partnerFile = join(manifests, 'partners', `${TREY.name}.yaml`);
    assert.match(await readFile(partnerFile, 'utf8'), new RegExp(STRICT.replace(/[{}]/g, '\\$&')));
  });
  after(async () => lab.remove());

  it('serve -f does not apply manifests that weaken the saved generation without --approve-weakening', async () => {
    const stateDir = join(lab.path, 'state-serve');
    await strictness(STRICT);
    const first = new RunningCli(['serve', '-f', manifests, '--state', stateDir], env);
    try {
      await first.waitForOutput(/domsec engine ready: generation 1/);
    } finally {
      assert.equal(await first.stop(), 0);
    }

    await strictness(WEAK);
    const refused = new RunningCli(['serve', '-f', manifests, '--state', stateDir], env);
    try {
      await refused.waitForOutput(/domsec engine ready: generation 1,/);
      assert.match(
        refused.stdout,
        /Refused the manifests: changes that weaken domain security need --approve-weakening: PartnerDomain\/treyresearch \(domain security for receiving turned off\); the engine runs its saved generation 1\./,
      );
      assert.deepEqual(await partnerSecurity(), { send: true, receive: true });
      const status = await client().status();
      assert.equal(status.ready, false);
      assert.match(String(status.lastAttemptError), /--approve-weakening/);
    } finally {
      assert.equal(await refused.stop(), 0);
    }

    const approved = new RunningCli(
      ['serve', '-f', manifests, '--state', stateDir, '--approve-weakening'],
      env,
    );
    try {
      await approved.waitForOutput(/domsec engine ready: generation 2,/);
      assert.deepEqual(await partnerSecurity(), { send: true, receive: false });
    } finally {
      assert.equal(await approved.stop(), 0);
    }
  });

  it('rollback to a weaker generation shows the plan and needs --approve-weakening', async () => {
    const stateDir = join(lab.path, 'state-rollback');
    await strictness(STRICT);
    const serve = new RunningCli(['serve', '-f', manifests, '--state', stateDir], env);
    try {
      await serve.waitForOutput(/domsec engine ready: generation 1/);
      const target = ['--server', `http://${admin}`];
      await strictness(WEAK);
      const weak = await domsec(
        ['apply', '-f', manifests, ...target, '--auto-approve', '--approve-weakening'],
        env,
      );
      assert.equal(weak.code, 0, weak.stderr);
      await strictness(STRICT);
      const strict = await domsec(['apply', '-f', manifests, ...target, '--auto-approve'], env);
      assert.equal(strict.code, 0, strict.stderr);
      assert.equal((await client().state()).generation, 3);

      const unattended = await domsec(['rollback', '2', ...target], env);
      assert.equal(unattended.code, 1);
      assert.match(unattended.stderr, /no terminal; pass --auto-approve/);

      const refused = await domsec(['rollback', '2', ...target, '--auto-approve'], env);
      assert.equal(refused.code, 1);
      assert.match(refused.stdout, /! ~ PartnerDomain\/treyresearch/);
      assert.match(refused.stdout, /domainSecure\.receive: true -> false/);
      assert.match(
        refused.stderr,
        /refusing to roll back: changes that weaken domain security need --approve-weakening: PartnerDomain\/treyresearch \(domain security for receiving turned off\)/,
      );
      assert.equal((await client().state()).generation, 3, 'nothing applied');
      assert.deepEqual(await partnerSecurity(), { send: true, receive: true });

      const approved = await domsec(
        ['rollback', '2', ...target, '--auto-approve', '--approve-weakening'],
        env,
      );
      assert.equal(approved.code, 0, approved.stderr);
      assert.match(
        approved.stdout,
        /the engine runs generation 4, the configuration of generation 2/,
      );
      assert.deepEqual(await partnerSecurity(), { send: true, receive: false });

      // Back to the strict generation: strengthening, so --auto-approve is enough.
      const back = await domsec(['rollback', '3', ...target, '--auto-approve'], env);
      assert.equal(back.code, 0, back.stderr);
      assert.deepEqual(await partnerSecurity(), { send: true, receive: true });
    } finally {
      assert.equal(await serve.stop(), 0);
    }
  });
});
