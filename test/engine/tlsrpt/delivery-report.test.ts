// End to end over loopback: a delivery under an MTA-STS policy in testing whose MX host's
// certificate chains to no trusted CA is sent anyway and counted as certificate-not-trusted; the
// next day's cycle reports it to the domain's rua: POSTed to an HTTPS collector, and mailed through
// our own queue to the smtp-server of the mailto: address, each report valid by RFC 8460's schema
// and the mailed one DKIM-signed (RFC 8460 §3), as mailauth verifies it against the lab's DNS.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { Resolver } from 'node:dns/promises';
import { readFile, writeFile } from 'node:fs/promises';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { after, describe, it } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { Ajv } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { dkimVerify } from 'mailauth/lib/dkim/verify.js';
import { EngineDelivery } from '../../../src/engine/delivery/engine-delivery.js';
import { EngineEvents } from '../../../src/engine/events.js';
import { buildGeneration, type Generation } from '../../../src/engine/generation.js';
import { memoryLog } from '../../../src/engine/log.js';
import { dkimRecordText } from '../../../src/engine/tlsrpt/dkim.js';
import { TlsReporting } from '../../../src/engine/tlsrpt/reporting.js';
import { createCertificateAuthority, issueCertificate } from '../../../src/pki/lab.js';
import { startDnsServer } from '../../support/dns-server.js';
import { eventually } from '../../support/eventually.js';
import { lab } from '../../support/lab.js';
import { startPolicyHost } from '../../support/policy-host.js';
import { runtimeConfig, sendConnector } from '../../support/runtime-config.js';
import { startSmtpPeer } from '../../support/smtp-peer.js';
import { tempDir } from '../../support/tmp.js';

const addFormats = addFormatsModule as unknown as (ajv: Ajv) => Ajv;
const SCHEMA = new URL('../../fixtures/tlsrpt/rfc8460-report.schema.json', import.meta.url);

