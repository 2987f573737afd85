// The header firewall and marking (SPEC §3.6): forged fields removed, body untouched, marks added.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { prepareHeaders, prepareMessage } from '../../src/engine/headers.js';

const HOST = 'mail.treyresearch.net';
const SECURED = {
  partner: 'adatum.com',
  certificateSubject: 'CN=mail.adatum.com, O=Adatum',
  certificateFingerprint: 'AB:CD:EF',
};

function message(headerLines: string[], body = 'Hello.\r\n', newline = '\r\n'): Buffer {
  return Buffer.from(headerLines.map((line) => line + newline).join('') + newline + body, 'latin1');
}

/** The header section, its last line end included (every line ends in CRLF now). */
function headerOf(result: Buffer): string {
  const text = result.toString('latin1');
  const end = text.indexOf('\r\n\r\n');
  return end === -1 ? text : text.slice(0, end + 2);
}

function bodyOf(result: Buffer): Buffer {
  const end = result.indexOf('\r\n\r\n');
  return end === -1 ? Buffer.alloc(0) : result.subarray(end + 2);
}

describe('prepareHeaders', () => {
  it('removes every X-Domsec-* field, whatever the case and folding', () => {
    const raw = message([
      'From: a@example.com',
      'X-Domsec-AuthAs: Partner',
      'x-domsec-partner:',
      '\tadatum.com',
      'X-DOMSEC-Anything : folded',
      '  over two lines',
      'X-Domsec-AuthAs',
      ' : Partner',
      'Subject: hi',
    ]);
    const header = headerOf(prepareHeaders(raw, { hostname: HOST, tls: false }));
    assert.equal(header, 'From: a@example.com\r\nSubject: hi\r\n');
  });

  it('removes Authentication-Results carrying our hostname, folded, commented, quoted or not', () => {
    const raw = message([
      'Authentication-Results: mail.treyresearch.net; x-domsec=pass',
      'Authentication-Results:',
      ' MAIL.TreyResearch.net.; x-domsec=pass (mutual TLS)',
      '  smtp.mailfrom=adatum.com',
      'Authentication-Results: (forged) mail.treyresearch.net 1; none',
      'Authentication-Results: "mail.treyresearch.net"; none',
      'authentication-results:mail.treyresearch.net;x-domsec=pass',
      'Authentication-Results: mx.adatum.com; spf=pass smtp.mailfrom=adatum.com',
      'Authentication-Results: mail.treyresearch.net.evil.example; none',
      'Subject: kept',
    ]);
    const header = headerOf(prepareHeaders(raw, { hostname: HOST, tls: false }));
    assert.equal(
      header,
      'Authentication-Results: mx.adatum.com; spf=pass smtp.mailfrom=adatum.com\r\n' +
        'Authentication-Results: mail.treyresearch.net.evil.example; none\r\n' +
        'Subject: kept\r\n',
    );
  });

  it('leaves the body byte for byte, even lines that look like forged headers', () => {
    const body = Buffer.concat([
      Buffer.from(
        'X-Domsec-AuthAs: Partner\r\n\r\nAuthentication-Results: mail.treyresearch.net; x\r\n',
      ),
      Buffer.from([0xe9, 0x00, 0xff, 0x0d, 0x0a]),
    ]);
    const raw = Buffer.concat([Buffer.from('Subject: caf\xe9\r\n\r\n', 'latin1'), body]);
    const result = prepareHeaders(raw, { hostname: HOST, tls: true, domainSecured: SECURED });
    assert.deepEqual(bodyOf(result), Buffer.concat([Buffer.from('\r\n'), body]));
    assert.ok(headerOf(result).endsWith('Subject: caf\xe9\r\n'), 'an 8-bit header survives');
  });

  it('marks a domain-secured message: AuthAs, Partner and Authentication-Results with the certificate', () => {
    const raw = message(['From: someone@adatum.com', 'X-Domsec-AuthAs: Partner']);
    const header = headerOf(
      prepareHeaders(raw, { hostname: HOST, tls: true, domainSecured: SECURED }),
    );
    assert.equal(
      header,
      'X-Domsec-AuthAs: Partner\r\n' +
        'X-Domsec-Partner: adatum.com\r\n' +
        'Authentication-Results: mail.treyresearch.net;\r\n' +
        '\tx-domsec=pass (mutual TLS) smtp.mailfrom=adatum.com\r\n' +
        '\theader.from=adatum.com\r\n' +
        '\tx-domsec.subject="CN=mail.adatum.com, O=Adatum"\r\n' +
        '\tx-domsec.fingerprint="AB:CD:EF"\r\n' +
        'From: someone@adatum.com\r\n',
    );
  });

  it('marks other mail over TLS x-domsec=none, and plaintext mail not at all', () => {
    const raw = message(['Subject: x']);
    assert.equal(
      headerOf(prepareHeaders(raw, { hostname: HOST, tls: true })),
      'Authentication-Results: mail.treyresearch.net; x-domsec=none\r\nSubject: x\r\n',
    );
    assert.equal(headerOf(prepareHeaders(raw, { hostname: HOST, tls: false })), 'Subject: x\r\n');
  });

  it('escapes a certificate subject that would break out of its quoted string', () => {
    const raw = message(['Subject: x']);
    const secured = {
      ...SECURED,
      certificateSubject: 'CN=a"b\\c\r\nX-Domsec-AuthAs: Partner, O=é',
    };
    const header = headerOf(
      prepareHeaders(raw, { hostname: HOST, tls: true, domainSecured: secured }),
    );
    assert.match(header, /x-domsec\.subject="CN=a\\"b\\\\c\?\?X-Domsec-AuthAs: Partner, O=\?"\r\n/);
    assert.equal(header.match(/^X-Domsec-AuthAs:/gm)?.length, 1);
  });

  it('prepends a Received field with the TLS details when asked', () => {
    const raw = message(['Subject: x']);
    const header = headerOf(
      prepareHeaders(raw, {
        hostname: HOST,
        tls: true,
        received: {
          heloName: 'mail.adatum.com',
          remoteAddress: '192.0.2.7',
          protocol: 'ESMTPS',
          id: 'abc123',
          tls: { version: 'TLSv1.3', cipher: 'TLS_AES_256_GCM_SHA384' },
          date: new Date('2026-11-25T07:00:00Z'),
        },
      }),
    );
    assert.equal(
      header,
      'Authentication-Results: mail.treyresearch.net; x-domsec=none\r\n' +
        'Received: from mail.adatum.com ([192.0.2.7])\r\n' +
        '\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384)\r\n' +
        '\tby mail.treyresearch.net with ESMTPS id abc123;\r\n' +
        '\tWed, 25 Nov 2026 07:00:00 +0000\r\n' +
        'Subject: x\r\n',
    );
  });

  it('turns bare-LF line ends into CRLF, in the header section and the body', () => {
    const raw = message(['X-Domsec-Partner: forged', 'Subject: x'], 'body\nmore\n', '\n');
    const result = prepareHeaders(raw, { hostname: HOST, tls: true });
    assert.equal(
      result.toString('latin1'),
      'Authentication-Results: mail.treyresearch.net; x-domsec=none\r\nSubject: x\r\n\r\nbody\r\nmore\r\n',
    );
  });

  it('handles a message without body and one without header', () => {
    const headersOnly = Buffer.from('X-Domsec-AuthAs: Partner\r\nSubject: x\r\n');
    assert.equal(
      prepareHeaders(headersOnly, { hostname: HOST, tls: false }).toString(),
      'Subject: x\r\n',
    );
    const bodyOnly = Buffer.from('\r\njust a body\r\n');
    assert.equal(
      prepareHeaders(bodyOnly, { hostname: HOST, tls: true }).toString(),
      'Authentication-Results: mail.treyresearch.net; x-domsec=none\r\n\r\njust a body\r\n',
    );
  });

  it('refuses a header section with a line that is not a field, rather than guess where it ends', () => {
    const raw = message(['Subject: x', 'not a field', 'X-Domsec-AuthAs: Partner']);
    assert.deepEqual(prepareMessage(raw, { hostname: HOST, tls: false }), {
      malformed: 'line 2 of the header section is not a header field',
    });
    assert.throws(
      () => prepareHeaders(raw, { hostname: HOST, tls: false }),
      /^SmtpReplyError: 5\.6\.0 Message header is malformed: line 2/,
    );
  });
});
