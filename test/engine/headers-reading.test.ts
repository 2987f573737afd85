// One reading of a received message: line ends normalised, header sections readers after us
// would split otherwise refused, and the fields the firewall keeps are the fields mailsplit reads.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { headerFromDomain } from '../../src/engine/header-from.js';
import { firewall, prepareMessage, type HeaderMarking } from '../../src/engine/headers.js';
import { readMessage, type HeaderField } from '../../src/engine/message-reading.js';
import { mailsplitFields } from '../support/mailsplit.js';

const HOST = 'mail.treyresearch.net';
const SECURED = {
  partner: 'adatum.com',
  certificateSubject: 'CN=mail.adatum.com',
  certificateFingerprint: 'AB:CD',
};

const latin1 = (text: string): Buffer => Buffer.from(text, 'latin1');
/** UTF-8 bytes as the latin1 text the header section is read as. */
const utf8 = (text: string): string => Buffer.from(text, 'utf8').toString('latin1');

function prepared(raw: string, marking: HeaderMarking = { hostname: HOST, tls: false }): string {
  const result = prepareMessage(latin1(raw), marking);
  assert.ok(Buffer.isBuffer(result), `refused: ${JSON.stringify(result)}`);
  return result.toString('latin1');
}

function refusal(raw: string): string {
  const result = prepareMessage(latin1(raw), { hostname: HOST, tls: false });
  assert.ok(!Buffer.isBuffer(result), `accepted: ${JSON.stringify(result?.toString('latin1'))}`);
  return result.malformed;
}

function fieldsOf(raw: string): HeaderField[] {
  const reading = readMessage(latin1(raw));
  assert.ok(!('malformed' in reading), JSON.stringify(reading));
  return reading.fields;
}

