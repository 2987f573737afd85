// The MTA-STS policy listener over real TLS sockets on loopback, with its limits shortened: a
// client that dribbles its request head (slowloris) or its body is disconnected within the
// timeout although it keeps sending, connections beyond the cap are closed as they arrive, and
// the listener serves again once one is freed. The defaults are checked to stay short.
import assert from 'node:assert/strict';
import { connect, type TLSSocket } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { buildGeneration } from '../../../src/engine/generation.js';
import { memoryLog } from '../../../src/engine/log.js';
import {
  POLICY_LISTENER_LIMITS,
  PolicyListener,
} from '../../../src/engine/policy/policy-listener.js';
import { issueCertificate } from '../../../src/pki/lab.js';
import { lab } from '../../support/lab.js';
import {
  certificate,
  ORGANIZATION_CERTIFICATE,
  runtimeConfig,
} from '../../support/runtime-config.js';

const HOST = 'mta-sts.treyresearch.net';
const LIMITS = {
  maxConnections: 3,
  headersTimeoutMs: 800,
  requestTimeoutMs: 1_200,
  checkIntervalMs: 100,
};

/** A TLS connection to the listener, resolved once the handshake is done. */
function open(port: number): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = connect({
      host: '127.0.0.1',
      port,
      servername: HOST,
      ca: lab().treyRoot.certPem,
    });
    socket.once('secureConnect', () => resolve(socket));
    socket.once('error', reject);
  });
}

/** Milliseconds from now until the server closes the socket, or Infinity after `limit`. */
function closedWithin(socket: TLSSocket, limit: number): Promise<number> {
  const started = Date.now();
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(Number.POSITIVE_INFINITY), limit);
    socket.on('error', () => undefined);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(Date.now() - started);
    });
  });
}

/** Writes `parts` one at a time every `everyMs` until the socket closes or they run out. */
function dribble(socket: TLSSocket, parts: string[], everyMs: number): () => void {
  const timer = setInterval(() => {
    const next = parts.shift();
    if (next === undefined || socket.destroyed) return clearInterval(timer);
    socket.write(next);
  }, everyMs);
  return () => clearInterval(timer);
}

/** One whole GET of the policy on a fresh connection: the status line, or the error. */
async function fetchPolicy(port: number): Promise<string> {
  const socket = await open(port);
  return new Promise((resolve) => {
    let text = '';
    socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
    socket.on('error', (error) => resolve(`error ${error.message}`));
    socket.on('close', () => resolve(text.split('\r\n')[0] ?? ''));
    socket.end(
      `GET /.well-known/mta-sts.txt HTTP/1.1\r\nHost: ${HOST}\r\nConnection: close\r\n\r\n`,
    );
  });
}

describe('MTA-STS policy listener limits', () => {
  const log = memoryLog();
  const listener = new PolicyListener(log, LIMITS);
  const generation = buildGeneration(
    runtimeConfig({
      organization: { mtaSts: { mode: 'enforce', mx: [], maxAge: 86400, listen: '127.0.0.1:0' } },
      certificates: [
        certificate(
          ORGANIZATION_CERTIFICATE,
          issueCertificate(lab().treyRoot, {
            commonName: 'mail.treyresearch.net',
            dnsNames: ['mail.treyresearch.net', HOST],
          }),
        ),
      ],
    }),
    1,
  );
  let port = 0;
  const sockets: TLSSocket[] = [];
  before(async () => {
    await listener.prepare(generation);
    listener.install(generation);
    port = listener.address()?.port ?? 0;
    assert.ok(port > 0);
  });
  after(async () => {
    for (const socket of sockets) socket.destroy();
    await listener.close();
  });

  it('keeps its defaults short: seconds, not Node’s minutes', () => {
    assert.ok(POLICY_LISTENER_LIMITS.headersTimeoutMs <= 10_000);
    assert.ok(POLICY_LISTENER_LIMITS.requestTimeoutMs <= 10_000);
    assert.ok(POLICY_LISTENER_LIMITS.checkIntervalMs <= 1_000);
    assert.ok(
      POLICY_LISTENER_LIMITS.maxConnections > 0 && POLICY_LISTENER_LIMITS.maxConnections <= 1024,
    );
  });

  it('serves a whole request', async () => {
    assert.equal(await fetchPolicy(port), 'HTTP/1.1 200 OK');
  });

  it('closes a client that dribbles its request head within the head timeout, though it keeps sending', async () => {
    const socket = await open(port);
    sockets.push(socket);
    socket.write(`GET /.well-known/mta-sts.txt HTTP/1.1\r\nHost: ${HOST}\r\n`);
    // A header line every 150 ms: each resets an idle timer, none ends the head.
    const stop = dribble(
      socket,
      Array.from({ length: 100 }, (_, i) => `X-Slow-${i}: x\r\n`),
      150,
    );
    const ms = await closedWithin(socket, 5_000);
    stop();
    assert.ok(ms < LIMITS.headersTimeoutMs + 1_000, `a dribbled head kept the socket ${ms} ms`);
    assert.ok(ms >= LIMITS.headersTimeoutMs - 200, `closed before the timeout (${ms} ms)`);
  });

  it('closes a client that dribbles a request body within the request timeout', async () => {
    const socket = await open(port);
    sockets.push(socket);
    socket.write(
      `POST /.well-known/mta-sts.txt HTTP/1.1\r\nHost: ${HOST}\r\nContent-Length: 100000\r\n\r\n`,
    );
    const stop = dribble(
      socket,
      Array.from({ length: 100 }, () => 'x'),
      150,
    );
    const ms = await closedWithin(socket, 5_000);
    stop();
    assert.ok(ms < LIMITS.requestTimeoutMs + 1_000, `a dribbled body kept the socket ${ms} ms`);
  });

  it('closes connections beyond the cap as they arrive, and serves again once one is freed', async () => {
    const held = await Promise.all(Array.from({ length: LIMITS.maxConnections }, () => open(port)));
    sockets.push(...held);
    // One more: the server drops it at accept, so its handshake never completes.
    const extra = await open(port).then(
      (socket) => {
        sockets.push(socket);
        return closedWithin(socket, 2_000).then((ms) =>
          ms === Number.POSITIVE_INFINITY ? 'open' : 'closed',
        );
      },
      () => 'refused',
    );
    assert.notEqual(extra, 'open');
    const dropped = log.entries.find((e) => e.event === 'mta-sts.connections-dropped');
    assert.deepEqual(dropped?.fields, { dropped: 1, maxConnections: LIMITS.maxConnections });
    const first = held[0];
    assert.ok(first !== undefined);
    const freed = closedWithin(first, 2_000);
    first.destroy();
    await freed;
    // The server counts the connection gone once it sees the close: a bounded wait for that.
    let status = '';
    for (let attempt = 0; attempt < 20 && status !== 'HTTP/1.1 200 OK'; attempt += 1) {
      status = await fetchPolicy(port).catch((error: Error) => `error ${error.message}`);
      if (status !== 'HTTP/1.1 200 OK') await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assert.equal(status, 'HTTP/1.1 200 OK');
    for (const socket of held) socket.destroy();
  });
});
