// Hostile admin API bodies: every route with a body decodes it against its schema first, so a
// wrong body is a 4xx naming the field (a JSON pointer and what was expected), the engine never
// sees it, and no answer is a 5xx or a TypeError's text. Generated with fast-check, on a real engine.
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import type { ErrorResponse } from '../../src/control/protocol.js';
import { BODY_RULES, type BodyRoute } from '../../src/control/request-schemas.js';
import type { JsonValue } from '../../src/model.js';
import { runtimeConfigSchemas } from '../../src/runtime-config-schema.js';
import { startEngine, type RunningEngine } from '../support/engine.js';
import { freePort } from '../support/ports.js';
import { runtimeConfig } from '../support/runtime-config.js';
import { tempDir } from '../support/tmp.js';

const PATHS: Record<BodyRoute, string> = {
  apply: '/v1/apply',
  rollback: '/v1/rollback',
  status: '/v1/status',
  retry: '/v1/queues/retry',
  suspend: '/v1/queues/suspend',
  resume: '/v1/queues/resume',
};
const ROUTES = Object.keys(PATHS) as BodyRoute[];

interface Answer {
  status: number;
  error: ErrorResponse['error'];
  text: string;
}

/** Every property name any request schema knows: an added key outside them is always unknown. */
function knownNames(): Set<string> {
  const names = new Set<string>();
  const walk = (node: unknown): void => {
    if (Array.isArray(node)) return node.forEach(walk);
    if (typeof node !== 'object' || node === null) return;
    for (const [keyword, value] of Object.entries(node)) {
      if (keyword === 'properties' && typeof value === 'object' && value !== null)
        for (const name of Object.keys(value)) names.add(name);
      walk(value);
    }
  };
  const { referenced, runtimeConfig: config } = runtimeConfigSchemas();
  walk([...referenced, config, ...Object.values(BODY_RULES).map((rule) => rule.schema)]);
  return names;
}

/** The fields a valid body of the route cannot do without (schema defaults fill the others). */
function isRequired(route: BodyRoute, pointer: string, key: string): boolean {
  switch (route) {
    case 'apply':
      if (key === 'fingerprint') return pointer.includes('/certificates/');
      if (key === 'domain') return pointer.includes('/partners/');
      return [
        'config',
        'organization',
        'certificates',
        'trustAnchors',
        'partners',
        'sendConnectors',
        'receiveConnectors',
        'name',
        'spec',
        'hostname',
        'acceptedDomains',
        'certificate',
        'services',
        'certPem',
        'chainPem',
        'keyPem',
        'system',
        'pem', // the anchors here are not the system store
        'addressSpaces',
        'bindings',
        'requireTls',
      ].includes(key);
    case 'rollback':
      return key === 'generation';
    case 'status':
      return ['outcome', 'generation', 'error', 'reconciler'].includes(key);
    case 'retry':
      return false;
    case 'suspend':
    case 'resume':
      return key === 'domain';
  }
}

/** Every node of a JSON value with its JSON pointer, the root ("") first. */
function nodes(value: JsonValue, pointer = ''): [string, JsonValue][] {
  const found: [string, JsonValue][] = [[pointer, value]];
  if (Array.isArray(value))
    value.forEach((item, index) => found.push(...nodes(item, `${pointer}/${index}`)));
  else if (typeof value === 'object' && value !== null)
    for (const [key, item] of Object.entries(value))
      found.push(...nodes(item, `${pointer}/${escape(key)}`));
  return found;
}

