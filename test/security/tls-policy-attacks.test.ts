// An attacker's view of the outbound TLS policies and our MTA-STS policy listener: a client that
// opens connections to the listener and never finishes TLS (slowloris), a certificate whose SAN
// smuggles a second name, a DANE-TA chain that reaches the trust anchor only through a
// certificate that is not a CA, and MTA-STS policies and MX patterns spelled to widen what they
// cover. Each must fail closed: disconnected, refused, not matched.
import assert from 'node:assert/strict';
import { createHash, X509Certificate } from 'node:crypto';
import { createServer as createHttpsServer } from 'node:https';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { certificateDnsNames, coversHost } from '../../src/certificate-names.js';
import { requireDomainName } from '../../src/domain-name.js';
import { daneForDomain } from '../../src/engine/policy/dane-lookup.js';
import { mxMatches, parseStsPolicy } from '../../src/engine/policy/mta-sts-policy.js';
import { chooseTlsPolicy, hopTls } from '../../src/engine/policy/outbound.js';
import { PolicyResolver } from '../../src/engine/policy/resolver.js';
import { HANDSHAKE_TIMEOUT_MS } from '../../src/engine/policy/policy-listener.js';
import { matchChain, type TlsaRecord } from '../../src/engine/policy/tlsa.js';
import { parseTlsRptRecord } from '../../src/engine/tlsrpt/record.js';
import { postReport } from '../../src/engine/tlsrpt/send.js';
import { createCertificateAuthority, issueCertificate } from '../../src/pki/lab.js';
import { buildGeneration } from '../../src/engine/generation.js';
import { memoryLog } from '../../src/engine/log.js';
import { StsPolicyCache } from '../../src/engine/policy/mta-sts-cache.js';
import { createRemoteDelivery } from '../../src/engine/send/deliver.js';
import { smtpReplyText } from '../../src/smtp-reply.js';
import { startDnsServer } from '../support/dns-server.js';
import { startEngine } from '../support/engine.js';
import { lab } from '../support/lab.js';
import {
  certificate,
  ORGANIZATION_CERTIFICATE,
  runtimeConfig,
  sendConnector,
} from '../support/runtime-config.js';
import { startSmtpPeer } from '../support/smtp-peer.js';
import { tempDir } from '../support/tmp.js';

const x509 = (pem: string) => new X509Certificate(pem);

/** Resolves with how long the socket stayed open once the server closed it. */
function closedAfter(socket: Socket, started: number): Promise<number> {
  return new Promise((resolve) => {
    socket.on('error', () => undefined);
    socket.on('close', () => resolve(Date.now() - started));
  });
}

