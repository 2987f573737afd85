// The admin API's route table, tested over the table itself: every route refuses a request
// without the bearer token (so a route added later is covered without editing this file), a known
// path asked with a method it does not answer is 405 naming the ones it does, and an unknown path
// is 404. The two exceptions, the probes /healthz and /readyz, answer without it and say nothing
// but their status code. On a real engine over a real socket.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import type { ErrorResponse } from '../../src/control/protocol.js';
import { PROBE_BODY, PROBES, ROUTES } from '../../src/control/server.js';
import { startEngine, type RunningEngine } from '../support/engine.js';
import { runtimeConfig } from '../support/runtime-config.js';
import { tempDir, type TempDir } from '../support/tmp.js';

let running: RunningEngine;
let dir: TempDir;

before(async () => {
  dir = await tempDir('domsec-routes-');
  running = await startEngine(dir.path);
});
after(async () => {
  await running.stop();
  await dir.remove();
});

/** A path that the route's pattern matches: each parameter given a value it accepts. */
const concrete = (path: string): string => path.replace(/:generation\b/g, '1');

async function ask(
  method: string,
  path: string,
  headers: Record<string, string> = {},
  body?: string,
): Promise<{ status: number; headers: Headers; error?: ErrorResponse['error'] }> {
  const response = await fetch(new URL(path, running.control.url), {
    method,
    headers: { ...headers, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body }),
    signal: AbortSignal.timeout(10_000),
  });
  const text = await response.text();
  const parsed = response.headers.get('content-type')?.startsWith('application/json')
    ? (JSON.parse(text) as Partial<ErrorResponse>)
    : {};
  return { status: response.status, headers: response.headers, error: parsed.error };
}

describe('control routes', () => {
  it('has a table of distinct routes, each a method and a path under the API', () => {
    assert.ok(ROUTES.length >= 12, `${ROUTES.length} routes`);
    const keys = ROUTES.map(({ method, path }) => `${method} ${path}`);
    assert.equal(new Set(keys).size, keys.length, 'no route twice');
  });

  it('keeps the probes out of the table: the only paths besides the status page served without the token', () => {
    assert.deepEqual(Object.keys(PROBES).sort(), ['/healthz', '/readyz']);
    for (const path of Object.keys(PROBES))
      assert.ok(!ROUTES.some((route) => route.path === path), `${path} is not a route`);
  });

  it('refuses every route in the table without the token, with a wrong one and with its prefix', async () => {
    const bearer = `Bearer ${running.token}`;
    const wrong: Record<string, string>[] = [
      {},
      { authorization: 'Bearer wrong' },
      { authorization: bearer.slice(0, -1) },
      { authorization: `${bearer}x` },
      { authorization: running.token }, // not a bearer credential
      { authorization: `Basic ${Buffer.from(`x:${running.token}`).toString('base64')}` },
    ];
    const generation = running.engine.currentGeneration;
    for (const route of ROUTES) {
      for (const headers of wrong) {
        const body = route.decode === undefined ? undefined : '{}';
        const answer = await ask(route.method, concrete(route.path), headers, body);
        const what = `${route.method} ${route.path} with ${JSON.stringify(headers)}`;
        assert.equal(answer.status, 401, what);
        assert.equal(answer.error?.code, 'unauthorized', what);
        assert.equal(answer.headers.get('www-authenticate'), 'Bearer', what);
      }
    }
    assert.equal(running.engine.currentGeneration, generation, 'nothing applied');
  });

  it('reaches every route in the table with the token', async () => {
    for (const route of ROUTES) {
      const body = route.decode === undefined ? undefined : '{}';
      const answer = await ask(
        route.method,
        concrete(route.path),
        { authorization: `Bearer ${running.token}` },
        body,
      );
      const what = `${route.method} ${route.path}: ${answer.status} ${answer.error?.message ?? ''}`;
      assert.ok(![401, 405, 500].includes(answer.status), what);
      assert.ok(!(answer.error?.message ?? '').startsWith('no route'), what);
    }
  });

  it('answers a known path asked with another method 405, naming the methods it answers', async () => {
    const byPath = new Map<string, Set<string>>();
    for (const { method, path } of ROUTES) {
      byPath.set(path, (byPath.get(path) ?? new Set()).add(method));
    }
    for (const [path, methods] of byPath) {
      for (const method of ['GET', 'POST', 'PUT', 'DELETE', 'PATCH'].filter(
        (m) => !methods.has(m),
      )) {
        const answer = await ask(method, concrete(path), {
          authorization: `Bearer ${running.token}`,
        });
        assert.equal(answer.status, 405, `${method} ${path}`);
        assert.equal(answer.error?.code, 'method-not-allowed', `${method} ${path}`);
        assert.deepEqual(
          new Set(answer.headers.get('allow')?.split(', ')),
          methods,
          `${method} ${path}`,
        );
      }
    }
  });

  it('answers an unknown path 404, also one that only looks like a route', async () => {
    for (const path of [
      '/v1/nothing',
      '/v1/state/',
      '/V1/state',
      '/v1/apply/more',
      '/v1/history/one',
      '/v1/history/1234567890123456',
      '/v1/history/-1',
      '/metrics.txt',
      '/',
    ]) {
      for (const method of ['GET', 'POST']) {
        const answer = await ask(method, path, { authorization: `Bearer ${running.token}` });
        assert.equal(answer.status, 404, `${method} ${path}`);
        assert.equal(answer.error?.code, 'not-found', `${method} ${path}`);
      }
    }
  });
});

