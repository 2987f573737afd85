// domsec serve as a process: it writes its admin token owner-only and never prints it, and a
// restart with the same --state comes back running the configuration applied before.
import assert from 'node:assert/strict';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { X509Certificate } from 'node:crypto';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ControlClient } from '../../src/control/client.js';
import type { RuntimeConfig } from '../../src/model.js';
import { issueCertificate } from '../../src/pki/lab.js';
import { domsec, RunningCli } from '../support/cli.js';
import { ADATUM, TREY, writeLab, writeManifests } from '../support/manifests.js';
import { freePort } from '../support/ports.js';
import { tempDir } from '../support/tmp.js';

describe('domsec serve', () => {
  let lab: Awaited<ReturnType<typeof tempDir>>;
  let manifests: string;
  let admin: string;

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
  });
  after(async () => lab.remove());

  it('writes the admin token with mode 0600, never prints it, and restarts from --state', async () => {
    const stateDir = join(lab.path, 'state');
    const env = { DOMSEC_TOKEN: '' };
    const first = new RunningCli(['serve', '-f', manifests, '--state', stateDir], env);
    let token: string;
    try {
      await first.waitForOutput(
        /domsec engine ready: generation 1, admin API http:\/\/127\.0\.0\.1:\d+/,
      );
      const tokenFile = join(stateDir, 'admin.token');
      assert.equal((await stat(tokenFile)).mode & 0o777, 0o600);
      token = (await readFile(tokenFile, 'utf8')).trim();
      assert.ok(token.length >= 32);
      assert.ok(
        !first.stdout.includes(token) && !first.stderr.includes(token),
        'the token is never printed',
      );
      const state = await new ControlClient(`http://${admin}`, token).state();
      assert.equal(state.generation, 1);
      assert.equal((await stat(join(stateDir, 'applied-config.json'))).mode & 0o777, 0o600);
    } finally {
      assert.equal(await first.stop(), 0);
    }
    assert.doesNotMatch(first.stderr, /PRIVATE KEY/);

    const second = new RunningCli(['serve', '--state', stateDir], env);
    try {
      await second.waitForOutput(/domsec engine ready: generation 1/);
      const state = await new ControlClient(`http://${admin}`, token).state();
      assert.ok(
        state.objects.some((o) => o.kind === 'PartnerDomain' && o.spec.domain === TREY.domain),
      );
      assert.ok(state.listeners.length === 2 && state.listeners.every((l) => l.listening));
    } finally {
      await second.stop();
    }
  });

  it('restarts from a state directory an older domsec wrote, filling in the fields added since', async () => {
    const stateDir = join(lab.path, 'state-old');
    const env = { DOMSEC_TOKEN: '' };
    const first = new RunningCli(['serve', '-f', manifests, '--state', stateDir], env);
    try {
      await first.waitForOutput(/domsec engine ready: generation 1/);
    } finally {
      assert.equal(await first.stop(), 0);
    }
    // What a configuration applied before this version's receive limits and delay notice holds.
    const file = join(stateDir, 'applied-config.json');
    const applied = JSON.parse(await readFile(file, 'utf8')) as RuntimeConfig;
    const added = [
      'maxInboundConnection',
      'maxInboundConnectionPerSource',
      'connectionInactivityTimeout',
      'connectionTimeout',
      'maxRecipientsPerMessage',
      'maxHeaderSize',
    ];
    applied.receiveConnectors = applied.receiveConnectors.map(({ name, spec }) => ({
      name,
      spec: Object.fromEntries(
        Object.entries(spec).filter(([field]) => !added.includes(field)),
      ) as unknown as typeof spec,
    }));
    delete (applied.organization.spec.queue as unknown as Record<string, unknown>).delayNotice;
    await writeFile(file, JSON.stringify(applied), { mode: 0o600 });

    const second = new RunningCli(['serve', '--state', stateDir], env);
    try {
      await second.waitForOutput(/domsec engine ready: generation 1/);
      const token = (await readFile(join(stateDir, 'admin.token'), 'utf8')).trim();
      const state = await new ControlClient(`http://${admin}`, token).state();
      const connector = state.objects.find((o) => o.kind === 'ReceiveConnector');
      assert.equal(connector?.spec.connectionTimeout, '10m', 'the schema default, filled in');
      assert.ok(state.listeners.every((l) => l.listening));
    } finally {
      await second.stop();
    }
  });

  it('refuses to start with one clear line when a binding is taken: exit 1, no stack trace', async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const port = (taken.address() as AddressInfo).port;
    const root = join(lab.path, 'taken');
    try {
      await writeLab(root);
      const dir = await writeManifests({
        root,
        org: ADATUM,
        partner: TREY,
        partnerBinding: `127.0.0.1:${port}`,
        internalBinding: `127.0.0.1:${await freePort()}`,
        adminListen: `127.0.0.1:${await freePort()}`,
        partnerRoute: { host: '127.0.0.1', port: 9 },
        trust: 'root',
      });
      const result = await domsec(['serve', '-f', dir, '--state', join(root, 'state')], {
        DOMSEC_TOKEN: '',
      });
      assert.equal(result.code, 1);
      assert.match(
        result.stderr,
        new RegExp(
          `domsec: cannot start the engine from the manifests: cannot bind 127\\.0\\.0\\.1:${port} \\(EADDRINUSE\\)\\n`,
        ),
      );
      assert.doesNotMatch(result.stderr, /previous configuration|\n\s+at /);
    } finally {
      await new Promise((resolve) => taken.close(resolve));
    }
  });

  it('serve --watch --resync picks up a certificate replaced on disk without any YAML change', async () => {
    const stateDir = join(lab.path, 'state-watch');
    const token = 'resync-test-token-0123456789abcdef';
    const pki = join(manifests, 'pki');
    const serve = new RunningCli(
      ['serve', '-f', manifests, '--state', stateDir, '--watch', '--resync', '300ms'],
      {
        DOMSEC_TOKEN: token,
      },
    );
    try {
      await serve.waitForOutput(/domsec engine ready: generation \d+/);
      const client = new ControlClient(`http://${admin}`, token);
      const fingerprint = async () =>
        (await client.state()).objects.find((o) => o.kind === 'Certificate')?.spec.fingerprint;
      const before = await fingerprint();

      // The administrator renews the certificate in place: same files, new certificate and key.
      const root = {
        commonName: 'adatum Root CA',
        certPem: await readFile(join(pki, 'adatum-root.crt'), 'utf8'),
        keyPem: await readFile(join(pki, 'adatum-root.key'), 'utf8'),
        fingerprint: '',
      };
      const renewed = issueCertificate(root, {
        commonName: ADATUM.hostname,
        dnsNames: [ADATUM.hostname, ADATUM.domain],
      });
      await writeFile(join(pki, `${ADATUM.hostname}.key`), renewed.keyPem, { mode: 0o600 });
      await writeFile(join(pki, `${ADATUM.hostname}.crt`), renewed.certPem);

      const deadline = Date.now() + 15_000;
      let now = before;
      while (now !== renewed.fingerprint && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        now = await fingerprint();
      }
      assert.notEqual(before, renewed.fingerprint);
      assert.equal(now, new X509Certificate(renewed.certPem).fingerprint256);
    } finally {
      await serve.stop();
    }
  });
});