function escape(key: string): string {
  return key.replace(/~/g, '~0').replace(/\//g, '~1');
}

function jsonType(value: JsonValue): string {
  return value === null ? 'null' : Array.isArray(value) ? 'array' : typeof value;
}

/** Sets a member as data, so that `__proto__` is a key like any other and never a prototype. */
function define(target: object, key: string, value: unknown): void {
  Object.defineProperty(target, key, {
    value,
    enumerable: true,
    writable: true,
    configurable: true,
  });
}

/** The keys of a JSON pointer, unescaped. */
function keysOf(pointer: string): string[] {
  if (pointer === '') return [];
  return pointer
    .slice(1)
    .split('/')
    .map((key) => key.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function nodeAt(body: JsonValue, keys: readonly string[]): Record<string, unknown> {
  let node: unknown = body;
  for (const key of keys) node = (node as Record<string, unknown>)[key];
  return node as Record<string, unknown>;
}

/** A copy of body with the node at pointer replaced (or, for undefined, removed). */
function replaced(body: JsonValue, pointer: string, value: JsonValue | undefined): JsonValue {
  if (pointer === '') return value ?? null;
  const copy = structuredClone(body);
  const keys = keysOf(pointer);
  const last = keys.pop() ?? '';
  const parent = nodeAt(copy, keys);
  if (value === undefined) Reflect.deleteProperty(parent, last);
  else define(parent, last, value);
  return copy;
}

/** A copy of body with a member added to the object at pointer. */
function added(body: JsonValue, pointer: string, key: string, value: JsonValue): JsonValue {
  const copy = structuredClone(body);
  define(nodeAt(copy, keysOf(pointer)), key, value);
  return copy;
}

/** One wrong body: its text, and the pointer of what was made wrong (undefined: the body). */
interface WrongBody {
  what: string;
  text: string;
  contentType: string;
  pointer?: string;
}

const nested = (depth: number): JsonValue => (depth === 0 ? 0 : [nested(depth - 1)]);

/** The wrong bodies of one route, made from a valid one. */
function wrongBodies(
  route: BodyRoute,
  valid: JsonValue,
  known: Set<string>,
): fc.Arbitrary<WrongBody> {
  const all = nodes(valid);
  const objects = all.filter(([, v]) => jsonType(v) === 'object');
  const deletable = objects.flatMap(([pointer, v]) =>
    Object.keys(v as object)
      .filter((key) => isRequired(route, pointer, key))
      .map((key) => `${pointer}/${escape(key)}`),
  );
  const json = (what: string, body: JsonValue, pointer?: string): WrongBody => ({
    what,
    text: JSON.stringify(body),
    contentType: 'application/json',
    ...(pointer === undefined ? {} : { pointer }),
  });
  const anyValue = fc.oneof(
    fc.string({ maxLength: 20 }),
    fc.integer(),
    fc.double({ noNaN: true, noDefaultInfinity: true }),
    fc.boolean(),
    fc.array(fc.integer(), { maxLength: 3 }),
    fc.dictionary(fc.string({ maxLength: 5 }), fc.integer(), { maxKeys: 2 }),
  );
  // Small routes take 16 KiB: their huge arrays stay under it (413 is tested on its own).
  const huge = route === 'apply' || route === 'status' ? 200_000 : 2_500;
  const choices: fc.Arbitrary<WrongBody>[] = [
    // a value of another type anywhere (null is a value some fields take)
    fc
      .tuple(fc.constantFrom(...all), anyValue)
      .filter(([[, was], value]) => jsonType(value) !== jsonType(was))
      .map(([[pointer], value]) => json('wrong type', replaced(valid, pointer, value), pointer)),
    // an unknown field, prototype-pollution keys first among them
    fc
      .tuple(
        fc.constantFrom(...objects),
        fc.oneof(
          fc.constantFrom('__proto__', 'constructor', 'prototype', 'toString', 'isAdmin'),
          fc.string({ minLength: 1, maxLength: 12 }),
        ),
        fc.oneof(
          fc.integer(),
          fc.boolean(),
          fc.string({ maxLength: 8 }),
          fc.constant({ polluted: true }),
        ),
      )
      .filter(([[, object], key]) => !known.has(key) && !Object.hasOwn(object as object, key))
      .map(([[pointer], key, value]) =>
        json('extra field', added(valid, pointer, key, value), `${pointer}/${escape(key)}`),
      ),
    // a huge array where anything is
    fc
      .tuple(
        fc.constantFrom(...all),
        fc.integer({ min: 500, max: huge }),
        fc.constantFrom(0, true, null),
      )
      .map(([[pointer], length, item]) =>
        json('huge array', replaced(valid, pointer, Array<JsonValue>(length).fill(item)), pointer),
      ),
    // deep nesting where anything is (over the limit the body as a whole is refused)
    fc
      .tuple(fc.constantFrom(...all), fc.integer({ min: 2, max: 2_000 }))
      .map(([[pointer], depth]) =>
        json('deep nesting', replaced(valid, pointer, nested(depth)), pointer),
      ),
    // not JSON, or not said to be
    fc
      .string({ minLength: 1, maxLength: 40 })
      .filter((text) => {
        try {
          JSON.parse(text);
          return false;
        } catch {
          return true;
        }
      })
      .map((text) => ({ what: 'not JSON', text, contentType: 'application/json' })),
    fc
      .constantFrom(
        'text/plain',
        'application/x-www-form-urlencoded',
        'multipart/form-data',
        'application/json; charset=latin1',
        'application/jsonx',
      )
      .map((contentType) => ({
        what: 'wrong content type',
        text: JSON.stringify(valid),
        contentType,
      })),
  ];
  if (deletable.length > 0)
    choices.push(
      fc
        .constantFrom(...deletable)
        .map((pointer) => json('missing field', replaced(valid, pointer, undefined), pointer)),
    );
  return fc.oneof(...choices);
}

/** One side's pointer is the other's, or above it: the answer names the field made wrong. */
function related(a: string, b: string): boolean {
  const above = (high: string, low: string) => low === high || low.startsWith(`${high}/`);
  return above(a, b) || above(b, a);
}

describe('admin API request bodies', () => {
  let state: Awaited<ReturnType<typeof tempDir>>;
  let running: RunningEngine;
  let port: number;
  let valid: Record<BodyRoute, JsonValue>;

  before(async () => {
    state = await tempDir();
    running = await startEngine(state.path);
    port = await freePort();
    const config = runtimeConfig({ receiveConnector: { bindings: [`127.0.0.1:${port}`] } });
    await running.client.apply(config);
    valid = {
      apply: { config: config as unknown as JsonValue, baseGeneration: 1 },
      rollback: { generation: 1, baseGeneration: 1 },
      status: {
        outcome: 'failed',
        generation: 1,
        error: 'boom',
        reconciler: 'test',
        durationMs: 5,
      },
      retry: { domain: 'adatum.com' },
      suspend: { domain: 'adatum.com' },
      resume: { domain: 'adatum.com' },
    };
  });
  after(async () => {
    await running.stop();
    await state.remove();
  });

  async function post(
    path: string,
    text: string,
    contentType = 'application/json',
  ): Promise<Answer> {
    const response = await fetch(`${running.control.url}${path}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${running.token}`, 'content-type': contentType },
      body: text,
      signal: AbortSignal.timeout(10_000),
    });
    const answer = await response.text();
    return {
      status: response.status,
      error: (JSON.parse(answer) as ErrorResponse).error,
      text: answer,
    };
  }

  /** What a refused body may not change. */
  const snapshot = async () => ({
    generation: running.engine.currentGeneration,
    listeners: running.engine.state().listeners,
    status: (await running.client.status()).lastAttemptOutcome,
    suspended: running.engine.suspendedQueues(),
    prototype: Object.getOwnPropertyNames(Object.prototype).sort(),
  });

  it('refuses an apply whose config is not a RuntimeConfig with 400 at the field, never a TypeError', async () => {
    const before = await snapshot();
    for (const [config, field] of [
      [{ ...runtimeConfig(), organization: 1 }, '/config/organization'],
      [{ ...runtimeConfig(), partners: {} }, '/config/partners'],
      [
        { ...runtimeConfig(), receiveConnectors: [{ name: 'x', spec: { bindings: 'a' } }] },
        '/config/receiveConnectors/0/spec/bindings',
      ],
    ] as const) {
      const answer = await post('/v1/apply', JSON.stringify({ config }));
      assert.equal(answer.status, 400, answer.text);
      assert.equal(answer.error.field, field);
      assert.ok(answer.error.message.startsWith(`${field}: expected `), answer.error.message);
      assert.doesNotMatch(answer.text, /TypeError|Cannot read|undefined/);
    }
    assert.deepEqual(await snapshot(), before);
    // A well-formed configuration the engine cannot run is the engine's refusal (and reported).
    const unrunnable = { ...runtimeConfig(), certificates: [] };
    const answer = await post('/v1/apply', JSON.stringify({ config: unrunnable }));
    assert.equal(answer.status, 422, answer.text);
    assert.equal(running.engine.currentGeneration, 1);
  });

  it('refuses a status report that is not one: {} names outcome, a wrong generation names generation', async () => {
    const before = await running.client.status();
    const empty = await post('/v1/status', '{}');
    assert.equal(empty.status, 400);
    assert.equal(empty.error.field, '/outcome');
    const wrong = await post(
      '/v1/status',
      JSON.stringify({ outcome: 'applied', generation: 'seven', error: null, reconciler: 'x' }),
    );
    assert.equal(wrong.status, 400);
    assert.equal(wrong.error.field, '/generation');
    assert.equal(wrong.error.expected, 'an integer');
    assert.deepEqual(await running.client.status(), before, 'nothing was reported');
  });

  it('answers 415 for a body that is not application/json, 400 for broken JSON, 413 over the limit', async () => {
    const plain = await post('/v1/queues/retry', '{}', 'text/plain');
    assert.equal(plain.status, 415);
    assert.equal(plain.error.code, 'unsupported-media-type');
    const broken = await post('/v1/rollback', '{"generation": 1');
    assert.equal(broken.status, 400);
    assert.equal(broken.error.field, '');
    const tooDeep = await post('/v1/apply', `${'['.repeat(1_000_000)}${']'.repeat(1_000_000)}`);
    assert.equal(tooDeep.status, 400);
    assert.match(tooDeep.error.message, /nests deeper than 32/);
    // Over the status route's limit by its Content-Length alone: refused before it is read.
    const answer = await new Promise<string>((resolve, reject) => {
      const url = new URL(running.control.url);
      const socket = connect(Number(url.port), url.hostname);
      let text = '';
      socket.setTimeout(5_000, () => reject(new Error('no answer in 5 s')));
      socket.on('data', (chunk) => (text += chunk.toString()));
      socket.on('close', () => resolve(text));
      socket.on('error', reject);
      socket.write(
        `POST /v1/status HTTP/1.1\r\nHost: admin\r\nAuthorization: Bearer ${running.token}\r\n` +
          `Content-Type: application/json\r\nContent-Length: ${5 * 1024 * 1024}\r\n\r\n{"outcome":`,
      );
    });
    assert.match(answer, /^HTTP\/1\.1 413 /);
    assert.match(answer, /too-large/);
  });

  it('answers every generated wrong body on every route with a 4xx naming the field, and changes nothing', async () => {
    const before = await snapshot();
    const known = knownNames();
    let requests = 0;
    const seen = new Map<string, number>();
    for (const route of ROUTES) {
      await fc.assert(
        fc.asyncProperty(wrongBodies(route, valid[route], known), async (wrong) => {
          requests += 1;
          seen.set(wrong.what, (seen.get(wrong.what) ?? 0) + 1);
          const answer = await post(PATHS[route], wrong.text, wrong.contentType);
          const context = `${route} ${wrong.what} at ${wrong.pointer ?? '(body)'}: ${answer.text.slice(0, 300)}`;
          assert.ok([400, 413, 415].includes(answer.status), context);
          assert.doesNotMatch(answer.text, /TypeError|ReferenceError|\n\s+at /, context);
          if (answer.status !== 400) return;
          const { field, message } = answer.error;
          assert.equal(typeof field, 'string', context);
          assert.ok(message.startsWith(field === '' ? '(the body)' : `${field ?? ''}`), context);
          if (wrong.pointer !== undefined) assert.ok(related(field ?? '', wrong.pointer), context);
        }),
        { numRuns: route === 'apply' ? 150 : 60, seed: 20261207 },
      );
    }
    assert.deepEqual(await snapshot(), before, 'the engine is as it was');
    console.log(
      `# admin API: ${requests} wrong bodies refused (${[...seen].map(([w, n]) => `${w} ${n}`).join(', ')})`,
    );
  });
});

describe('admin API: a resolver route for a domain named like a prototype member', () => {
  it('applies resolver.static for `constructor` as the data it is', async () => {
    const state = await tempDir();
    const running = await startEngine(state.path);
    try {
      const config = runtimeConfig({
        organization: {
          resolver: { servers: [], static: { constructor: [{ host: '127.0.0.1', port: 25 }] } },
        },
      });
      const result = await running.client.apply(config);
      assert.equal(result.generation, 1);
      const organization = running.engine.state().objects.find((o) => o.kind === 'Organization');
      assert.deepEqual(
        (organization?.spec.resolver as { static: Record<string, unknown> }).static.constructor,
        [{ host: '127.0.0.1', port: 25 }],
      );
    } finally {
      await running.stop();
      await state.remove();
    }
  });
});