describe('probes', () => {
  let probed: RunningEngine;
  let probeDir: TempDir;

  before(async () => {
    probeDir = await tempDir('domsec-probes-');
    probed = await startEngine(probeDir.path);
  });
  after(async () => {
    await probed.stop();
    await probeDir.remove();
  });

  /** A probe's answer: status, body, and every header a caller sees. */
  async function probe(
    path: string,
    method = 'GET',
    headers: Record<string, string> = {},
  ): Promise<{ status: number; body: string; headers: Headers }> {
    const response = await fetch(new URL(path, probed.control.url), {
      method,
      headers,
      signal: AbortSignal.timeout(10_000),
    });
    return { status: response.status, body: await response.text(), headers: response.headers };
  }

  /** Both probes' status codes, asserting the answer carries nothing else. */
  async function codes(): Promise<{ healthz: number; readyz: number }> {
    const answers: Record<string, number> = {};
    for (const path of Object.keys(PROBES)) {
      const answer = await probe(path);
      assert.equal(answer.body, PROBE_BODY, path);
      assert.equal(answer.headers.get('content-type'), 'text/plain; charset=utf-8', path);
      assert.equal(answer.headers.get('cache-control'), 'no-store', path);
      const names = [...answer.headers.keys()].sort();
      for (const name of names)
        assert.ok(
          [
            'cache-control',
            'connection',
            'content-length',
            'content-type',
            'date',
            'keep-alive',
          ].includes(name),
          `${path} sends no ${name}`,
        );
      answers[path] = answer.status;
    }
    return { healthz: answers['/healthz'] ?? 0, readyz: answers['/readyz'] ?? 0 };
  }

  it('answers /healthz 200 and /readyz 503 without a token while no generation runs', async () => {
    assert.equal(probed.engine.currentGeneration, 0);
    assert.deepEqual(await codes(), { healthz: 200, readyz: 503 });
  });

  it('follows the reconcile status: ready once applied, not after a failed attempt, ready again', async () => {
    await probed.client.apply(runtimeConfig());
    assert.deepEqual(await codes(), { healthz: 200, readyz: 200 });
    const generation = probed.engine.currentGeneration;
    const report = { generation, reconciler: 'watch test', durationMs: 1 };
    await probed.client.reportStatus({
      ...report,
      outcome: 'invalid',
      error: 'DS001 a.yaml:1:1 x',
    });
    assert.deepEqual(await codes(), { healthz: 200, readyz: 503 });
    await probed.client.reportStatus({ ...report, outcome: 'unchanged', error: null });
    assert.deepEqual(await codes(), { healthz: 200, readyz: 200 });
  });

  it('answers HEAD with the same status and no body, and every other method 405 naming GET, HEAD', async () => {
    for (const path of Object.keys(PROBES)) {
      const get = await probe(path);
      const head = await probe(path, 'HEAD');
      assert.equal(head.status, get.status, path);
      assert.equal(head.body, '', path);
      assert.equal(head.headers.get('content-length'), String(Buffer.byteLength(PROBE_BODY)));
      for (const method of ['POST', 'PUT', 'DELETE', 'PATCH']) {
        const answer = await probe(path, method);
        assert.equal(answer.status, 405, `${method} ${path}`);
        assert.equal(answer.headers.get('allow'), 'GET, HEAD', `${method} ${path}`);
        assert.equal(answer.body, PROBE_BODY, `${method} ${path}`);
      }
    }
  });

  it('says the same whatever the query and credentials; a path that only looks like a probe needs the token', async () => {
    const expected = await codes();
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...Object.keys(PROBES)),
        fc.stringMatching(/^[a-z0-9=&]{0,12}$/),
        fc.option(fc.stringMatching(/^[A-Za-z0-9 ._-]{0,30}$/), { nil: undefined }),
        async (path, query, authorization) => {
          const answer = await probe(
            `${path}${query === '' ? '' : `?${query}`}`,
            'GET',
            authorization === undefined ? {} : { authorization },
          );
          assert.equal(answer.body, PROBE_BODY);
          assert.equal(answer.status, path === '/healthz' ? expected.healthz : expected.readyz);
        },
      ),
      { numRuns: 40 },
    );
    for (const path of [
      '/readyz/',
      '/READYZ',
      '/healthz.json',
      '/v1/readyz',
      '/readyz/x',
      '/healthz%00',
    ]) {
      const answer = await probe(path);
      assert.equal(answer.status, 401, path);
      assert.notEqual(answer.body, PROBE_BODY, path);
    }
  });

  it('answers /readyz 503 while the engine drains and /healthz still 200', async () => {
    assert.equal((await codes()).readyz, 200);
    await probed.engine.shutdown();
    assert.deepEqual(await codes(), { healthz: 200, readyz: 503 });
  });
});
