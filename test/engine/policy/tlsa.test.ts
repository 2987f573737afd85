// The TLSA matcher (RFC 7672 §3.1): DANE-EE by the leaf's certificate or key in any matching type,
// no name or expiry check; DANE-TA by a chain certificate the leaf must chain to and that names
// the host; PKIX usages and malformed records unusable; random records never match.
import assert from 'node:assert/strict';
import { createHash, X509Certificate } from 'node:crypto';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  matchChain,
  recordMatches,
  unusableReason,
  usableRecords,
  type TlsaRecord,
} from '../../../src/engine/policy/tlsa.js';
import { createCertificateAuthority, issueCertificate } from '../../../src/pki/lab.js';
import { lab } from '../../support/lab.js';

const x509 = (pem: string) => new X509Certificate(pem);
const spki = (cert: X509Certificate) => cert.publicKey.export({ type: 'spki', format: 'der' });
const digest = (algorithm: 'sha256' | 'sha512', bytes: Buffer) =>
  createHash(algorithm).update(bytes).digest();

/** The association data of a certificate for a selector and matching type. */
function data(cert: X509Certificate, selector: number, matchingType: number): Buffer {
  const bytes = selector === 0 ? cert.raw : spki(cert);
  return matchingType === 0 ? bytes : digest(matchingType === 1 ? 'sha256' : 'sha512', bytes);
}

const record = (
  usage: number,
  selector: number,
  matchingType: number,
  cert: X509Certificate,
): TlsaRecord => ({
  usage,
  selector,
  matchingType,
  data: data(cert, selector, matchingType),
});

