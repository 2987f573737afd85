// The JSON Schemas of schemas/ as plain documents, with their $refs inlined: what `domsec
// explain`, `domsec export crds` and the reference in docs/ read, so that field names,
// descriptions and defaults are written down in schemas/ only.
import { readFileSync } from 'node:fs';
import { KINDS, type Kind } from '../model.js';
import { SCHEMA_DIRECTORY, SCHEMA_FILES } from './schema.js';

/** A JSON Schema node as schemas/ writes them (draft-07, the keywords domsec uses). */
export interface SchemaNode {
  $ref?: string;
  type?: string | string[];
  title?: string;
  description?: string;
  default?: unknown;
  enum?: unknown[];
  const?: unknown;
  pattern?: string;
  format?: string;
  minimum?: number;
  maximum?: number;
  minItems?: number;
  maxItems?: number;
  minLength?: number;
  maxLength?: number;
  uniqueItems?: boolean;
  required?: string[];
  properties?: Record<string, SchemaNode>;
  additionalProperties?: boolean | SchemaNode;
  propertyNames?: SchemaNode;
  items?: SchemaNode;
  oneOf?: SchemaNode[];
  anyOf?: SchemaNode[];
  allOf?: SchemaNode[];
  [keyword: string]: unknown;
}

function readSchema(file: string): SchemaNode {
  return JSON.parse(readFileSync(new URL(file, SCHEMA_DIRECTORY), 'utf8')) as SchemaNode;
}

/** A copy of node with every $ref replaced by what it names; the node's own keywords win. */
function inline(node: SchemaNode, files: Map<string, SchemaNode>, depth = 0): SchemaNode {
  if (depth > 50) throw new Error('schemas/: $ref nesting deeper than 50');
  let merged: SchemaNode = { ...node };
  if (typeof node.$ref === 'string') {
    const [file = '', pointer = ''] = node.$ref.split('#');
    const target = pointer
      .split('/')
      .filter((part) => part !== '')
      .reduce<unknown>(
        (at, part) => (at as Record<string, unknown> | undefined)?.[part],
        files.get(file),
      ) as SchemaNode | undefined;
    if (target === undefined) throw new Error(`schemas/: unresolved $ref ${node.$ref}`);
    const own: SchemaNode = { ...node };
    delete own.$ref;
    merged = { ...inline(target, files, depth + 1), ...own };
  }
  const result: SchemaNode = {};
  for (const [keyword, value] of Object.entries(merged)) {
    if (keyword === '$schema' || keyword === '$id' || keyword === 'definitions') continue;
    if (keyword === 'properties' && value !== null && typeof value === 'object') {
      result.properties = Object.fromEntries(
        Object.entries(value as Record<string, SchemaNode>).map(([name, child]) => [
          name,
          inline(child, files, depth + 1),
        ]),
      );
    } else if (
      ['items', 'additionalProperties', 'propertyNames'].includes(keyword) &&
      value !== null &&
      typeof value === 'object'
    ) {
      result[keyword] = inline(value as SchemaNode, files, depth + 1);
    } else if (['oneOf', 'anyOf', 'allOf'].includes(keyword) && Array.isArray(value)) {
      result[keyword] = (value as SchemaNode[]).map((branch) => inline(branch, files, depth + 1));
    } else {
      result[keyword] = value;
    }
  }
  return result;
}

export interface KindSchemas {
  /** apiVersion, kind, metadata (inlined), spec left generic. */
  envelope: SchemaNode;
  specs: Record<Kind, SchemaNode>;
}

let cached: KindSchemas | undefined;

/** Every kind's spec schema and the envelope, $refs inlined. Read once per process. */
export function kindSchemas(): KindSchemas {
  if (cached !== undefined) return cached;
  const files = new Map<string, SchemaNode>();
  for (const file of ['definitions.schema.json', 'manifest.schema.json']) {
    files.set(file, readSchema(file));
  }
  for (const file of Object.values(SCHEMA_FILES)) files.set(file, readSchema(file));
  const envelope = inline({ $ref: 'manifest.schema.json#/definitions/envelope' }, files);
  const specs = Object.fromEntries(
    KINDS.map((kind) => [kind, inline(files.get(SCHEMA_FILES[kind]) as SchemaNode, files)]),
  ) as Record<Kind, SchemaNode>;
  cached = { envelope, specs };
  return cached;
}

/** The schema of a whole document of the kind: the envelope with this kind's spec. */
export function documentSchema(kind: Kind): SchemaNode {
  const { envelope, specs } = kindSchemas();
  return {
    ...envelope,
    properties: {
      ...envelope.properties,
      kind: { ...envelope.properties?.kind, enum: [kind] },
      spec: specs[kind],
    },
  };
}

/** The kind whose name matches, ignoring case (so `partnerdomain` works as kubectl's does). */
export function findKind(name: string): Kind | undefined {
  // eslint-disable-next-line no-restricted-syntax -- kind names
  return KINDS.find((kind) => kind.toLowerCase() === name.toLowerCase());
}

/** A schema's type as people read it: `string`, `[]string`, `object`, `map[string]string`. */
export function typeName(node: SchemaNode): string {
  const type = Array.isArray(node.type) ? node.type.join('|') : (node.type ?? 'any');
  if (type === 'array') return `[]${node.items === undefined ? 'any' : typeName(node.items)}`;
  if (
    type === 'object' &&
    node.properties === undefined &&
    typeof node.additionalProperties === 'object'
  ) {
    return `map[string]${typeName(node.additionalProperties)}`;
  }
  return type;
}
