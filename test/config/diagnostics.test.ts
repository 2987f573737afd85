// How diagnostics are printed, and the small pure pieces rules stand on: address-space matching,
// certificate names, name suggestions, which files are manifests.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { describe, it } from 'node:test';
import {
  addressSpaceMatch,
  chooseSendConnector as selectConnector,
} from '../../src/address-spaces.js';
import { certificateDnsNames, coversHost, namesDomain } from '../../src/certificate-names.js';
import { formatDiagnostics } from '../../src/config/index.js';
import { isIgnoredName } from '../../src/config/manifest-files.js';
import { closestName } from '../../src/config/suggest.js';
import type { Diagnostic } from '../../src/model.js';
import { lab } from '../support/lab.js';

describe('formatDiagnostics', () => {
  const diagnostic = (
    file: string,
    line: number,
    col: number,
    code: string,
    extra: Partial<Diagnostic> = {},
  ): Diagnostic => ({
    code,
    severity: 'error',
    message: `message of ${code}`,
    file,
    line,
    col,
    ...extra,
  });

  it('prints FILE:LINE:COL  CODE  message, an indented hint, and marks warnings, sorted by file, line, col', () => {
    const text = formatDiagnostics([
      diagnostic('b.yaml', 1, 1, 'DS102', { severity: 'warning' }),
      diagnostic('a.yaml', 12, 5, 'DS001', { hint: 'use `dnsMx`' }),
      diagnostic('a.yaml', 3, 9, 'SCHEMA'),
      diagnostic('a.yaml', 12, 3, 'DS014'),
    ]);
    assert.equal(
      text,
      [
        'a.yaml:3:9  SCHEMA  message of SCHEMA',
        'a.yaml:12:3  DS014  message of DS014',
        'a.yaml:12:5  DS001  message of DS001',
        '  hint: use `dnsMx`',
        'b.yaml:1:1  DS102  warning: message of DS102',
        '',
      ].join('\n'),
    );
  });

  it('shows a few warnings of each code and counts the rest when asked, but every error', () => {
    const many = Array.from({ length: 1_205 }, (_, i) =>
      diagnostic('p.yaml', i + 1, 3, 'DS103', { severity: 'warning' }),
    );
    const errors = Array.from({ length: 5 }, (_, i) => diagnostic('e.yaml', i + 1, 1, 'DS005'));
    const other = diagnostic('q.yaml', 1, 1, 'DS101', { severity: 'warning' });
    const text = formatDiagnostics([...many, ...errors, other], { warningsPerCode: 3 });
    const lines = text.trimEnd().split('\n');
    assert.equal(lines.filter((line) => line.includes('DS005')).length, 5);
    assert.deepEqual(
      lines.filter((line) => line.includes('DS103')),
      [
        'p.yaml:1:3  DS103  warning: message of DS103',
        'p.yaml:2:3  DS103  warning: message of DS103',
        'p.yaml:3:3  DS103  warning: message of DS103',
        '... and 1,202 more DS103 warnings like these (domsec validate lists them all)',
      ],
    );
    assert.ok(lines.includes('q.yaml:1:1  DS101  warning: message of DS101'));
    assert.equal(lines.length, 5 + 4 + 1);
    // Without the option (validate), every warning is listed.
    assert.equal(formatDiagnostics(many).trimEnd().split('\n').length, 1_205);
  });

  it('prints nothing for no diagnostics, and does not reorder its argument', () => {
    assert.equal(formatDiagnostics([]), '');
    const list = [diagnostic('b.yaml', 1, 1, 'X'), diagnostic('a.yaml', 1, 1, 'Y')];
    formatDiagnostics(list);
    assert.deepEqual(
      list.map((d) => d.file),
      ['b.yaml', 'a.yaml'],
    );
  });
});

describe('address spaces', () => {
  it('matches a domain exactly, its subdomains with *.domain, everything with *', () => {
    assert.ok(
      addressSpaceMatch('treyresearch.net', 'TreyResearch.NET.') >
        addressSpaceMatch('*.net', 'treyresearch.net'),
    );
    assert.equal(addressSpaceMatch('*.treyresearch.net', 'treyresearch.net'), -1);
    assert.ok(addressSpaceMatch('*.treyresearch.net', 'a.b.treyresearch.net') > 0);
    assert.equal(addressSpaceMatch('*', 'anything.example'), 0);
    assert.equal(addressSpaceMatch('contoso.com', 'treyresearch.net'), -1);
  });

  it('selects the most specific connector, then the lowest cost', () => {
    const c = (name: string, addressSpaces: string[], cost = 1) => ({
      name,
      spec: { addressSpaces, cost },
    });
    const connectors = [
      c('all', ['*']),
      c('net', ['*.net']),
      c('sub', ['*.treyresearch.net']),
      c('exact-2', ['treyresearch.net'], 2),
      c('exact-1', ['treyresearch.net'], 1),
    ];
    assert.equal(selectConnector(connectors, 'treyresearch.net')?.name, 'exact-1');
    assert.equal(selectConnector(connectors, 'mail.treyresearch.net')?.name, 'sub');
    assert.equal(selectConnector(connectors, 'contoso.net')?.name, 'net');
    assert.equal(selectConnector(connectors, 'contoso.com')?.name, 'all');
    assert.equal(selectConnector([c('x', ['contoso.com'])], 'treyresearch.net'), undefined);
  });
});

describe('certificate names', () => {
  it('reads SAN dNSNames, or the CN without SAN', () => {
    assert.deepEqual(certificateDnsNames(new X509Certificate(lab().adatumMail.certPem)), [
      'mail.adatum.com',
      'adatum.com',
    ]);
  });

  it('covers a host exactly or by a one-label wildcard, and names a domain only exactly', () => {
    assert.ok(coversHost(['MAIL.adatum.com.'], 'mail.adatum.com'));
    assert.ok(coversHost(['*.adatum.com'], 'mail.adatum.com'));
    assert.ok(!coversHost(['*.adatum.com'], 'a.mail.adatum.com'));
    assert.ok(!coversHost(['*.adatum.com'], 'adatum.com'));
    assert.ok(!coversHost(['f*.adatum.com'], 'foo.adatum.com'));
    assert.ok(namesDomain(['adatum.com'], 'Adatum.com'));
    assert.ok(!namesDomain(['*.adatum.com', 'mail.adatum.com'], 'adatum.com'));
  });
});

describe('suggestions and file names', () => {
  it('suggests the closest name when it is a likely typo, and nothing otherwise', () => {
    assert.equal(
      closestName('adressSpaces', ['addressSpaces', 'cost', 'routing']),
      'addressSpaces',
    );
    assert.equal(
      closestName('treyresearch-rot', ['treyresearch-root', 'contoso-root']),
      'treyresearch-root',
    );
    assert.equal(
      closestName('SendConector', ['SendConnector', 'ReceiveConnector']),
      'SendConnector',
    );
    assert.equal(closestName('wildcard', ['mail-adatum']), undefined);
    assert.equal(closestName('x', []), undefined);
  });

  it('ignores hidden files and editor temporary files', () => {
    for (const name of [
      '.#a.yaml',
      'a.yaml~',
      '.a.yaml.swp',
      'a.yaml.swo',
      '#a.yaml#',
      '.hidden.yaml',
    ])
      assert.ok(isIgnoredName(name), name);
    for (const name of ['a.yaml', 'partners', 'a.yml']) assert.ok(!isIgnoredName(name), name);
  });
});
