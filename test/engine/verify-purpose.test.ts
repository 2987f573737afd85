// verifyPeer against `openssl verify`: what OpenSSL's "unsuitable certificate purpose" (waived for
// clients) can stand for — CA Extended Key Usage, leaf keyUsage, unknown critical extensions,
// name constraints — gets OpenSSL's verdict, and the refusal names the defect and certificate.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { buildGeneration, type LoadedPartner } from '../../src/engine/generation.js';
import { certificateExtensions } from '../../src/engine/tls/certificate-extensions.js';
import { verifyPeer, type PeerVerdict } from '../../src/engine/tls/verify.js';
import { derEncode } from '../../src/der.js';
import type { PartnerDomainSpec } from '../../src/model.js';
import {
  createCertificateAuthority,
  issueCertificate,
  type AuthorityOptions,
  type CertificateAuthority,
  type CertificateExtension,
  type IssuedCertificate,
  type KeyPurpose,
  type KeyUsageBit,
  type LeafOptions,
} from '../../src/pki/lab.js';
import { hostileLab } from '../support/hostile-pki.js';
import { lab } from '../support/lab.js';
import { receiving, refusedReason } from '../support/receiving.js';
import { submit } from '../support/smtp-submit.js';
import { partnerDomain, runtimeConfig, trustAnchor } from '../support/runtime-config.js';

const ECDSA = { keyType: 'ecdsa-p256' } as const;
const ADATUM_NAMES = { commonName: 'mail.adatum.com', dnsNames: ['mail.adatum.com', 'adatum.com'] };
const UNKNOWN_CRITICAL: CertificateExtension = {
  oid: '1.2.3.4',
  critical: true,
  value: Buffer.from([0x05, 0x00]),
};

/** What a chain is made of: options for its anchor, an optional intermediate and the leaf. */
interface Shape {
  anchor?: Partial<AuthorityOptions>;
  /** Absent: the anchor issues the leaf. */
  intermediate?: Partial<LeafOptions>;
  leaf?: Partial<LeafOptions>;
}

interface Chain {
  anchor: CertificateAuthority;
  /** Leaf first, then the intermediate when there is one (what the peer sends). */
  presented: IssuedCertificate[];
  shape: Shape;
}

function makeChain(shape: Shape): Chain {
  const anchor = createCertificateAuthority({
    commonName: 'Adatum Purpose Root',
    organization: 'Adatum',
    ...ECDSA,
    ...shape.anchor,
  });
  const intermediate =
    shape.intermediate === undefined
      ? undefined
      : {
          commonName: 'Adatum Issuing CA 1',
          ...issueCertificate(anchor, {
            commonName: 'Adatum Issuing CA 1',
            isCa: true,
            extendedKeyUsage: null,
            ...ECDSA,
            ...shape.intermediate,
          }),
        };
  const leaf = issueCertificate(intermediate ?? anchor, {
    ...ADATUM_NAMES,
    ...ECDSA,
    ...shape.leaf,
  });
  return { anchor, presented: intermediate === undefined ? [leaf] : [leaf, intermediate], shape };
}

function partnerTrusting(
  anchor: CertificateAuthority,
  spec: Partial<PartnerDomainSpec> = {},
): LoadedPartner {
  const anchors = [trustAnchor('purpose-root', anchor)];
  const config = runtimeConfig({
    trustAnchors: anchors,
    partners: [
      partnerDomain('adatum', { domain: 'adatum.com', trustAnchors: ['purpose-root'], ...spec }),
    ],
  });
  const partners = buildGeneration(config, 1).partnersByDomain.values();
  const partner = [...partners].find((candidate) => candidate.domain === 'adatum.com');
  assert.ok(partner);
  return partner;
}

let directory = '';
before(() => {
  directory = mkdtempSync(join(tmpdir(), 'domsec-purpose-'));
});
after(() => rmSync(directory, { recursive: true, force: true }));