describe('one reading of a received message', () => {
  it('splits at the bare CR a stranger hides forged fields behind, and removes them', async () => {
    const raw =
      'From: a@fabrikam.com\r\n' +
      'Subject: invoice\rX-Domsec-AuthAs: Partner\rAuthentication-Results: mail.treyresearch.net; x-domsec=pass\r\n' +
      '\r\nbody\r\n';
    const result = prepared(raw, { hostname: HOST, tls: true });
    assert.equal(
      result,
      'Authentication-Results: mail.treyresearch.net; x-domsec=none\r\n' +
        'From: a@fabrikam.com\r\nSubject: invoice\r\n\r\nbody\r\n',
    );
    assert.deepEqual(await mailsplitFields(latin1(result)), [
      {
        key: 'authentication-results',
        line: 'Authentication-Results: mail.treyresearch.net; x-domsec=none',
      },
      { key: 'from', line: 'From: a@fabrikam.com' },
      { key: 'subject', line: 'Subject: invoice' },
    ]);
  });

  it('turns bare CR and bare LF in the body into CRLF, as nodemailer would on relay', () => {
    assert.equal(
      prepared('Subject: x\r\n\r\na\rb\nc\r\r\nd\n\re'),
      'Subject: x\r\n\r\na\r\nb\r\nc\r\n\r\nd\r\n\r\ne\r\n',
    );
  });

  it('leaves an all-CRLF message uncopied up to the marking', () => {
    const raw = latin1(`Subject: x\r\n\r\n${'line of body text\r\n'.repeat(200)}`);
    const reading = readMessage(raw);
    assert.ok(!('malformed' in reading));
    assert.equal(reading.rest.buffer, raw.buffer, 'the body is a view of the received bytes');
  });

  it('keeps a header section with no empty line at all, its fields judged', () => {
    assert.equal(prepared('Subject: x\nX-Domsec-AuthAs: Partner'), 'Subject: x\r\n');
  });

  describe('refuses, with what is wrong,', () => {
    const cases: [string, string, RegExp][] = [
      ['a NUL byte in the header section', 'Subject: a\0b\r\n\r\n', /NUL byte/],
      ['an empty line made by CR CR LF', 'Subject: x\r\r\nX-Domsec-AuthAs: P\r\n\r\n', /bare CR/],
      ['an empty line made by LF CR', 'Subject: x\n\rX-Domsec-AuthAs: P\r\n\r\n', /bare CR/],
      ['a bare CR as the first line', '\rX-Domsec-AuthAs: P\r\n\r\n', /bare CR/],
      ['a continuation at the very top', ' X-Domsec-AuthAs: P\r\nSubject: x\r\n\r\n', /top/],
      [
        'a line of white space only',
        'Subject: x\r\n \t\r\nX-Domsec-AuthAs: P\r\n\r\n',
        /white space/,
      ],
      [
        'an mbox From line',
        'From a@fabrikam.com Mon Jan  5 00:00:00 2026\r\nSubject: x\r\n\r\n',
        /mbox/,
      ],
      ['a line without a colon', 'Subject: x\r\nnot a field\r\n\r\n', /not a header field/],
      ['a control character in a name', 'X-Domsec-AuthAs\x01: P\r\n\r\n', /ftext/],
      ['a vertical tab before a name', '\x0bX-Domsec-AuthAs: P\r\n\r\n', /ftext/],
      ['a space inside a name', 'X Domsec-AuthAs: P\r\n\r\n', /ftext/],
      ['an 8-bit byte in a name', 'X-Domsec-Auth\xe9As: P\r\n\r\n', /ftext/],
      [
        'white space before the colon of an ordinary field',
        'Subject : hi\r\n\r\n',
        /before the colon/,
      ],
    ];
    for (const [what, raw, detail] of cases) {
      it(what, () => assert.match(refusal(raw), detail));
    }
  });

  it('removes fields only domsec may set even with white space before the colon (obs-syntax)', () => {
    assert.equal(
      prepared(
        'X-Domsec-AuthAs : Partner\r\nX-Domsec-Partner\r\n\t: x\r\nauthentication-results\t: x; y\r\nSubject: kept\r\n\r\n',
      ),
      'Subject: kept\r\n\r\n',
    );
  });

  it('removes ARC-Authentication-Results with our authserv-id after the instance tag, in any spelling', () => {
    const forged = [
      'ARC-Authentication-Results: i=1; mail.treyresearch.net; x-domsec=pass',
      'arc-authentication-results: i = 2 ;MAIL.TreyResearch.NET.; x-domsec=pass',
      'ARC-Authentication-Results: i=1; (c) "mail.treyresearch.net" (c); x',
      'ARC-Authentication-Results: i=1;\r\n mail.treyresearch.net;\r\n x-domsec=pass',
      `ARC-Authentication-Results: i=3; ${utf8('ｍａｉｌ.treyresearch.net')}; x`,
      'Authentication-Results: i=1; mail.treyresearch.net; x-domsec=pass',
      'Authentication-Results: (unclosed mail.treyresearch.net; x-domsec=pass',
    ];
    const kept = [
      'ARC-Authentication-Results: i=1; mx.adatum.com; spf=pass',
      'ARC-Authentication-Results: i=1; mail.treyresearch.net.evil.example; none',
    ];
    const raw = [...forged, ...kept, 'Subject: x', '', ''].join('\r\n');
    assert.equal(prepared(raw), [...kept, 'Subject: x', '', ''].join('\r\n'));
  });

  it('records header.from for domain-secured mail whose one From: has one mailbox', () => {
    const result = prepared('From: "Some, One" <someone@Adatum.COM.>\r\n\r\n', {
      hostname: HOST,
      tls: true,
      domainSecured: SECURED,
    });
    assert.match(
      result,
      /smtp\.mailfrom=adatum\.com\r\n\theader\.from=adatum\.com\r\n\tx-domsec\.subject=/,
    );
    const other = prepared('From: a@fabrikam.com, b@adatum.com\r\n\r\n', {
      hostname: HOST,
      tls: true,
      domainSecured: SECURED,
    });
    assert.doesNotMatch(other, /header\.from/);
  });

  it('headerFromDomain: the one mailbox’s domain in canonical form, or undefined', () => {
    const domain = (header: string) => headerFromDomain(fieldsOf(`${header}\r\n\r\n`));
    assert.equal(domain('From: someone@adatum.com'), 'adatum.com');
    assert.equal(domain('FROM: Someone (the boss) <someone@ADATUM.com.>'), 'adatum.com');
    assert.equal(domain('From: "a@b.example" <x@adatum.com>'), 'adatum.com');
    assert.equal(domain('From:\r\n Someone\r\n <someone@adatum.com>'), 'adatum.com');
    assert.equal(domain(`From: x@${utf8('münchen.de')}`), 'xn--mnchen-3ya.de');
    assert.equal(domain(`From: x@${utf8('ａｄａｔｕｍ.com')}`), 'adatum.com');
    assert.equal(domain('Subject: no From'), undefined);
    assert.equal(domain('From: a@adatum.com\r\nFrom: b@adatum.com'), undefined);
    assert.equal(domain('From: a@adatum.com, b@adatum.com'), undefined);
    assert.equal(domain('From: group: a@adatum.com;'), undefined);
    assert.equal(domain('From: a@[192.0.2.1]'), undefined);
    assert.equal(domain('From: no-domain'), undefined);
    assert.equal(domain('From: a@bad..example'), undefined);
    assert.equal(domain('From: <a@adatum.com> <b@fabrikam.com>'), undefined);
    assert.equal(domain('From: a@adatum.com (unclosed'), undefined);
  });
});

// ---------------------------------------------------------------------------------------------
// Generated header sections: every line-ending mix, folding, hostile names, forged fields.

