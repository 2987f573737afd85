import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { Ajv } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { requireDomainName, type DomainName } from '../../../src/domain-name.js';
import { memoryLog } from '../../../src/engine/log.js';
import { PolicyResolver } from '../../../src/engine/policy/resolver.js';
import { MessageQueue } from '../../../src/engine/queue/queue.js';
import { lookupTlsRpt } from '../../../src/engine/tlsrpt/record.js';
import {
  LIMITS,
  resultDays,
  TlsResults,
  type SessionResult,
} from '../../../src/engine/tlsrpt/results.js';
import { readState, ReportScheduler } from '../../../src/engine/tlsrpt/schedule.js';
import { postReport } from '../../../src/engine/tlsrpt/send.js';
import { createCertificateAuthority, issueCertificate } from '../../../src/pki/lab.js';
import { startDnsServer, type DnsServer } from '../../support/dns-server.js';
import { tempDir, type TempDir } from '../../support/tmp.js';

const addFormats = addFormatsModule as unknown as (ajv: Ajv) => Ajv;
const SCHEMA = new URL('../../fixtures/tlsrpt/rfc8460-report.schema.json', import.meta.url);

interface Collector {
  url: string;
  status: number;
  location?: string;
  posts: { type: string | undefined; body: Buffer }[];
  server: Server;
}

async function startCollector(cert: { certPem: string; keyPem: string }): Promise<Collector> {
  const collector = { status: 200, posts: [] } as unknown as Collector;
  collector.server = createServer({ cert: cert.certPem, key: cert.keyPem }, (request, reply) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      collector.posts.push({ type: request.headers['content-type'], body: Buffer.concat(chunks) });
      reply.writeHead(
        collector.status,
        collector.location === undefined ? {} : { location: collector.location },
      );
      reply.end('ok');
    });
  });
  await new Promise<void>((resolve) => collector.server.listen(0, '127.0.0.1', () => resolve()));
  collector.url = `https://localhost:${(collector.server.address() as AddressInfo).port}/tlsrpt`;
  return collector;
}

/** An RSA key for DKIM, written where a manifest's keyFile would name it. */
async function dkimKeyFile(dir: TempDir): Promise<string> {
  const key = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey;
  const path = `${dir.path}/dkim.key`;
  await writeFile(path, key.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600 });
  return path;
}

const stop = (server: Server) =>
  new Promise<void>((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  });

const FABRIKAM = requireDomainName('fabrikam.example');
const CONTOSO = requireDomainName('contoso.example');

function session(
  domain: DomainName,
  result: SessionResult['result'],
  extra: Partial<SessionResult> = {},
): SessionResult {
  return {
    policyDomain: domain,
    policyType: 'sts',
    policyStrings: [
      'version: STSv1',
      'mode: enforce',
      'mx: mx1.fabrikam.example',
      'max_age: 86400',
    ],
    mxHost: ['mx1.fabrikam.example'],
    result,
    ...(result === 'success'
      ? {}
      : {
          sendingMtaIp: '127.0.0.1',
          receivingMxHostname: 'mx1.fabrikam.example',
          receivingIp: '127.0.0.1',
        }),
    ...extra,
  };
}

