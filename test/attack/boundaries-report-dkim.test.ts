// The DKIM key of mailed TLS reports from the attacker's and the careless operator's side: the
// key file's content never reaches validate, dns records, the report's error or the log, whatever
// the file holds (a short key, another kind of key, another secret); a file that cannot sign is
// caught before the first report is due; a signature verifies for the message it was made over
// only (a header field added on the way, above the signed ones, must break it), and for the bytes
// the rua's mailbox receives from our queue, a restart of the queue in between.
import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { Resolver } from 'node:dns/promises';
import { chmod, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { dkimVerify } from 'mailauth/lib/dkim/verify.js';
import { dnsRecordsCommand } from '../../src/cli/dns.js';
import type { Output } from '../../src/cli/output.js';
import { validateCommand } from '../../src/cli/validate.js';
import { requireDomainName } from '../../src/domain-name.js';
import { EngineDelivery } from '../../src/engine/delivery/engine-delivery.js';
import { EngineEvents } from '../../src/engine/events.js';
import { buildGeneration, type Generation } from '../../src/engine/generation.js';
import { memoryLog } from '../../src/engine/log.js';
import { dkimRecordText, signReportMessage } from '../../src/engine/tlsrpt/dkim.js';
import type { ReportUri } from '../../src/engine/tlsrpt/record.js';
import { reportMessage, type Submitter } from '../../src/engine/tlsrpt/report.js';
import { TlsResults } from '../../src/engine/tlsrpt/results.js';
import { submitterOf } from '../../src/engine/tlsrpt/reporting.js';
import { readState, ReportScheduler } from '../../src/engine/tlsrpt/schedule.js';
import { startDnsServer } from '../support/dns-server.js';
import { eventually } from '../support/eventually.js';
import { lab } from '../support/lab.js';
import { freePort } from '../support/ports.js';
import { runtimeConfig, sendConnector } from '../support/runtime-config.js';
import { startSmtpPeer } from '../support/smtp-peer.js';
import { ADATUM, TREY, writeLab, writeManifests } from '../support/manifests.js';
import { tempDir, type TempDir } from '../support/tmp.js';

const FABRIKAM = requireDomainName('fabrikam.example');

function capture(): Output & { all: () => string } {
  let text = '';
  return {
    stdout: (chunk) => (text += chunk),
    stderr: (chunk) => (text += chunk),
    color: false,
    interactive: false,
    all: () => text,
  };
}

/** What a key file may hold, with the part of it that must never be shown. */
interface HostileKeyFile {
  name: string;
  content: string;
  /** A run of the file's secret content that no output may contain. */
  secret: string;
}

const pemBody = (pem: string) => pem.split('\n')[3] ?? pem;

function hostileKeyFiles(): HostileKeyFile[] {
  const short = generateKeyPairSync('rsa', { modulusLength: 512 })
    .privateKey.export({ format: 'pem', type: 'pkcs8' })
    .toString();
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' })
    .privateKey.export({ format: 'pem', type: 'pkcs8' })
    .toString();
  const ed = generateKeyPairSync('ed25519')
    .privateKey.export({ format: 'pem', type: 'pkcs8' })
    .toString();
  const encrypted = generateKeyPairSync('rsa', { modulusLength: 1024 })
    .privateKey.export({
      format: 'pem',
      type: 'pkcs8',
      cipher: 'aes-256-cbc',
      passphrase: 'pass phrase',
    })
    .toString();
  const token = randomBytes(24).toString('base64url');
  return [
    { name: 'short.key', content: short, secret: pemBody(short) },
    { name: 'ec.key', content: ec, secret: pemBody(ec) },
    { name: 'ed25519.key', content: ed, secret: ed.split('\n')[1] ?? ed },
    { name: 'encrypted.key', content: encrypted, secret: pemBody(encrypted) },
    { name: 'admin.token', content: `${token}\n`, secret: token },
    {
      name: 'truncated.key',
      content: `${short.slice(0, 200)}\n`,
      secret: short.split('\n')[1] ?? short,
    },
  ];
}

describe('the DKIM key file of TLS reports, hostile or careless', () => {
  let lab: TempDir;
  let dir: string;
  const files = hostileKeyFiles();
  const good = generateKeyPairSync('rsa', { modulusLength: 2048 })
    .privateKey.export({ format: 'pem', type: 'pkcs8' })
    .toString();

  before(async () => {
    lab = await tempDir('domsec-dkim-attack-');
    await writeLab(lab.path);
    dir = await writeManifests({
      root: lab.path,
      org: ADATUM,
      partner: TREY,
      partnerBinding: '127.0.0.1:0',
      internalBinding: '127.0.0.1:0',
      adminListen: '127.0.0.1:0',
      partnerRoute: { host: '127.0.0.1', port: 9 },
      trust: 'root',
    });
    for (const file of files)
      await writeFile(join(dir, 'pki', file.name), file.content, { mode: 0o600 });
    await writeFile(join(dir, 'pki', 'dkim.key'), good, { mode: 0o600 });
  });
  after(() => lab.remove());

  /** The Organization with tlsReporting.dkim reading this key file, for the callback's time. */
  async function withKeyFile<T>(keyFile: string, body: () => Promise<T>): Promise<T> {
    const file = join(dir, 'organization.yaml');
    const original = await readFile(file, 'utf8');
    await writeFile(
      file,
      original.replace(
        '  certificate: mail\n',
        `  certificate: mail\n  tlsReporting: {dkim: {selector: tlsrpt, keyFile: ${keyFile}}}\n`,
      ),
    );
    try {
      return await body();
    } finally {
      await writeFile(file, original);
    }
  }

  /** validate's and dns records' whole output and error for the manifests as they are. */
  async function outputs(): Promise<{ validate: string; valid: boolean; dns: string }> {
    const text = capture();
    const json = capture();
    let valid = true;
    await validateCommand({ file: [dir], output: 'text' }, text).catch((error: Error) => {
      valid = false;
      text.stderr(error.message);
    });
    await validateCommand({ file: [dir], output: 'json' }, json);
    const dns = capture();
    await dnsRecordsCommand({ file: [dir], output: 'json' }, dns).catch((error: Error) =>
      dns.stderr(`${error.name}: ${error.message}`),
    );
    return { validate: `${text.all()}\n${json.all()}`, valid, dns: dns.all() };
  }

  it('never shows what a key file holds: validate, dns records', async () => {
    for (const file of [...files, { name: 'absent.key', content: '', secret: 'unset' }]) {
      await withKeyFile(`pki/${file.name}`, async () => {
        const shown = await outputs();
        for (const [where, text] of Object.entries(shown)) {
          if (typeof text !== 'string') continue;
          assert.ok(!text.includes(file.secret), `${file.name}: ${where} shows the file`);
          // A PEM block with its content (the bare header may be named in a hint).
          assert.doesNotMatch(
            text,
            /PRIVATE KEY-----\s*[\r\n]+[A-Za-z0-9+/]{16}/,
            `${file.name}: ${where}`,
          );
        }
        // Refused (at load, DS016, or when the key is read), naming the file.
        assert.match(shown.dns, /CliError: /, file.name);
        assert.equal(shown.valid, false, `${file.name}: validate refuses it`);
        assert.ok(shown.dns.includes(file.name), `${file.name}: the file is named`);
      });
    }
  });

  it('never shows what a key file holds in a report cycle: the report error and the log', async () => {
    const state = await tempDir('domsec-dkim-cycle-');
    try {
      for (const file of files) {
        const log = memoryLog();
        let at = new Date('2026-12-06T12:00:00Z');
        const results = new TlsResults(state.path, () => at);
        await results.record({
          policyDomain: FABRIKAM,
          policyType: 'sts',
          policyStrings: [],
          mxHost: [],
          result: 'success',
        });
        const queued: Buffer[] = [];
        const rua: ReportUri[] = [
          { kind: 'mailto', uri: 'mailto:r@fabrikam.example', address: 'r@fabrikam.example' },
        ];
        const scheduler = new ReportScheduler({
          stateDirectory: state.path,
          results,
          now: () => at,
          lookup: () => Promise.resolve({ kind: 'record', rua }),
          submitter: submitterWith(join(dir, 'pki', file.name)),
          queue: {
            accept: (message) => {
              queued.push(message.body);
              return Promise.resolve();
            },
          },
          log,
        });
        at = new Date('2026-12-07T00:10:00Z');
        const outcome = await scheduler.cycle();
        assert.equal(outcome.sent, 0, file.name);
        assert.deepEqual(queued, [], `${file.name}: nothing unsigned is queued`);
        const kept = await readState(state.path, '2026-12-06', FABRIKAM);
        const shown = `${JSON.stringify(kept)}\n${JSON.stringify(log.entries)}`;
        assert.ok(!shown.includes(file.secret), `${file.name}: shown in the error or the log`);
        assert.doesNotMatch(shown, /PRIVATE KEY-----(\\n|\s)+[A-Za-z0-9+/]{16}/);
        assert.match(kept?.lastError ?? '', new RegExp(file.name.replace('.', '\\.')));
      }
    } finally {
      await state.remove();
    }
  });

  it('refuses at validate a DKIM key file that cannot sign (absent, short, not RSA, not a key)', async () => {
    for (const name of ['absent.key', 'short.key', 'ec.key', 'admin.token']) {
      await withKeyFile(`pki/${name}`, async () => {
        const shown = await outputs();
        assert.equal(shown.valid, false, `${name}: ${shown.validate}`);
      });
    }
    // The good key stays valid.
    await withKeyFile('pki/dkim.key', async () => assert.equal((await outputs()).valid, true));
  });

  it('warns of a DKIM key file readable by group or others, as of a certificate key file', async () => {
    const open = join(dir, 'pki', 'open-dkim.key');
    await writeFile(open, good);
    await chmod(open, 0o644);
    await withKeyFile('pki/open-dkim.key', async () => {
      const shown = await outputs();
      assert.match(shown.validate, /DS104.*tlsReporting.*readable by group or others/);
    });
  });

  it('prints a 2048-bit key record as strings a zone file can hold (255 bytes each, RFC 1035 §3.3.14)', async () => {
    await withKeyFile('pki/dkim.key', async () => {
      const out = capture();
      await dnsRecordsCommand({ file: [dir], output: 'text' }, out);
      const line = out
        .all()
        .split('\n')
        .find((l) => l.includes('._domainkey.'));
      assert.ok(line, out.all());
      const strings = [...line.matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((m) => m[1] ?? '');
      assert.ok(strings.join('').startsWith('v=DKIM1; k=rsa; s=tlsrpt; p='));
      for (const text of strings)
        assert.ok(Buffer.byteLength(text) <= 255, `a string of ${Buffer.byteLength(text)} bytes`);
    });
  });
});

function submitterWith(keyFile: string): Submitter {
  return {
    organizationName: 'Adatum',
    contactInfo: 'postmaster@adatum.example',
    domain: requireDomainName('adatum.example'),
    from: 'tlsrpt-noreply@adatum.example',
    dkim: { domain: 'adatum.example', selector: 'tlsrpt', keyFile },
  };
}

describe('the signature of a mailed report against changes on the way', () => {
  let dir: TempDir;
  let signed: string;
  const key = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey;
  const other = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey;
  let published = dkimRecordText(key);

  before(async () => {
    dir = await tempDir('domsec-dkim-onpath-');
    const keyFile = join(dir.path, 'dkim.key');
    await writeFile(keyFile, key.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600 });
    const message = await reportMessage({
      submitter: submitterWith(keyFile),
      results: { version: 1, day: '2026-12-06', domain: FABRIKAM, policies: [] },
      reportId: 'r1',
      gzipped: Buffer.from('the report'),
      to: 'tlsrpt@fabrikam.example',
      now: new Date('2026-12-07T00:10:00Z'),
    });
    signed = (
      await signReportMessage(message, {
        domain: 'adatum.example',
        selector: 'tlsrpt',
        keyFile,
      })
    ).toString('latin1');
  });
  after(() => dir.remove());

  /** mailauth's verdict, the key record answered for tlsrpt._domainkey.adatum.example. */
  async function verdict(message: string): Promise<string> {
    const result = await dkimVerify(Buffer.from(message, 'latin1'), {
      resolver: (name: string, type: string) =>
        name === 'tlsrpt._domainkey.adatum.example' && type === 'TXT'
          ? Promise.resolve([[published]])
          : Promise.reject(Object.assign(new Error('NXDOMAIN'), { code: 'ENOTFOUND' })),
    });
    return result.results.map((r) => r.status.result).join(',');
  }

  it('passes as made, and fails against a record of another key', async () => {
    assert.equal(await verdict(signed), 'pass');
    published = dkimRecordText(other);
    try {
      assert.notEqual(await verdict(signed), 'pass');
    } finally {
      published = dkimRecordText(key);
    }
  });

  it('fails when a signed field is changed in place', async () => {
    const changed = signed.replace(
      'TLS-Report-Domain: fabrikam.example',
      'TLS-Report-Domain: contoso.example',
    );
    assert.notEqual(changed, signed);
    assert.notEqual(await verdict(changed), 'pass');
  });

  it('fails when a second instance of a signed field, or an unsigned one it names, is added on top', async () => {
    for (const field of [
      'TLS-Report-Domain: contoso.example',
      'TLS-Report-Submitter: contoso.example',
      'From: postmaster@contoso.example',
      'Subject: Report Domain: contoso.example',
      'Sender: postmaster@contoso.example',
      'Reply-To: postmaster@contoso.example',
      'Cc: postmaster@contoso.example',
    ])
      assert.notEqual(await verdict(`${field}\r\n${signed}`), 'pass', field);
  });
});

describe('a mailed report as it leaves the queue, after a restart in between', () => {
  it('reaches the rua mailbox with a signature mailauth verifies over the bytes received', async () => {
    const state = await tempDir('domsec-dkim-queue-');
    const peer = await startSmtpPeer({ certificate: lab().strangerAdatum });
    const key = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey;
    const keyFile = join(state.path, 'dkim.key');
    await writeFile(keyFile, key.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600 });
    const dns = await startDnsServer({
      'tlsrpt._domainkey.treyresearch.net': { TXT: [dkimRecordText(key)] },
      'reports.example': { MX: [{ preference: 10, exchange: 'mx.reports.example' }] },
      'mx.reports.example': { A: ['127.0.0.1'] },
    });
    const closed = await freePort();
    const generation = (port: number): Generation =>
      buildGeneration(
        runtimeConfig({
          organization: {
            resolver: { servers: [dns.server], static: {} },
            tlsReporting: { dkim: { selector: 'tlsrpt', keyFile } },
          },
          sendConnectors: [sendConnector('out', { domainSecure: false, requireTls: false, port })],
        }),
        1,
      );
    const open = (current: Generation) =>
      EngineDelivery.open({
        stateDir: state.path,
        log: memoryLog(),
        events: new EngineEvents(),
        generation: () => current,
        timeouts: { connectMs: 2_000, greetingMs: 2_000, socketMs: 5_000 },
        dns: { timeoutMs: 1_000, tries: 1 },
      });
    let delivery: EngineDelivery | undefined;
    try {
      // First life: the rua's MX refuses connections, so the signed report waits in the queue.
      const first = generation(closed);
      delivery = await open(first);
      const queue = delivery.queue;
      let at = new Date('2026-12-06T12:00:00Z');
      const results = new TlsResults(state.path, () => at);
      await results.record({
        policyDomain: FABRIKAM,
        policyType: 'sts',
        policyStrings: [],
        mxHost: [],
        result: 'success',
      });
      const submitter = submitterOf(first);
      assert.ok(submitter.dkim, 'the Organization signs');
      const scheduler = new ReportScheduler({
        stateDirectory: state.path,
        results,
        now: () => at,
        lookup: () =>
          Promise.resolve({
            kind: 'record',
            rua: [
              {
                kind: 'mailto',
                uri: 'mailto:tlsrpt@reports.example',
                address: 'tlsrpt@reports.example',
              },
            ],
          }),
        submitter,
        queue: {
          accept: (message) =>
            queue.accept({ ...message, receivedAt: at, connector: 'tlsrpt', remoteAddress: '' }),
        },
        log: memoryLog(),
      });
      at = new Date('2026-12-07T00:10:00Z');
      assert.equal((await scheduler.cycle()).sent, 1);
      delivery.afterApply(undefined, first);
      await eventually('the first attempt deferred', () =>
        queue.messages().some((m) => m.attempts > 0),
      );
      await delivery.close();
      // Second life: the same state directory, the MX up; the journal gives the message back.
      const second = generation(peer.port);
      delivery = await open(second);
      delivery.afterApply(undefined, second);
      delivery.retry();
      await eventually('the report delivered', () => peer.messages.length === 1, 20_000);
      const received = peer.messages[0]?.body ?? Buffer.alloc(0);
      const resolver = new Resolver({ timeout: 2_000, tries: 1 });
      resolver.setServers([dns.server]);
      const verified = await dkimVerify(received, {
        resolver: (name: string, type: string) =>
          type === 'TXT' ? resolver.resolveTxt(name) : Promise.reject(new Error(type)),
      });
      assert.deepEqual(
        verified.results.map((r) => [r.status.result, r.signingDomain, r.selector]),
        [['pass', 'treyresearch.net', 'tlsrpt']],
      );
      assert.match(received.toString('latin1'), /^TLS-Report-Domain: fabrikam\.example\r$/m);
    } finally {
      await delivery?.close();
      await peer.close();
      await dns.close();
      await state.remove();
    }
  });
});
