// Mailed TLS reports are DKIM-signed by the reporting domain (RFC 8460 §3): the signature made
// with nodemailer's signer is checked by another implementation (mailauth), a report changed on
// the way fails, a key that cannot sign is refused without showing what the file holds, and
// without a key no report is mailed (once per report, not every cycle).
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { chmod, writeFile } from 'node:fs/promises';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { dkimVerify } from 'mailauth/lib/dkim/verify.js';
import { requireDomainName } from '../../../src/domain-name.js';
import { memoryLog } from '../../../src/engine/log.js';
import type { ReportUri } from '../../../src/engine/tlsrpt/record.js';
import { dkimRecordText, readDkimKey, signReportMessage } from '../../../src/engine/tlsrpt/dkim.js';
import { reportMessage, type Submitter } from '../../../src/engine/tlsrpt/report.js';
import { TlsResults, type DomainDay } from '../../../src/engine/tlsrpt/results.js';
import { readState, ReportScheduler } from '../../../src/engine/tlsrpt/schedule.js';
import { tempDir, type TempDir } from '../../support/tmp.js';

const FABRIKAM = requireDomainName('fabrikam.example');
const CONTOSO = requireDomainName('contoso.example');
const key = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey;
const record = dkimRecordText(key);

/** mailauth's verdicts for a message, the key record answered for tlsrpt._domainkey.adatum.example. */
async function verdicts(message: Buffer): Promise<string[]> {
  const result = await dkimVerify(message, {
    resolver: (name: string, type: string) =>
      name === 'tlsrpt._domainkey.adatum.example' && type === 'TXT'
        ? Promise.resolve([[record]])
        : Promise.reject(Object.assign(new Error('NXDOMAIN'), { code: 'ENOTFOUND' })),
  });
  return result.results.map((r) => `${r.status.result} ${r.signingDomain} ${r.selector}`);
}

const submitter = (dkim?: Submitter['dkim']): Submitter => ({
  organizationName: 'Adatum',
  contactInfo: 'postmaster@adatum.example',
  domain: requireDomainName('adatum.example'),
  from: 'tlsrpt-noreply@adatum.example',
  ...(dkim === undefined ? {} : { dkim }),
});

const day: DomainDay = { version: 1, day: '2026-12-06', domain: FABRIKAM, policies: [] };

