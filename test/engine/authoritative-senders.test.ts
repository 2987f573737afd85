// Our own domains cannot be claimed from outside: MAIL FROM one of our accepted domains, in any
// spelling, is refused on a connector whose clients may not relay (Exchange's default for
// ms-Exch-SMTP-Accept-Authoritative-Domain-Sender), with a stranger's TLS or a partner's valid
// certificate alike; internal (relay-permitted) connectors and an explicit switch allow it.
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
});