describe('TLS reports: a day of results, reported once to each rua, retried until sent', () => {
  const ca = createCertificateAuthority({ commonName: 'Collector Lab CA' });
  let dns: DnsServer;
  let collector: Collector;
  let state: TempDir;
  let now = new Date('2026-12-06T10:00:00Z');

  before(async () => {
    collector = await startCollector(
      issueCertificate(ca, { commonName: 'localhost', dnsNames: ['localhost'] }),
    );
    dns = await startDnsServer({
      '_smtp._tls.fabrikam.example': {
        TXT: [`v=TLSRPTv1; rua=mailto:tlsrpt@fabrikam.example,${collector.url}`],
      },
    });
    state = await tempDir('domsec-tlsrpt-');
  });
  after(async () => {
    await stop(collector.server);
    await dns.close();
    await state.remove();
  });

  test('results on disk per domain-day, a report valid by RFC 8460, mailto through the queue, https retried', async () => {
    const log = memoryLog();
    const results = new TlsResults(state.path, () => now);
    for (let i = 0; i < 3; i += 1) await results.record(session(FABRIKAM, 'success'));
    await results.record(session(FABRIKAM, 'certificate-host-mismatch'));
    await results.record(session(FABRIKAM, 'certificate-host-mismatch'));
    await results.record(
      session(FABRIKAM, 'tlsa-invalid', {
        policyType: 'tlsa',
        policyStrings: ['3 1 1 0123abcd'],
        mxHost: [],
        reason: 'no TLSA record matches',
      }),
    );
    await results.record(
      session(CONTOSO, 'success', { policyType: 'no-policy-found', policyStrings: [], mxHost: [] }),
    );
    await results.flush();
    const written = JSON.parse(
      await readFile(`${state.path}/tlsrpt/results/2026-12-06/fabrikam.example.json`, 'utf8'),
    ) as { policies: { success: number; failure: number }[] };
    assert.deepEqual(
      written.policies.map((p) => [p.success, p.failure]),
      [
        [3, 2],
        [0, 1],
      ],
    );

    const queue = await MessageQueue.open(`${state.path}/queue`, log, () => now.getTime());
    const mailed: Buffer[] = [];
    const resolver = new PolicyResolver({
      servers: [dns.server],
      validating: false,
      timeoutMs: 1_000,
      tries: 1,
    });
    const scheduler = new ReportScheduler({
      stateDirectory: state.path,
      results,
      now: () => now,
      lookup: (domain) => lookupTlsRpt(resolver, domain),
      submitter: {
        organizationName: 'Adatum',
        contactInfo: 'postmaster@adatum.example',
        domain: requireDomainName('adatum.example'),
        from: 'tlsrpt-noreply@adatum.example',
        dkim: { domain: 'adatum.example', selector: 'tlsrpt', keyFile: await dkimKeyFile(state) },
      },
      queue: {
        accept: async (message) => {
          mailed.push(message.body);
          return queue.accept({
            ...message,
            receivedAt: now,
            connector: 'tlsrpt',
            remoteAddress: '',
          });
        },
      },
      https: { extraCas: [ca.certPem], timeoutMs: 5_000, allowInternalAddresses: true },
      log,
    });
    try {
      // The day is not over: nothing is reported.
      assert.deepEqual(await scheduler.cycle(), { sent: 0, failed: 0, noRecord: 0, abandoned: 0 });
      assert.equal(collector.posts.length, 0);

      now = new Date('2026-12-07T00:10:00Z');
      collector.status = 503;
      const first = await scheduler.cycle();
      // contoso publishes no record: done, nothing sent; fabrikam's https failed, its mail is queued.
      assert.deepEqual(first, { sent: 0, failed: 1, noRecord: 1, abandoned: 0 });
      assert.equal(mailed.length, 1);
      assert.deepEqual(
        queue.messages().map((m) => m.recipients),
        [['tlsrpt@fabrikam.example']],
      );
      const pending = await readState(state.path, '2026-12-06', FABRIKAM);
      assert.equal(pending?.outcome, 'pending');
      assert.match(pending?.lastError ?? '', /HTTP 503/);
      assert.ok(log.entries.some((e) => e.event === 'tlsrpt.report-deferred'));

      collector.status = 200;
      assert.deepEqual(await scheduler.cycle(), { sent: 1, failed: 0, noRecord: 0, abandoned: 0 });
      // The mail went once; the same report (one report-id) went to the collector again.
      assert.equal(mailed.length, 1);
      assert.equal(queue.messages().length, 1);
      assert.equal(collector.posts.length, 2);
      assert.deepEqual(await scheduler.cycle(), { sent: 0, failed: 0, noRecord: 0, abandoned: 0 });
      assert.equal(collector.posts.length, 2);

      const post = collector.posts[1];
      assert.equal(post?.type, 'application/tlsrpt+gzip');
      const report = JSON.parse(
        gunzipSync(post?.body ?? Buffer.alloc(0)).toString('utf8'),
      ) as Record<string, unknown>;
      const ajv = new Ajv({ allErrors: true, strict: true });
      addFormats(ajv);
      const validate = ajv.compile(JSON.parse(await readFile(SCHEMA, 'utf8')) as object);
      assert.ok(validate(report), JSON.stringify(validate.errors));
      // The schema is not a formality: a misspelt field or an unknown result type fails it.
      assert.equal(validate({ ...report, report_id: 'x' }), false);
      assert.equal(
        validate(
          JSON.parse(JSON.stringify(report).replace('certificate-host-mismatch', 'host-mismatch')),
        ),
        false,
      );
      assert.equal(report['report-id'], pending?.reportId);
      assert.deepEqual(report['date-range'], {
        'start-datetime': '2026-12-06T00:00:00Z',
        'end-datetime': '2026-12-06T23:59:59Z',
      });
      assert.deepEqual(report.policies, [
        {
          policy: {
            'policy-type': 'sts',
            'policy-string': [
              'version: STSv1',
              'mode: enforce',
              'mx: mx1.fabrikam.example',
              'max_age: 86400',
            ],
            'policy-domain': 'fabrikam.example',
            'mx-host': ['mx1.fabrikam.example'],
          },
          summary: { 'total-successful-session-count': 3, 'total-failure-session-count': 2 },
          'failure-details': [
            {
              'result-type': 'certificate-host-mismatch',
              'sending-mta-ip': '127.0.0.1',
              'receiving-mx-hostname': 'mx1.fabrikam.example',
              'receiving-ip': '127.0.0.1',
              'failed-session-count': 2,
            },
          ],
        },
        {
          policy: {
            'policy-type': 'tlsa',
            'policy-string': ['3 1 1 0123abcd'],
            'policy-domain': 'fabrikam.example',
          },
          summary: { 'total-successful-session-count': 0, 'total-failure-session-count': 1 },
          'failure-details': [
            {
              'result-type': 'tlsa-invalid',
              'sending-mta-ip': '127.0.0.1',
              'receiving-mx-hostname': 'mx1.fabrikam.example',
              'receiving-ip': '127.0.0.1',
              'failed-session-count': 1,
              'failure-reason-code': 'no TLSA record matches',
            },
          ],
        },
      ]);

      // The mailed report: RFC 8460 §5.3 header fields, subject and the same gzip'ed report.
      const message = mailed[0]?.toString('latin1') ?? '';
      const head = message.slice(0, message.indexOf('\r\n\r\n')).replace(/\r\n[ \t]+/g, ' ');
      assert.match(head, /^TLS-Report-Domain: fabrikam\.example$/m);
      assert.match(head, /^TLS-Report-Submitter: adatum\.example$/m);
      assert.match(
        head,
        /^Subject: Report Domain: fabrikam\.example Submitter: adatum\.example Report-ID: <[^>]+>$/m,
      );
      assert.match(
        head,
        /^Content-Type: multipart\/report; report-type="?tlsrpt"?;[\s\S]*boundary=/m,
      );
      assert.match(
        message.replace(/\r\n[ \t]+/g, ' '),
        /Content-Type: application\/tlsrpt\+gzip; name="?adatum\.example!fabrikam\.example!1796515200!1796601599!/,
      );
      const base64 =
        /Content-Transfer-Encoding: base64[\s\S]*?\r\n\r\n([A-Za-z0-9+/=\r\n]+)/.exec(
          message,
        )?.[1] ?? '';
      const mailedReport = JSON.parse(
        gunzipSync(Buffer.from(base64, 'base64')).toString('utf8'),
      ) as object;
      assert.deepEqual(mailedReport, report);
    } finally {
      await queue.close();
    }
  });

  test('a report never sent within its days is abandoned with an error, not dropped silently', async () => {
    const log = memoryLog();
    const dir = await tempDir('domsec-tlsrpt-old-');
    try {
      let at = new Date('2026-11-01T12:00:00Z');
      const results = new TlsResults(dir.path, () => at);
      await results.record(session(FABRIKAM, 'success'));
      const scheduler = new ReportScheduler({
        stateDirectory: dir.path,
        results,
        now: () => at,
        lookup: () => Promise.reject(new Error('SERVFAIL')),
        submitter: {
          organizationName: 'A',
          contactInfo: 'a@adatum.example',
          domain: requireDomainName('adatum.example'),
          from: 'a@adatum.example',
        },
        queue: { accept: () => Promise.reject(new Error('not expected')) },
        log,
        maxAgeDays: 2,
      });
      // A damaged report state of another domain fails that domain only.
      await results.record(session(CONTOSO, 'success'));
      await results.flush();
      await mkdir(`${dir.path}/tlsrpt/reports/2026-11-01`, { recursive: true });
      await writeFile(`${dir.path}/tlsrpt/reports/2026-11-01/contoso.example.json`, '{torn');
      at = new Date('2026-11-02T01:00:00Z');
      assert.deepEqual(await scheduler.cycle(), { sent: 0, failed: 2, noRecord: 0, abandoned: 0 });
      assert.ok(
        log.entries.some(
          (e) => e.event === 'tlsrpt.report-failed' && e.fields.domain === 'contoso.example',
        ),
      );
      await rm(`${dir.path}/tlsrpt/reports/2026-11-01/contoso.example.json`);
      assert.ok(log.entries.some((e) => e.event === 'tlsrpt.lookup-failed'));
      at = new Date('2026-11-05T01:00:00Z');
      assert.deepEqual(await scheduler.cycle(), { sent: 0, failed: 0, noRecord: 0, abandoned: 2 });
      const abandoned = log.entries.find(
        (e) => e.event === 'tlsrpt.report-abandoned' && e.fields.domain === 'fabrikam.example',
      );
      assert.equal(abandoned?.level, 'error');
      assert.match(String(abandoned?.fields.lastError), /SERVFAIL/);
      assert.deepEqual(await scheduler.cycle(), { sent: 0, failed: 0, noRecord: 0, abandoned: 0 });
      // Long after, the day's files go: the state directory does not grow a file a day forever.
      assert.deepEqual(await resultDays(dir.path), ['2026-11-01']);
      at = new Date('2026-12-05T01:00:00Z');
      await scheduler.cycle();
      assert.deepEqual(await resultDays(dir.path), []);
      assert.equal(await readState(dir.path, '2026-11-01', FABRIKAM), undefined);
    } finally {
      await dir.remove();
    }
  });
});

