// The JSON Schemas as files that editors and other tools use directly: well-formed, documented,
// closed, and able to check the examples on their own through manifest.schema.json.
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { Ajv, type AnySchemaObject } from 'ajv';
import { parseAllDocuments } from 'yaml';

const REPOSITORY = fileURLToPath(new URL('../../', import.meta.url));
const SCHEMAS = join(REPOSITORY, 'schemas');

async function schemaFiles(): Promise<Map<string, AnySchemaObject>> {
  const names = (await readdir(SCHEMAS)).filter((name) => name.endsWith('.schema.json')).sort();
  const entries = await Promise.all(
    names.map(
      async (name) =>
        [name, JSON.parse(await readFile(join(SCHEMAS, name), 'utf8')) as AnySchemaObject] as const,
    ),
  );
  return new Map(entries);
}

async function yamlFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true });
  return (
    entries
      .filter((e) => e.isFile() && /\.ya?ml$/.test(e.name))
      .map((e) => join(e.parentPath ?? e.path, e.name))
      // As the loader does: hidden files and folders (.github/workflows/*.yml) are not manifests.
      .filter(
        (path) =>
          !relative(dir, path)
            .split(sep)
            .some((part) => part.startsWith('.')),
      )
      .sort()
  );
}

/** Calls visit on every subschema under `properties` (recursively), with its JSON path. */
function eachProperty(
  schema: unknown,
  path: string,
  visit: (property: AnySchemaObject, path: string) => void,
): void {
  if (typeof schema !== 'object' || schema === null) return;
  const node = schema as AnySchemaObject;
  for (const [name, property] of Object.entries(
    (node.properties ?? {}) as Record<string, AnySchemaObject>,
  )) {
    visit(property, `${path}.${name}`);
    eachProperty(property, `${path}.${name}`, visit);
  }
  for (const key of ['items', 'additionalProperties', 'then'])
    eachProperty(node[key], `${path}/${key}`, visit);
  for (const key of ['definitions', 'allOf', 'oneOf']) {
    for (const [name, sub] of Object.entries((node[key] ?? {}) as Record<string, unknown>))
      eachProperty(sub, `${path}/${key}/${name}`, visit);
  }
}

describe('schemas/', () => {
  it('has one draft-07 schema per kind, each with its file name as $id', async () => {
    const schemas = await schemaFiles();
    assert.deepEqual(
      [...schemas.keys()],
      [
        'certificate.schema.json',
        'definitions.schema.json',
        'manifest.schema.json',
        'organization.schema.json',
        'partner-domain.schema.json',
        'receive-connector.schema.json',
        'send-connector.schema.json',
        'tls-policy.schema.json',
        'trust-anchor.schema.json',
      ],
    );
    for (const [name, schema] of schemas) {
      assert.equal(schema.$schema, 'http://json-schema.org/draft-07/schema#', name);
      // A relative $id resolves against the file's own location, in ajv and in editors alike.
      assert.equal(schema.$id, name);
      assert.equal(typeof schema.description, 'string', name);
    }
  });

  it('describes every field, and closes every mapping to unknown fields', async () => {
    for (const [name, schema] of await schemaFiles()) {
      eachProperty(schema, name, (property, path) => {
        assert.equal(typeof property.description, 'string', `${path} has no description`);
        if (property.type === 'object' && property.properties !== undefined) {
          assert.equal(property.additionalProperties, false, `${path} is open`);
        }
      });
      if (name !== 'definitions.schema.json' && name !== 'manifest.schema.json') {
        assert.equal(schema.additionalProperties, false, `${name} is open`);
      }
    }
  });

  it('checks every example and starter manifest on its own, as an editor would', async () => {
    const ajv = new Ajv({ allErrors: true, strict: false });
    for (const schema of (await schemaFiles()).values()) ajv.addSchema(schema);
    const validate = ajv.getSchema('manifest.schema.json');
    assert.ok(validate);
    const files = [
      ...(await yamlFiles(join(REPOSITORY, 'examples'))),
      ...(await yamlFiles(join(REPOSITORY, 'manifests'))),
    ].filter(
      // examples/kubernetes holds Kubernetes objects; its domsec manifests are in manifests/ folders.
      (file) => !/^examples\/kubernetes\/(?!(.+\/)?manifests\/)/.test(relative(REPOSITORY, file)),
    );
    assert.ok(files.length >= 10);
    for (const file of files) {
      const text = await readFile(file, 'utf8');
      const modeline = /^# yaml-language-server: \$schema=(\S+)\n/.exec(text);
      assert.ok(modeline, `${file} starts with the modeline`);
      assert.equal(
        resolve(dirname(file), modeline[1] ?? ''),
        join(SCHEMAS, 'manifest.schema.json'),
        file,
      );
      for (const document of parseAllDocuments(text) as ReturnType<typeof parseAllDocuments> &
        unknown[]) {
        const data: unknown = document.toJS();
        assert.ok(
          validate(data),
          `${relative(REPOSITORY, file)}: ${JSON.stringify(validate.errors)}`,
        );
      }
    }
    // The kind selects the spec schema: a SendConnector's misspelt field is caught by the editor too.
    const wrong = {
      apiVersion: 'domsec.io/v1alpha1',
      kind: 'SendConnector',
      metadata: { name: 'x' },
      spec: { adressSpaces: ['a.com'] },
    };
    assert.equal(validate(wrong), false);
  });
});