/** Node's names for the codes `openssl verify` prints as numbers (X509_V_ERR_*). */
const OPENSSL_CODES: Record<string, string> = {
  '25': 'PATH_LENGTH_EXCEEDED',
  '26': 'INVALID_PURPOSE',
  '32': 'KEYUSAGE_NO_CERTSIGN',
  '34': 'UNHANDLED_CRITICAL_EXTENSION',
  '47': 'PERMITTED_VIOLATION',
  '48': 'EXCLUDED_VIOLATION',
  '79': 'INVALID_CA',
};

interface OpensslVerdict {
  ok: boolean;
  /** The last error reported, which is the one a TLS socket's authorizationError holds. */
  code: string | null;
}

function opensslVerify(chain: Chain, purpose: 'sslserver' | 'sslclient'): OpensslVerdict {
  const [leaf, ...intermediates] = chain.presented;
  assert.ok(leaf);
  const anchorFile = join(directory, 'anchor.pem');
  const leafFile = join(directory, 'leaf.pem');
  const untrustedFile = join(directory, 'untrusted.pem');
  writeFileSync(anchorFile, chain.anchor.certPem);
  writeFileSync(leafFile, leaf.certPem);
  const untrusted: string[] = [];
  if (intermediates.length > 0) {
    writeFileSync(untrustedFile, intermediates.map((cert) => cert.certPem).join(''));
    untrusted.push('-untrusted', untrustedFile);
  }
  const args = ['verify', '-purpose', purpose, '-CAfile', anchorFile, ...untrusted, leafFile];
  try {
    execFileSync('openssl', args, { stdio: 'pipe', timeout: 10_000 });
    return { ok: true, code: null };
  } catch (error) {
    const { stdout, stderr } = error as { stdout?: Buffer; stderr?: Buffer };
    const output = `${String(stdout ?? '')}${String(stderr ?? '')}`;
    const numbers = [...output.matchAll(/error (\d+) at \d+ depth/g)].map((match) => match[1]);
    const last = numbers[numbers.length - 1];
    assert.ok(last !== undefined, `openssl verify failed without an error code: ${output}`);
    return { ok: false, code: OPENSSL_CODES[last] ?? `X509_V_ERR_${last}` };
  }
}

/** Where domsec is stricter than OpenSSL, on purpose: a TLS peer must be able to sign. */
function leafMaySign(shape: Shape): boolean {
  const usage = shape.leaf?.keyUsage;
  return usage === undefined || usage === null || usage.includes('digitalSignature');
}

interface Verdicts {
  server: PeerVerdict;
  client: PeerVerdict;
  strict: PeerVerdict;
  expected: { server: boolean; client: boolean; strict: boolean };
  openssl: { server: OpensslVerdict; client: OpensslVerdict };
}

/**
 * verifyPeer in the three rules, with OpenSSL's verdicts for reference: the server role on our
 * checks alone; the client roles given the code OpenSSL reports for its "SSL client" purpose, as
 * a TLS socket would.
 */
function judge(chain: Chain): Verdicts {
  const x509 = chain.presented.map((cert) => new X509Certificate(cert.certPem));
  const server = opensslVerify(chain, 'sslserver');
  const client = opensslVerify(chain, 'sslclient');
  const signs = leafMaySign(chain.shape);
  const eku = chain.shape.leaf?.extendedKeyUsage;
  // The lab's leaves carry serverAuth and clientAuth unless told otherwise.
  const clientAuthShown = eku === undefined || (eku?.includes('clientAuth') ?? false);
  const verdict = (role: 'client' | 'server', partner: LoadedPartner, code: string | null) =>
    verifyPeer({ chain: x509, partner, role, opensslError: code });
  return {
    server: verdict('server', partnerTrusting(chain.anchor), null),
    client: verdict('client', partnerTrusting(chain.anchor), client.code),
    strict: verdict(
      'client',
      partnerTrusting(chain.anchor, { clientCertificatePurpose: 'strict' }),
      client.code,
    ),
    expected: {
      server: server.ok && signs,
      // The waiver: a client passes with either TLS purpose, as Exchange accepts.
      client: (server.ok || client.ok) && signs,
      strict: client.ok && signs && clientAuthShown,
    },
    openssl: { server, client },
  };
}

