// STARTTLS per receive connector over real sockets: offered only where authMechanisms has `tls`,
// even when a `[none]` connector shares the binding and sessions are placed by remote range.
import assert from 'node:assert/strict';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { connect } from 'node:net';
import { describe, it, type TestContext } from 'node:test';
import { buildGeneration, type Generation } from '../../src/engine/generation.js';
import { eventually } from '../support/eventually.js';
import { lab } from '../support/lab.js';
import { LineClient } from '../support/line-client.js';
import { receiving } from '../support/receiving.js';
import { receiveConnector, runtimeConfig } from '../support/runtime-config.js';

/** Keeps what it is given. */

/**
 * One binding, two connectors: `partners` (tls, domain security) for 127.0.0.2, `internal`
 * (none, plaintext) for the rest of 127.0.0.0/8; the most specific range wins.
 */
function sharedBinding(): Generation {
  return buildGeneration(
    runtimeConfig({
      receiveConnectors: [
        receiveConnector('partners', { remoteIPRanges: ['127.0.0.2/32'] }),
        receiveConnector('internal', {
          remoteIPRanges: ['127.0.0.0/8'],
          authMechanisms: ['none'],
          domainSecure: false,
          requireTls: false,
          permitRelay: true,
        }),
      ],
    }),
    1,
  );
}

async function start(t: TestContext, generation: Generation) {
  const { port, messages } = await receiving(t, generation);
  return { port, sink: { messages } };
}

async function opened(t: TestContext, port: number, from: string): Promise<LineClient> {
  const client = await LineClient.open(port, '127.0.0.1', from);
  t.after(() => client.close());
  assert.match(await client.reply(), /^220 /);
  return client;
}

function extensions(ehlo: string): string[] {
  return ehlo.split('\r\n').map((line) => line.slice(4));
}

describe('STARTTLS per receive connector', () => {
  it('offers STARTTLS in EHLO to a session placed on a connector with tls', async (t) => {
    const { port } = await start(t, sharedBinding());
    const client = await opened(t, port, '127.0.0.2');
    client.write('EHLO mail.adatum.com');
    const ehlo = await client.reply();
    assert.match(ehlo, /^250-/);
    assert.ok(extensions(ehlo).includes('STARTTLS'), ehlo);
    client.write('STARTTLS');
    assert.match(await client.reply(), /^220 /);
  });

  it('neither offers nor accepts STARTTLS on a [none] connector sharing the binding: 500 5.3.3, no handshake', async (t) => {
    const { port, sink } = await start(t, sharedBinding());
    const client = await opened(t, port, '127.0.0.1');
    client.write('EHLO mail.fabrikam.com');
    const ehlo = await client.reply();
    assert.match(ehlo, /^250[- ]/);
    assert.equal(extensions(ehlo).includes('STARTTLS'), false, ehlo);
    assert.ok(extensions(ehlo).includes('PIPELINING'), ehlo);
    client.write('STARTTLS');
    assert.equal(await client.reply(), '500 5.3.3 Unrecognized command');
    // Still plaintext SMTP: a NOOP is answered in clear, and mail goes through as before.
    client.write('NOOP');
    assert.match(await client.reply(), /^250 /);
    client.write('MAIL FROM:<someone@fabrikam.com>');
    assert.match(await client.reply(), /^250 /);
    client.write('RCPT TO:<user@treyresearch.net>');
    assert.match(await client.reply(), /^250 /);
    client.write('DATA');
    assert.match(await client.reply(), /^354 /);
    client.write('Subject: plaintext on purpose\r\n\r\nbody\r\n.');
    assert.match(await client.reply(), /^250 2\.6\.0 /);
    assert.equal(sink.messages.length, 1);
    assert.equal(sink.messages[0]?.connector, 'internal');
  });

  it('answers a ClientHello sent after a refused STARTTLS as plaintext, never with a handshake', async (t) => {
    const { port } = await start(t, sharedBinding());
    const raw = connect({ port, host: '127.0.0.1', localAddress: '127.0.0.1' });
    t.after(() => raw.destroy());
    let received = '';
    const onData = (chunk: Buffer) => (received += chunk.toString('latin1'));
    raw.on('data', onData);
    raw.write('EHLO mail.fabrikam.com\r\n');
    await eventually('the EHLO reply', () => /\r\n250 [^\r\n]*\r\n/.test(received));
    raw.write('STARTTLS\r\n');
    await eventually('the refusal', () => received.includes('500 5.3.3 Unrecognized command\r\n'));
    raw.off('data', onData);
    // A client that starts TLS anyway: the server must not answer with a ServerHello.
    const tls: TLSSocket = tlsConnect({
      socket: raw,
      servername: 'mail.treyresearch.net',
      ca: [lab().treyRoot.certPem],
    });
    const outcome = await new Promise<string>((resolve) => {
      const timer = setTimeout(() => resolve('timeout'), 5_000);
      tls.once('secureConnect', () => {
        clearTimeout(timer);
        resolve('secure');
      });
      tls.once('error', (error: Error) => {
        clearTimeout(timer);
        resolve(`error: ${error.message}`);
      });
    });
    tls.destroy();
    assert.match(outcome, /^error: /);
  });
});
