// Certificate names (SPEC §5): which DNS names a certificate carries and whether they name a partner.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { describe, it } from 'node:test';
import {
  canonicalName,
  certificateDnsNames,
  namesPartner,
  type PartnerNaming,
} from '../../src/certificate-names.js';
import { issueCertificate } from '../../src/pki/lab.js';
import { lab } from '../support/lab.js';

const partner = (domain: string, more: Partial<PartnerNaming> = {}): PartnerNaming => ({
  domain,
  certificateNames: [],
  certificateNameMatch: 'domain',
  ...more,
});

describe('certificateDnsNames', () => {
  it('reads the SAN dNSName entries', () => {
    const cert = new X509Certificate(lab().adatumMail.certPem);
    assert.deepEqual(certificateDnsNames(cert), ['mail.adatum.com', 'adatum.com']);
  });

  it('ignores the subject CN when there is a SAN', () => {
    const issued = issueCertificate(lab().adatumRoot, {
      commonName: 'adatum.com',
      dnsNames: ['mail.contoso.com'],
    });
    assert.deepEqual(certificateDnsNames(new X509Certificate(issued.certPem)), [
      'mail.contoso.com',
    ]);
  });

  it('falls back to the subject CN when there is no SAN', () => {
    const issued = issueCertificate(lab().adatumRoot, { commonName: 'adatum.com' });
    assert.deepEqual(certificateDnsNames(new X509Certificate(issued.certPem)), ['adatum.com']);
  });

  it('does not let a SAN value with ", DNS:" smuggle in a second name', () => {
    const issued = issueCertificate(lab().adatumRoot, {
      commonName: 'x.example',
      dnsNames: ['evil.example, DNS:adatum.com'],
    });
    const names = certificateDnsNames(new X509Certificate(issued.certPem));
    assert.equal(names.length, 1);
    assert.equal(namesPartner(names, partner('adatum.com')), false);
  });
});

describe('canonicalName', () => {
  it('lower-cases, drops one trailing dot and turns U-labels into A-labels', () => {
    assert.equal(canonicalName('Mail.Adatum.COM.'), 'mail.adatum.com');
    assert.equal(canonicalName('bücher.example'), 'xn--bcher-kva.example');
    assert.equal(canonicalName('*.Bücher.example'), '*.xn--bcher-kva.example');
  });
});

describe('namesPartner', () => {
  it('matches the domain itself exactly', () => {
    assert.equal(namesPartner(['adatum.com'], partner('adatum.com')), true);
    assert.equal(namesPartner(['adatum.co'], partner('adatum.com')), false);
    assert.equal(namesPartner(['xadatum.com'], partner('adatum.com')), false);
    assert.equal(namesPartner([], partner('adatum.com')), false);
  });

  it('ignores case and one trailing dot on either side', () => {
    assert.equal(namesPartner(['ADATUM.com.'], partner('Adatum.COM')), true);
    assert.equal(namesPartner(['adatum.com'], partner('adatum.com.')), true);
    assert.equal(namesPartner(['adatum.com..'], partner('adatum.com')), false);
  });

  it('compares IDNs as A-labels, whichever form each side uses', () => {
    assert.equal(namesPartner(['xn--bcher-kva.example'], partner('bücher.example')), true);
    assert.equal(namesPartner(['Bücher.example'], partner('xn--bcher-kva.example')), true);
    assert.equal(namesPartner(['bucher.example'], partner('bücher.example')), false);
  });

  it('does not accept a host below the domain by default', () => {
    assert.equal(namesPartner(['mail.adatum.com'], partner('adatum.com')), false);
    assert.equal(namesPartner(['*.adatum.com'], partner('adatum.com')), false);
  });

  it('accepts names listed in certificateNames, exactly', () => {
    const listed = partner('adatum.com', { certificateNames: ['mail.adatum.com'] });
    assert.equal(namesPartner(['MAIL.adatum.com.'], listed), true);
    assert.equal(namesPartner(['smtp.adatum.com'], listed), false);
  });

  it('lets a listed wildcard match exactly one whole left-most label', () => {
    const listed = partner('adatum.com', { certificateNames: ['*.adatum.com'] });
    assert.equal(namesPartner(['mail.adatum.com'], listed), true);
    assert.equal(namesPartner(['*.adatum.com'], listed), true);
    assert.equal(namesPartner(['a.b.adatum.com'], listed), false);
    assert.equal(namesPartner(['adatum.com.evil.example'], listed), false);
    assert.equal(namesPartner(['xadatum.com'], listed), false);
  });

  it('never treats f*.domain as a wildcard, listed or presented', () => {
    const listed = partner('adatum.com', { certificateNames: ['f*.adatum.com'] });
    assert.equal(namesPartner(['foo.adatum.com'], listed), false);
    const wildcardListed = partner('adatum.com', { certificateNames: ['*.adatum.com'] });
    assert.equal(namesPartner(['f*.adatum.com'], wildcardListed), false);
    const subdomain = partner('adatum.com', { certificateNameMatch: 'subdomain' });
    assert.equal(namesPartner(['f*.adatum.com'], subdomain), false);
  });

  it('does not let a presented wildcard match the bare domain or a deeper host', () => {
    assert.equal(namesPartner(['*.com'], partner('adatum.com')), false);
    const listed = partner('adatum.com', { certificateNames: ['mail.adatum.com'] });
    assert.equal(namesPartner(['*.adatum.com'], listed), false);
  });

  it('with subdomain matching also accepts one label below and *.domain, not deeper', () => {
    const subdomain = partner('adatum.com', { certificateNameMatch: 'subdomain' });
    assert.equal(namesPartner(['mail.adatum.com'], subdomain), true);
    assert.equal(namesPartner(['*.adatum.com'], subdomain), true);
    assert.equal(namesPartner(['adatum.com'], subdomain), true);
    assert.equal(namesPartner(['a.mail.adatum.com'], subdomain), false);
    assert.equal(namesPartner(['*.mail.adatum.com'], subdomain), false);
    assert.equal(namesPartner(['mailadatum.com'], subdomain), false);
  });

  it('with subdomain matching compares IDN hosts as A-labels', () => {
    const subdomain = partner('bücher.example', { certificateNameMatch: 'subdomain' });
    assert.equal(namesPartner(['mail.xn--bcher-kva.example'], subdomain), true);
    assert.equal(namesPartner(['Mail.Bücher.example.'], subdomain), true);
  });

  it('accepts when any one of several names matches', () => {
    assert.equal(namesPartner(['mail.contoso.com', 'adatum.com'], partner('adatum.com')), true);
  });

  it('skips names that are not domain names', () => {
    assert.equal(namesPartner(['', 'ad atum.com', '*.'], partner('adatum.com')), false);
    assert.equal(namesPartner(['adatum.com'], partner('')), false);
  });
});
