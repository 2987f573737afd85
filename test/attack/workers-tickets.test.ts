// The session tickets of a group of receive workers (one secret per group, keys per TLS identity):
// a resumed session is judged at MAIL FROM as a full handshake is (a partner removed, a CRL added,
// a certificate that expired since, another connector), a new server certificate or another
// group's ticket does not resume, and the secret is in no log line, state file or environment.
import assert from 'node:assert/strict';
import cluster from 'node:cluster';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { X509Certificate } from 'node:crypto';
import { Engine } from '../../src/engine/engine.js';
import { memoryLog } from '../../src/engine/log.js';
import {
  createRevocationList,
  issueCertificate,
  type IssuedCertificate,
} from '../../src/pki/lab.js';
import type { RuntimeConfig } from '../../src/model.js';
import { lab } from '../support/lab.js';
import {
  certificate,
  partnerDomain,
  receiveConnector,
  runtimeConfig,
  trustAnchor,
} from '../support/runtime-config.js';
import { eventually } from '../support/eventually.js';
import { freePort } from '../support/ports.js';
import { resumeAttempt, type ResumeAttempt } from '../support/tls-resume.js';
import { tempDir, type TempDir } from '../support/tmp.js';

/** One session as mail.adatum.com with `client`: STARTTLS (resuming if given), MAIL FROM. */
function attempt(
  at: { port: number; host: string },
  client: IssuedCertificate,
  session?: Buffer,
  maxVersion: 'TLSv1.2' | 'TLSv1.3' = 'TLSv1.3',
): Promise<ResumeAttempt> {
  return resumeAttempt({
    ...at,
    client,
    maxVersion,
    ...(session === undefined ? {} : { session }),
  });
}

/** The reply code and enhanced status: what the decision was, without the session's words. */
function decision(mailFrom: string): string {
  return mailFrom.split(' ').slice(0, 2).join(' ');
}

interface Shape {
  adatum?: boolean;
  /** The domain-secure connector's binding; default 127.0.0.1:0. */
  binding?: string;
  crlPem?: string;
  serverCert?: IssuedCertificate;
  plainConnector?: boolean;
}

/**
 * treyresearch.net with the anchors adatum-root and stranger-root both listed (so the CA list,
 * and with it the ticket keys, stays the same when the partner adatum.com goes or a CRL comes).
 */
function config(shape: Shape = {}): RuntimeConfig {
  const { adatumRoot, strangerRoot, treyMail } = lab();
  const adatumAnchor = trustAnchor('adatum-root', adatumRoot);
  const partners = [
    ...(shape.adatum === false
      ? []
      : [partnerDomain('adatum', { domain: 'adatum.com', trustAnchors: ['adatum-root'] })]),
    partnerDomain('contoso', {
      domain: 'contoso.com',
      trustAnchors: shape.adatum === false ? ['adatum-root', 'stranger-root'] : ['stranger-root'],
    }),
  ];
  return runtimeConfig({
    certificates: [certificate('mail-treyresearch', shape.serverCert ?? treyMail)],
    trustAnchors: [
      shape.crlPem === undefined
        ? adatumAnchor
        : { ...adatumAnchor, spec: { ...adatumAnchor.spec, crlPem: shape.crlPem } },
      trustAnchor('stranger-root', strangerRoot),
    ],
    partners,
    receiveConnectors: [
      receiveConnector('from-partners', {
        bindings: [shape.binding ?? '127.0.0.1:0'],
        protocolLogging: 'verbose',
      }),
      ...(shape.plainConnector === true
        ? [receiveConnector('plain', { domainSecure: false, bindings: ['127.0.0.2:0'] })]
        : []),
    ],
  });
}

function portOf(engine: Engine, connector = 'from-partners'): { port: number; host: string } {
  const port = engine.state().listeners.find((l) => l.connectors.includes(connector))?.port;
  assert.ok(typeof port === 'number', `a listener of ${connector}`);
  return { port, host: connector === 'plain' ? '127.0.0.2' : '127.0.0.1' };
}

/** The group's secret, read from the engine's worker group for the leak checks only. */
function secretOf(engine: Engine): Buffer {
  const group = (engine as unknown as { listeners: { ticketSecret?: unknown } }).listeners;
  assert.ok(Buffer.isBuffer(group.ticketSecret), 'the engine runs a worker group');
  return group.ticketSecret;
}

