// Which fields of an object's spec hold their schema default: read from schemas/ (the single
// source of defaults) once, and used by the plan to mark them, so a renderer can collapse them.
import { kindSchemas } from '../config/schema-documents.js';
import { KINDS, type JsonObject, type JsonValue, type Kind } from '../model.js';

/** Each kind's top-level spec fields that have a default, with that default. */
export type SpecDefaults = Record<Kind, Record<string, JsonValue>>;

let cached: SpecDefaults | undefined;

export function schemaDefaults(): SpecDefaults {
  if (cached !== undefined) return cached;
  const { specs } = kindSchemas();
  cached = Object.fromEntries(
    KINDS.map((kind) => [
      kind,
      Object.fromEntries(
        Object.entries(specs[kind].properties ?? {})
          .filter(([, node]) => node.default !== undefined)
          .map(([field, node]) => [field, node.default as JsonValue]),
      ),
    ]),
  ) as SpecDefaults;
  return cached;
}

/**
 * The fields of `spec` whose value is their kind's default, in spec order. A field written in the
 * manifest with the default value counts too: what the engine runs is the same either way.
 */
export function defaultFields(kind: Kind, spec: JsonObject, defaults: SpecDefaults): string[] {
  const known = defaults[kind];
  return Object.keys(spec).filter(
    (field) => Object.hasOwn(known, field) && sameValue(spec[field] ?? null, known[field] ?? null),
  );
}

function sameValue(a: JsonValue, b: JsonValue): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}
