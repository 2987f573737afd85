// verifyPeer: per-partner path building, validity, purpose and names, with lab certificates.
import { requireDomainName } from '../../src/domain-name.js';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { buildGeneration, type LoadedPartner } from '../../src/engine/generation.js';
import { verifyPeer, type PeerVerdict } from '../../src/engine/tls/verify.js';
import type { PartnerDomainSpec, TrustAnchorSpec, Named } from '../../src/model.js';
import {
  createCertificateAuthority,
  issueCertificate,
  type CertificateAuthority,
  type ExtendedKeyUsage,
  type IssuedCertificate,
} from '../../src/pki/lab.js';
import { lab } from '../support/lab.js';
import { partnerDomain, runtimeConfig, trustAnchor } from '../support/runtime-config.js';

const DAY = 86_400_000;
const ADATUM_NAMES = { commonName: 'mail.adatum.com', dnsNames: ['mail.adatum.com', 'adatum.com'] };

function x509(...certificates: IssuedCertificate[]): X509Certificate[] {
  return certificates.map((c) => new X509Certificate(c.certPem));
}

/** adatum.com as a loaded partner, trusting adatum-root unless anchors are given. */
function adatum(
  spec: Partial<PartnerDomainSpec> = {},
  anchors: Named<TrustAnchorSpec>[] = [trustAnchor('adatum-root', lab().adatumRoot)],
): LoadedPartner {
  const config = runtimeConfig({
    trustAnchors: anchors,
    partners: [
      partnerDomain('adatum', {
        domain: 'adatum.com',
        trustAnchors: anchors.map((a) => a.name),
        ...spec,
      }),
    ],
  });
  const partner = buildGeneration(config, 1).partnersByDomain.get(requireDomainName('adatum.com'));
  assert.ok(partner);
  return partner;
}

function refused(verdict: PeerVerdict): string {
  assert.equal(verdict.ok, false, 'expected a refusal');
  return verdict.ok ? '' : verdict.reason;
}

/** Extra certificates for the cases the shared lab does not cover, made once per process. */
let made: ReturnType<typeof makeFixtures> | undefined;
function fixtures(): ReturnType<typeof makeFixtures> {
  made ??= makeFixtures();
  return made;
}

function makeFixtures() {
  const { adatumRoot, treyRoot } = lab();
  // A root without pathLength, so that it may sign intermediates.
  const groupRoot = createCertificateAuthority({ commonName: 'Adatum Group Root CA' });
  const intermediate: CertificateAuthority = {
    commonName: 'Adatum Issuing CA',
    ...issueCertificate(groupRoot, { commonName: 'Adatum Issuing CA', isCa: true }),
  };
  const expiredIntermediate: CertificateAuthority = {
    commonName: 'Adatum Old Issuing CA',
    ...issueCertificate(groupRoot, {
      commonName: 'Adatum Old Issuing CA',
      isCa: true,
      notBefore: new Date(Date.now() - 30 * DAY),
      notAfter: new Date(Date.now() - DAY),
    }),
  };
  // An end-entity certificate that someone uses to sign another: not a CA.
  const notCa: CertificateAuthority = {
    commonName: 'Not A CA',
    ...issueCertificate(groupRoot, { commonName: 'Not A CA', extendedKeyUsage: null }),
  };
  return {
    groupRoot,
    intermediate,
    viaIntermediate: issueCertificate(intermediate, ADATUM_NAMES),
    viaExpiredIntermediate: issueCertificate(expiredIntermediate, ADATUM_NAMES),
    expiredIntermediate,
    notCa,
    viaNotCa: issueCertificate(notCa, ADATUM_NAMES),
    serverAuthOnly: issueCertificate(adatumRoot, {
      ...ADATUM_NAMES,
      extendedKeyUsage: ['serverAuth'],
    }),
    clientAuthOnly: issueCertificate(adatumRoot, {
      ...ADATUM_NAMES,
      extendedKeyUsage: ['clientAuth'],
    }),
    noEku: issueCertificate(adatumRoot, { ...ADATUM_NAMES, extendedKeyUsage: null }),
    // forge knows emailProtection; the lab's type only lists the two TLS usages.
    emailOnly: issueCertificate(adatumRoot, {
      ...ADATUM_NAMES,
      extendedKeyUsage: ['emailProtection' as ExtendedKeyUsage],
    }),
    wildcard: issueCertificate(adatumRoot, {
      commonName: '*.adatum.com',
      dnsNames: ['*.adatum.com'],
    }),
    mailOnly: issueCertificate(adatumRoot, {
      commonName: 'mail.adatum.com',
      dnsNames: ['mail.adatum.com'],
    }),
    cnOnly: issueCertificate(adatumRoot, { commonName: 'adatum.com' }),
    notYetValid: issueCertificate(adatumRoot, {
      ...ADATUM_NAMES,
      notBefore: new Date(Date.now() + DAY),
      notAfter: new Date(Date.now() + 30 * DAY),
    }),
    treyClaimingAdatum: issueCertificate(treyRoot, ADATUM_NAMES),
  };
}

