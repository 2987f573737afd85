// Every field of every kind is classified for security impact: the fields of schemas/ (nested
// objects, map values and array items included) and the fields the engine reports. A field added
// without a classification fails here, naming it.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { KINDS, type JsonValue, type Kind } from '../../src/model.js';
import { describeConfig } from '../../src/objects.js';
import { ruleFor, SECURITY_FIELDS } from '../../src/reconcile/security-fields.js';
import { runtimeConfig } from '../support/runtime-config.js';

const SCHEMA_FILE: Record<Kind, string> = {
  Organization: 'organization',
  Certificate: 'certificate',
  TrustAnchor: 'trust-anchor',
  PartnerDomain: 'partner-domain',
  SendConnector: 'send-connector',
  ReceiveConnector: 'receive-connector',
  TlsPolicy: 'tls-policy',
};

interface Node {
  $ref?: string;
  properties?: Record<string, Node>;
  items?: Node;
  additionalProperties?: boolean | Node;
  oneOf?: Node[];
  anyOf?: Node[];
  allOf?: Node[];
}

const read = (name: string) =>
  JSON.parse(
    readFileSync(new URL(`../../schemas/${name}.schema.json`, import.meta.url), 'utf8'),
  ) as Node & { definitions?: Record<string, Node> };
const DEFINITIONS = read('definitions').definitions ?? {};

/** A $ref into definitions.schema.json, resolved (the schemas refer to nothing else). */
function resolve(node: Node): Node {
  if (node.$ref === undefined) return node;
  const match = /^definitions\.schema\.json#\/definitions\/(.+)$/.exec(node.$ref);
  const target = match?.[1] === undefined ? undefined : DEFINITIONS[match[1]];
  assert.ok(target !== undefined, `unresolved $ref ${node.$ref}`);
  return { ...resolve(target), ...node, $ref: undefined };
}

/**
 * Every property path under a schema node (objects, alternatives, map values, array items), but
 * objects with properties of their own: those are classified through their fields.
 */
function schemaPaths(raw: Node, prefix = ''): string[] {
  const node = resolve(raw);
  const paths: string[] = [];
  const below = (child: Node, path: string) => {
    if (resolve(child).properties === undefined) paths.push(path);
    paths.push(...schemaPaths(child, path));
  };
  for (const [name, child] of Object.entries(node.properties ?? {}))
    below(child, prefix === '' ? name : `${prefix}.${name}`);
  for (const alternative of [...(node.oneOf ?? []), ...(node.anyOf ?? []), ...(node.allOf ?? [])])
    paths.push(...schemaPaths(alternative, prefix));
  if (typeof node.additionalProperties === 'object')
    below(node.additionalProperties, `${prefix}.<key>`);
  if (node.items !== undefined) paths.push(...schemaPaths(node.items, prefix));
  return [...new Set(paths)];
}

/** A manifest field is classified by a rule on its path (or an ancestor's whole), or as `from`. */
function classified(kind: Kind, path: string): boolean {
  return (
    ruleFor(kind, path) !== undefined ||
    SECURITY_FIELDS[kind].fields.some((rule) => rule.from?.includes(path))
  );
}

function leafPaths(value: JsonValue, prefix = ''): string[] {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return [prefix];
  return Object.entries(value).flatMap(([key, item]) =>
    leafPaths(item, prefix === '' ? key : `${prefix}.${key}`),
  );
}

describe('security classification of every field', () => {
  for (const kind of KINDS) {
    it(`classifies every field of the ${kind} schema`, () => {
      const paths = schemaPaths(read(SCHEMA_FILE[kind]));
      assert.ok(paths.length > 0);
      const missing = paths.filter((path) => !classified(kind, path));
      assert.deepEqual(missing, [], `${kind}: fields without a security classification`);
    });
  }

  it('walks nested objects, map values and array items of the schemas', () => {
    const organization = schemaPaths(read('organization'));
    for (const path of ['delivery.relay.tls', 'resolver.static.<key>.host', 'admin.listen'])
      assert.ok(organization.includes(path), path);
    assert.ok(schemaPaths(read('trust-anchor')).includes('system'));
  });

  it('classifies every field the engine reports for a running configuration', () => {
    const config = runtimeConfig();
    const [anchor] = config.trustAnchors;
    assert.ok(anchor !== undefined);
    anchor.spec.crlPem = '-----BEGIN X509 CRL-----';
    config.organization.spec.delivery = {
      relay: { host: 'mbx.treyresearch.net', protocol: 'lmtp', tls: 'required' },
    };
    config.organization.spec.resolver.static = { 'adatum.com': [{ host: '127.0.0.1', port: 25 }] };
    for (const object of describeConfig(config)) {
      for (const path of leafPaths(object.spec)) {
        assert.ok(ruleFor(object.kind, path), `${object.kind}.${path} is not classified`);
      }
    }
  });

  it('has the fields being added to the schemas, each with the direction that weakens', () => {
    assert.ok(ruleFor('ReceiveConnector', 'acceptAuthoritativeDomainSenders'));
    assert.ok(ruleFor('PartnerDomain', 'requireHeaderFromDomain'));
  });
});