describe('TLS policy attacks', () => {
  it('disconnects policy listener clients that never finish the TLS handshake', async (t) => {
    const state = await tempDir('domsec-sts-slowloris-');
    const running = await startEngine(state.path);
    const sockets: Socket[] = [];
    t.after(async () => {
      for (const socket of sockets) socket.destroy();
      await running.stop();
      await state.remove();
    });
    const host = 'mta-sts.treyresearch.net';
    const cert = issueCertificate(lab().treyRoot, {
      commonName: 'mail.treyresearch.net',
      dnsNames: ['mail.treyresearch.net', host],
    });
    await running.engine.apply(
      runtimeConfig({
        organization: {
          mtaSts: { mode: 'enforce', mx: [], maxAge: 86400, listen: '127.0.0.1:0' },
        },
        certificates: [certificate(ORGANIZATION_CERTIFICATE, cert)],
      }),
    );
    const port = running.engine.mtaStsAddress()?.port;
    assert.ok(typeof port === 'number' && port > 0);

    const started = Date.now();
    // One says nothing after connecting; one sends the first bytes of a TLS record and stops.
    const silent = connect(port, '127.0.0.1');
    const partial = connect(port, '127.0.0.1', () =>
      partial.write(Buffer.from([0x16, 0x03, 0x01])),
    );
    sockets.push(silent, partial);
    const limit = HANDSHAKE_TIMEOUT_MS + 10_000; // Node's default without the fix: 120 s
    const timeout = new Promise<number>((resolve) => {
      const timer = setTimeout(() => resolve(Number.POSITIVE_INFINITY), limit);
      t.after(() => clearTimeout(timer));
    });
    const [silentMs, partialMs] = await Promise.all([
      Promise.race([closedAfter(silent, started), timeout]),
      Promise.race([closedAfter(partial, started), timeout]),
    ]);
    assert.ok(silentMs < limit, `a silent client was still connected after ${limit} ms`);
    assert.ok(partialMs < limit, `a half-sent handshake was still connected after ${limit} ms`);
    assert.ok(silentMs >= HANDSHAKE_TIMEOUT_MS - 1000, `closed too early (${silentMs} ms)`);
  });

  it('posts no TLS report to an https: rua whose host is this machine (SSRF)', async (t) => {
    // A collector on loopback with a certificate our extra CAs trust: only the address stops it.
    const ca = createCertificateAuthority({ commonName: 'Internal Service CA' });
    const cert = issueCertificate(ca, { commonName: 'localhost', dnsNames: ['localhost'] });
    let connections = 0;
    let posts = 0;
    const internal = createHttpsServer({ key: cert.keyPem, cert: cert.certPem }, (req, res) => {
      posts += 1;
      req.resume();
      res.end();
    });
    internal.on('connection', () => (connections += 1));
    await new Promise<void>((resolve) => internal.listen(0, '127.0.0.1', resolve));
    t.after(() => {
      internal.closeAllConnections();
      internal.close();
    });
    const port = (internal.address() as AddressInfo).port;
    const record = parseTlsRptRecord(`v=TLSRPTv1; rua=https://localhost:${port}/internal/admin`);
    assert.ok(record.ok, 'the record parses: a host name, not an IP literal');
    const uri = record.rua[0];
    assert.ok(uri?.kind === 'https');
    await assert.rejects(
      postReport(uri.url, Buffer.from('report'), { extraCas: [ca.certPem], timeoutMs: 5_000 }),
      // Refused as a single-label name before its address is even looked at, or for the address.
      /localhost is a single label|127\.0\.0\.1, an internal address|::1, an internal address/,
    );
    assert.equal(connections, 0, 'a connection was opened to the internal address');
    assert.equal(posts, 0);
    // The same collector where a lab says loopback is its own: posted, so only the address refused it.
    await postReport(uri.url, Buffer.from('report'), {
      extraCas: [ca.certPem],
      timeoutMs: 5_000,
      allowInternalAddresses: true,
    });
    assert.equal(posts, 1);
  });

  it('uses no MX host of a DANE domain whose DNSSEC MX or address look-up fails (the routing look-up may still answer)', async (t) => {
    // The validating resolver answers SERVFAIL for a bogus signature; an attacker on the path can
    // also drop only the queries with the DO bit. Next-hop routing asks without it and gets the
    // MX host: what DANE decided must then keep the host from being used without it.
    const domain = requireDomainName('dane.example');
    const mx = requireDomainName('mx.dane.example');
    const dns = await startDnsServer({
      'dane.example': { MX: [{ preference: 10, exchange: 'mx.dane.example' }], secure: true },
      'mx.dane.example': { A: ['127.0.0.1'], secure: true },
      '_25._tcp.mx.dane.example': {
        TLSA: [{ usage: 3, selector: 1, matchingType: 1, data: Buffer.alloc(32, 7) }],
        secure: true,
      },
    });
    t.after(() => dns.close());
    const resolver = new PolicyResolver({
      servers: [dns.server],
      validating: true,
      timeoutMs: 500,
      tries: 1,
    });
    const verdict = async () => {
      const dane = await daneForDomain(resolver, domain, 25);
      return hopTls(
        { domain, policy: chooseTlsPolicy([], domain), dane, sts: undefined, steps: [] },
        mx,
      );
    };
    assert.equal((await verdict()).kind, 'dane', 'the lab zone is DANE as published');

    dns.failing.add('dane.example');
    const mxFailed = await verdict();
    assert.equal(mxFailed.kind, 'refused', `MX SERVFAIL gave ${mxFailed.kind}`);
    assert.match(
      mxFailed.kind === 'refused' ? mxFailed.reason : '',
      /MX records of dane\.example failed \(SERVFAIL\)/,
    );
    dns.failing.delete('dane.example');

    dns.silent.add('mx.dane.example');
    const addressFailed = await verdict();
    assert.equal(addressFailed.kind, 'refused', `address time-out gave ${addressFailed.kind}`);
    assert.match(
      addressFailed.kind === 'refused' ? addressFailed.reason : '',
      /addresses of mx\.dane\.example failed/,
    );
  });

  it("keeps a TlsPolicy's requireTls for mail through a smart host: a stripped STARTTLS is not plaintext", async (t) => {
    const stripped = await startSmtpPeer({
      certificate: issueCertificate(lab().strangerRoot, { commonName: 'mx.bank.example' }),
      starttls: false,
    });
    const state = await tempDir('domsec-require-tls-smarthost-');
    t.after(async () => {
      await stripped.close();
      await state.remove();
    });
    const config = runtimeConfig({
      sendConnectors: [
        sendConnector('out', {
          domainSecure: false,
          requireTls: false,
          port: stripped.port,
          routing: { smartHosts: ['127.0.0.1'] },
        }),
      ],
    });
    const generation = buildGeneration(
      {
        ...config,
        tlsPolicies: [
          {
            name: 'bank',
            spec: {
              addressSpaces: ['bank.example'],
              dane: 'optional',
              mtaSts: 'optional',
              requireTls: true,
            },
          },
        ],
      },
      1,
    );
    const deliver = createRemoteDelivery({
      log: memoryLog(),
      timeouts: { connectMs: 3_000, greetingMs: 3_000, socketMs: 5_000 },
      dns: { timeoutMs: 1_000, tries: 1 },
      tlsPolicy: { cache: new StsPolicyCache(`${state.path}/mta-sts`), timeoutMs: 1_000 },
    });
    const body = Buffer.from('From: alice@treyresearch.net\r\nSubject: x\r\n\r\nsecret\r\n');
    const [outcome] = await deliver(
      requireDomainName('bank.example'),
      [
        {
          id: 'SMARTHOST1.1',
          from: 'alice@treyresearch.net',
          recipients: ['bob@bank.example'],
          size: body.length,
          receivedAt: new Date(),
          body: () => Promise.resolve(body),
        },
      ],
      generation,
      new AbortController().signal,
    );
    await deliver.close?.();
    assert.ok(outcome);
    assert.deepEqual(stripped.mailCommands, [], 'MAIL FROM went out without TLS');
    assert.deepEqual(stripped.messages, []);
    assert.equal(outcome.failures[0]?.permanent, false);
    assert.match(
      outcome.failures.map((f) => smtpReplyText(f.reply)).join('\n'),
      /451 4\.7\.3 STARTTLS is required to send mail/,
    );
  });

  it('mails no TLS report to a single-label domain of our own network', () => {
    for (const rua of ['mailto:root@localhost', 'mailto:ops@intranet', 'mailto:ops@intranet.']) {
      const parsed = parseTlsRptRecord(`v=TLSRPTv1; rua=${rua}`);
      assert.equal(parsed.ok, false, `${rua} was taken as a collector`);
      assert.match(parsed.ok ? '' : parsed.reason, /single label/);
    }
    assert.equal(parseTlsRptRecord('v=TLSRPTv1; rua=mailto:tlsrpt@reports.example').ok, true);
  });

  it('never reads a second name smuggled into one SAN entry', () => {
    const ca = createCertificateAuthority({ commonName: 'Attacker CA' });
    for (const smuggled of [
      'evil.example, DNS:mx.victim.example',
      'evil.example,DNS:mx.victim.example',
      'mx.victim.example"',
      'mx.victim.example\u0000.evil.example',
    ]) {
      const cert = x509(
        issueCertificate(ca, { commonName: 'evil.example', dnsNames: [smuggled] }).certPem,
      );
      assert.equal(
        coversHost(certificateDnsNames(cert), 'mx.victim.example'),
        false,
        `SAN ${JSON.stringify(smuggled)} was read as naming mx.victim.example`,
      );
    }
  });

  it('refuses a DANE-TA chain that reaches the anchor through a certificate that is not a CA', () => {
    const anchor = createCertificateAuthority({ commonName: 'Victim DANE-TA Root' });
    // A real end-entity certificate the anchor issued to someone else (the attacker's own host)...
    const attackerLeaf = issueCertificate(anchor, {
      commonName: 'mx.attacker.example',
      dnsNames: ['mx.attacker.example'],
      keyUsage: null, // no keyUsage: OpenSSL's checkIssued alone would let it sign
      extendedKeyUsage: null,
    });
    // ...whose key then signs a certificate for the victim's MX host.
    const forged = issueCertificate(
      { ...attackerLeaf, commonName: 'mx.attacker.example' },
      { commonName: 'mx.victim.example', dnsNames: ['mx.victim.example'] },
    );
    const root = x509(anchor.certPem);
    const record: TlsaRecord = {
      usage: 2,
      selector: 1,
      matchingType: 1,
      data: createHash('sha256')
        .update(root.publicKey.export({ type: 'spki', format: 'der' }))
        .digest(),
    };
    const verdict = matchChain({
      records: [record],
      chain: [x509(forged.certPem), x509(attackerLeaf.certPem), root],
      names: ['mx.victim.example', 'victim.example'],
    });
    assert.equal(verdict.ok, false);
    assert.match(verdict.ok ? '' : verdict.reason, /is not a CA/);
  });

  it('reads no MTA-STS policy from oddly spelled modes, keys or line ends', () => {
    const base = (mode: string) =>
      `version: STSv1\nmode: ${mode}\nmx: mx.victim.example\nmax_age: 86400\n`;
    assert.equal(parseStsPolicy(base('enforce')).ok, true);
    for (const mode of ['Enforce', 'ENFORCE', 'enforce\u0000', 'enforce;', '"enforce"', 'enforc']) {
      assert.equal(parseStsPolicy(base(mode)).ok, false, `mode ${JSON.stringify(mode)}`);
    }
    // A bare CR does not end a line: "mode: testing\rmode: enforce" is no mode at all.
    assert.equal(
      parseStsPolicy('version: STSv1\nmode: testing\rmode: enforce\nmx: a.example\nmax_age: 1\n')
        .ok,
      false,
    );
    // The first of a repeated key holds; a later one never changes what was read.
    const twice = parseStsPolicy(
      'version: STSv1\r\nmode: enforce\r\nmode: none\r\nmx: a.example\r\nmax_age: 60\r\nmax_age: 0\r\n',
    );
    assert.deepEqual(twice.ok ? [twice.value.mode, twice.value.maxAge] : twice.reason, [
      'enforce',
      60,
    ]);
    // max_age past the 10 digits or the one-year cap.
    assert.equal(parseStsPolicy(base('enforce').replace('86400', '99999999999')).ok, false);
    const capped = parseStsPolicy(base('enforce').replace('86400', '9999999999'));
    assert.equal(capped.ok ? capped.value.maxAge : 0, 31_557_600);
    // A policy past 64 KB is not read, even when what is in it would parse.
    assert.equal(parseStsPolicy(base('enforce') + `x: ${'a'.repeat(65_536)}\n`).ok, false);
  });

  it('refuses MX patterns that would cover more than one label, and matches IDN and odd spellings canonically', () => {
    const policy = (mx: string) =>
      parseStsPolicy(`version: STSv1\nmode: enforce\nmx: ${mx}\nmax_age: 86400\n`);
    for (const mx of [
      '*.*.victim.example',
      '*victim.example',
      '**.victim.example',
      '*',
      '*.',
      '.victim.example',
      'mx .victim.example',
    ])
      assert.equal(policy(mx).ok, false, `mx ${JSON.stringify(mx)}`);
    const parsed = policy('*.Bücher.Example.');
    assert.ok(parsed.ok);
    const patterns = parsed.value.mx;
    assert.equal(mxMatches(patterns, requireDomainName('MX.xn--bcher-kva.example.')), true);
    assert.equal(mxMatches(patterns, requireDomainName('a.mx.xn--bcher-kva.example')), false);
    assert.equal(mxMatches(patterns, requireDomainName('xn--bcher-kva.example')), false);
    assert.equal(mxMatches(patterns, requireDomainName('mx.xn--bcher-kva.example.evil')), false);
    assert.equal(mxMatches(patterns, requireDomainName('mxxn--bcher-kva.example')), false);
  });

  it('never lets a wildcard pattern cover a host more than one label below it, or outside it (property)', () => {
    const label = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?$/);
    fc.assert(
      fc.property(label, label, label, label, (a, b, parent, other) => {
        const patterns = [`*.${parent}.example`];
        const host = (name: string) => requireDomainName(name);
        assert.equal(mxMatches(patterns, host(`${a}.${parent}.example`)), true);
        assert.equal(mxMatches(patterns, host(`${a}.${b}.${parent}.example`)), false);
        assert.equal(mxMatches(patterns, host(`${parent}.example`)), false);
        if (other !== parent)
          assert.equal(mxMatches(patterns, host(`${a}.${other}.example`)), false);
      }),
      { numRuns: 300 },
    );
  });
});