function reasonOf(verdict: PeerVerdict): string {
  return verdict.ok ? '(accepted)' : verdict.reason;
}

function assertAgrees(verdicts: Verdicts, what: string): void {
  const context = (rule: 'server' | 'client' | 'strict') =>
    `${what}, ${rule}: openssl sslserver ${JSON.stringify(verdicts.openssl.server)}, sslclient ${JSON.stringify(verdicts.openssl.client)}; verifyPeer: ${reasonOf(verdicts[rule])}`;
  assert.equal(verdicts.server.ok, verdicts.expected.server, context('server'));
  assert.equal(verdicts.client.ok, verdicts.expected.client, context('client'));
  assert.equal(verdicts.strict.ok, verdicts.expected.strict, context('strict'));
}

const nameConstraints = (form: 'permitted' | 'excluded', dns: string): CertificateExtension => ({
  oid: '2.5.29.30',
  critical: true,
  value: derEncode(
    0x30,
    derEncode(
      form === 'permitted' ? 0xa0 : 0xa1,
      derEncode(0x30, derEncode(0x82, Buffer.from(dns))),
    ),
  ),
});
const netscapeObjectSigning: CertificateExtension = {
  oid: '2.16.840.1.113730.1.1',
  critical: false,
  value: Buffer.from([0x03, 0x02, 0x04, 0x10]),
};
const criticalPolicies: CertificateExtension = {
  oid: '2.5.29.32',
  critical: true,
  // certificatePolicies: one PolicyInformation, anyPolicy (2.5.29.32.0)
  value: derEncode(0x30, derEncode(0x30, Buffer.from([0x06, 0x04, 0x55, 0x1d, 0x20, 0x00]))),
};

const ISSUER = 'issuer CN=Adatum Issuing CA 1';
const ROOT = 'issuer CN=Adatum Purpose Root, O=Adatum';