/** Every spelling of the secret a leak could take. */
function spellings(secret: Buffer): string[] {
  return [
    secret.toString('hex'),
    secret.toString('hex').toUpperCase(),
    secret.toString('base64'),
    secret.toString('base64url'),
    secret.toJSON().data.join(','),
  ];
}

async function filesUnder(directory: string): Promise<string[]> {
  const found: string[] = [];
  for (const entry of await readdir(directory, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) found.push(join(entry.parentPath, entry.name));
  }
  return found;
}

describe('session tickets of a group of receive workers', () => {
  const { adatumRoot, adatumMail, treyRoot } = lab();
  let dir: TempDir;
  let other: TempDir;
  let engine: Engine;
  const log = memoryLog();

  before(async () => {
    dir = await tempDir('domsec-attack-tickets-');
    other = await tempDir('domsec-attack-tickets-other-');
    engine = await Engine.open({ stateDir: dir.path, log, workers: 2 });
    await engine.apply(config());
  });
  after(async () => {
    await engine?.close();
    await dir?.remove();
    await other?.remove();
  });

  /** A session, then a resumption of it after `change`: both answered as a full handshake is. */
  async function resumedAfter(
    change: Shape,
    version: 'TLSv1.2' | 'TLSv1.3',
  ): Promise<{ before: ResumeAttempt; resumed: ResumeAttempt; full: ResumeAttempt }> {
    await engine.apply(config());
    const first = await attempt(portOf(engine), adatumMail, undefined, version);
    assert.ok(first.session !== undefined, 'a ticket');
    await engine.apply(config(change));
    const resumed = await attempt(portOf(engine), adatumMail, first.session, version);
    const full = await attempt(portOf(engine), adatumMail, undefined, version);
    return { before: first, resumed, full };
  }

  for (const version of ['TLSv1.3', 'TLSv1.2'] as const) {
    it(`judges a resumed ${version} session of a partner an apply removed as a full handshake`, async () => {
      const { before: first, resumed, full } = await resumedAfter({ adatum: false }, version);
      assert.match(first.mailFrom, /^250 /);
      assert.equal(resumed.resumed, true, 'the same CA list: the ticket resumes');
      assert.equal(full.resumed, false);
      assert.equal(decision(resumed.mailFrom), decision(full.mailFrom));
    });

    it(`refuses a resumed ${version} session whose certificate a CRL added by an apply revokes, with 454 4.7.5`, async () => {
      const crlPem = createRevocationList(adatumRoot, { revoked: [adatumMail.certPem] });
      const { resumed, full } = await resumedAfter({ crlPem }, version);
      assert.equal(resumed.resumed, true, 'a CRL is not in the CA list: the ticket resumes');
      assert.match(full.mailFrom, /^454 4\.7\.5 /);
      assert.equal(decision(resumed.mailFrom), decision(full.mailFrom));
    });
  }

  it('refuses a resumed session whose certificate expired since its ticket was issued', async () => {
    const shortLived = issueCertificate(adatumRoot, {
      commonName: 'mail.adatum.com',
      dnsNames: ['mail.adatum.com', 'adatum.com'],
      notBefore: new Date(Date.now() - 60_000),
      notAfter: new Date(Date.now() + 3_000),
    });
    await engine.apply(config());
    const first = await attempt(portOf(engine), shortLived);
    assert.match(first.mailFrom, /^250 /, 'valid still');
    assert.ok(first.session !== undefined);
    const expiry = new Date(new X509Certificate(shortLived.certPem).validTo).getTime();
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, expiry - Date.now()) + 1_100));
    const resumed = await attempt(portOf(engine), shortLived, first.session);
    assert.equal(resumed.resumed, true);
    assert.match(resumed.mailFrom, /^454 4\.7\.5 /, 'expired: refused though resumed');
  });

  it('answers a session resumed on another connector as a full handshake there', async () => {
    await engine.apply(config({ plainConnector: true }));
    const first = await attempt(portOf(engine), adatumMail);
    assert.ok(first.session !== undefined);
    const resumed = await attempt(portOf(engine, 'plain'), adatumMail, first.session);
    const full = await attempt(portOf(engine, 'plain'), adatumMail);
    assert.equal(decision(resumed.mailFrom), decision(full.mailFrom));
    // And back: a ticket of the plain connector on the domain-secure one.
    const back = await attempt(portOf(engine), adatumMail, resumed.session ?? full.session);
    assert.match(back.mailFrom, /^250 /);
  });

  it('does not resume a ticket after a new server certificate', async () => {
    await engine.apply(config());
    const first = await attempt(portOf(engine), adatumMail);
    assert.ok(first.session !== undefined);
    const renewed = issueCertificate(treyRoot, {
      commonName: 'mail.treyresearch.net',
      dnsNames: ['mail.treyresearch.net', 'treyresearch.net'],
    });
    await engine.apply(config({ serverCert: renewed }));
    for (let n = 0; n < 2; n += 1) {
      const again = await attempt(portOf(engine), adatumMail, first.session);
      assert.equal(again.resumed, false, 'in either worker');
      assert.match(again.mailFrom, /^250 /);
    }
  });

  it("does not resume one group's ticket at another engine with the same configuration", async () => {
    await engine.apply(config());
    const first = await attempt(portOf(engine), adatumMail);
    assert.ok(first.session !== undefined);
    const second = await Engine.open({ stateDir: other.path, log: memoryLog(), workers: 2 });
    try {
      // A port of its own: in one process, cluster hands every group that listens on port 0 of
      // an address the same shared socket (the test's artifact, not a second serve process's).
      const port = await freePort();
      await second.apply(config({ binding: `127.0.0.1:${port}` }));
      assert.notEqual(portOf(second).port, portOf(engine).port);
      for (let n = 0; n < 2; n += 1) {
        const there = await attempt(portOf(second), adatumMail, first.session);
        assert.equal(there.resumed, false, 'another secret');
      }
      assert.notDeepEqual(secretOf(second), secretOf(engine));
    } finally {
      await second.close();
    }
  });

  it('resumes in the worker that replaced a killed one: the group keeps its secret', async () => {
    await engine.apply(config());
    const first = await attempt(portOf(engine), adatumMail);
    assert.ok(first.session !== undefined);
    const pids = () => Object.values(cluster.workers ?? {}).map((worker) => worker?.process.pid);
    const [killed] = pids();
    assert.ok(typeof killed === 'number');
    process.kill(killed, 'SIGKILL');
    await eventually('a replacement worker', () => {
      const now = pids();
      return now.length === 2 && !now.includes(killed);
    });
    // Round robin: four connections reach both workers, the new one included.
    await eventually(
      'four resumptions of four in both workers',
      async () => {
        const resumed: boolean[] = [];
        for (let n = 0; n < 4; n += 1) {
          const next = await attempt(portOf(engine), adatumMail, first.session).catch(
            () => undefined,
          );
          resumed.push(next?.resumed === true && /^250 /.test(next.mailFrom));
        }
        return resumed;
      },
      { until: (resumed) => resumed.every(Boolean), timeoutMs: 8_000, intervalMs: 200 },
    );
  });

  it('keeps the secret out of every log line, state file and worker environment', async () => {
    const secret = secretOf(engine);
    assert.equal(secret.length, 32);
    const words = spellings(secret);
    const lines = [
      ...log.entries.map((entry) => JSON.stringify(entry)),
      JSON.stringify(engine.state()),
    ];
    assert.ok(lines.length > 0);
    for (const line of lines)
      for (const word of words) assert.ok(!line.includes(word), 'a log line has the secret');
    const files = await filesUnder(dir.path);
    assert.ok(
      files.some((file) => file.includes(join('logs', 'protocol'))),
      'the workers wrote a protocol log',
    );
    for (const file of files) {
      if ((await stat(file)).size > 50_000_000) continue;
      const bytes = await readFile(file);
      assert.equal(bytes.indexOf(secret), -1, `${file} has the secret's bytes`);
      const text = bytes.toString('latin1');
      for (const word of words) assert.ok(!text.includes(word), `${file} has the secret`);
    }
    const pids = Object.values(cluster.workers ?? {}).map((worker) => worker?.process.pid);
    assert.ok(pids.length >= 2);
    for (const pid of pids) {
      const environ = await readFile(`/proc/${pid}/environ`);
      assert.equal(environ.indexOf(secret), -1);
      for (const word of words) assert.ok(!environ.toString('latin1').includes(word));
    }
  });
});
