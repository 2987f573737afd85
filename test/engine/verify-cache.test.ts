// The caches of tls/verify.ts: a chain is judged once per partner (per generation) and role, but
// its validity window is checked against the clock on every call, and parsed certificates are
// shared between handshakes that present the same chain.
import { requireDomainName } from '../../src/domain-name.js';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { connect, createServer, type TLSSocket } from 'node:tls';
import { after, describe, it } from 'node:test';
import { buildGeneration, type LoadedPartner } from '../../src/engine/generation.js';
import { peerChain, verifyPeer } from '../../src/engine/tls/verify.js';
import type { Named, TrustAnchorSpec } from '../../src/model.js';
import {
  createCertificateAuthority,
  issueCertificate,
  type CertificateAuthority,
} from '../../src/pki/lab.js';
import { lab } from '../support/lab.js';
import { partnerDomain, runtimeConfig, trustAnchor } from '../support/runtime-config.js';

const DAY = 86_400_000;
const ADATUM_NAMES = { commonName: 'mail.adatum.com', dnsNames: ['mail.adatum.com', 'adatum.com'] };

/** adatum.com as loaded by a fresh generation, trusting the given anchors. */
function adatum(anchors: Named<TrustAnchorSpec>[]): LoadedPartner {
  const config = runtimeConfig({
    trustAnchors: anchors,
    partners: [
      partnerDomain('adatum', { domain: 'adatum.com', trustAnchors: anchors.map((a) => a.name) }),
    ],
  });
  const partner = buildGeneration(config, 1).partnersByDomain.get(requireDomainName('adatum.com'));
  assert.ok(partner);
  return partner;
}

const x509 = (...pems: string[]) => pems.map((pem) => new X509Certificate(pem));

/** Counts signature checks (X509Certificate#verify) while `run` runs. */
function signatureChecks(run: () => void): number {
  const prototype = X509Certificate.prototype;
  const verify = prototype.verify;
  let count = 0;
  prototype.verify = function (this: X509Certificate, key) {
    count += 1;
    return verify.call(this, key);
  };
  try {
    run();
  } finally {
    prototype.verify = verify;
  }
  return count;
}

