// probe DOMAIN for a non-partner, over real sockets: the TlsPolicy, each DANE and MTA-STS look-up,
// then per hop its requirement and the server's certificate judged by it, step by step.
import assert from 'node:assert/strict';
import { createHash, X509Certificate } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { buildGeneration } from '../../../src/engine/generation.js';
import { probeDomain } from '../../../src/engine/send/probe.js';
import { createCertificateAuthority, issueCertificate } from '../../../src/pki/lab.js';
import { startDnsServer, type DnsServer } from '../../support/dns-server.js';
import { lab } from '../../support/lab.js';
import { startPolicyHost, type PolicyHost } from '../../support/policy-host.js';
import { runtimeConfig, sendConnector } from '../../support/runtime-config.js';
import { startSmtpPeer, type SmtpPeer } from '../../support/smtp-peer.js';

const spki = (pem: string) =>
  createHash('sha256')
    .update(new X509Certificate(pem).publicKey.export({ type: 'spki', format: 'der' }))
    .digest();

describe('probe of a non-partner', () => {
  const webCa = createCertificateAuthority({ commonName: 'Probe Web CA' });
  const mxCertificate = issueCertificate(webCa, {
    commonName: 'mx.fabrikam.example',
    dnsNames: ['mx.fabrikam.example'],
  });
  let dns: DnsServer;
  let host: PolicyHost;
  let server: SmtpPeer;

  before(async () => {
    server = await startSmtpPeer({ certificate: mxCertificate });
    dns = await startDnsServer({
      'fabrikam.example': {
        MX: [{ preference: 10, exchange: 'mx.fabrikam.example' }],
        secure: true,
      },
      'mx.fabrikam.example': { A: ['127.0.0.1'], secure: true },
      '_mta-sts.fabrikam.example': { TXT: ['v=STSv1; id=1'] },
      'mta-sts.fabrikam.example': { A: ['127.0.0.1'] },
    });
    host = await startPolicyHost(
      issueCertificate(webCa, {
        commonName: 'mta-sts.fabrikam.example',
        dnsNames: ['mta-sts.fabrikam.example'],
      }),
      {
        status: 200,
        contentType: 'text/plain',
        body: 'version: STSv1\nmode: enforce\nmx: mx.fabrikam.example\nmax_age: 600\n',
      },
    );
  });
  after(async () => {
    await server.close();
    await host.close();
    await dns.close();
  });

  const probe = () =>
    probeDomain(
      buildGeneration(
        runtimeConfig({
          organization: {
            resolver: { servers: [dns.server], validating: true, static: {} },
            allowInternalPolicyHosts: true,
          },
          sendConnectors: [
            sendConnector('out', { domainSecure: false, requireTls: false, port: server.port }),
          ],
        }),
        0,
      ),
      'Fabrikam.Example.',
      { timeoutMs: 3_000, tlsPolicyLab: { extraCas: [webCa.certPem], mtaStsPort: host.port } },
    );
  const line = (report: Awaited<ReturnType<typeof probe>>) =>
    report.steps.map((s) => `[${s.ok ? 'pass' : 'FAIL'}] ${s.step}: ${s.detail}`).join('\n');

  it('passes step by step when the certificate matches the TLSA record, DANE deciding over MTA-STS', async () => {
    dns.zones.set(`_${server.port}._tcp.mx.fabrikam.example`, {
      TLSA: [{ usage: 3, selector: 1, matchingType: 1, data: spki(mxCertificate.certPem) }],
      secure: true,
    });
    const report = await probe();
    const text = line(report);
    assert.equal(report.kind, 'tls-policy');
    assert.equal(report.ok, true, text);
    assert.match(text, /\[pass\] TLS policy: .*the defaults \(dane optional, mtaSts optional/);
    assert.match(
      text,
      /\[pass\] DANE: TLSA _\d+\._tcp\.mx\.fabrikam\.example: 3 1 1 [0-9a-f]+\.\.\. \(secure\)/,
    );
    assert.match(
      text,
      /\[pass\] MTA-STS: fetched https:\/\/mta-sts\.fabrikam\.example\/\.well-known\/mta-sts\.txt: mode enforce/,
    );
    assert.match(text, /\[pass\] hop policy: DANE: TLS required/);
    assert.match(text, /\[pass\] DANE: DANE-EE matched the server certificate/);
    assert.match(text, /\[pass\] MAIL FROM: 250/);
  });

  it('fails at the DANE step, quoting 454 4.7.5, when no record matches; MTA-STS decides where DANE is absent', async () => {
    dns.zones.set(`_${server.port}._tcp.mx.fabrikam.example`, {
      TLSA: [{ usage: 3, selector: 1, matchingType: 1, data: spki(lab().adatumMail.certPem) }],
      secure: true,
    });
    const mismatch = line(await probe());
    assert.match(
      mismatch,
      /\[FAIL\] DANE: 454 4\.7\.5 DANE: no TLSA record matched the server certificate/,
    );
    assert.doesNotMatch(mismatch, /MAIL FROM/);
    dns.zones.set(`_${server.port}._tcp.mx.fabrikam.example`, { secure: true });
    const sts = line(await probe());
    assert.match(sts, /\[pass\] hop policy: MTA-STS enforce: TLS required/);
    assert.match(
      sts,
      /\[pass\] MTA-STS: mx\.fabrikam\.example verified for fabrikam\.example \(mode enforce\)/,
    );
  });
});
