// The admin API's route table, tested over the table itself: every route refuses a request
// without the bearer token (so a route added later is covered without editing this file), a known
// path asked with a method it does not answer is 405 naming the ones it does, and an unknown path
// is 404. On a real engine over a real socket.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { ErrorResponse } from '../../src/control/protocol.js';
import { ROUTES } from '../../src/control/server.js';
import { startEngine, type RunningEngine } from '../support/engine.js';
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