describe('TLSA matching', () => {
  const leaf = x509(lab().adatumMail.certPem);
  const root = x509(lab().adatumRoot.certPem);
  const other = x509(lab().treyMail.certPem);

  it('matches DANE-EE by the certificate or its key, full, SHA-256 or SHA-512', () => {
    for (const selector of [0, 1])
      for (const matchingType of [0, 1, 2]) {
        const r = record(3, selector, matchingType, leaf);
        assert.equal(recordMatches(r, leaf), true, `3 ${selector} ${matchingType}`);
        assert.equal(recordMatches(r, other), false, `3 ${selector} ${matchingType} other`);
        assert.equal(
          matchChain({ records: [r], chain: [leaf], names: ['mx.elsewhere.example'] }).ok,
          true,
        );
      }
  });

  it('does not check the name or the expiry under DANE-EE', () => {
    const expired = x509(lab().adatumExpired.certPem);
    const verdict = matchChain({
      records: [record(3, 1, 1, expired)],
      chain: [expired],
      names: ['mx.fabrikam.example'],
    });
    assert.equal(verdict.ok, true);
  });

  it('refuses a chain no record matches, naming the records', () => {
    const verdict = matchChain({
      records: [record(3, 1, 1, other)],
      chain: [leaf, root],
      names: ['mail.adatum.com'],
    });
    assert.equal(verdict.ok, false);
    assert.match(
      verdict.ok ? '' : verdict.reason,
      /no TLSA record matched the server certificate \(records: 3 1 1 [0-9a-f]{16}\.\.\.\)/,
    );
  });

  it('matches DANE-TA by a chain certificate when the leaf chains to it and names the host', () => {
    const ta = record(2, 1, 1, root);
    assert.equal(
      matchChain({ records: [ta], chain: [leaf, root], names: ['mail.adatum.com', 'adatum.com'] })
        .ok,
      true,
    );
  });

  it('refuses DANE-TA when the leaf does not name the MX host or the domain', () => {
    const ta = record(2, 0, 1, root);
    const verdict = matchChain({
      records: [ta],
      chain: [leaf, root],
      names: ['mx.fabrikam.example', 'fabrikam.example'],
    });
    assert.equal(verdict.ok, false);
    assert.match(
      verdict.ok ? '' : verdict.reason,
      /DANE-TA .* matched, but the certificate names mail\.adatum\.com, adatum\.com, not mx\.fabrikam\.example or fabrikam\.example/,
    );
  });

  it('refuses DANE-TA when the matched certificate did not sign the leaf', () => {
    const strangerRoot = x509(lab().strangerRoot.certPem);
    const verdict = matchChain({
      records: [record(2, 1, 1, strangerRoot)],
      chain: [leaf, strangerRoot],
      names: ['mail.adatum.com'],
    });
    assert.equal(verdict.ok, false);
    assert.match(verdict.ok ? '' : verdict.reason, /is not signed by the next certificate/);
  });

  it('refuses DANE-TA matching only the leaf itself, and an expired leaf under DANE-TA', () => {
    assert.equal(
      matchChain({
        records: [record(2, 1, 1, leaf)],
        chain: [leaf, root],
        names: ['mail.adatum.com'],
      }).ok,
      false,
    );
    const expired = x509(lab().adatumExpired.certPem);
    const verdict = matchChain({
      records: [record(2, 1, 1, root)],
      chain: [expired, root],
      names: ['mail.adatum.com'],
    });
    assert.equal(verdict.ok, false);
    assert.match(verdict.ok ? '' : verdict.reason, /outside its validity/);
  });

  it('follows an intermediate up to a DANE-TA root', () => {
    const topRoot = createCertificateAuthority({ commonName: 'Fabrikam Root' });
    const intermediate = issueCertificate(topRoot, {
      commonName: 'Fabrikam Issuing',
      isCa: true,
      extendedKeyUsage: null,
    });
    const host = issueCertificate(
      { ...intermediate, commonName: 'Fabrikam Issuing' },
      { commonName: 'mx.fabrikam.example', dnsNames: ['mx.fabrikam.example'] },
    );
    const chain = [x509(host.certPem), x509(intermediate.certPem), x509(topRoot.certPem)];
    const verdict = matchChain({
      records: [record(2, 0, 2, chain[2] as X509Certificate)],
      chain,
      names: ['mx.fabrikam.example'],
    });
    assert.equal(verdict.ok, true, verdict.ok ? '' : verdict.reason);
  });

  it('finds PKIX usages, unknown fields and wrong digest lengths unusable', () => {
    const cases: [TlsaRecord, RegExp][] = [
      [record(0, 1, 1, root), /PKIX/],
      [record(1, 1, 1, leaf), /PKIX/],
      [{ ...record(3, 1, 1, leaf), usage: 4 }, /unknown usage/],
      [{ ...record(3, 1, 1, leaf), selector: 2 }, /unknown selector/],
      [{ ...record(3, 1, 1, leaf), matchingType: 3 }, /unknown matching type/],
      [{ ...record(3, 1, 1, leaf), data: Buffer.alloc(31) }, /needs 32 bytes/],
      [{ ...record(3, 1, 2, leaf), data: Buffer.alloc(32) }, /needs 64 bytes/],
      [{ usage: 3, selector: 1, matchingType: 0, data: Buffer.alloc(0) }, /empty/],
    ];
    for (const [r, reason] of cases) assert.match(unusableReason(r) ?? 'usable', reason);
    assert.deepEqual(usableRecords(cases.map(([r]) => r)), []);
  });

  it('never matches a random record, usable or not (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 255 }),
        fc.integer({ min: 0, max: 255 }),
        fc.integer({ min: 0, max: 255 }),
        fc.uint8Array({ minLength: 0, maxLength: 80 }),
        (usage, selector, matchingType, bytes) => {
          const r = { usage, selector, matchingType, data: Buffer.from(bytes) };
          const records = usableRecords([r]);
          assert.equal(
            matchChain({ records, chain: [leaf, root], names: ['mail.adatum.com'] }).ok,
            false,
          );
        },
      ),
      { numRuns: 300 },
    );
  });

  it('matches a record whose data differs in one bit never (property)', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(0, 1),
        fc.constantFrom(0, 1, 2),
        fc.nat(),
        fc.integer({ min: 0, max: 7 }),
        (selector, matchingType, position, bit) => {
          const r = record(3, selector, matchingType, leaf);
          const flipped = Buffer.from(r.data);
          const at = position % flipped.length;
          flipped[at] = (flipped[at] ?? 0) ^ (1 << bit);
          assert.equal(
            matchChain({ records: [{ ...r, data: flipped }], chain: [leaf], names: [] }).ok,
            false,
          );
        },
      ),
      { numRuns: 200 },
    );
  });
});