/** Each chain, with the reason expected where the server role refuses it (null: accepted). */
const CASES: [string, Shape, RegExp | null][] = [
  ['a serverAuth-only leaf', { leaf: { extendedKeyUsage: ['serverAuth'] } }, null],
  [
    'a clientAuth-only leaf',
    { leaf: { extendedKeyUsage: ['clientAuth'] } },
    /^certificate Extended Key Usage lacks serverAuth$/,
  ],
  ['a leaf without Extended Key Usage', { leaf: { extendedKeyUsage: null } }, null],
  ['a leaf under a sub-CA without Extended Key Usage', { intermediate: {} }, null],
  [
    'a leaf under a sub-CA whose EKU is emailProtection only',
    { intermediate: { extendedKeyUsage: ['emailProtection'] } },
    new RegExp(`^${ISSUER} has an Extended Key Usage without serverAuth$`),
  ],
  [
    'a leaf under a sub-CA whose EKU is codeSigning only',
    { intermediate: { extendedKeyUsage: ['codeSigning'] } },
    new RegExp(`^${ISSUER} has an Extended Key Usage without serverAuth$`),
  ],
  [
    'a leaf under a sub-CA whose EKU is anyExtendedKeyUsage only (OpenSSL 3.0 refuses it)',
    { intermediate: { extendedKeyUsage: ['anyExtendedKeyUsage'] } },
    new RegExp(`^${ISSUER} has an Extended Key Usage without serverAuth$`),
  ],
  [
    'a serverAuth-only leaf under a clientAuth-only sub-CA (no purpose fits both)',
    {
      intermediate: { extendedKeyUsage: ['clientAuth'] },
      leaf: { extendedKeyUsage: ['serverAuth'] },
    },
    new RegExp(`^${ISSUER} has an Extended Key Usage without serverAuth$`),
  ],
  [
    'a leaf under an anchor whose EKU is emailProtection only',
    { anchor: { extendedKeyUsage: ['emailProtection'] } },
    new RegExp(`^${ROOT} has an Extended Key Usage without serverAuth$`),
  ],
  [
    'a leaf whose keyUsage is keyCertSign only',
    { leaf: { keyUsage: ['keyCertSign'] } },
    /^certificate keyUsage lacks digitalSignature$/,
  ],
  [
    'an ECDSA leaf whose keyUsage is dataEncipherment only',
    { leaf: { keyUsage: ['dataEncipherment'] } },
    /^certificate keyUsage lacks digitalSignature$/,
  ],
  [
    'an ECDSA leaf whose keyUsage is keyEncipherment only (OpenSSL’s sslserver lets it through)',
    { leaf: { keyUsage: ['keyEncipherment'] } },
    /^certificate keyUsage lacks digitalSignature$/,
  ],
  [
    'a leaf with an unknown critical extension',
    { leaf: { extensions: [UNKNOWN_CRITICAL] } },
    /^certificate has an unknown critical extension 1\.2\.3\.4$/,
  ],
  [
    'a leaf under a sub-CA with an unknown critical extension',
    { intermediate: { extensions: [UNKNOWN_CRITICAL] } },
    new RegExp(`^${ISSUER} has an unknown critical extension 1\\.2\\.3\\.4$`),
  ],
  [
    'a leaf under an anchor with an unknown critical extension',
    { anchor: { extensions: [UNKNOWN_CRITICAL] } },
    new RegExp(`^${ROOT} has an unknown critical extension 1\\.2\\.3\\.4$`),
  ],
  ['a leaf with critical certificatePolicies', { leaf: { extensions: [criticalPolicies] } }, null],
  [
    'a leaf whose Netscape Cert Type is object signing only',
    { leaf: { extensions: [netscapeObjectSigning] } },
    /^certificate Netscape Cert Type allows no SSL server use$/,
  ],
  [
    'a sub-CA below an anchor of path length 0',
    { anchor: { pathLength: 0 }, intermediate: {} },
    new RegExp(
      `^${ROOT} has a path length constraint of 0, exceeded by 1 CA certificate below it$`,
    ),
  ],
  [
    'an anchor permitting adatum.com',
    { anchor: { extensions: [nameConstraints('permitted', 'adatum.com')] } },
    null,
  ],
  [
    'an anchor permitting contoso.com only',
    { anchor: { extensions: [nameConstraints('permitted', 'contoso.com')] } },
    new RegExp(`^certificate name mail\\.adatum\\.com is outside the names ${ROOT} permits$`),
  ],
  [
    'a sub-CA excluding mail.adatum.com',
    { intermediate: { extensions: [nameConstraints('excluded', 'mail.adatum.com')] } },
    new RegExp(`^certificate name mail\\.adatum\\.com is among the names ${ISSUER} excludes$`),
  ],
];

