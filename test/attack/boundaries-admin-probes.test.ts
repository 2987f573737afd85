// The admin API's two unauthenticated paths, /healthz and /readyz, from a client that owes the
// protocol nothing: raw bytes on a socket. Path spellings that normalise onto or away from a
// probe, methods, HEAD against GET, oversized heads, pipelining and smuggling a token-less
// request behind a probe: none reaches data without the token, and a probe says its status code
// only, in a fixed body, whatever the engine's state.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { connect, createServer as createNetServer } from 'node:net';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { PROBE_BODY } from '../../src/control/server.js';
import { runtimeConfig } from '../support/runtime-config.js';
import { eventually, startEngine, type RunningEngine } from '../support/engine.js';
import { ADATUM, TREY, writeLab, writeManifests } from '../support/manifests.js';
import { tempDir, type TempDir } from '../support/tmp.js';

const MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));

interface RawExchange {
  /** Everything the server sent, as latin1. */
  text: string;
  /** The server closed the connection before the wait ended. */
  closed: boolean;
  /** Each response's status line and body, in order. */
  responses: { status: number; head: string; body: string }[];
}

/** Splits HTTP/1.1 responses with a content-length (what this server always sends). */
function responsesOf(text: string): RawExchange['responses'] {
  const responses: RawExchange['responses'] = [];
  let rest = text;
  while (rest.startsWith('HTTP/1.1 ')) {
    const end = rest.indexOf('\r\n\r\n');
    if (end < 0) break;
    const head = rest.slice(0, end);
    const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
    responses.push({
      status: Number(head.slice(9, 12)),
      head,
      body: rest.slice(end + 4, end + 4 + length),
    });
    rest = rest.slice(end + 4 + length);
  }
  return responses;
}