describe('TLS reporting from the send path', () => {
  const cleanup: (() => Promise<void>)[] = [];
  after(async () => {
    for (const step of cleanup.reverse()) await step();
  });

  it('counts an MTA-STS testing failure and reports it the next day to https: and mailto:', async () => {
    const webCa = createCertificateAuthority({ commonName: 'Report Web CA' });
    const state = await tempDir('domsec-tlsrpt-e2e-');
    const peer = await startSmtpPeer({ certificate: lab().strangerAdatum });
    const host = await startPolicyHost(
      issueCertificate(webCa, {
        commonName: 'mta-sts.sts.example',
        dnsNames: ['mta-sts.sts.example'],
      }),
      {
        status: 200,
        contentType: 'text/plain',
        body: 'version: STSv1\nmode: testing\nmx: mx.sts.example\nmax_age: 3600\n',
      },
    );
    const posts: { type: string | undefined; body: Buffer }[] = [];
    const collectorCert = issueCertificate(webCa, {
      commonName: 'localhost',
      dnsNames: ['localhost'],
    });
    const collector = createServer(
      { cert: collectorCert.certPem, key: collectorCert.keyPem },
      (request, reply) => {
        const chunks: Buffer[] = [];
        request.on('data', (chunk: Buffer) => chunks.push(chunk));
        request.on('end', () => {
          posts.push({ type: request.headers['content-type'], body: Buffer.concat(chunks) });
          reply.end();
        });
      },
    );
    await new Promise<void>((resolve) => collector.listen(0, '127.0.0.1', () => resolve()));
    const collectorUrl = `https://localhost:${(collector.address() as AddressInfo).port}/r`;
    // 1024 bits: the lab DNS server writes a TXT record as one string of at most 255 bytes.
    const dkimKey = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey;
    const keyFile = `${state.path}/dkim.key`;
    await writeFile(keyFile, dkimKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600 });
    const dns = await startDnsServer({
      'tlsrpt._domainkey.treyresearch.net': { TXT: [dkimRecordText(dkimKey)] },
      'sts.example': { MX: [{ preference: 10, exchange: 'mx.sts.example' }] },
      'mx.sts.example': { A: ['127.0.0.1'] },
      '_mta-sts.sts.example': { TXT: ['v=STSv1; id=report1'] },
      'mta-sts.sts.example': { A: ['127.0.0.1'] },
      '_smtp._tls.sts.example': {
        TXT: [`v=TLSRPTv1; rua=mailto:tlsrpt@reports.example,${collectorUrl}`],
      },
      'reports.example': { MX: [{ preference: 10, exchange: 'mx.reports.example' }] },
      'mx.reports.example': { A: ['127.0.0.1'] },
    });
    cleanup.push(
      state.remove,
      peer.close,
      host.close,
      dns.close,
      () =>
        new Promise<void>((resolve) => {
          collector.closeAllConnections();
          collector.close(() => resolve());
        }),
    );

    const generation: Generation = buildGeneration(
      runtimeConfig({
        organization: {
          resolver: { servers: [dns.server], static: {} },
          allowInternalPolicyHosts: true,
          tlsReporting: { dkim: { selector: 'tlsrpt', keyFile } },
        },
        sendConnectors: [
          sendConnector('out', { domainSecure: false, requireTls: false, port: peer.port }),
        ],
      }),
      1,
    );
    const log = memoryLog();
    const events = new EngineEvents();
    const delivery = await EngineDelivery.open({
      stateDir: state.path,
      log,
      events,
      generation: () => generation,
      timeouts: { connectMs: 3_000, greetingMs: 3_000, socketMs: 5_000 },
      dns: { timeoutMs: 1_000, tries: 1 },
      tlsPolicyLab: { extraCas: [webCa.certPem], mtaStsPort: host.port },
    });
    let now = new Date('2026-12-06T09:00:00Z');
    const reporting = new TlsReporting({
      stateDirectory: state.path,
      events,
      sink: delivery.queue,
      generation: () => generation,
      log,
      now: () => now,
      extraCas: [webCa.certPem],
      cycleMs: 3_600_000,
    });
    cleanup.push(
      () => delivery.close(),
      () => reporting.close(),
    );

    await delivery.queue.accept({
      from: 'alice@treyresearch.net',
      recipients: ['bob@sts.example'],
      body: Buffer.from('Subject: hi\r\n\r\nhello\r\n'),
      receivedAt: new Date(),
      connector: 'internal',
      remoteAddress: '127.0.0.1',
    });
    delivery.afterApply(undefined, generation);
    await eventually('the delivery in testing mode', () => peer.messages.length === 1);
    await reporting.results.flush();
    const day = JSON.parse(
      await readFile(`${state.path}/tlsrpt/results/2026-12-06/sts.example.json`, 'utf8'),
    ) as {
      policies: {
        policyType: string;
        success: number;
        failure: number;
        failures: { resultType: string }[];
      }[];
    };
    assert.deepEqual(
      day.policies.map((p) => [
        p.policyType,
        p.success,
        p.failure,
        p.failures.map((f) => f.resultType),
      ]),
      [['sts', 0, 1, ['certificate-not-trusted']]],
    );

    now = new Date('2026-12-07T00:30:00Z');
    assert.deepEqual(await reporting.cycle(), { sent: 1, failed: 0, noRecord: 0, abandoned: 0 });
    assert.equal(posts.length, 1);
    assert.equal(posts[0]?.type, 'application/tlsrpt+gzip');
    const report = JSON.parse(gunzipSync(posts[0]?.body ?? Buffer.alloc(0)).toString('utf8')) as {
      policies: { 'failure-details': Record<string, unknown>[] }[];
    };
    const ajv = new Ajv({ allErrors: true, strict: true });
    addFormats(ajv);
    const validate = ajv.compile(JSON.parse(await readFile(SCHEMA, 'utf8')) as object);
    assert.ok(validate(report), JSON.stringify(validate.errors));
    assert.deepEqual((report.policies[0] as unknown as { policy: unknown }).policy, {
      'policy-type': 'sts',
      'policy-string': ['version: STSv1', 'mode: testing', 'mx: mx.sts.example', 'max_age: 3600'],
      'policy-domain': 'sts.example',
      'mx-host': ['mx.sts.example'],
    });
    const detail = report.policies[0]?.['failure-details'][0];
    assert.equal(detail?.['result-type'], 'certificate-not-trusted');
    assert.equal(detail?.['receiving-mx-hostname'], 'mx.sts.example');
    assert.equal(detail?.['receiving-ip'], '127.0.0.1');
    assert.equal(detail?.['sending-mta-ip'], '127.0.0.1');

    // The mailed copy: through the queue to reports.example's MX, the smtp-server here.
    await eventually('the mailed report', () => peer.messages.length === 2);
    const mailed = peer.messages[1];
    assert.deepEqual(mailed?.recipients, ['tlsrpt@reports.example']);
    assert.equal(mailed?.from, 'tlsrpt-noreply@treyresearch.net');
    const text = mailed?.body.toString('latin1') ?? '';
    assert.match(text, /^TLS-Report-Domain: sts\.example\r$/m);
    assert.match(text, /^TLS-Report-Submitter: treyresearch\.net\r$/m);
    assert.match(text, /Content-Type: multipart\/report; report-type=tlsrpt/);
    assert.match(text, /Content-Type: application\/tlsrpt\+gzip/);
    // Signed by the reporting domain, verified by another implementation over the lab's DNS.
    const resolver = new Resolver({ timeout: 2_000, tries: 1 });
    resolver.setServers([dns.server]);
    const verified = await dkimVerify(mailed?.body ?? Buffer.alloc(0), {
      resolver: (name: string, type: string) =>
        type === 'TXT' ? resolver.resolveTxt(name) : Promise.reject(new Error(type)),
    });
    assert.deepEqual(
      verified.results.map((r) => [r.status.result, r.signingDomain, r.selector]),
      [['pass', 'treyresearch.net', 'tlsrpt']],
    );
    // RFC 8460 §3: no l= (body length) tag; the report's own header fields are signed.
    const signature = /^DKIM-Signature:(.*(?:\r\n[ \t].*)*)/m.exec(text)?.[1] ?? '';
    const tags = new Map(
      signature
        .replace(/\s+/g, '')
        .split(';')
        .map((tag) => [tag.slice(0, tag.indexOf('=')), tag.slice(tag.indexOf('=') + 1)]),
    );
    assert.equal(tags.has('l'), false);
    assert.match(tags.get('h') ?? '', /TLS-Report-Domain:TLS-Report-Submitter/i);
    // Sent once: another cycle has nothing to do.
    assert.deepEqual(await reporting.cycle(), { sent: 0, failed: 0, noRecord: 0, abandoned: 0 });
    assert.equal(posts.length, 1);
  });
});
