// The JSON Schema of every admin API request body (protocol.ts has their types), with the largest
// body each route reads: a body is decoded against its schema before the engine sees anything.
import { RUNTIME_CONFIG_SCHEMA_ID, type SchemaDocument } from '../runtime-config-schema.js';

export type BodyRoute = 'apply' | 'rollback' | 'status' | 'retry' | 'suspend' | 'resume';

export interface BodyRule {
  schema: SchemaDocument;
  /** Bytes; a larger body is answered 413 without being read further. */
  maxBytes: number;
}

const KIB = 1024;
const MIB = 1024 * KIB;

const GENERATION = { type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER };

/** A next-hop domain as the CLI sends it; its form is checked as the queue reads it. */
const DOMAIN = { type: 'string', title: 'a domain name such as example.com', maxLength: 1024 };

const object = (properties: Record<string, unknown>, required: string[] = []): SchemaDocument => ({
  type: 'object',
  additionalProperties: false,
  required,
  properties,
});

export const BODY_RULES: Record<BodyRoute, BodyRule> = {
  apply: {
    // A configuration with tens of thousands of partners fits.
    maxBytes: 64 * MIB,
    schema: object({ config: { $ref: RUNTIME_CONFIG_SCHEMA_ID }, baseGeneration: GENERATION }, [
      'config',
    ]),
  },
  rollback: {
    maxBytes: 16 * KIB,
    schema: object({ generation: GENERATION, baseGeneration: GENERATION }, ['generation']),
  },
  status: {
    // The error of an invalid attempt lists every diagnostic.
    maxBytes: 4 * MIB,
    schema: object(
      {
        outcome: { type: 'string', enum: ['applied', 'unchanged', 'invalid', 'failed'] },
        generation: GENERATION,
        error: { type: ['string', 'null'] },
        reconciler: { type: 'string', maxLength: 1024 },
        durationMs: { type: 'number', minimum: 0 },
      },
      ['outcome', 'generation', 'error', 'reconciler'],
    ),
  },
  retry: {
    maxBytes: 16 * KIB,
    schema: object({ domain: { ...DOMAIN, type: ['string', 'null'] } }),
  },
  suspend: { maxBytes: 16 * KIB, schema: object({ domain: DOMAIN }, ['domain']) },
  resume: { maxBytes: 16 * KIB, schema: object({ domain: DOMAIN }, ['domain']) },
};