describe('admin API probes under hostile requests', () => {
  let dir: TempDir;
  let running: RunningEngine;
  let port: number;

  before(async () => {
    dir = await tempDir('domsec-probe-attack-');
    running = await startEngine(dir.path);
    port = Number(new URL(running.control.url).port);
  });
  after(async () => {
    await running.stop();
    await dir.remove();
  });

  /**
   * Writes bytes (then more, every `dripMs`, while `drip` gives some) and collects what comes
   * back until the server closes or `waitMs` passes, or, with `expected`, once that many
   * responses have arrived in full.
   */
  function exchange(
    bytes: string,
    options: {
      waitMs?: number;
      drip?: () => string | undefined;
      dripMs?: number;
      expected?: number;
    } = {},
  ): Promise<RawExchange> {
    const { waitMs = 2_000, drip, dripMs = 100, expected } = options;
    return new Promise((resolve) => {
      const socket = connect(port, '127.0.0.1');
      let text = '';
      let done = false;
      const finish = (closed: boolean) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        clearInterval(dripping);
        socket.destroy();
        resolve({ text, closed, responses: responsesOf(text) });
      };
      const timer = setTimeout(() => finish(false), waitMs);
      const dripping = setInterval(() => {
        const more = drip?.();
        if (more !== undefined && !socket.destroyed) socket.write(more);
      }, dripMs);
      socket.on('data', (chunk: Buffer) => {
        text += chunk.toString('latin1');
        if (expected !== undefined && responsesOf(text).length >= expected) finish(false);
      });
      socket.on('close', () => finish(true));
      socket.on('error', () => undefined);
      socket.write(bytes);
    });
  }

  const get = (target: string, extra = '') =>
    `GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\n${extra}\r\n`;

  /** The engine's own data as the token gives it: none of it may appear without the token. */
  const secretShapes = [/"formatVersion"/, /"generation"/, /"queues"/, /"reconciler"/, /# HELP/];
  const leaksNothing = (exchanged: RawExchange, label: string) => {
    for (const shape of secretShapes) assert.doesNotMatch(exchanged.text, shape, label);
  };

  it('sends every path spelling that is not a probe to the token, and a probe only its fixed body', async () => {
    await running.client.apply(runtimeConfig());
    const cases: [string, number][] = [
      ['/healthz/../v1/state', 401],
      ['/healthz/..%2Fv1%2Fstate', 401],
      ['/healthz/%2e%2e/v1/state', 401],
      ['/readyz/./../v1/queues', 401],
      ['/readyz%2F..', 401],
      ['/readyz%2f..%2fmetrics', 401],
      ['//healthz', 401],
      ['//admin/v1/state', 401],
      ['///healthz/../../v1/state', 401],
      ['/%68ealthz', 401],
      ['/healthz;/../v1/state', 401],
      ['/healthz%23/../../v1/state', 401],
      ['*', 401],
      ['http://127.0.0.1/v1/state', 401],
      ['http://evil.example/metrics', 401],
      ['/healthz?x', 200],
      ['/healthz?/../v1/state', 200],
      ['/readyz?x=../v1/state', 200],
      ['/healthz#/../v1/state', 200],
      ['http://evil.example/healthz', 200],
    ];
    for (const [target, status] of cases) {
      const exchanged = await exchange(get(target), { expected: 1 });
      const [response] = exchanged.responses;
      assert.equal(response?.status, status, `${target}: ${exchanged.text.slice(0, 200)}`);
      if (status === 200) assert.equal(response?.body, PROBE_BODY, target);
      leaksNothing(exchanged, target);
    }
  });

  it('answers a token-less request pipelined behind a probe 401, and never runs a probe body as a request', async () => {
    const pipelined = await exchange(
      `${get('/healthz')}${get('/v1/state')}${get('/readyz')}${get('/metrics')}`,
      { expected: 4 },
    );
    assert.deepEqual(
      pipelined.responses.map((r) => r.status),
      [200, 401, 200, 401],
    );
    leaksNothing(pipelined, 'pipelined');
    // A request carried as the probe's body is the body, read and dropped.
    const inner = get('/v1/state', 'Authorization: Bearer wrong\r\n');
    const carried = await exchange(
      `${get('/healthz', `Content-Length: ${inner.length}\r\n`)}${inner}`,
      { waitMs: 1_000 },
    );
    assert.deepEqual(
      carried.responses.map((r) => r.status),
      [200],
    );
    // Content-Length and Transfer-Encoding together (request smuggling) is a 400 that closes.
    const smuggled = await exchange(
      `${get('/healthz', 'Content-Length: 5\r\nTransfer-Encoding: chunked\r\n')}0\r\n\r\n${get('/v1/state')}`,
    );
    assert.equal(smuggled.responses[0]?.status, 400);
    assert.equal(smuggled.closed, true);
    leaksNothing(smuggled, 'smuggled');
    // A method the probe refuses with a body unread: 405 and the connection ends, so the
    // bytes after it are never parsed as a request.
    const refused = await exchange(
      `POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n${get('/v1/state')}`,
    );
    assert.deepEqual(
      refused.responses.map((r) => r.status),
      [405],
    );
    assert.equal(refused.closed, true);
  });

  it('answers HEAD as GET without a body, every other method 405 with the fixed body, a malformed method 400', async () => {
    for (const path of ['/healthz', '/readyz']) {
      const [getAnswer] = (await exchange(get(path), { expected: 1 })).responses;
      const head = await exchange(`HEAD ${path} HTTP/1.1\r\nHost: x\r\n\r\n`, { waitMs: 500 });
      const headStatus = Number(head.text.slice(9, 12));
      assert.equal(headStatus, getAnswer?.status, path);
      assert.doesNotMatch(head.text.slice(head.text.indexOf('\r\n\r\n') + 4), /\S/, 'no body');
      for (const method of ['POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'TRACE', 'PROPFIND']) {
        const answered = await exchange(
          `${method} ${path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n`,
          { expected: 1 },
        );
        assert.equal(answered.responses[0]?.status, 405, `${method} ${path}`);
        assert.equal(answered.responses[0]?.body, PROBE_BODY, `${method} ${path}`);
      }
      for (const method of ['get', 'G\u0000ET', 'GET\t']) {
        const answered = await exchange(`${method} ${path} HTTP/1.1\r\nHost: x\r\n\r\n`);
        assert.equal(answered.responses[0]?.status ?? 400, 400, JSON.stringify(method));
        assert.doesNotMatch(answered.text, /domsec\n/, JSON.stringify(method));
      }
    }
  });

  it('refuses an oversized head with 431 and a close, no upgrade, no CONNECT tunnel', async () => {
    const huge = await exchange(get('/healthz', `X-Pad: ${'a'.repeat(20_000)}\r\n`));
    assert.equal(huge.responses[0]?.status, 431);
    assert.equal(huge.closed, true);
    const many = await exchange(
      get('/readyz', Array.from({ length: 3_000 }, (_, i) => `X-${i}: 1\r\n`).join('')),
    );
    assert.ok([400, 431].includes(many.responses[0]?.status ?? 0), many.text.slice(0, 60));
    const upgrade = await exchange(
      get('/healthz', 'Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n'),
      { expected: 1 },
    );
    assert.equal(upgrade.responses[0]?.status, 200);
    const tunnel = await exchange(`CONNECT 127.0.0.1:${port} HTTP/1.1\r\nHost: x\r\n\r\n`);
    assert.doesNotMatch(tunnel.text, /^HTTP\/1\.1 200/);
    assert.equal(tunnel.closed, true);
  });

  it('sends the same head and body in every state, only the status differs', async () => {
    const head = async (path: string) => {
      const [response] = (await exchange(get(path), { expected: 1 })).responses;
      assert.ok(response);
      return {
        status: response.status,
        body: response.body,
        // The date moves; everything else is compared as sent.
        fields: response.head
          .split('\r\n')
          .slice(1)
          .filter((line) => !/^date:/i.test(line)),
      };
    };
    const ready = await head('/readyz');
    assert.equal(ready.status, 200);
    const report = {
      generation: running.engine.currentGeneration,
      reconciler: 'attack test',
      durationMs: 1,
    };
    await running.client.reportStatus({
      ...report,
      outcome: 'invalid',
      error: 'DS001 x.yaml:1:1 no',
    });
    try {
      const failing = await head('/readyz');
      assert.equal(failing.status, 503);
      assert.equal(failing.body, ready.body);
      assert.deepEqual(failing.fields, ready.fields);
      assert.deepEqual((await head('/healthz')).fields, ready.fields);
    } finally {
      await running.client.reportStatus({ ...report, outcome: 'unchanged', error: null });
    }
  });

  it('keeps every generated target that is not exactly a probe path behind the token', async () => {
    const segment = fc.constantFrom(
      'healthz',
      'readyz',
      '..',
      '.',
      '%2e',
      '%2E%2E',
      'v1',
      'state',
      '',
      '%2f',
      ';',
      'metrics',
      'queues',
    );
    await fc.assert(
      fc.asyncProperty(fc.array(segment, { minLength: 1, maxLength: 5 }), async (segments) => {
        const target = `/${segments.join('/')}`;
        // A target the URL parser refuses (//%2f: an empty authority) is a 400.
        const pathname = URL.canParse(target, 'http://admin')
          ? new URL(target, 'http://admin').pathname
          : undefined;
        const exchanged = await exchange(get(target), { expected: 1 });
        const [response] = exchanged.responses;
        leaksNothing(exchanged, target);
        if (pathname === '/healthz' || pathname === '/readyz')
          assert.equal(response?.body, PROBE_BODY, target);
        else
          assert.ok([400, 401].includes(response?.status ?? 0), `${target}: ${response?.status}`);
      }),
      { numRuns: 60 },
    );
  });

  it('ends a probe connection whose request body is still coming, as it does for a refused request', async () => {
    const chunk = `4000\r\n${'a'.repeat(0x4000)}\r\n`;
    const refused = await exchange(get('/v1/state', 'Transfer-Encoding: chunked\r\n'), {
      drip: () => chunk,
      waitMs: 3_000,
    });
    assert.equal(refused.closed, true, 'the token path closes');
    const probe = await exchange(get('/healthz', 'Transfer-Encoding: chunked\r\n'), {
      drip: () => chunk,
      waitMs: 3_000,
    });
    assert.equal(probe.responses[0]?.status, 200);
    assert.equal(probe.closed, true, 'the probe path still reads the body 3 s later');
  });

  it(
    'drops a client that dribbles the head of a probe request, as the MTA-STS policy listener does (10 s)',
    {
      timeout: 20_000,
    },
    async () => {
      let line = 0;
      const dribbled = await exchange('GET /healthz HTTP/1.1\r\nHost: x\r\n', {
        drip: () => `X-${(line += 1)}: a\r\n`,
        dripMs: 1_000,
        waitMs: 12_000,
      });
      assert.equal(dribbled.closed, true, `still open after ${line} header lines`);
      assert.deepEqual(
        dribbled.responses.filter((r) => r.status !== 408),
        [],
        'no probe answer for an unfinished head (408 at most)',
      );
    },
  );

  it('answers a request target that is not a URL 400, without an error-level log line', async () => {
    const before = running.log.entries.filter((e) => e.level === 'error').length;
    for (const target of ['http://[::1', '//%2f', '//[/healthz']) {
      const answered = await exchange(get(target), { expected: 1 });
      assert.equal(answered.responses[0]?.status, 400, target);
    }
    assert.equal(running.log.entries.filter((e) => e.level === 'error').length, before);
  });
});

describe('the admin API of serve without an admin address', () => {
  it('listens on loopback only, probes answering there and on no other address of the host', async (t) => {
    const port = 8025;
    const free = await new Promise<boolean>((resolve) => {
      const probe = createNetServer();
      probe.once('error', () => resolve(false));
      probe.listen(port, '127.0.0.1', () => probe.close(() => resolve(true)));
    });
    if (!free) return t.skip(`port ${port} is in use here`);
    const root = await tempDir('domsec-admin-default-');
    let serve: ChildProcess | undefined;
    try {
      await writeLab(root.path);
      const dir = await writeManifests({
        root: root.path,
        org: ADATUM,
        partner: TREY,
        partnerBinding: '127.0.0.1:0',
        internalBinding: '127.0.0.1:0',
        adminListen: '127.0.0.1:0',
        partnerRoute: { host: '127.0.0.1', port: 9 },
        trust: 'root',
      });
      const file = join(dir, 'organization.yaml');
      const written = await readFile(file, 'utf8');
      const withoutAdmin = written.replace(/^ {2}admin: .*\n/m, '');
      assert.notEqual(withoutAdmin, written);
      await writeFile(file, withoutAdmin);
      // The CLI from its sources, so no build is needed; the environment carries no token.
      const { DOMSEC_TOKEN: _token, ...environment } = process.env;
      serve = spawn(
        process.execPath,
        ['--import', 'tsx', MAIN, 'serve', '-f', dir, '--state', join(root.path, 'state')],
        { env: { ...environment, NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let output = '';
      serve.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
      serve.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
      await eventually('serve is ready', () => /domsec engine ready/.test(output), {
        timeoutMs: 30_000,
        explain: () => output,
      });
      assert.match(output, /admin API http:\/\/127\.0\.0\.1:8025 /);
      const healthz = await fetch(`http://127.0.0.1:${port}/healthz`, {
        signal: AbortSignal.timeout(5_000),
      });
      assert.equal(healthz.status, 200);
      const others = Object.values(networkInterfaces())
        .flat()
        .filter((entry) => entry !== undefined && !entry.internal)
        .map((entry) => entry?.address ?? '')
        .filter((address) => !address.startsWith('fe80:'));
      for (const address of others) {
        const answer = await new Promise<string>((resolve) => {
          const socket = connect({ host: address, port, timeout: 2_000 });
          socket.once('connect', () => {
            socket.destroy();
            resolve('connected');
          });
          socket.once('timeout', () => {
            socket.destroy();
            resolve('timeout');
          });
          socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? 'error'));
        });
        assert.notEqual(answer, 'connected', `the admin API answers on ${address}`);
      }
    } finally {
      if (serve !== undefined && serve.exitCode === null) {
        const exited = new Promise((resolve) => serve?.once('close', resolve));
        serve.kill('SIGTERM');
        const timer = setTimeout(() => serve?.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(timer);
      }
      await root.remove();
    }
  });
});