const LINE_ENDS = ['\r\n', '\n', '\r', '\r\r\n', '\n\r'] as const;
const OUR_ID = [
  'mail.treyresearch.net',
  'MAIL.TreyResearch.NET',
  'mail.treyresearch.net.',
  '"mail.treyresearch.net"',
  '(forged) mail.treyresearch.net',
  'mail.treyresearch.net(c)',
  '"MAIL.treyresearch.net."',
  '" mail.treyresearch.net "',
  utf8('ｍａｉｌ.treyresearch.net'),
];
const FORGED = [
  'X-Domsec-AuthAs: Partner',
  'x-domsec-partner: adatum.com',
  'X-DOMSEC-AuthAs:Partner',
  ...OUR_ID.flatMap((id) => [
    `Authentication-Results: ${id}; x-domsec=pass smtp.mailfrom=adatum.com`,
    `ARC-Authentication-Results: i=1; ${id}; x-domsec=pass`,
    `arc-authentication-results: i = 2 ;${id};x-domsec=pass`,
  ]),
];
const ORDINARY = [
  'Subject: quarterly numbers',
  'Subject: caf\xe9 cr\xe8me',
  'From: Someone <someone@adatum.com>',
  'To: user@treyresearch.net',
  'Authentication-Results: mx.adatum.com; spf=pass smtp.mailfrom=adatum.com',
  'ARC-Authentication-Results: i=1; mx.adatum.com; dkim=pass',
  'X-Other: a\x01b\x7fc',
];
const HOSTILE = [
  'not a field',
  ' continued',
  '\tcontinued: X-Domsec-AuthAs: Partner',
  '   ',
  'From someone@adatum.com Mon Jan  5 00:00:00 2026',
  'X Domsec-AuthAs: Partner',
  'X-Domsec-AuthAs\x01: Partner',
  '\x0bX-Domsec-AuthAs: Partner',
  'X-Domsec-Auth\xe9As: Partner',
  'X-Domsec-AuthAs : Partner',
  'Subject\t: hi',
  'Subject: a\x00b',
];

/** A field's line, sometimes folded at a space with one of the line ends. */
const folded = (line: string) =>
  fc.array(fc.constantFrom(...LINE_ENDS), { maxLength: 3 }).map((ends) => {
    let text = line;
    for (const end of ends) {
      const space = text.lastIndexOf(' ');
      if (space <= 0) break;
      text = `${text.slice(0, space)}${end}${text.slice(space)}`;
    }
    return text;
  });

const headerLine = fc.oneof(
  fc.constantFrom(...FORGED).chain(folded),
  fc.constantFrom(...ORDINARY).chain(folded),
  fc.constantFrom(...HOSTILE),
);

const generatedMessage = fc
  .record({
    lines: fc.array(fc.tuple(headerLine, fc.constantFrom(...LINE_ENDS)), { maxLength: 8 }),
    empty: fc.option(fc.constantFrom(...LINE_ENDS), { nil: undefined }),
    body: fc.array(
      fc.tuple(fc.constantFrom('text', ...FORGED, '.', ''), fc.constantFrom(...LINE_ENDS)),
      { maxLength: 4 },
    ),
  })
  .map(({ lines, empty, body }) => {
    const header = lines.map(([line, end]) => line + end).join('');
    if (empty === undefined) return header;
    return header + empty + body.map(([line, end]) => line + end).join('');
  });

const MARKINGS: [HeaderMarking, number][] = [
  [{ hostname: HOST, tls: false }, 0],
  [{ hostname: HOST, tls: true }, 1],
  [{ hostname: 'MAIL.TreyResearch.net.', tls: true, domainSecured: SECURED }, 3],
];

describe('generated header sections (fast-check, differential against mailsplit)', () => {
  it('are refused, or keep exactly the fields mailsplit reads, none of them forged, all in CRLF', async () => {
    let accepted = 0;
    await fc.assert(
      fc.asyncProperty(
        generatedMessage,
        fc.constantFrom(...MARKINGS),
        async (raw, [marking, added]) => {
          const result = prepareMessage(latin1(raw), marking);
          if (!Buffer.isBuffer(result)) return;
          accepted += 1;
          const text = result.toString('latin1');
          assert.doesNotMatch(text, /\r(?!\n)|(?<!\r)\n/, 'one line end: CRLF');
          const reading = readMessage(latin1(raw));
          assert.ok(!('malformed' in reading));
          const kept = firewall(reading.fields, marking.hostname);
          assert.ok(Array.isArray(kept));
          const read = await mailsplitFields(result);
          assert.deepEqual(
            read.slice(added),
            kept.map((field) => ({ key: field.name.toLowerCase(), line: field.text.slice(0, -2) })),
          );
          for (const { key, line } of read.slice(added)) {
            assert.ok(!key.startsWith('x-domsec'), `forged ${line}`);
            if (/^(arc-)?authentication-results$/.test(key)) {
              assert.doesNotMatch(line, /x-domsec=/, `forged ${line}`);
            }
          }
          // The body is the received one with its line ends made CRLF, nothing else changed.
          const normal = raw.replace(/\r\n|\r|\n/g, '\r\n');
          const end = normal.startsWith('\r\n') ? 0 : normal.indexOf('\r\n\r\n') + 2;
          if (end !== 1) assert.ok(text.endsWith(normal.slice(end)), 'the body as received');
        },
      ),
      { numRuns: 300 },
    );
    assert.ok(accepted > 20, `only ${accepted} of 300 generated messages were accepted`);
  });
});
