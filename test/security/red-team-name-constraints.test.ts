// Red team: a CA's excluded DNS subtree must hold for every spelling of a name that name matching
// accepts as the partner's (a trailing dot, upper case, a U-label, a Unicode case form): a name
// that matches the partner is judged by the constraints in the form it matched.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { buildGeneration, type LoadedPartner } from '../../src/engine/generation.js';
import { verifyPeer } from '../../src/engine/tls/verify.js';
import { derEncode } from '../../src/der.js';
import {
  createCertificateAuthority,
  issueCertificate,
  type CertificateAuthority,
  type CertificateExtension,
} from '../../src/pki/lab.js';
import { lab } from '../support/lab.js';
import { receiving, refusedReason } from '../support/receiving.js';
import { submit } from '../support/smtp-submit.js';
import { partnerDomain, runtimeConfig, trustAnchor } from '../support/runtime-config.js';

const ECDSA = { keyType: 'ecdsa-p256' } as const;

const excluding = (dns: string): CertificateExtension => ({
  oid: '2.5.29.30',
  critical: true,
  value: derEncode(0x30, derEncode(0xa1, derEncode(0x30, derEncode(0x82, Buffer.from(dns))))),
});

/** A root that may vouch for any name but the excluded subtree. */
function rootExcluding(dns: string): CertificateAuthority {
  return createCertificateAuthority({
    commonName: 'Constrained Root',
    organization: 'Red Team',
    ...ECDSA,
    extensions: [excluding(dns)],
  });
}

function partnerTrusting(anchor: CertificateAuthority, domain: string): LoadedPartner {
  const config = runtimeConfig({
    trustAnchors: [trustAnchor('constrained-root', anchor)],
    partners: [partnerDomain('partner', { domain, trustAnchors: ['constrained-root'] })],
  });
  const partner = [...buildGeneration(config, 1).partnersByDomain.values()][0];
  assert.ok(partner);
  return partner;
}

interface Member {
  what: string;
  /** The partner's domain as the manifest writes it. */
  domain: string;
  /** The subtree the root excludes. */
  excluded: string;
  commonName: string;
  dnsNames: string[];
}

/** Spellings name matching accepts for the partner; every one is inside the excluded subtree. */
const MEMBERS: Member[] = [
  {
    what: 'a SAN with a trailing dot',
    domain: 'adatum.com',
    excluded: 'adatum.com',
    commonName: 'Adatum Mail',
    dnsNames: ['adatum.com.'],
  },
  {
    what: 'a SAN in upper case with a trailing dot',
    domain: 'adatum.com',
    excluded: 'adatum.com',
    commonName: 'Adatum Mail',
    dnsNames: ['ADATUM.COM.'],
  },
  {
    what: 'a SAN with a trailing dot under an excluded top-level domain',
    domain: 'adatum.com',
    excluded: '.com',
    commonName: 'Adatum Mail',
    dnsNames: ['adatum.com.'],
  },
  {
    what: 'a subject CN with a trailing dot and no SAN',
    domain: 'adatum.com',
    excluded: 'adatum.com',
    commonName: 'adatum.com.',
    dnsNames: [],
  },
  {
    what: 'a subject CN written as the U-label of an excluded A-label',
    domain: 'xn--bcher-kva.example',
    excluded: 'xn--bcher-kva.example',
    commonName: 'bücher.example',
    dnsNames: [],
  },
  {
    what: 'a subject CN in upper-case U-labels with a trailing dot',
    domain: 'bücher.example',
    excluded: 'xn--bcher-kva.example',
    commonName: 'BÜCHER.EXAMPLE.',
    dnsNames: [],
  },
];

let directory = '';
before(() => {
  directory = mkdtempSync(join(tmpdir(), 'domsec-red-team-nc-'));
});
after(() => rmSync(directory, { recursive: true, force: true }));

describe('red team: name constraints against every spelling name matching accepts', () => {
  for (const member of MEMBERS) {
    it(`refuses ${member.what} from a root excluding ${member.excluded}, both roles`, () => {
      const root = rootExcluding(member.excluded);
      const leaf = issueCertificate(root, {
        commonName: member.commonName,
        dnsNames: member.dnsNames,
        ...ECDSA,
      });
      const chain = [new X509Certificate(leaf.certPem)];
      const partner = partnerTrusting(root, member.domain);
      for (const role of ['server', 'client'] as const) {
        const verdict = verifyPeer({ chain, partner, role });
        assert.equal(verdict.ok, false, `${role}: accepted ${member.what}`);
        assert.match(verdict.reason, /is among the names issuer CN=Constrained Root.* excludes$/);
      }

      // The control: the same names from a root without constraints name the partner.
      const free = createCertificateAuthority({ commonName: 'Free Root', ...ECDSA });
      const freeLeaf = issueCertificate(free, {
        commonName: member.commonName,
        dnsNames: member.dnsNames,
        ...ECDSA,
      });
      const control = verifyPeer({
        chain: [new X509Certificate(freeLeaf.certPem)],
        partner: partnerTrusting(free, member.domain),
        role: 'server',
      });
      assert.equal(control.ok, true, control.ok ? '' : control.reason);
    });
  }

  it('agrees with openssl verify -verify_hostname, which refuses the trailing-dot SAN', () => {
    const root = rootExcluding('adatum.com');
    const leaf = issueCertificate(root, {
      commonName: 'Adatum Mail',
      dnsNames: ['adatum.com.'],
      ...ECDSA,
    });
    const rootFile = join(directory, 'root.pem');
    const leafFile = join(directory, 'leaf.pem');
    writeFileSync(rootFile, root.certPem);
    writeFileSync(leafFile, leaf.certPem);
    const run = (...extra: string[]) => {
      try {
        execFileSync(
          'openssl',
          ['verify', '-purpose', 'sslserver', ...extra, '-CAfile', rootFile, leafFile],
          { stdio: 'pipe', timeout: 10_000 },
        );
        return 'OK';
      } catch (error) {
        const { stdout, stderr } = error as { stdout?: Buffer; stderr?: Buffer };
        return `${String(stdout ?? '')}${String(stderr ?? '')}`;
      }
    };
    // OpenSSL's constraint check does not see adatum.com in "adatum.com.", and its host check
    // does not take "adatum.com." for adatum.com: the name never gets through both.
    assert.equal(run(), 'OK');
    assert.match(run('-verify_hostname', 'adatum.com'), /hostname mismatch/);
  });

  it('answers 454 4.7.5 on loopback to a client whose SAN adatum.com. dodges the exclusion', async (t) => {
    const root = rootExcluding('adatum.com');
    const certificate = issueCertificate(root, {
      commonName: 'Adatum Mail',
      dnsNames: ['adatum.com.'],
      ...ECDSA,
    });
    const config = runtimeConfig({
      trustAnchors: [trustAnchor('constrained-root', root)],
      adatum: { trustAnchors: ['constrained-root'] },
    });
    const { port, sink, log } = await receiving(t, buildGeneration(config, 1));
    const outcome = await submit(
      port,
      { from: 'someone@adatum.com', to: ['user@treyresearch.net'] },
      { certificate, serverCa: lab().treyRoot.certPem },
      'From: someone@adatum.com\r\nSubject: constrained\r\n\r\nbody\r\n',
    );
    assert.equal(outcome.code, 454, outcome.response);
    assert.match(outcome.response, /^454 4\.7\.5 /);
    assert.equal(sink.messages.length, 0);
    assert.match(refusedReason(log), /adatum\.com\. .*excludes$/);
  });
});