describe('the https: rua', () => {
  const ca = createCertificateAuthority({ commonName: 'Collector Lab CA 2' });
  const stranger = createCertificateAuthority({ commonName: 'Stranger CA' });
  let collector: Collector;
  before(async () => {
    collector = await startCollector(
      issueCertificate(ca, { commonName: 'localhost', dnsNames: ['localhost'] }),
    );
  });
  after(() => stop(collector.server));

  test('PKIX verified, redirects not followed, an answer that never comes bounded in time', async () => {
    const body = Buffer.from('x');
    const lab = { allowInternalAddresses: true }; // the collectors listen on loopback
    await postReport(new URL(collector.url), body, { ...lab, extraCas: [ca.certPem] });
    await assert.rejects(
      postReport(new URL(collector.url), body, { ...lab, extraCas: [stranger.certPem] }),
      /POST .*(self.signed|unable to|issuer)/i,
    );
    await assert.rejects(
      postReport(new URL(collector.url), body, lab),
      /unable to|issuer|self.signed/i,
    );
    collector.status = 302;
    collector.location = 'https://localhost:1/elsewhere';
    await assert.rejects(
      postReport(new URL(collector.url), body, { ...lab, extraCas: [ca.certPem] }),
      /HTTP 302/,
    );
    collector.status = 200;
    delete collector.location;
    // A server that accepts and never answers.
    const { createServer: tcpServer } = await import('node:net');
    const silent = tcpServer(() => undefined);
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', () => resolve()));
    const started = Date.now();
    try {
      await assert.rejects(
        postReport(new URL(`https://localhost:${(silent.address() as AddressInfo).port}/`), body, {
          ...lab,
          timeoutMs: 300,
        }),
        /within 300 ms/,
      );
      assert.ok(Date.now() - started < 5_000);
    } finally {
      silent.close();
    }
  });
});