describe('verifyPeer', () => {
  it('accepts adatum’s certificate from a client and reports subject, fingerprint and names', () => {
    const { adatumMail } = lab();
    const verdict = verifyPeer({ chain: x509(adatumMail), partner: adatum(), role: 'client' });
    assert.deepEqual(verdict, {
      ok: true,
      subject: 'CN=mail.adatum.com',
      fingerprint: adatumMail.fingerprint,
      names: ['mail.adatum.com', 'adatum.com'],
      issuer: 'CN=Adatum Root CA, O=Adatum',
    });
  });

  it('accepts a chain that includes the root itself', () => {
    const { adatumMail, adatumRoot } = lab();
    const chain = x509(adatumMail, adatumRoot);
    assert.equal(verifyPeer({ chain, partner: adatum(), role: 'server' }).ok, true);
  });

  it('says "no client certificate" / "no server certificate" for an empty chain', () => {
    assert.equal(
      refused(verifyPeer({ chain: [], partner: adatum(), role: 'client' })),
      'no client certificate',
    );
    assert.equal(
      refused(verifyPeer({ chain: [], partner: adatum(), role: 'server' })),
      'no server certificate',
    );
  });

  it('refuses a certificate of a CA nobody trusts', () => {
    const reason = refused(
      verifyPeer({ chain: x509(lab().strangerAdatum), partner: adatum(), role: 'client' }),
    );
    assert.equal(reason, 'certificate is not issued by a trust anchor of partner adatum.com');
  });

  it('refuses a certificate of another partner’s CA that claims this partner', () => {
    // OpenSSL would say "authorized": trey's root is in the server's CA list for trey's sake.
    const chain = x509(fixtures().treyClaimingAdatum, lab().treyRoot);
    const verdict = verifyPeer({ chain, partner: adatum(), role: 'client', opensslError: null });
    assert.match(refused(verdict), /not issued by a trust anchor of partner adatum\.com/);
  });

  it('refuses an expired certificate and one not yet valid, with the date', () => {
    const expired = refused(
      verifyPeer({ chain: x509(lab().adatumExpired), partner: adatum(), role: 'client' }),
    );
    assert.match(expired, /^certificate expired on \d{4}-\d\d-\d\dT/);
    const early = refused(
      verifyPeer({ chain: x509(fixtures().notYetValid), partner: adatum(), role: 'client' }),
    );
    assert.match(early, /^certificate is not valid before \d{4}-/);
  });

  it('honours `now` for validity', () => {
    const { adatumMail } = lab();
    const later = new Date(Date.now() + 400 * DAY);
    const verdict = verifyPeer({
      chain: x509(adatumMail),
      partner: adatum(),
      role: 'client',
      now: later,
    });
    assert.match(refused(verdict), /^certificate expired on/);
  });

  it('refuses a certificate naming another domain, listing what it had and what was expected', () => {
    const verdict = verifyPeer({
      chain: x509(lab().adatumWrongName),
      partner: adatum(),
      role: 'client',
    });
    assert.equal(refused(verdict), 'certificate names mail.contoso.com, expected adatum.com');
    assert.equal(verdict.ok, false);
    if (!verdict.ok) assert.deepEqual(verdict.names, ['mail.contoso.com']);
  });

  it('lists certificateNames and the subdomain forms among the expected names', () => {
    const partner = adatum({
      certificateNames: ['relay.adatum.com'],
      certificateNameMatch: 'subdomain',
    });
    const verdict = verifyPeer({ chain: x509(lab().adatumWrongName), partner, role: 'client' });
    assert.equal(
      refused(verdict),
      'certificate names mail.contoso.com, expected adatum.com or relay.adatum.com or *.adatum.com or a host directly under adatum.com',
    );
  });

  it('takes the subject CN when the certificate has no SAN', () => {
    const verdict = verifyPeer({
      chain: x509(fixtures().cnOnly),
      partner: adatum(),
      role: 'client',
    });
    assert.equal(verdict.ok, true);
  });

  it('accepts a host name only when listed in certificateNames or with subdomain matching', () => {
    const chain = x509(fixtures().mailOnly);
    assert.match(
      refused(verifyPeer({ chain, partner: adatum(), role: 'client' })),
      /certificate names mail\.adatum\.com, expected adatum\.com$/,
    );
    const listed = adatum({ certificateNames: ['mail.adatum.com'] });
    assert.equal(verifyPeer({ chain, partner: listed, role: 'client' }).ok, true);
    const subdomain = adatum({ certificateNameMatch: 'subdomain' });
    assert.equal(verifyPeer({ chain, partner: subdomain, role: 'client' }).ok, true);
  });

  it('accepts a wildcard certificate only when listed or with subdomain matching', () => {
    const chain = x509(fixtures().wildcard);
    assert.match(
      refused(verifyPeer({ chain, partner: adatum(), role: 'server' })),
      /names \*\.adatum\.com/,
    );
    const listed = adatum({ certificateNames: ['*.adatum.com'] });
    assert.equal(verifyPeer({ chain, partner: listed, role: 'server' }).ok, true);
    const subdomain = adatum({ certificateNameMatch: 'subdomain' });
    assert.equal(verifyPeer({ chain, partner: subdomain, role: 'server' }).ok, true);
  });

  describe('purpose', () => {
    it('accepts serverAuth-only, clientAuth-only and EKU-less client certificates', () => {
      const { serverAuthOnly, clientAuthOnly, noEku } = fixtures();
      for (const cert of [serverAuthOnly, clientAuthOnly, noEku]) {
        assert.equal(verifyPeer({ chain: x509(cert), partner: adatum(), role: 'client' }).ok, true);
      }
    });

    it('refuses a client certificate whose EKU has neither serverAuth nor clientAuth', () => {
      const verdict = verifyPeer({
        chain: x509(fixtures().emailOnly),
        partner: adatum(),
        role: 'client',
      });
      assert.equal(
        refused(verdict),
        'certificate Extended Key Usage has neither serverAuth nor clientAuth',
      );
    });

    it('demands clientAuth with clientCertificatePurpose: strict', () => {
      const strict = adatum({ clientCertificatePurpose: 'strict' });
      const { serverAuthOnly, noEku } = fixtures();
      assert.match(
        refused(verifyPeer({ chain: x509(serverAuthOnly), partner: strict, role: 'client' })),
        /lacks clientAuth \(clientCertificatePurpose: strict\)/,
      );
      assert.match(
        refused(verifyPeer({ chain: x509(noEku), partner: strict, role: 'client' })),
        /clientAuth is required/,
      );
      assert.equal(
        verifyPeer({ chain: x509(lab().adatumMail), partner: strict, role: 'client' }).ok,
        true,
      );
    });

    it('demands serverAuth (or no EKU) from a server', () => {
      const { clientAuthOnly, noEku, serverAuthOnly } = fixtures();
      assert.equal(
        refused(verifyPeer({ chain: x509(clientAuthOnly), partner: adatum(), role: 'server' })),
        'certificate Extended Key Usage lacks serverAuth',
      );
      assert.equal(verifyPeer({ chain: x509(noEku), partner: adatum(), role: 'server' }).ok, true);
      assert.equal(
        verifyPeer({ chain: x509(serverAuthOnly), partner: adatum(), role: 'server' }).ok,
        true,
      );
    });
  });

  describe('OpenSSL’s verdict', () => {
    it('ignores INVALID_PURPOSE from a client but still checks everything itself', () => {
      const { serverAuthOnly } = fixtures();
      const ok = verifyPeer({
        chain: x509(serverAuthOnly),
        partner: adatum(),
        role: 'client',
        opensslError: 'INVALID_PURPOSE',
      });
      assert.equal(ok.ok, true);
      // INVALID_PURPOSE hides that the certificate is also expired: we find it.
      const expired = verifyPeer({
        chain: x509(lab().adatumExpired),
        partner: adatum(),
        role: 'client',
        opensslError: 'INVALID_PURPOSE',
      });
      assert.match(refused(expired), /expired/);
    });

    it('fails on any other code, naming it, even when its own checks pass', () => {
      const chain = x509(lab().adatumMail);
      const reason = refused(
        verifyPeer({ chain, partner: adatum(), role: 'client', opensslError: 'CERT_REVOKED' }),
      );
      assert.match(reason, /CERT_REVOKED/);
      assert.match(
        refused(
          verifyPeer({ chain, partner: adatum(), role: 'server', opensslError: 'INVALID_PURPOSE' }),
        ),
        /INVALID_PURPOSE/,
      );
    });
  });

  describe('paths through intermediates', () => {
    const group = () => [trustAnchor('adatum-group', fixtures().groupRoot)];

    it('accepts leaf + intermediate, with or without the root', () => {
      const { viaIntermediate, intermediate, groupRoot } = fixtures();
      const partner = adatum({}, group());
      assert.equal(
        verifyPeer({ chain: x509(viaIntermediate, intermediate), partner, role: 'client' }).ok,
        true,
      );
      const withRoot = verifyPeer({
        chain: x509(viaIntermediate, intermediate, groupRoot),
        partner,
        role: 'client',
      });
      assert.equal(withRoot.ok, true);
      if (withRoot.ok) assert.equal(withRoot.issuer, 'CN=Adatum Group Root CA');
    });

    it('accepts a chain whose anchor is the intermediate itself', () => {
      const { viaIntermediate, intermediate } = fixtures();
      const partner = adatum({}, [trustAnchor('adatum-issuing', intermediate)]);
      assert.equal(verifyPeer({ chain: x509(viaIntermediate), partner, role: 'client' }).ok, true);
    });

    it('refuses a leaf whose intermediate is missing', () => {
      const partner = adatum({}, group());
      assert.match(
        refused(verifyPeer({ chain: x509(fixtures().viaIntermediate), partner, role: 'client' })),
        /not issued by a trust anchor/,
      );
    });

    it('refuses a path through a certificate that is not a CA', () => {
      const { viaNotCa, notCa } = fixtures();
      const partner = adatum({}, group());
      assert.match(
        refused(verifyPeer({ chain: x509(viaNotCa, notCa), partner, role: 'client' })),
        /not issued by a trust anchor/,
      );
    });

    it('refuses a path through an expired intermediate, naming it', () => {
      const { viaExpiredIntermediate, expiredIntermediate } = fixtures();
      const partner = adatum({}, group());
      const chain = x509(viaExpiredIntermediate, expiredIntermediate);
      assert.match(
        refused(verifyPeer({ chain, partner, role: 'client' })),
        /^issuer CN=Adatum Old Issuing CA expired on/,
      );
    });

    it('refuses a chain deeper than its bound', () => {
      const root = createCertificateAuthority({ commonName: 'Deep Root', keyType: 'ecdsa-p256' });
      let issuer: CertificateAuthority = root;
      const intermediates: IssuedCertificate[] = [];
      for (let level = 1; level <= 10; level += 1) {
        const name = `Deep CA ${level}`;
        issuer = {
          commonName: name,
          ...issueCertificate(issuer, { commonName: name, isCa: true, keyType: 'ecdsa-p256' }),
        };
        intermediates.unshift(issuer);
      }
      const leaf = issueCertificate(issuer, { ...ADATUM_NAMES, keyType: 'ecdsa-p256' });
      const partner = adatum({}, [trustAnchor('deep', root)]);
      const verdict = verifyPeer({ chain: x509(leaf, ...intermediates), partner, role: 'client' });
      assert.match(refused(verdict), /not issued by a trust anchor/);
      // The same construction within the bound: anchored at Deep CA 3, seven CAs below it.
      const within = adatum({}, [trustAnchor('deep-3', intermediates[7] as IssuedCertificate)]);
      const short = x509(leaf, ...intermediates.slice(0, 7));
      assert.equal(verifyPeer({ chain: short, partner: within, role: 'client' }).ok, true);
    });
  });

  it('accepts an ECDSA P-256 chain made by openssl', (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'domsec-verify-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const openssl = (...args: string[]) =>
      execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
    try {
      openssl('ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'ca.key');
      openssl(
        'req',
        '-x509',
        '-new',
        '-key',
        'ca.key',
        '-subj',
        '/CN=EC Root',
        '-days',
        '30',
        '-out',
        'ca.crt',
        '-addext',
        'basicConstraints=critical,CA:TRUE',
        '-addext',
        'keyUsage=critical,keyCertSign,cRLSign',
      );
      openssl('ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'leaf.key');
      openssl(
        'req',
        '-new',
        '-key',
        'leaf.key',
        '-subj',
        '/CN=mail.adatum.com',
        '-out',
        'leaf.csr',
      );
      writeFileSync(
        join(dir, 'ext.cnf'),
        'subjectAltName=DNS:mail.adatum.com,DNS:adatum.com\nextendedKeyUsage=serverAuth\n',
      );
      openssl(
        'x509',
        '-req',
        '-in',
        'leaf.csr',
        '-CA',
        'ca.crt',
        '-CAkey',
        'ca.key',
        '-CAcreateserial',
        '-days',
        '10',
        '-extfile',
        'ext.cnf',
        '-out',
        'leaf.crt',
      );
    } catch (error) {
      t.skip(`openssl is not usable here: ${(error as Error).message}`);
      return;
    }
    const root = readFileSync(join(dir, 'ca.crt'), 'utf8');
    const leaf = readFileSync(join(dir, 'leaf.crt'), 'utf8');
    const partner = adatum({}, [{ name: 'ec-root', spec: { system: false, pem: root } }]);
    const chain = [new X509Certificate(leaf)];
    assert.equal(chain[0]?.publicKey.asymmetricKeyType, 'ec');
    assert.equal(verifyPeer({ chain, partner, role: 'client' }).ok, true);
  });
});
