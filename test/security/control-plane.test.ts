// The admin API as an attacker on the same machine meets it: no token or a wrong one is one and
// the same 401 on every route, an oversize body is refused before it is read, secrets are never
// echoed, and serve warns when the API listens beyond loopback (it never binds there in tests).
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { isLoopback, serveCommand } from '../../src/cli/serve.js';
import type { Output } from '../../src/cli/output.js';
import { API_PREFIX } from '../../src/control/protocol.js';
import { lab } from '../support/lab.js';
import { startEngine, eventually, type RunningEngine } from '../support/engine.js';
import { certificate, runtimeConfig } from '../support/runtime-config.js';
import { tempDir } from '../support/tmp.js';

const ROUTES = [
  ['GET', '/overview'],
  ['GET', '/state'],
  ['POST', '/apply'],
  ['GET', '/history'],
  ['POST', '/rollback'],
  ['GET', '/status'],
  ['POST', '/status'],
  ['GET', '/queues'],
  ['POST', '/queues/retry'],
  ['POST', '/queues/suspend'],
  ['POST', '/queues/resume'],
  ['GET', '/no-such-route'],
] as const;

/** The base64 lines of a PEM body: any one of them in an output is a leak. */
function pemLines(pem: string): string[] {
  return pem
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line.length >= 32 && !line.startsWith('-----'));
}

interface RawResponse {
  status: number;
  text: string;
  /** Body bytes the client had written when the reply came. */
  sent: number;
}

/**
 * A request written by hand: the headers, then `body` (or, with `stream`, 1 MiB chunks until the
 * server answers or `stream` bytes are out). Resolves with the first response, bounded in time.
 */