test('results stay bounded: failure details per policy and policies per domain, the totals still counted', async () => {
  const dir = await tempDir('domsec-tlsrpt-bounds-');
  try {
    const results = new TlsResults(dir.path, () => new Date('2026-12-06T10:00:00Z'));
    const failures = LIMITS.failureDetailsPerPolicy + 50;
    for (let i = 0; i < failures; i += 1)
      await results.record(
        session(FABRIKAM, 'certificate-not-trusted', {
          receivingIp: `192.0.2.${i % 250}`,
          reason: `r${i}`,
        }),
      );
    for (let i = 0; i < LIMITS.policiesPerDomain + 5; i += 1)
      await results.record(session(FABRIKAM, 'success', { policyStrings: [`mode: v${i}`] }));
    await results.flush();
    const day = JSON.parse(
      await readFile(`${dir.path}/tlsrpt/results/2026-12-06/fabrikam.example.json`, 'utf8'),
    ) as { policies: { success: number; failure: number; failures: unknown[] }[] };
    assert.equal(day.policies.length, LIMITS.policiesPerDomain);
    assert.equal(day.policies[0]?.failures.length, LIMITS.failureDetailsPerPolicy);
    assert.equal(day.policies[0]?.failure, failures);
    const total = day.policies.reduce((sum, p) => sum + p.success, 0);
    assert.equal(total, LIMITS.policiesPerDomain + 5);
  } finally {
    await dir.remove();
  }
});
