// Secrets never leave their files: a real session between two engine processes (validate, plan,
// apply, serve, mail over domain security with verbose protocol logs at debug level, status and
// queue commands, the admin API), every output and log grepped for key material and tokens.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { API_PREFIX } from '../../src/control/protocol.js';
import {
  STATUS_PATH,
  STATUS_SCRIPT_PATH,
  STATUS_STYLE_PATH,
} from '../../src/control/status-page.js';
import { domsec, RunningCli, type CliResult } from '../support/cli.js';
import { eventually } from '../support/engine.js';
import { ADATUM, TREY, writeLab, writeManifests } from '../support/manifests.js';
import { freePort } from '../support/ports.js';
import { submit } from '../support/smtp-submit.js';
import { tempDir } from '../support/tmp.js';

/** Files that hold a secret by design (owner-only): the applied configuration and the token. */
const SECRET_STORES = /(^|\/)(applied-config\.json|admin\.token|history\/.*\.json)$/;

/** Every file under dir, as paths relative to it. */
async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((entry) => entry.isFile())
    .map((entry) => relative(dir, join(entry.parentPath, entry.name)));
}

/** The base64 lines of a PEM body (a line is 64 characters: unique to its key). */
function pemLines(pem: string): string[] {
  return pem
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line.length >= 40 && !line.startsWith('-----'));
}

