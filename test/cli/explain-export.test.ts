// `domsec explain` and `domsec export crds` read schemas/ and nothing else: explain prints each
// field's type, default and description; the CRDs are structural (apiextensions.k8s.io/v1).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { explain } from '../../src/cli/explain.js';
import { customResourceDefinitions, exportCrds } from '../../src/cli/export.js';
import { CliError } from '../../src/cli/errors.js';
import { kindSchemas, type SchemaNode } from '../../src/config/schema-documents.js';
import { KINDS } from '../../src/model.js';

const FORBIDDEN = [
  '$ref',
  '$schema',
  '$id',
  'definitions',
  'oneOf',
  'anyOf',
  'allOf',
  'not',
  'if',
  'then',
  'else',
  'const',
  'propertyNames',
  'patternProperties',
  'dependencies',
];

/** Every violation of the structural-schema rules under node, as `path: reason`. */
function structuralProblems(node: Record<string, unknown>, path: string): string[] {
  const problems: string[] = [];
  if (typeof node.type !== 'string' && node['x-kubernetes-preserve-unknown-fields'] !== true) {
    problems.push(`${path}: no type`);
  }
  for (const keyword of FORBIDDEN) {
    if (keyword in node) problems.push(`${path}: ${keyword}`);
  }
  if (node.uniqueItems === true) problems.push(`${path}: uniqueItems: true`);
  if ('properties' in node && 'additionalProperties' in node) {
    problems.push(`${path}: additionalProperties with properties`);
  }
  if (typeof node.pattern === 'string' && /\(\?<?[=!]/.test(node.pattern)) {
    problems.push(`${path}: lookaround in pattern (not RE2)`);
  }
  const properties = (node.properties ?? {}) as Record<string, Record<string, unknown>>;
  for (const [name, child] of Object.entries(properties)) {
    problems.push(...structuralProblems(child, `${path}.${name}`));
  }
  if (typeof node.items === 'object' && node.items !== null) {
    problems.push(...structuralProblems(node.items as Record<string, unknown>, `${path}[]`));
  }
  if (typeof node.additionalProperties === 'object' && node.additionalProperties !== null) {
    problems.push(
      ...structuralProblems(node.additionalProperties as Record<string, unknown>, `${path}.*`),
    );
  }
  return problems;
}

/** Every field path of a spec schema: domainSecure, domainSecure.send, ... */
function fieldPaths(node: SchemaNode, prefix: string[] = []): string[][] {
  const container = node.type === 'array' && node.items !== undefined ? node.items : node;
  return Object.entries(container.properties ?? {}).flatMap(([name, child]) => [
    [...prefix, name],
    ...fieldPaths(child, [...prefix, name]),
  ]);
}

describe('domsec explain', () => {
  it('prints a field with its type, default and the description written in schemas/', () => {
    const schema = JSON.parse(
      readFileSync(new URL('../../schemas/partner-domain.schema.json', import.meta.url), 'utf8'),
    ) as SchemaNode;
    const send = schema.properties?.domainSecure?.properties?.send;
    const text = explain('PartnerDomain.domainSecure.send');
    assert.match(text, /^KIND: {5}PartnerDomain\nVERSION: {2}domsec\.io\/v1alpha1\n/);
    assert.match(text, /FIELD: {4}send <boolean>/);
    assert.match(text, /default: false/);
    const words = (send?.description ?? '').split(/\s+/).join(' ');
    assert.ok(text.split(/\s+/).join(' ').includes(words), 'the whole description');
  });

  it('lists the fields of a kind, required ones marked, and accepts any case and spec.', () => {
    const text = explain('sendconnector.spec');
    assert.match(text, /addressSpaces\t<\[\]string> -required-/);
    assert.match(text, /cost\t<integer>/);
    assert.equal(explain('SendConnector.cost'), explain('SendConnector.spec.cost'));
    assert.match(explain('Organization'), /FIELDS:\n {2}apiVersion\t<string> -required-/);
  });

  it('explains every field of every kind', () => {
    const { specs } = kindSchemas();
    for (const kind of KINDS) {
      for (const path of fieldPaths(specs[kind])) {
        assert.match(explain([kind, ...path].join('.')), /DESCRIPTION:\n {4}\S/, path.join('.'));
      }
    }
  });

  it('suggests the closest kind or field for a typo', () => {
    assert.throws(() => explain('PartnerDomian'), /did you mean PartnerDomain\?/);
    assert.throws(
      () => explain('PartnerDomain.domainSecure.sned'),
      (e: unknown) => e instanceof CliError && /did you mean send\?/.test(e.message),
    );
  });
});

describe('domsec export crds', () => {
  it('writes one apiextensions.k8s.io/v1 CRD per kind, named plural.group, in the domsec.io group', async () => {
    const text = (await exportCrds()) ?? '';
    const documents = parseAllDocuments(text).map((d) => d.toJS() as Record<string, unknown>);
    assert.equal(documents.length, KINDS.length);
    const names = customResourceDefinitions().map((crd) => crd.metadata.name);
    assert.deepEqual(names, [
      'organizations.domsec.io',
      'certificates.domsec.io',
      'trustanchors.domsec.io',
      'partnerdomains.domsec.io',
      'sendconnectors.domsec.io',
      'receiveconnectors.domsec.io',
      'tlspolicies.domsec.io',
    ]);
    for (const document of documents) {
      assert.equal(document.apiVersion, 'apiextensions.k8s.io/v1');
      assert.equal(document.kind, 'CustomResourceDefinition');
    }
  });

  it('generates structural schemas with the fields, defaults and enums of schemas/', () => {
    const { specs } = kindSchemas();
    for (const crd of customResourceDefinitions()) {
      const version = (crd.spec.versions as Record<string, unknown>[])[0] as {
        name: string;
        schema: { openAPIV3Schema: Record<string, unknown> };
      };
      assert.equal(version.name, 'v1alpha1');
      const root = version.schema.openAPIV3Schema;
      assert.deepEqual(structuralProblems(root, crd.metadata.name), []);
      const kind = (crd.spec.names as { kind: (typeof KINDS)[number] }).kind;
      const spec = (root.properties as Record<string, SchemaNode>).spec as SchemaNode;
      assert.deepEqual(
        fieldPaths(spec).map((p) => p.join('.')),
        fieldPaths(specs[kind]).map((p) => p.join('.')),
        `${kind}: the same fields as schemas/`,
      );
    }
    const partner = customResourceDefinitions()[3]?.spec.versions as {
      schema: { openAPIV3Schema: { properties: { spec: SchemaNode } } };
    }[];
    const fields = partner[0]?.schema.openAPIV3Schema.properties.spec.properties;
    assert.deepEqual(fields?.certificateNameMatch?.enum, ['domain', 'subdomain']);
    assert.equal(fields?.certificateNameMatch?.default, 'domain');
  });

  it('writes one file per kind with --out-dir', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'domsec-crds-'));
    try {
      assert.equal(await exportCrds(dir), undefined);
      const files = (await readdir(dir)).sort();
      assert.equal(files.length, KINDS.length);
      assert.match(
        await readFile(join(dir, 'partnerdomains.domsec.io.yaml'), 'utf8'),
        /^# Generated/,
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