describe('DKIM on mailed TLS reports', () => {
  let dir: TempDir;
  let keyFile: string;
  before(async () => {
    dir = await tempDir('domsec-tlsrpt-dkim-');
    keyFile = `${dir.path}/dkim.key`;
    await writeFile(keyFile, key.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600 });
  });
  after(() => dir.remove());

  const signed = async (gzipped = Buffer.from('report')) =>
    signReportMessage(
      await reportMessage({
        submitter: submitter(),
        results: day,
        reportId: 'r1',
        gzipped,
        to: 'tlsrpt@fabrikam.example',
        now: new Date('2026-12-07T00:10:00Z'),
      }),
      { domain: 'adatum.example', selector: 'tlsrpt', keyFile },
    );

  test('the signature verifies with mailauth; the record says s=tlsrpt', async () => {
    assert.match(record, /^v=DKIM1; k=rsa; s=tlsrpt; p=[A-Za-z0-9+/]+=*$/);
    assert.deepEqual(await verdicts(await signed()), ['pass adatum.example tlsrpt']);
  });

  test('a report changed on the way fails: body bytes, the report domain, a header added on top', async () => {
    const message = await signed(Buffer.from('the report itself'));
    const text = message.toString('latin1');
    const bodyAt = text.indexOf('\r\n\r\n') + 4;
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: bodyAt, max: message.length - 1 }),
        fc.integer({ min: 1, max: 255 }),
        async (at, flip) => {
          const changed = Buffer.from(message);
          changed[at] = (changed[at] ?? 0) ^ flip;
          // Whitespace-only changes are what relaxed canonicalization forgives by design.
          const before = String.fromCharCode(message[at] ?? 0);
          const after = String.fromCharCode(changed[at] ?? 0);
          fc.pre(!/[\s]/.test(before) && !/[\s]/.test(after));
          const [verdict] = await verdicts(changed);
          assert.notEqual(verdict?.split(' ')[0], 'pass', `byte ${at}`);
        },
      ),
      { numRuns: 40 },
    );
    const other = Buffer.from(
      text.replace('TLS-Report-Domain: fabrikam.example', 'TLS-Report-Domain: contoso.example'),
      'latin1',
    );
    assert.notEqual((await verdicts(other))[0]?.split(' ')[0], 'pass');
  });

  test('a field added above the signed ones fails: every signed field is listed once more than it occurs', async () => {
    const message = (await signed()).toString('latin1');
    const h =
      /^DKIM-Signature:(?:.*(?:\r\n[ \t].*)*)/m.exec(message)?.[0].replace(/\s+/g, '') ?? '';
    const names = /;h=([^;]+);/.exec(h)?.[1]?.split(':') ?? [];
    for (const name of ['from', 'subject', 'tls-report-domain', 'tls-report-submitter'])
      assert.equal(names.filter((n) => n === name).length, 2, name);
    for (const name of ['sender', 'reply-to', 'cc'])
      assert.equal(names.filter((n) => n === name).length, 1, name);
    assert.equal(/;l=/.test(h), false);
    for (const field of [
      'TLS-Report-Domain: contoso.example',
      'TLS-Report-Submitter: contoso.example',
      'From: postmaster@contoso.example',
      'Subject: Report Domain: contoso.example',
      'Sender: postmaster@contoso.example',
      'Reply-To: postmaster@contoso.example',
      'Cc: postmaster@contoso.example',
    ]) {
      const [verdict] = await verdicts(Buffer.from(`${field}\r\n${message}`, 'latin1'));
      assert.notEqual(verdict?.split(' ')[0], 'pass', field);
    }
    // A field the signature does not name may be added (a Received line on the way).
    const [received] = await verdicts(
      Buffer.from(`Received: from mx.example by mx.fabrikam.example\r\n${message}`, 'latin1'),
    );
    assert.equal(received, 'pass adatum.example tlsrpt');
  });

  test('a key that cannot sign is refused, naming the file and never its content', async () => {
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    const cases: [string, string | Buffer, RegExp][] = [
      ['ec.key', ec.export({ format: 'pem', type: 'pkcs8' }), /holds no RSA key/],
      [
        'short.key',
        generateKeyPairSync('rsa', { modulusLength: 512 }).privateKey.export({
          format: 'pem',
          type: 'pkcs8',
        }),
        /has 512 bits; at least 1024/,
      ],
      [
        'garbage.key',
        '-----BEGIN PRIVATE KEY-----\nTUlJQ2VjcmV0c2VjcmV0\n-----END PRIVATE KEY-----\n',
        /holds no private key that can be read/,
      ],
    ];
    for (const [name, content, reason] of cases) {
      const path = `${dir.path}/${name}`;
      await writeFile(path, content, { mode: 0o600 });
      await assert.rejects(readDkimKey(path), (error: Error) => {
        assert.match(error.message, reason);
        assert.ok(error.message.includes(path));
        assert.doesNotMatch(error.message, /BEGIN|TUlJ/);
        return true;
      });
    }
    await assert.rejects(readDkimKey(`${dir.path}/absent.key`), /cannot be read \(ENOENT\)/);
    if (process.getuid?.() !== 0) {
      const locked = `${dir.path}/locked.key`;
      await writeFile(locked, 'x', { mode: 0o000 });
      await chmod(locked, 0o000);
      await assert.rejects(readDkimKey(locked), /cannot be read \(EACCES\)/);
    }
  });

  test('without a DKIM key, nothing is mailed: each mailto: rua is marked not mailed, once; https: goes on', async () => {
    const log = memoryLog();
    let at = new Date('2026-12-06T12:00:00Z');
    const results = new TlsResults(dir.path, () => at);
    for (const domain of [FABRIKAM, CONTOSO])
      await results.record({
        policyDomain: domain,
        policyType: 'sts',
        policyStrings: [],
        mxHost: [],
        result: 'success',
      });
    const queued: string[][] = [];
    const lookups: string[] = [];
    const mailto = (domain: string): ReportUri => ({
      kind: 'mailto',
      uri: `mailto:tlsrpt@${domain}`,
      address: `tlsrpt@${domain}`,
    });
    // A collector on a port nothing listens on: its POST fails, and is tried again next cycle.
    const https: ReportUri = {
      kind: 'https',
      uri: 'https://localhost:9/r',
      url: new URL('https://localhost:9/r'),
    };
    const scheduler = new ReportScheduler({
      stateDirectory: dir.path,
      results,
      now: () => at,
      lookup: (domain) => {
        lookups.push(domain);
        return Promise.resolve({
          kind: 'record',
          rua: domain === FABRIKAM ? [mailto(domain)] : [mailto(domain), https],
        });
      },
      submitter: submitter(),
      queue: {
        accept: (message) => {
          queued.push(message.recipients);
          return Promise.resolve();
        },
      },
      https: { allowInternalAddresses: true, timeoutMs: 2_000 },
      log,
    });
    at = new Date('2026-12-07T00:10:00Z');
    assert.deepEqual(await scheduler.cycle(), { sent: 0, failed: 1, noRecord: 0, abandoned: 0 });
    assert.deepEqual(queued, []);
    const fabrikam = await readState(dir.path, '2026-12-06', FABRIKAM);
    assert.equal(fabrikam?.outcome, 'not-mailed');
    assert.deepEqual(fabrikam?.delivered, []);
    assert.deepEqual(fabrikam?.notMailed, ['mailto:tlsrpt@fabrikam.example']);
    assert.match(
      fabrikam?.lastError ?? '',
      /^mailto:tlsrpt@fabrikam\.example: not mailed: reports by mail must be DKIM-signed \(RFC 8460 §3\) and the Organization has no tlsReporting\.dkim$/,
    );
    const contoso = await readState(dir.path, '2026-12-06', CONTOSO);
    assert.equal(contoso?.outcome, 'pending');
    assert.deepEqual(contoso?.notMailed, ['mailto:tlsrpt@contoso.example']);
    assert.match(contoso?.lastError ?? '', /localhost:9/);
    const notMailed = () => log.entries.filter((e) => e.event === 'tlsrpt.report-not-mailed');
    assert.equal(notMailed().length, 2);
    // The next cycle tries contoso's collector again, not the mail, and leaves fabrikam alone.
    lookups.length = 0;
    assert.deepEqual(await scheduler.cycle(), { sent: 0, failed: 1, noRecord: 0, abandoned: 0 });
    assert.deepEqual(lookups, [CONTOSO]);
    assert.deepEqual(queued, []);
    assert.equal(notMailed().length, 2);
  });
});
