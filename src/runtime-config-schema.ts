// The JSON Schema of a RuntimeConfig (what compile makes and the admin API's apply takes), composed
// from the kinds' own schemas in schemas/: a spec the engine runs is its manifest spec with the
// defaults filled in, except where compile turns files into their contents (certificates, anchors).
import { readFileSync } from 'node:fs';
import { SCHEMA_DIRECTORY, SCHEMA_FILES, SHARED_SCHEMA_FILES } from './schemas.js';

/** A JSON Schema document as ajv takes it. */
export type SchemaDocument = Record<string, unknown>;

export const RUNTIME_CONFIG_SCHEMA_ID = 'runtime-config.schema.json';

export interface RuntimeConfigSchemas {
  /** schemas/*.schema.json as written: the documents the composed schema refers to by $id. */
  referenced: SchemaDocument[];
  /** The RuntimeConfig itself ($id runtime-config.schema.json). */
  runtimeConfig: SchemaDocument;
}

let cached: RuntimeConfigSchemas | undefined;

/** Read once per process from schemas/ beside src/ (or dist/). */
export function runtimeConfigSchemas(): RuntimeConfigSchemas {
  if (cached !== undefined) return cached;
  const files = new Map(
    [...SHARED_SCHEMA_FILES, ...Object.values(SCHEMA_FILES)].map((file) => [
      file,
      JSON.parse(readFileSync(new URL(file, SCHEMA_DIRECTORY), 'utf8')) as SchemaDocument,
    ]),
  );
  const certificate = files.get(SCHEMA_FILES.Certificate)?.properties as
    Record<string, SchemaDocument> | undefined;
  if (certificate?.services === undefined)
    throw new Error(`${SCHEMA_FILES.Certificate} has no services in ${SCHEMA_DIRECTORY.href}`);
  // Compile writes services out, and a default below a $ref would be ignored (ajv refuses one).
  const { default: _default, ...services } = certificate.services;
  cached = { referenced: [...files.values()], runtimeConfig: runtimeConfig(services) };
  return cached;
}

const ref = (target: string) => ({ $ref: target });

/** { name, spec }: how each object travels, named as its manifest's metadata.name. */
const named = (spec: SchemaDocument): SchemaDocument => ({
  type: 'object',
  additionalProperties: false,
  required: ['name', 'spec'],
  properties: { name: ref('definitions.schema.json#/definitions/objectName'), spec },
});

const list = (item: SchemaDocument): SchemaDocument => ({ type: 'array', items: item });

/** A connector's spec: requireTls is written out by compile (it follows domainSecure there). */
const connector = (file: string): SchemaDocument => ({
  type: 'object',
  allOf: [ref(file)],
  required: ['requireTls'],
});

const PEM_CERTIFICATE = {
  type: 'string',
  title: 'a PEM certificate (-----BEGIN CERTIFICATE----- ... -----END CERTIFICATE-----)',
  pattern: '^\\s*-----BEGIN CERTIFICATE-----',
};

const FINGERPRINT = {
  type: 'string',
  title: 'a SHA-256 fingerprint as 32 upper-case hex pairs joined by colons',
  pattern: '^[0-9A-F]{2}(?::[0-9A-F]{2}){31}$',
};

/** compile's CertificateSpec: the files' contents in place of certFile, keyFile and chainFile. */
const certificateSpec = (services: SchemaDocument): SchemaDocument => ({
  type: 'object',
  additionalProperties: false,
  required: ['services', 'certPem', 'chainPem', 'keyPem', 'fingerprint'],
  properties: {
    services,
    certPem: PEM_CERTIFICATE,
    chainPem: list(PEM_CERTIFICATE),
    keyPem: {
      type: 'string',
      title: 'a PEM private key (-----BEGIN PRIVATE KEY----- ...)',
      pattern: '^\\s*-----BEGIN (?:RSA |EC )?PRIVATE KEY-----',
    },
    fingerprint: FINGERPRINT,
  },
});

/** compile's TrustAnchorSpec: the CA's PEM (and CRL) in place of pemFile and crlFile. */
const TRUST_ANCHOR_SPEC: SchemaDocument = {
  type: 'object',
  additionalProperties: false,
  required: ['system'],
  properties: {
    system: { type: 'boolean' },
    pem: ref(`${SCHEMA_FILES.TrustAnchor}#/properties/pem`),
    crlPem: {
      type: 'string',
      title: 'PEM certificate revocation lists (-----BEGIN X509 CRL----- ...)',
      pattern: '-----BEGIN X509 CRL-----',
    },
    fingerprint: FINGERPRINT,
  },
  // An anchor that is not the system store is its CA certificate.
  if: { type: 'object', properties: { system: { const: false } } },
  then: { type: 'object', required: ['pem'] },
};

const runtimeConfig = (services: SchemaDocument): SchemaDocument => ({
  $schema: 'http://json-schema.org/draft-07/schema#',
  $id: RUNTIME_CONFIG_SCHEMA_ID,
  title: 'RuntimeConfig',
  type: 'object',
  additionalProperties: false,
  required: [
    'organization',
    'certificates',
    'trustAnchors',
    'partners',
    'sendConnectors',
    'receiveConnectors',
  ],
  properties: {
    organization: named(ref(SCHEMA_FILES.Organization)),
    certificates: list(named(certificateSpec(services))),
    trustAnchors: list(named(TRUST_ANCHOR_SPEC)),
    partners: list(named(ref(SCHEMA_FILES.PartnerDomain))),
    sendConnectors: list(named(connector(SCHEMA_FILES.SendConnector))),
    receiveConnectors: list(named(connector(SCHEMA_FILES.ReceiveConnector))),
    tlsPolicies: list(named(ref(SCHEMA_FILES.TlsPolicy))),
    source: {
      type: 'object',
      additionalProperties: false,
      required: ['description'],
      properties: {
        description: { type: 'string' },
        revision: { type: 'string' },
        dirty: { type: 'boolean' },
      },
    },
  },
});