describe('secrets in outputs', () => {
  let lab: Awaited<ReturnType<typeof tempDir>>;
  const running: RunningCli[] = [];
  after(async () => {
    await Promise.all(running.map((cli) => cli.stop()));
    await lab.remove();
  });

  const outputs: { what: string; text: string }[] = [];
  const record = (what: string, result: CliResult) => {
    outputs.push({ what: `${what} (stdout)`, text: result.stdout });
    outputs.push({ what: `${what} (stderr)`, text: result.stderr });
    return result;
  };

  let adatumDir: string;
  let treyDir: string;
  const tokens = {
    adatum: randomBytes(24).toString('base64url'),
    trey: randomBytes(24).toString('base64url'),
  };
  const admin = { adatum: '', trey: '' };
  let adatumInternal = 0;

  before(async () => {
    lab = await tempDir();
    await writeLab(lab.path);
    const ports = {
      adatumPartner: await freePort(),
      adatumInternal: await freePort(),
      treyPartner: await freePort(),
      treyInternal: await freePort(),
    };
    adatumInternal = ports.adatumInternal;
    admin.adatum = `127.0.0.1:${await freePort()}`;
    admin.trey = `127.0.0.1:${await freePort()}`;
    adatumDir = await writeManifests({
      root: lab.path,
      org: ADATUM,
      partner: TREY,
      partnerBinding: `127.0.0.1:${ports.adatumPartner}`,
      internalBinding: `127.0.0.1:${ports.adatumInternal}`,
      adminListen: admin.adatum,
      partnerRoute: { host: '127.0.0.1', port: ports.treyPartner },
      trust: 'root',
    });
    treyDir = await writeManifests({
      root: lab.path,
      org: TREY,
      partner: ADATUM,
      partnerBinding: `127.0.0.1:${ports.treyPartner}`,
      internalBinding: `127.0.0.1:${ports.treyInternal}`,
      adminListen: admin.trey,
      partnerRoute: { host: '127.0.0.1', port: ports.adatumPartner },
      trust: 'root',
    });
    // Verbose protocol logs on every connector: the most a log can say.
    for (const dir of [adatumDir, treyDir]) {
      const file = join(dir, 'connectors.yaml');
      const text = await readFile(file, 'utf8');
      await writeFile(file, text.replace(/^spec:$/gm, 'spec:\n  protocolLogging: verbose'));
    }
  });

  it('keeps private keys and admin tokens out of every output, log and answer of a session', async () => {
    const env = (token: string) => ({ DOMSEC_TOKEN: token });
    const debug = ['--log-level', 'debug', '--log-format', 'json'];

    // Trey Research runs from its manifests; Adatum starts empty and is planned and applied.
    const trey = new RunningCli(
      ['serve', '-f', treyDir, '--state', join(lab.path, 'state-trey'), ...debug],
      env(tokens.trey),
    );
    running.push(trey);
    await trey.waitForOutput(/domsec engine ready/);
    const adatum = new RunningCli(
      ['serve', '--state', join(lab.path, 'state-adatum'), '--admin', admin.adatum, ...debug],
      env(tokens.adatum),
    );
    running.push(adatum);
    await adatum.waitForOutput(/domsec engine ready/);

    const server = ['--server', `http://${admin.adatum}`];
    const cli = (what: string, args: string[]) =>
      domsec(args, env(tokens.adatum)).then((r) => record(what, r));
    assert.equal((await cli('validate', ['validate', '-f', adatumDir])).code, 0);
    assert.equal(
      (await cli('validate -o json', ['validate', '-f', adatumDir, '-o', 'json'])).code,
      0,
    );
    assert.equal((await cli('plan', ['plan', '-f', adatumDir, ...server])).code, 0);
    assert.equal(
      (await cli('plan -o json', ['plan', '-f', adatumDir, ...server, '-o', 'json'])).code,
      0,
    );
    const planFile = join(lab.path, 'adatum.plan');
    const saved = await cli('plan --out', ['plan', '-f', adatumDir, ...server, '--out', planFile]);
    assert.equal(saved.code, 0, saved.stderr);
    // A saved plan is the configuration it applies, key included (docs/plan-format.md), like
    // applied-config.json: a secret store, owner-only, not an output to grep; apply deletes it.
    assert.equal((await stat(planFile)).mode & 0o777, 0o600);
    const apply = await cli('apply', [
      'apply',
      planFile,
      ...server,
      '--auto-approve',
      '--approve-weakening',
    ]);
    assert.equal(apply.code, 0, `${apply.stdout}\n${apply.stderr}`);

    // Mail from Adatum's internal connector to Trey Research, over mutual TLS.
    const sent = await submit(
      adatumInternal,
      { from: 'alice@adatum.com', to: ['bob@treyresearch.net'] },
      { plaintext: true, serverCa: '' },
      'From: alice@adatum.com\r\nTo: bob@treyresearch.net\r\nSubject: secrets\r\n\r\nhello\r\n',
    );
    assert.equal(sent.code, 250, sent.response);
    const treyState = join(lab.path, 'state-trey');
    await eventually(
      'the message in a Trey Research mailbox',
      async () =>
        (await filesUnder(treyState)).some((f) => /(^|\/)new\//.test(f)) ? true : undefined,
      30_000,
    );

    for (const [name, path] of [
      ['status', ['status', ...server]],
      ['queue list', ['queue', 'list', ...server]],
      ['history', ['history', ...server]],
    ] as const) {
      await cli(name, [...path]);
    }
    for (const [org, token] of [
      ['adatum', tokens.adatum],
      ['trey', tokens.trey],
    ] as const) {
      for (const path of ['/state', '/history', '/status', '/queues', '/overview']) {
        const response = await fetch(`http://${admin[org]}${API_PREFIX}${path}`, {
          headers: { authorization: `Bearer ${token}` },
        });
        outputs.push({ what: `admin API ${org} ${path}`, text: await response.text() });
      }
      // The status page's shell, script and style (served without the token).
      for (const path of [STATUS_PATH, STATUS_SCRIPT_PATH, STATUS_STYLE_PATH]) {
        const response = await fetch(`http://${admin[org]}${path}`);
        assert.equal(response.status, 200, path);
        outputs.push({ what: `status page ${org} ${path}`, text: await response.text() });
      }
    }
    for (const cliProcess of running.splice(0)) {
      await cliProcess.stop();
      outputs.push({ what: 'serve (stdout)', text: cliProcess.stdout });
      outputs.push({ what: 'serve (stderr)', text: cliProcess.stderr });
    }
    await assert.rejects(stat(planFile), { code: 'ENOENT' }, 'apply deleted the saved plan');
    let protocolLines = 0;
    for (const state of ['state-adatum', 'state-trey']) {
      const dir = join(lab.path, state);
      for (const file of await filesUnder(dir)) {
        if (SECRET_STORES.test(file)) continue;
        const text = await readFile(join(dir, file), 'utf8');
        if (file.includes('protocol')) protocolLines += text.split('\n').length;
        outputs.push({ what: `${state}/${file}`, text });
      }
    }
    assert.ok(protocolLines > 10, 'the protocol logs were written');
    assert.match(
      outputs.map((o) => o.text).join('\n'),
      /domain-secured for partner adatum\.com/,
      'the session was domain-secured',
    );

    // The secrets: every private key of the lab (both organizations, their CAs) and both tokens.
    const secrets: string[] = [tokens.adatum, tokens.trey];
    for (const file of await filesUnder(lab.path)) {
      if (!file.endsWith('.key')) continue;
      secrets.push(...pemLines(await readFile(join(lab.path, file), 'utf8')));
    }
    assert.ok(secrets.length > 40, 'four keys and two tokens');
    // The search finds a key where one is by design: a leak in the same form would be found.
    const stored = await readFile(join(lab.path, 'state-adatum', 'applied-config.json'), 'utf8');
    assert.ok(
      secrets.some((secret) => stored.includes(secret)),
      'the key lines are found in applied-config.json',
    );
    const leaks: string[] = [];
    for (const { what, text } of outputs) {
      if (/PRIVATE KEY/.test(text)) leaks.push(`${what}: a PEM private key header`);
      for (const secret of secrets) {
        if (text.includes(secret)) leaks.push(`${what}: ${secret.slice(0, 8)}…`);
      }
    }
    assert.deepEqual(leaks, []);
    const bytes = outputs.reduce((sum, o) => sum + o.text.length, 0);
    console.log(
      `# secrets: ${outputs.length} outputs (${bytes} bytes) grepped for ${secrets.length} secret strings, 0 found`,
    );
  });
});