function rawRequest(
  url: string,
  head: string,
  options: { body?: string; stream?: number; timeoutMs?: number } = {},
): Promise<RawResponse> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect({ host: hostname, port: Number(port) });
    let received = '';
    let sent = 0;
    let answered = false;
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no response within ${options.timeoutMs ?? 5_000} ms (${sent} bytes sent)`));
    }, options.timeoutMs ?? 5_000);
    socket.on('error', () => undefined); // the server may cut the upload short
    socket.on('data', (chunk: Buffer) => {
      received += chunk.toString('latin1');
      const match = /^HTTP\/1\.1 (\d{3})[^\r]*\r\n[\s\S]*?\r\n\r\n([\s\S]*)$/.exec(received);
      const length = /content-length: (\d+)/i.exec(received)?.[1];
      if (match === null || length === undefined || (match[2] ?? '').length < Number(length))
        return;
      answered = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ status: Number(match[1]), text: match[2] ?? '', sent });
    });
    socket.on('connect', () => {
      socket.write(`${head}\r\n\r\n`);
      if (options.body !== undefined) {
        socket.write(options.body);
        sent += options.body.length;
      }
      const limit = options.stream;
      if (limit === undefined) return;
      const chunk = Buffer.alloc(1024 * 1024, 0x20);
      const pump = () => {
        while (!answered && !socket.destroyed && sent < limit) {
          sent += chunk.length;
          if (!socket.write(`${chunk.length.toString(16)}\r\n${chunk.toString()}\r\n`)) {
            socket.once('drain', pump);
            return;
          }
        }
      };
      pump();
    });
  });
}

describe('control plane: authentication', () => {
  let state: Awaited<ReturnType<typeof tempDir>>;
  let running: RunningEngine;

  before(async () => {
    state = await tempDir();
    running = await startEngine(state.path);
    await running.client.apply(runtimeConfig());
  });
  after(async () => {
    await running.stop();
    await state.remove();
  });

  it('answers the same 401 on every route to a missing, wrong, near-miss or oversized token', async () => {
    const { token } = running;
    const last = token.at(-1) === 'A' ? 'B' : 'A';
    const presented: (string | undefined)[] = [
      undefined,
      '',
      'Bearer',
      'Bearer ',
      `Bearer ${token.slice(0, -1)}`,
      `Bearer ${token.slice(0, -1)}${last}`,
      `Bearer ${token}x`,
      `Bearer ${token}${token}`,
      `Bearer ${'A'.repeat(token.length)}`,
      `Bearer ${'x'.repeat(8_000)}`,
      `bearer  ${token}`,
      `Basic ${Buffer.from(`admin:${token}`).toString('base64')}`,
      token,
    ];
    const bodies = new Set<string>();
    let refused = 0;
    for (const [method, path] of ROUTES) {
      for (const authorization of presented) {
        const response = await fetch(`${running.control.url}${API_PREFIX}${path}`, {
          method,
          headers: authorization === undefined ? {} : { authorization },
          ...(method === 'POST' ? { body: JSON.stringify({ config: runtimeConfig() }) } : {}),
        });
        const text = await response.text();
        assert.equal(response.status, 401, `${method} ${path} with ${authorization}`);
        assert.ok(!text.includes(token), 'the token is never echoed');
        bodies.add(text);
        refused += 1;
      }
    }
    // A token in the query string is not a credential either.
    const query = await fetch(`${running.control.url}${API_PREFIX}/state?token=${token}`);
    assert.equal(query.status, 401);
    bodies.add(await query.text());
    // One body for every refusal: nothing tells a near miss from a wild guess, or a route from
    // a typo, before authentication.
    assert.equal(bodies.size, 1, [...bodies].join('\n'));
    assert.equal(refused, ROUTES.length * presented.length);
    assert.equal(running.engine.currentGeneration, 1, 'no refused apply changed anything');
    console.log(`# admin API: ${refused + 1} unauthenticated requests tried, all refused with 401`);
  });

  it('refuses an oversize body with 413 from its Content-Length, before reading it', async () => {
    const tenGiB = 10 * 1024 ** 3;
    const response = await rawRequest(
      running.control.url,
      [
        `POST ${API_PREFIX}/apply HTTP/1.1`,
        'Host: admin',
        `Authorization: Bearer ${running.token}`,
        'Content-Type: application/json',
        `Content-Length: ${tenGiB}`,
      ].join('\r\n'),
      { body: '{"config": {', timeoutMs: 5_000 },
    );
    assert.equal(response.status, 413);
    assert.match(response.text, /too-large/);
    assert.equal(running.engine.currentGeneration, 1);
  });

  it('refuses an endless chunked body with 413 once over the limit, without reading the rest', async () => {
    const limit = 64 * 1024 * 1024;
    const response = await rawRequest(
      running.control.url,
      [
        `POST ${API_PREFIX}/apply HTTP/1.1`,
        'Host: admin',
        `Authorization: Bearer ${running.token}`,
        'Content-Type: application/json',
        'Transfer-Encoding: chunked',
      ].join('\r\n'),
      { stream: 4 * limit, timeoutMs: 30_000 },
    );
    assert.equal(response.status, 413);
    assert.ok(response.sent < 2 * limit, `${response.sent} bytes were sent before the 413`);
  });

  it('refuses an unauthenticated upload with 401 at once, whatever its announced size', async () => {
    const response = await rawRequest(
      running.control.url,
      [
        `POST ${API_PREFIX}/apply HTTP/1.1`,
        'Host: admin',
        'Content-Type: application/json',
        `Content-Length: ${10 * 1024 ** 3}`,
      ].join('\r\n'),
      { body: '{"config": {', timeoutMs: 5_000 },
    );
    assert.equal(response.status, 401);
  });
});

describe('control plane: secrets are never echoed', () => {
  let state: Awaited<ReturnType<typeof tempDir>>;
  let running: RunningEngine;

  before(async () => {
    state = await tempDir();
    running = await startEngine(state.path);
    await running.client.apply(runtimeConfig());
  });
  after(async () => {
    await running.stop();
    await state.remove();
  });

  const authorized = (path: string, init: RequestInit = {}) =>
    fetch(`${running.control.url}${API_PREFIX}${path}`, {
      ...init,
      // The API takes JSON bodies only (415 otherwise): say so, as the CLI's client does.
      headers: { authorization: `Bearer ${running.token}`, 'content-type': 'application/json' },
    });

  it('keeps the key and the token out of every answer, refusals included', async () => {
    const { treyMail, adatumMail } = lab();
    const secrets = [...pemLines(treyMail.keyPem), ...pemLines(adatumMail.keyPem), running.token];
    const marker = 'KEYMATERIALMARKER0123456789abcdefKEYMATERIALMARKER';
    const texts: string[] = [];
    const record = async (response: Response, status: number, what: string) => {
      const text = await response.text();
      assert.equal(response.status, status, `${what}: ${text}`);
      texts.push(text);
    };
    // Reads after a successful apply.
    for (const path of ['/overview', '/state', '/history', '/status', '/queues']) {
      await record(await authorized(path), 200, path);
    }
    // A key that does not match the certificate (another organization's), and one that is not
    // a key at all, carrying a marker: the refusal names the problem, not the material.
    const mismatched = runtimeConfig({
      certificates: [certificate('mail-treyresearch', { ...treyMail, keyPem: adatumMail.keyPem })],
    });
    const garbage = runtimeConfig({
      certificates: [
        certificate('mail-treyresearch', {
          ...treyMail,
          keyPem: `-----BEGIN PRIVATE KEY-----\n${marker}\n-----END PRIVATE KEY-----\n`,
        }),
      ],
    });
    for (const [what, config] of [
      ['mismatched key', mismatched],
      ['garbage key', garbage],
    ] as const) {
      const body = JSON.stringify({ config, baseGeneration: 1 });
      await record(await authorized('/apply', { method: 'POST', body }), 422, what);
    }
    // A body that is not JSON but carries the key.
    await record(
      await authorized('/apply', { method: 'POST', body: `${treyMail.keyPem}{` }),
      400,
      'not JSON',
    );
    // A route that does not exist, with the token and a key line in the query string.
    const line = pemLines(treyMail.keyPem)[0] ?? '';
    await record(
      await authorized(`/nowhere?token=${running.token}&key=${encodeURIComponent(line)}`),
      404,
      'unknown route',
    );
    for (const text of texts) {
      assert.doesNotMatch(text, /PRIVATE KEY/);
      assert.ok(!text.includes(marker), `the marker was echoed: ${text}`);
      for (const secret of secrets) assert.ok(!text.includes(secret), `a secret in: ${text}`);
    }
    assert.equal(running.engine.currentGeneration, 1);
  });
});

