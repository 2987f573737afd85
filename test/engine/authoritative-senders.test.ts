// Our own domains cannot be claimed from outside: MAIL FROM one of our accepted domains, in any
// spelling, is refused on a connector whose clients may not relay (Exchange's default for
// ms-Exch-SMTP-Accept-Authoritative-Domain-Sender), with a stranger's TLS or a partner's valid
// certificate alike; internal (relay-permitted) connectors and an explicit switch allow it. A
// partner with requireHeaderFromDomain is credited only with mail whose author is its own.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { buildGeneration } from '../../src/engine/generation.js';
import { lab } from '../support/lab.js';
import { receiving } from '../support/receiving.js';
import { internalConnector, receiveConnector, runtimeConfig } from '../support/runtime-config.js';
import { submit, type SubmitClient } from '../support/smtp-submit.js';

const BODY = 'From: someone@treyresearch.net\r\nSubject: claims\r\n\r\nhello\r\n';
const stranger = (): SubmitClient => ({ serverCa: lab().treyRoot.certPem });
const partner = (): SubmitClient => ({
  serverCa: lab().treyRoot.certPem,
  certificate: lab().adatumMail,
});

/** Spellings of our accepted domain that smtp-server passes on: case, full width, U+3002. */
const OURS = fc
  .tuple(
    fc.constantFrom('treyresearch', 'TreyResearch', 'ＴＲＥＹＲＥＳＥＡＲＣＨ', 'ｔｒｅｙresearch'),
    fc.constantFrom('.', '。', '．'),
    fc.constantFrom('net', 'NET', 'ｎｅｔ'),
  )
  .map(([name, dot, tld]) => `${name}${dot}${tld}`);

describe('senders claiming our accepted domains', () => {
  it('refuses MAIL FROM our domain from a stranger and from a verified partner with 550 5.7.1, in every spelling', async (t) => {
    const generation = buildGeneration(
      runtimeConfig({ receiveConnector: { domainSecure: true } }),
      1,
    );
    const { port, messages } = await receiving(t, generation);
    const spellings = ['treyresearch.net', ...fc.sample(OURS, { numRuns: 6, seed: 3 })];
    for (const domain of spellings) {
      for (const client of [stranger(), partner()]) {
        const outcome = await submit(
          port,
          { from: `ceo@${domain}`, to: ['user@treyresearch.net'] },
          client,
          BODY,
        );
        assert.equal(outcome.code, 550, `${domain}: ${outcome.response}`);
        assert.match(
          outcome.response,
          /5\.7\.1 Client does not have permissions to send as this sender/,
        );
      }
    }
    assert.equal(messages.length, 0);
    // The partner's own domain and the null sender are unaffected.
    const own = await submit(
      port,
      { from: 'someone@adatum.com', to: ['user@treyresearch.net'] },
      partner(),
      BODY,
    );
    assert.equal(own.code, 250, own.response);
  });

  it('lets an internal (relay-permitted) connector and a connector with acceptAuthoritativeDomainSenders send as our domains', async (t) => {
    for (const connector of [
      internalConnector('127.0.0.1:0'),
      receiveConnector('allowed', {
        domainSecure: false,
        requireTls: false,
        acceptAuthoritativeDomainSenders: true,
      }),
    ]) {
      const generation = buildGeneration(runtimeConfig({ receiveConnectors: [connector] }), 1);
      const { port, messages } = await receiving(t, generation);
      const outcome = await submit(
        port,
        { from: 'alice@TreyResearch.net', to: ['user@treyresearch.net'] },
        { ...stranger(), plaintext: connector.name === 'internal' },
        BODY,
      );
      assert.equal(outcome.code, 250, `${connector.name}: ${outcome.response}`);
      assert.equal(messages[0]?.from, 'alice@treyresearch.net', 'the envelope is canonical');
    }
  });

  it('credits a partner that sets requireHeaderFromDomain only with mail whose From: is in its domain, recording header.from either way', async (t) => {
    const message = (from: string) => `From: ${from}\r\nSubject: author\r\n\r\nhello\r\n`;
    const envelope = { from: 'someone@adatum.com', to: ['user@treyresearch.net'] };
    for (const required of [true, false]) {
      const generation = buildGeneration(
        runtimeConfig({ adatum: { requireHeaderFromDomain: required } }),
        1,
      );
      const { port, messages } = await receiving(t, generation);
      for (const author of [
        'Ann <ann@ADATUM.com>',
        'mallory@fabrikam.com',
        'a@adatum.com, b@adatum.com',
      ]) {
        const outcome = await submit(port, envelope, partner(), message(author));
        assert.equal(outcome.code, 250, outcome.response);
      }
      const [own, other, several] = messages.map((m) => m.body.toString('latin1'));
      assert.match(own ?? '', /^X-Domsec-AuthAs: Partner\r\n/);
      assert.match(
        own ?? '',
        /x-domsec=pass \(mutual TLS\) smtp.mailfrom=adatum.com\r\n\theader.from=adatum.com\r\n/,
      );
      assert.equal(messages[0]?.domainSecured?.partner, 'adatum.com');
      if (required) {
        for (const [text, from] of [
          [other, 'fabrikam.com'],
          [several, 'unknown'],
        ] as const) {
          assert.doesNotMatch(text ?? '', /X-Domsec-AuthAs|x-domsec=pass/);
          assert.match(
            text ?? '',
            new RegExp(
              `x-domsec=fail \\(header.from is not the partner's domain\\) smtp.mailfrom=adatum.com\\r\\n\\theader.from=${from}\\r\\n`,
            ),
          );
        }
        assert.equal(messages[1]?.domainSecured, undefined, 'not counted as domain-secured');
        assert.equal(messages[2]?.domainSecured, undefined);
      } else {
        assert.match(other ?? '', /x-domsec=pass .*\r\n\theader.from=fabrikam.com\r\n/);
        assert.match(several ?? '', /x-domsec=pass/);
        assert.doesNotMatch(several ?? '', /header.from=/);
      }
    }
  });
});