describe('verifyPeer and openssl verify on chains OpenSSL’s purpose check judges', () => {
  for (const [what, shape, reason] of CASES) {
    it(`${what}: ${reason === null ? 'accepted' : 'refused'} as OpenSSL does`, () => {
      const verdicts = judge(makeChain(shape));
      assertAgrees(verdicts, what);
      if (reason === null) {
        assert.equal(verdicts.server.ok, true, reasonOf(verdicts.server));
      } else {
        assert.match(reasonOf(verdicts.server), reason);
      }
    });
  }

  it('names the defect for a client as well: “without serverAuth or clientAuth”', () => {
    const verdicts = judge(makeChain({ intermediate: { extendedKeyUsage: ['emailProtection'] } }));
    assert.equal(verdicts.openssl.client.code, 'INVALID_PURPOSE');
    assert.equal(
      reasonOf(verdicts.client),
      `${ISSUER} has an Extended Key Usage without serverAuth or clientAuth`,
    );
    assert.equal(
      reasonOf(verdicts.strict),
      `${ISSUER} has an Extended Key Usage without clientAuth (clientCertificatePurpose: strict)`,
    );
  });

  it('says which purpose the leaf left when a sub-CA excludes it', () => {
    const verdicts = judge(
      makeChain({
        intermediate: { extendedKeyUsage: ['clientAuth'] },
        leaf: { extendedKeyUsage: ['serverAuth'] },
      }),
    );
    assert.equal(
      reasonOf(verdicts.client),
      `${ISSUER} has an Extended Key Usage without serverAuth, the certificate’s only TLS purpose`,
    );
  });

  it('refuses name constraints it does not check, saying so (OpenSSL would judge them)', () => {
    // permitted directoryName O=Adatum: a form of constraint domsec leaves to nobody.
    const organization = derEncode(
      0x30,
      derEncode(
        0x31,
        derEncode(
          0x30,
          Buffer.from([0x06, 0x03, 0x55, 0x04, 0x0a]),
          derEncode(0x0c, Buffer.from('Adatum')),
        ),
      ),
    );
    const directory: CertificateExtension = {
      oid: '2.5.29.30',
      critical: true,
      value: derEncode(0x30, derEncode(0xa0, derEncode(0x30, derEncode(0xa4, organization)))),
    };
    const verdicts = judge(makeChain({ intermediate: { extensions: [directory] } }));
    assert.match(
      reasonOf(verdicts.server),
      new RegExp(
        `^${ISSUER} has name constraints on directoryName names, which domsec does not check`,
      ),
    );
  });

  it('agrees with openssl verify on generated chains (EKU sets, keyUsage bits, extensions)', () => {
    const purposes = fc.option(
      fc.subarray<KeyPurpose>(
        ['serverAuth', 'clientAuth', 'emailProtection', 'anyExtendedKeyUsage'],
        {
          minLength: 1,
        },
      ),
      { nil: null },
    );
    const keyUsage = fc.option(
      fc.subarray<KeyUsageBit>(
        ['digitalSignature', 'keyEncipherment', 'keyAgreement', 'dataEncipherment', 'keyCertSign'],
        { minLength: 1 },
      ),
      { nil: null },
    );
    const shapes = fc.record({
      anchorEku: fc.oneof(
        { weight: 4, arbitrary: fc.constant(null) },
        { weight: 1, arbitrary: purposes },
      ),
      intermediate: fc.boolean(),
      intermediateEku: purposes,
      leafEku: purposes,
      leafKeyUsage: keyUsage,
      critical: fc.constantFrom('none', 'none', 'leaf', 'intermediate', 'anchor'),
      constraint: fc.constantFrom('none', 'none', 'permits adatum.com', 'permits contoso.com'),
    });
    const made = new Map<string, Chain>();
    fc.assert(
      fc.property(shapes, (generated) => {
        const withExtension = (where: string, extra: CertificateExtension[] = []) =>
          generated.critical === where ? [...extra, UNKNOWN_CRITICAL] : extra;
        const constraint =
          generated.constraint === 'none'
            ? []
            : [nameConstraints('permitted', generated.constraint.slice('permits '.length))];
        const shape: Shape = {
          anchor: {
            ...(generated.anchorEku === null ? {} : { extendedKeyUsage: generated.anchorEku }),
            extensions: withExtension('anchor', constraint),
          },
          ...(generated.intermediate
            ? {
                intermediate: {
                  extendedKeyUsage: generated.intermediateEku,
                  extensions: withExtension('intermediate'),
                },
              }
            : {}),
          leaf: {
            extendedKeyUsage: generated.leafEku,
            keyUsage: generated.leafKeyUsage,
            extensions: withExtension('leaf'),
          },
        };
        // Certificates once per shape: shrinking and repeats reuse them.
        const key = JSON.stringify(shape);
        let chain = made.get(key);
        if (chain === undefined) {
          chain = makeChain(shape);
          made.set(key, chain);
        }
        assertAgrees(judge(chain), key);
      }),
      { numRuns: 40 },
    );
  });
});

