// The JSON Schemas of schemas/ at work: loaded once from disk, compiled with ajv, and applied to
// each document (envelope, then the spec of its kind), filling in the schemas' defaults.
import { readFile } from 'node:fs/promises';
import { Ajv, type AnySchemaObject, type ValidateFunction } from 'ajv';
import { API_VERSION, KINDS, type Diagnostic, type Kind, type RuntimeConfig } from '../model.js';
import { SCHEMA_DIRECTORY, SCHEMA_FILES, SCHEMA_FORMATS, SHARED_SCHEMA_FILES } from '../schemas.js';
import { error } from './diagnostics.js';
import { label, type ManifestObject } from './manifest-objects.js';
import { describeSchemaErrors } from './schema-errors.js';
import type { ManifestDocument } from './yaml-documents.js';

export { SCHEMA_DIRECTORY, SCHEMA_FILES } from '../schemas.js';

export interface Validators {
  envelope: ValidateFunction;
  specs: Record<Kind, ValidateFunction>;
}

let compiled: Promise<Validators> | undefined;

/** The compiled schemas, shared by every load in the process. */
export function schemaValidators(): Promise<Validators> {
  compiled ??= compileSchemas().catch((cause: unknown) => {
    compiled = undefined; // let a later load try again (and report again)
    throw cause;
  });
  return compiled;
}

async function compileSchemas(): Promise<Validators> {
  const ajv = new Ajv({
    allErrors: true,
    useDefaults: true,
    strict: true,
    // oneOf branches (TrustAnchor) require fields that the parent schema defines.
    strictRequired: false,
    verbose: true, // errors carry their schema: titles and property names make the messages
    formats: SCHEMA_FORMATS,
  });
  for (const file of [...SHARED_SCHEMA_FILES, ...Object.values(SCHEMA_FILES)]) {
    const text = await readFile(new URL(file, SCHEMA_DIRECTORY), 'utf8');
    ajv.addSchema(JSON.parse(text) as AnySchemaObject);
  }
  const get = (ref: string): ValidateFunction => {
    const validate = ajv.getSchema(ref);
    if (validate === undefined)
      throw new Error(`schema ${ref} is missing from ${SCHEMA_DIRECTORY}`);
    return validate;
  };
  const specs = Object.fromEntries(KINDS.map((kind) => [kind, get(SCHEMA_FILES[kind])]));
  return {
    envelope: get('manifest.schema.json#/definitions/envelope'),
    specs: specs as Record<Kind, ValidateFunction>,
  };
}

export interface CheckedDocument {
  /** Present when kind and name could be read: the object exists, valid or not. */
  object?: ManifestObject;
  /** The spec passed its kind's schema (and got its defaults). */
  valid: boolean;
  diagnostics: Diagnostic[];
}

/**
 * Checks one document against manifest.schema.json's envelope and its kind's spec schema, with
 * the validators of schemaValidators() (synchronous: a load checks tens of thousands).
 */
export function checkDocument(document: ManifestDocument, validators: Validators): CheckedDocument {
  const data = document.data;
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    return {
      valid: false,
      diagnostics: [
        error(
          'SCHEMA',
          document.at([]),
          'this document is not a manifest: expected a mapping with apiVersion, kind, metadata and spec',
          `start from \`apiVersion: ${API_VERSION}\``,
        ),
      ],
    };
  }
  const fields = data as Record<string, unknown>;
  const kind = (KINDS as readonly unknown[]).includes(fields.kind)
    ? (fields.kind as Kind)
    : undefined;
  const metadata = fields.metadata as Record<string, unknown> | undefined;
  const name = typeof metadata?.name === 'string' ? metadata.name : undefined;
  const subject = kind === undefined ? 'this document' : label({ kind, name: name ?? '(unnamed)' });

  const diagnostics: Diagnostic[] = [];
  if (!validators.envelope(data)) {
    diagnostics.push(
      ...describeSchemaErrors(validators.envelope.errors ?? [], document, [], subject),
    );
  }
  let valid = false;
  const spec = fields.spec;
  if (kind !== undefined && typeof spec === 'object' && spec !== null && !Array.isArray(spec)) {
    const validate = validators.specs[kind];
    valid = validate(spec);
    if (!valid)
      diagnostics.push(...describeSchemaErrors(validate.errors ?? [], document, ['spec'], subject));
  }
  valid &&= diagnostics.length === 0;
  const object =
    kind !== undefined && name !== undefined ? { kind, name, spec, document } : undefined;
  return { ...(object === undefined ? {} : { object }), valid, diagnostics };
}

/**
 * A configuration an older domsec applied (kept in a state directory or its history), with the
 * schema defaults of fields added since filled in, as loading its manifests today would: the
 * engine runs it without knowing which version wrote it. Only the kinds whose compiled spec is
 * the manifest's spec are filled; nothing already there changes.
 */
export async function withSchemaDefaults(config: RuntimeConfig): Promise<RuntimeConfig> {
  const { specs } = await schemaValidators();
  const filled = structuredClone(config);
  specs.Organization(filled.organization.spec);
  for (const { spec } of filled.partners) specs.PartnerDomain(spec);
  for (const { spec } of filled.sendConnectors) specs.SendConnector(spec);
  for (const { spec } of filled.receiveConnectors) specs.ReceiveConnector(spec);
  for (const { spec } of filled.tlsPolicies ?? []) specs.TlsPolicy(spec);
  return filled;
}
