// The tests' RuntimeConfig takes its defaults from the runtime config schema: every property that
// has a default there is filled in, and the helper's own configuration differs from the defaults
// only where it says so.
import assert from 'node:assert/strict';
import { isDeepStrictEqual } from 'node:util';
import { describe, it } from 'node:test';
import type { RuntimeConfig } from '../../src/model.js';
import { RUNTIME_CONFIG_SCHEMA_ID, runtimeConfigSchemas } from '../../src/runtime-config-schema.js';
import { receiveConnector, runtimeConfig, sendConnector } from './runtime-config.js';
import { withRuntimeDefaults, withSpecDefaults } from './schema-defaults.js';

type Node = Record<string, unknown>;

/** A property with a default: its path in a RuntimeConfig ('[]' for a list's items). */
interface Defaulted {
  path: string[];
  value: unknown;
}

/** Every property with a default in the runtime config schema, read from the documents. */
function defaultedProperties(): Defaulted[] {
  const { referenced, runtimeConfig: root } = runtimeConfigSchemas();
  const documents = new Map([...referenced, root].map((d) => [String(d.$id), d as Node]));
  const resolve = (ref: string, base: string): { node: Node; base: string } => {
    const [file = '', pointer = ''] = ref.split('#');
    const id = file === '' ? base : file;
    let node = documents.get(id);
    for (const part of pointer.split('/').filter((p) => p !== ''))
      node = (node as Node | undefined)?.[part] as Node | undefined;
    assert.ok(node !== undefined, `${ref} resolves`);
    return { node, base: id };
  };
  const found: Defaulted[] = [];
  const walk = (node: Node, path: string[], base: string, depth: number): void => {
    assert.ok(depth < 30, `the schema nests too deep at ${path.join('.')}`);
    if (typeof node.$ref === 'string') {
      const target = resolve(node.$ref, base);
      walk(target.node, path, target.base, depth + 1);
    }
    for (const key of ['allOf', 'anyOf', 'oneOf'])
      for (const branch of (node[key] as Node[] | undefined) ?? [])
        walk(branch, path, base, depth + 1);
    for (const key of ['if', 'then', 'else'])
      if (typeof node[key] === 'object') walk(node[key] as Node, path, base, depth + 1);
    for (const [name, child] of Object.entries((node.properties as Record<string, Node>) ?? {})) {
      if (child.default !== undefined) found.push({ path: [...path, name], value: child.default });
      walk(child, [...path, name], base, depth + 1);
    }
    if (typeof node.items === 'object') walk(node.items as Node, [...path, '[]'], base, depth + 1);
  };
  walk(root as Node, [], RUNTIME_CONFIG_SCHEMA_ID, 0);
  return found;
}

/** The value at path; a list's first item for '[]'. */
function at(value: unknown, path: readonly string[]): unknown {
  return path.reduce<unknown>(
    (node, part) =>
      node === undefined || node === null ? undefined : (node as Node)[part === '[]' ? 0 : part],
    value,
  );
}

/** A configuration with everything on the way to path present (empty) and nothing else. */
function skeleton(path: readonly string[]): RuntimeConfig {
  // The holder of path[0]: a list of one holder for '[]', an object for a name, empty at the end.
  const holder = (rest: readonly string[]): unknown => {
    const [part, ...next] = rest;
    if (part === undefined || next.length === 0) return {};
    return part === '[]' ? [holder(next)] : { [part]: holder(next) };
  };
  return holder(path) as RuntimeConfig;
}

/** Whether value holds the default: equal, or for an object default, holding each of its fields. */
function holds(value: unknown, defaultValue: unknown): boolean {
  if (typeof defaultValue === 'object' && defaultValue !== null && !Array.isArray(defaultValue)) {
    return (
      typeof value === 'object' &&
      value !== null &&
      Object.entries(defaultValue).every(([key, field]) => holds((value as Node)[key], field))
    );
  }
  return isDeepStrictEqual(value, defaultValue);
}

/** Where the helper's configuration differs from the defaults on purpose (its doc says so). */
const CHOSEN = [
  'organization.spec.resolver.servers',
  'organization.spec.admin.listen',
  'partners.[].spec.domainSecure.send',
  'partners.[].spec.domainSecure.receive',
  'partners.[].spec.trustAnchors',
  'receiveConnectors.[].spec.remoteIPRanges',
  'receiveConnectors.[].spec.domainSecure',
  'receiveConnectors.[].spec.maxMessageSize',
  'sendConnectors.[].spec.domainSecure',
  'sendConnectors.[].spec.maxMessageSize',
];

describe('the tests’ RuntimeConfig defaults', () => {
  const defaults = defaultedProperties();
  const name = (d: Defaulted) => d.path.join('.');

  it('reads every default of the schema, nested ones included', () => {
    // The walk itself is checked: fields of every kind with a default, through $ref and allOf.
    for (const expected of [
      'organization.spec.queue.retry',
      'organization.spec.delivery.relay.tls',
      'partners.[].spec.certificateNameMatch',
      'receiveConnectors.[].spec.maxInboundConnection',
      'sendConnectors.[].spec.routing',
    ])
      assert.ok(
        defaults.some((d) => name(d) === expected),
        expected,
      );
    assert.ok(defaults.length >= 30, `${defaults.length} defaults`);
  });

  it('fills in each default the schema has, wherever the object that holds it is present', () => {
    for (const defaulted of defaults) {
      const filled = withRuntimeDefaults(skeleton(defaulted.path));
      assert.ok(
        holds(at(filled, defaulted.path), defaulted.value),
        `${name(defaulted)}: ${JSON.stringify(at(filled, defaulted.path))}, the schema says ${JSON.stringify(defaulted.value)}`,
      );
    }
  });

  it('leaves what a configuration says, and does not change the configuration it was given', () => {
    const written = skeleton(['receiveConnectors', '[]', 'spec', 'maxMessageSize']);
    const spec = { bindings: ['127.0.0.1:0'], maxMessageSize: '1KB', requireTls: true };
    const filled = withSpecDefaults<Record<string, unknown>>('ReceiveConnector', spec);
    assert.equal(filled.maxMessageSize, '1KB');
    assert.equal(filled.maxRecipientsPerMessage, 200);
    assert.deepEqual(Object.keys(spec), ['bindings', 'maxMessageSize', 'requireTls']);
    withRuntimeDefaults(written);
    assert.deepEqual(at(written, ['receiveConnectors', '[]', 'spec']), {});
  });

  it('gives runtimeConfig() and its builders every default but the ones it chooses', () => {
    const config = runtimeConfig({
      sendConnectors: [sendConnector('to-partners')],
      receiveConnectors: [receiveConnector('from-partners')],
    });
    let checked = 0;
    for (const defaulted of defaults) {
      if (at(config, defaulted.path.slice(0, -1)) === undefined) continue; // e.g. no relay here
      const value = at(config, defaulted.path);
      if (CHOSEN.includes(name(defaulted))) {
        assert.ok(!holds(value, defaulted.value), `${name(defaulted)} is chosen, not the default`);
      } else {
        assert.ok(holds(value, defaulted.value), `${name(defaulted)}: ${JSON.stringify(value)}`);
        checked += 1;
      }
    }
    assert.ok(checked >= 20, `${checked} defaults checked`);
  });
});
