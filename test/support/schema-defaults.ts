// The defaults of the RuntimeConfig JSON Schema (src/runtime-config-schema.ts, composed from
// schemas/), filled in by ajv as the admin API fills them on apply: the tests' configurations get
// the product's defaults, never a copy of them.
import { Ajv, type AnySchemaObject, type ValidateFunction } from 'ajv';
import type { RuntimeConfig } from '../../src/model.js';
import { RUNTIME_CONFIG_SCHEMA_ID, runtimeConfigSchemas } from '../../src/runtime-config-schema.js';
import { SCHEMA_FORMATS } from '../../src/schemas.js';

/** Where each spec of a RuntimeConfig sits in its schema. */
export const SPEC_POINTERS = {
  Organization: '/properties/organization/properties/spec',
  Certificate: '/properties/certificates/items/properties/spec',
  TrustAnchor: '/properties/trustAnchors/items/properties/spec',
  PartnerDomain: '/properties/partners/items/properties/spec',
  SendConnector: '/properties/sendConnectors/items/properties/spec',
  ReceiveConnector: '/properties/receiveConnectors/items/properties/spec',
} as const;

export type SpecKind = keyof typeof SPEC_POINTERS;

interface Fillers {
  config: ValidateFunction;
  specs: Record<SpecKind, ValidateFunction>;
}

let fillers: Fillers | undefined;

function compiled(): Fillers {
  if (fillers !== undefined) return fillers;
  const ajv = new Ajv({
    // Every keyword runs, so a configuration a test made wrong on purpose gets its defaults too.
    allErrors: true,
    useDefaults: true,
    strict: true,
    strictRequired: false, // connectors require requireTls, which their own schema defines
    formats: SCHEMA_FORMATS,
  });
  const { referenced, runtimeConfig } = runtimeConfigSchemas();
  for (const schema of [...referenced, runtimeConfig]) ajv.addSchema(schema as AnySchemaObject);
  const at = (pointer: string) => ajv.compile({ $ref: `${RUNTIME_CONFIG_SCHEMA_ID}#${pointer}` });
  fillers = {
    config: at(''),
    specs: Object.fromEntries(
      Object.entries(SPEC_POINTERS).map(([kind, pointer]) => [kind, at(pointer)]),
    ) as Record<SpecKind, ValidateFunction>,
  };
  return fillers;
}

/** A copy of the configuration with every default of the schema filled in where it is absent. */
export function withRuntimeDefaults(config: RuntimeConfig): RuntimeConfig {
  const copy = structuredClone(config);
  compiled().config(copy); // valid or not: only the defaults it fills are wanted
  return copy;
}

/** A copy of one spec with its kind's defaults filled in where they are absent. */
export function withSpecDefaults<Spec>(kind: SpecKind, spec: object): Spec {
  const copy = structuredClone(spec);
  compiled().specs[kind](copy);
  return copy as Spec;
}