describe('control plane: listening beyond loopback', () => {
  let state: Awaited<ReturnType<typeof tempDir>>;
  before(async () => {
    state = await tempDir();
  });
  after(async () => state.remove());

  /** serve in this process, until it is ready (or fails); the warnings it logged. */
  async function serve(admin: string, stateName: string) {
    let stdout = '';
    let stderr = '';
    const out: Output = {
      stdout: (text) => (stdout += text),
      stderr: (text) => (stderr += text),
      color: false,
      interactive: false,
    };
    const stop = new AbortController();
    const running = serveCommand(
      { state: join(state.path, stateName), admin, watch: false },
      out,
      stop.signal,
    );
    const outcome = await Promise.race([
      running.then(
        () => 'stopped',
        (error: Error) => `failed: ${error.message}`,
      ),
      eventually('serve to be ready', () =>
        stdout.includes('engine ready') ? 'ready' : undefined,
      ),
    ]);
    stop.abort();
    await running.catch(() => undefined);
    const warned = stderr.includes('admin.not-loopback');
    return { outcome, warned, stdout, stderr };
  }

  it('takes only loopback addresses for loopback, never a name that looks like one', () => {
    for (const host of ['localhost', '127.0.0.1', '127.0.0.2', '::1', '[::1]', '::ffff:127.0.0.1'])
      assert.equal(isLoopback(host), true, host);
    for (const host of ['127.attacker.example', '127.0.0.1.example', '0.0.0.0', '::', '192.0.2.1'])
      assert.equal(isLoopback(host), false, host);
  });

  it('listens on loopback by default: the Organization schema’s admin.listen', async () => {
    const schema = JSON.parse(
      await readFile(new URL('../../schemas/organization.schema.json', import.meta.url), 'utf8'),
    ) as { properties: { admin: { properties: { listen: { default: string } } } } };
    assert.match(schema.properties.admin.properties.listen.default, /^127\.0\.0\.1:\d+$/);
  });

  it('does not warn for another loopback address (127.0.0.2)', async () => {
    const result = await serve('127.0.0.2:0', 'loopback');
    assert.equal(result.outcome, 'ready', result.stderr);
    assert.match(result.stdout, /admin API http:\/\/127\.0\.0\.2:\d+/);
    assert.equal(result.warned, false);
  });

  it('warns before listening on an address beyond loopback (one this machine does not have)', async () => {
    // 192.0.2.1 is TEST-NET-1 (RFC 5737): binding it fails here, so nothing ever listens off loopback.
    const addresses = Object.values(networkInterfaces())
      .flat()
      .map((i) => i?.address);
    assert.ok(!addresses.includes('192.0.2.1'), 'this machine must not own 192.0.2.1');
    const result = await serve('192.0.2.1:8025', 'beyond');
    assert.match(result.outcome, /^failed: .*EADDRNOTAVAIL/);
    assert.equal(result.warned, true, result.stderr);
    assert.match(result.stderr, /reachable from the network/);
  });
});