describe('verified chain cache', () => {
  it('checks a chain’s signatures once per partner, and again for a new generation’s partner', () => {
    const { adatumMail, adatumRoot } = lab();
    const anchors = [trustAnchor('adatum-root', adatumRoot)];
    const partner = adatum(anchors);
    const first = signatureChecks(() => {
      const verdict = verifyPeer({ chain: x509(adatumMail.certPem), partner, role: 'client' });
      assert.equal(verdict.ok, true);
    });
    assert.ok(first > 0);
    const again = signatureChecks(() => {
      // Parsed again: the cache is keyed by the certificates' fingerprints, not by objects.
      const verdict = verifyPeer({ chain: x509(adatumMail.certPem), partner, role: 'client' });
      assert.equal(verdict.ok, true);
    });
    assert.equal(again, 0, 'the second connection with the same chain reuses the path');
    const renewed = adatum(anchors); // what an apply builds: new partner objects
    const afterApply = signatureChecks(() => {
      const verdict = verifyPeer({
        chain: x509(adatumMail.certPem),
        partner: renewed,
        role: 'client',
      });
      assert.equal(verdict.ok, true);
    });
    assert.ok(afterApply > 0, 'a new generation judges the chain again');
  });

  it('still refuses a cached chain once it has expired, and before it is valid', () => {
    const { adatumRoot } = lab();
    const partner = adatum([trustAnchor('adatum-root', adatumRoot)]);
    const notBefore = new Date(Date.now() - DAY);
    const notAfter = new Date(Date.now() + DAY);
    const leaf = issueCertificate(adatumRoot, { ...ADATUM_NAMES, notBefore, notAfter });
    const chain = x509(leaf.certPem);
    assert.equal(verifyPeer({ chain, partner, role: 'client' }).ok, true);
    const later = verifyPeer({
      chain,
      partner,
      role: 'client',
      now: new Date(Date.now() + 2 * DAY),
    });
    assert.equal(later.ok, false);
    assert.match(later.ok ? '' : later.reason, /^certificate expired on /);
    const earlier = verifyPeer({
      chain,
      partner,
      role: 'client',
      now: new Date(Date.now() - 2 * DAY),
    });
    assert.match(earlier.ok ? '' : earlier.reason, /^certificate is not valid before /);
    assert.equal(verifyPeer({ chain, partner, role: 'client' }).ok, true);
  });

  it('does not carry a verdict to a generation whose partner trusts other anchors', () => {
    const { adatumMail, adatumRoot, strangerRoot } = lab();
    const chain = x509(adatumMail.certPem);
    const trusting = adatum([trustAnchor('adatum-root', adatumRoot)]);
    assert.equal(verifyPeer({ chain, partner: trusting, role: 'client' }).ok, true);
    const distrusting = adatum([trustAnchor('stranger-root', strangerRoot)]);
    const verdict = verifyPeer({ chain, partner: distrusting, role: 'client' });
    assert.equal(verdict.ok, false);
    assert.match(verdict.ok ? '' : verdict.reason, /not issued by a trust anchor of partner/);
  });

  it('keys by the whole chain, the role and OpenSSL’s code, not by the leaf alone', () => {
    const groupRoot = createCertificateAuthority({ commonName: 'Adatum Cache Group Root' });
    const intermediate: CertificateAuthority = {
      commonName: 'Adatum Cache Issuing CA',
      ...issueCertificate(groupRoot, { commonName: 'Adatum Cache Issuing CA', isCa: true }),
    };
    const leaf = issueCertificate(intermediate, ADATUM_NAMES);
    const partner = adatum([trustAnchor('group-root', groupRoot)]);
    const full = verifyPeer({
      chain: x509(leaf.certPem, intermediate.certPem),
      partner,
      role: 'client',
    });
    assert.equal(full.ok, true);
    const leafOnly = verifyPeer({ chain: x509(leaf.certPem), partner, role: 'client' });
    assert.equal(leafOnly.ok, false, 'without its intermediate the leaf reaches no anchor');

    const chain = x509(leaf.certPem, intermediate.certPem);
    const revoked = verifyPeer({ chain, partner, role: 'client', opensslError: 'CERT_REVOKED' });
    assert.match(revoked.ok ? '' : revoked.reason, /TLS verification failed: CERT_REVOKED/);
    assert.equal(verifyPeer({ chain, partner, role: 'client', opensslError: null }).ok, true);
  });

  it('keeps judging correctly past its bound (least recently used chains are dropped)', () => {
    const { adatumRoot } = lab();
    const partner = adatum([trustAnchor('adatum-root', adatumRoot)]);
    const leaves = Array.from({ length: 70 }, () =>
      issueCertificate(adatumRoot, { ...ADATUM_NAMES, keyType: 'ecdsa-p256' }),
    );
    for (const leaf of leaves) {
      assert.equal(verifyPeer({ chain: x509(leaf.certPem), partner, role: 'client' }).ok, true);
    }
    const first = leaves[0];
    assert.ok(first);
    const checks = signatureChecks(() => {
      assert.equal(verifyPeer({ chain: x509(first.certPem), partner, role: 'client' }).ok, true);
    });
    assert.ok(checks > 0, 'the oldest chain was dropped and is judged again');
  });

  it('keeps what it decided on the generation’s partner, bounded, and a new generation starts empty', () => {
    const { adatumRoot, adatumMail } = lab();
    const anchors = [trustAnchor('adatum-root', adatumRoot)];
    const partner = adatum(anchors);
    assert.equal(partner.verifiedChains.size, 0);
    assert.equal(verifyPeer({ chain: x509(adatumMail.certPem), partner, role: 'client' }).ok, true);
    assert.equal(verifyPeer({ chain: x509(adatumMail.certPem), partner, role: 'server' }).ok, true);
    assert.equal(partner.verifiedChains.size, 2, 'one entry per chain and role');
    for (let i = 0; i < partner.verifiedChains.limit + 5; i += 1) {
      verifyPeer({
        chain: x509(adatumMail.certPem),
        partner,
        role: 'client',
        opensslError: `E${i}`,
      });
    }
    assert.equal(partner.verifiedChains.size, partner.verifiedChains.limit);
    assert.equal(adatum(anchors).verifiedChains.size, 0);
  });
});

describe('parsed peer certificates', () => {
  const closers: (() => void)[] = [];
  after(() => {
    for (const close of closers) close();
  });

  it('hands out the same parsed certificates for two handshakes with the same chain', async () => {
    const { adatumMail, adatumRoot, treyMail } = lab();
    const chains: X509Certificate[][] = [];
    const server = createServer({
      key: treyMail.keyPem,
      cert: treyMail.certPem,
      ca: [adatumRoot.certPem],
      requestCert: true,
      rejectUnauthorized: false,
    });
    server.on('secureConnection', (socket: TLSSocket) => {
      chains.push(peerChain(socket));
      socket.end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    closers.push(() => server.close());
    const { port } = server.address() as AddressInfo;
    for (let i = 0; i < 2; i += 1) {
      await new Promise<void>((resolve, reject) => {
        const client = connect({
          host: '127.0.0.1',
          port,
          key: adatumMail.keyPem,
          cert: adatumMail.certPem,
          rejectUnauthorized: false,
        });
        const timer = setTimeout(() => reject(new Error('no handshake within 5 s')), 5_000);
        client.on('error', reject);
        client.on('close', () => {
          clearTimeout(timer);
          resolve();
        });
        client.resume();
      });
    }
    const [first, second] = chains;
    assert.ok(first?.[0] !== undefined && second?.[0] !== undefined);
    assert.equal(first[0].fingerprint256, new X509Certificate(adatumMail.certPem).fingerprint256);
    assert.equal(second[0], first[0], 'the leaf was parsed once');
    assert.equal(second.length, first.length);
  });
});
