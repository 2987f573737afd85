// Client-started TLS renegotiation over a real STARTTLS session (testssl's secure_client_renego):
// the listener refuses it and ends the session. TLS 1.3 has no renegotiation, so the client is
// held to TLS 1.2, where Node's renegotiate() sends a new ClientHello inside the session.
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { describe, it, type TestContext } from 'node:test';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { buildGeneration } from '../../src/engine/generation.js';
import { lab } from '../support/lab.js';
import { receiving } from '../support/receiving.js';
import { runtimeConfig } from '../support/runtime-config.js';

const WAIT_MS = 5_000;

/** Reads SMTP replies from a plain or TLS socket, each wait bounded. */
class Replies {
  private buffer = '';
  private closed = false;
  constructor(socket: Socket | TLSSocket) {
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => (this.buffer += chunk));
    socket.on('close', () => (this.closed = true));
    socket.on('error', () => undefined);
  }

  async next(): Promise<string> {
    const deadline = Date.now() + WAIT_MS;
    for (;;) {
      const match = /^(?:\d{3}-[^\r\n]*\r\n)*\d{3}(?: [^\r\n]*)?\r\n/.exec(this.buffer);
      if (match !== null) {
        this.buffer = this.buffer.slice(match[0].length);
        return match[0].trimEnd();
      }
      if (this.closed) throw new Error('connection closed');
      if (Date.now() > deadline) throw new Error(`no reply within ${WAIT_MS} ms`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }
}

async function startListener(t: TestContext) {
  return receiving(t, buildGeneration(runtimeConfig(), 1));
}

/** EHLO, STARTTLS and a TLS 1.2 handshake with adatum's certificate; EHLO again inside TLS. */
async function tls12Session(t: TestContext, port: number): Promise<TLSSocket> {
  const raw = connect({ port, host: '127.0.0.1' });
  t.after(() => raw.destroy());
  const plain = new Replies(raw);
  assert.match(await plain.next(), /^220 /);
  raw.write('EHLO mail.adatum.com\r\n');
  assert.match(await plain.next(), /^250-/);
  raw.write('STARTTLS\r\n');
  assert.match(await plain.next(), /^220 /);
  raw.removeAllListeners('data');
  const { adatumMail, treyRoot } = lab();
  const tls = tlsConnect({
    socket: raw,
    servername: 'mail.treyresearch.net',
    ca: [treyRoot.certPem],
    key: adatumMail.keyPem,
    cert: adatumMail.certPem,
    maxVersion: 'TLSv1.2',
  });
  t.after(() => tls.destroy());
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no handshake')), WAIT_MS);
    tls.once('secureConnect', () => {
      clearTimeout(timer);
      resolve();
    });
    tls.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
  assert.equal(tls.getProtocol(), 'TLSv1.2');
  return tls;
}

describe('TLS renegotiation on receive', () => {
  it('refuses a renegotiation started by the client and ends the session', async (t) => {
    const { port, log } = await startListener(t);
    const tls = await tls12Session(t, port);
    const replies = new Replies(tls);
    tls.write('EHLO mail.adatum.com\r\n');
    assert.match(await replies.next(), /^250-/);

    const closed = new Promise<void>((resolve) => tls.once('close', () => resolve()));
    const outcome = await new Promise<string>((resolve) => {
      const timer = setTimeout(() => resolve('timeout'), WAIT_MS);
      const settle = (what: string) => {
        clearTimeout(timer);
        resolve(what);
      };
      tls.once('close', () => settle('closed'));
      const started = tls.renegotiate({ rejectUnauthorized: true }, (error) =>
        settle(error == null ? 'renegotiated' : `error: ${error.message}`),
      );
      if (!started) settle('not started');
    });
    assert.ok(outcome === 'closed' || outcome.startsWith('error: '), outcome);
    // The server ended the session: the socket closes without a bounded wait running out.
    await Promise.race([
      closed,
      new Promise((_, reject) =>
        setTimeout(() => reject(new Error('session still open')), WAIT_MS),
      ),
    ]);
    assert.ok(
      log.entries.some(
        (e) =>
          e.event === 'receive.connection-error' && /renegotiation/i.test(String(e.fields.error)),
      ),
      JSON.stringify(log.entries),
    );
  });
});