describe('extensions that cannot be read', () => {
  // OpenSSL already refuses to build a path through most such certificates ("not issued by a
  // trust anchor"); the reader must still say why, and never throw, for the ones it reaches.
  it('reads a keyUsage or name constraint value of random bytes as a problem, never a throw', () => {
    const { adatumRoot } = lab();
    const partner = partnerTrusting(adatumRoot);
    fc.assert(
      fc.property(
        fc.constantFrom('2.5.29.15', '2.5.29.30'),
        fc.uint8Array({ maxLength: 24 }),
        (oid, value) => {
          // No keyUsage of the lab's own: the random one is the only one.
          const leaf = issueCertificate(adatumRoot, {
            ...ADATUM_NAMES,
            ...ECDSA,
            keyUsage: null,
            extensions: [{ oid, critical: false, value }],
          });
          const x509 = new X509Certificate(leaf.certPem);
          const reading = certificateExtensions(x509);
          if (value[0] !== (oid === '2.5.29.15' ? 0x03 : 0x30)) {
            assert.deepEqual(reading, { problem: 'has extensions that cannot be read' });
            assert.equal(verifyPeer({ chain: [x509], partner, role: 'server' }).ok, false);
          }
        },
      ),
      { numRuns: 30 },
    );
  });

  it('refuses a certificate carrying one extension twice', () => {
    const leaf = issueCertificate(lab().adatumRoot, {
      ...ADATUM_NAMES,
      ...ECDSA,
      extensions: [{ oid: '2.5.29.19', critical: true, value: derEncode(0x30) }],
    });
    const x509 = new X509Certificate(leaf.certPem);
    assert.deepEqual(certificateExtensions(x509), { problem: 'has extension 2.5.29.19 twice' });
    const partner = partnerTrusting(lab().adatumRoot);
    assert.equal(verifyPeer({ chain: [x509], partner, role: 'client' }).ok, false);
  });
});

describe('receiving from a partner whose chain OpenSSL’s purpose check refuses', () => {
  const REASONS: Record<string, RegExp> = {
    'a chain through a sub-CA whose EKU is emailProtection only':
      /^issuer CN=Adatum Mail Signing CA, O=Adatum has an Extended Key Usage without serverAuth or clientAuth$/,
    'a serverAuth-only certificate through a sub-CA whose EKU is codeSigning only':
      /^issuer CN=Adatum Code Signing CA, O=Adatum has an Extended Key Usage without serverAuth, the certificate’s only TLS purpose$/,
    'a certificate whose keyUsage is keyCertSign only':
      /^certificate keyUsage lacks digitalSignature$/,
    'an ECDSA certificate whose keyUsage is keyEncipherment and dataEncipherment':
      /^certificate keyUsage lacks digitalSignature$/,
    'a certificate with an unknown critical extension':
      /^certificate has an unknown critical extension 1\.2\.3\.4$/,
    'a chain through a sub-CA with an unknown critical extension':
      /^issuer CN=Adatum Extended CA, O=Adatum has an unknown critical extension 1\.2\.3\.4$/,
  };

  for (const attack of hostileLab().purposeAttacks) {
    it(`refuses ${attack.attack} with 454 4.7.5 at MAIL FROM, the defect logged`, async (t) => {
      const reason = REASONS[attack.attack];
      assert.ok(reason, `no expected reason for ${attack.attack}`);
      const config = runtimeConfig({
        trustAnchors: [trustAnchor('adatum-issuing-root', hostileLab().adatumIssuingRoot)],
        adatum: { trustAnchors: ['adatum-issuing-root'] },
      });
      const { port, sink, log } = await receiving(t, buildGeneration(config, 1));
      const outcome = await submit(
        port,
        { from: 'someone@adatum.com', to: ['user@treyresearch.net'] },
        { certificate: attack, serverCa: lab().treyRoot.certPem },
        'From: someone@adatum.com\r\nSubject: purpose\r\n\r\nbody\r\n',
      );
      assert.equal(outcome.code, 454, outcome.response);
      assert.match(outcome.response, /^454 4\.7\.5 /);
      assert.equal(sink.messages.length, 0);
      assert.match(refusedReason(log), reason);
    });
  }
});
