// An admin API request body from bytes to a typed request: its media type (415), its size (413),
// UTF-8 and JSON of bounded depth (400), then its route's JSON Schema (400 with the JSON pointer of
// the field that is wrong and what was expected). Problems are values; nothing here throws.
import type { IncomingMessage } from 'node:http';
import { Ajv, type AnySchemaObject, type ErrorObject, type ValidateFunction } from 'ajv';
import { runtimeConfigSchemas } from '../runtime-config-schema.js';
import { SCHEMA_FORMATS } from '../schemas.js';
import type {
  ApplyRequest,
  ErrorCode,
  QueueHoldRequest,
  RetryRequest,
  RollbackRequest,
  StatusReport,
} from './protocol.js';
import { BODY_RULES, type BodyRoute } from './request-schemas.js';

export interface BodyTypes {
  apply: ApplyRequest;
  rollback: RollbackRequest;
  status: StatusReport;
  retry: RetryRequest;
  suspend: QueueHoldRequest;
  resume: QueueHoldRequest;
}

export interface BodyProblem {
  status: 400 | 413 | 415;
  code: ErrorCode;
  message: string;
  /** A JSON pointer into the body ("" for the body as a whole) when a field is wrong. */
  field?: string;
  expected?: string;
}

export type Decoded<T> = { ok: true; value: T } | { ok: false; problem: BodyProblem };

/** No request nests deeper than a configuration does (about 8); JSON.parse of more costs time. */
export const MAX_DEPTH = 32;

const ARRAY = 0x5b;
const OBJECT = 0x7b;
const ARRAY_END = 0x5d;
const OBJECT_END = 0x7d;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/** Reads and decodes the body of a route's request; the engine is not involved. */
export async function readBody<R extends BodyRoute>(
  route: R,
  request: IncomingMessage,
): Promise<Decoded<BodyTypes[R]>> {
  const mediaProblem = checkMediaType(request.headers);
  if (mediaProblem !== undefined) return { ok: false, problem: mediaProblem };
  const { maxBytes } = BODY_RULES[route];
  const tooLarge: Decoded<never> = {
    ok: false,
    problem: {
      status: 413,
      code: 'too-large',
      message: `the ${route} request body is over ${maxBytes} bytes`,
    },
  };
  if (Number(request.headers['content-length']) > maxBytes) return tooLarge;
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request) {
    size += (chunk as Buffer).length;
    if (size > maxBytes) return tooLarge;
    chunks.push(chunk as Buffer);
  }
  return decodeBody(route, Buffer.concat(chunks));
}

/** The decision on bytes already read: pure, so the hostile cases are tested without sockets. */
export function decodeBody<R extends BodyRoute>(route: R, bytes: Buffer): Decoded<BodyTypes[R]> {
  let value: unknown = {};
  if (bytes.length > 0) {
    let text: string;
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    } catch {
      return bad('', 'not UTF-8', 'a JSON text in UTF-8');
    }
    if (!withinDepth(bytes, MAX_DEPTH))
      return bad('', `nests deeper than ${MAX_DEPTH} levels`, 'a shallower JSON text');
    try {
      value = JSON.parse(text);
    } catch {
      // The parser's own message quotes the body back: the field and the rule say enough.
      return bad('', 'not JSON', 'a JSON text');
    }
  }
  const validate = validators()[route];
  if (validate(value)) return { ok: true, value: value as BodyTypes[R] };
  const [first] = validate.errors ?? [];
  if (first === undefined) return bad('', 'does not match its schema', 'a valid body');
  const { field, expected } = describeError(first);
  return bad(field, `expected ${expected}`, expected);
}

/** A 400 answer naming a field: "POINTER: what is wrong" ("(the body)" for the whole body). */
export function fieldProblem(field: string, wrong: string, expected: string): BodyProblem {
  const message = `${field === '' ? '(the body)' : field}: ${wrong}`;
  return { status: 400, code: 'bad-request', message, field, expected };
}

function bad(field: string, wrong: string, expected: string): Decoded<never> {
  return { ok: false, problem: fieldProblem(field, wrong, expected) };
}

/**
 * application/json (UTF-8, the only charset JSON has, RFC 8259 §8.1); a request without a body
 * may leave the type out.
 */
function checkMediaType(headers: IncomingMessage['headers']): BodyProblem | undefined {
  const header = headers['content-type'];
  const hasBody =
    headers['transfer-encoding'] !== undefined ||
    (headers['content-length'] !== undefined && headers['content-length'] !== '0');
  if (header === undefined && !hasBody) return undefined;
  const [type = '', ...parameters] = (header ?? '').split(';');
  // eslint-disable-next-line no-restricted-syntax -- a media type and its charset, not a domain
  const lower = (text: string) => text.trim().toLowerCase();
  const charset = parameters
    .map((parameter) => parameter.split('='))
    .find(([name]) => lower(name ?? '') === 'charset')?.[1];
  const utf8 =
    charset === undefined || ['utf-8', 'utf8'].includes(lower(charset).replace(/"/g, ''));
  if (lower(type) === 'application/json' && utf8) return undefined;
  return {
    status: 415,
    code: 'unsupported-media-type',
    message: `the body must be application/json (UTF-8), not ${header === undefined ? 'untyped' : JSON.stringify(header.slice(0, 100))}`,
    expected: 'content-type: application/json',
  };
}

/** Whether no array or object in the JSON text nests deeper than `limit`; strings are skipped. */
function withinDepth(bytes: Buffer, limit: number): boolean {
  let depth = 0;
  let inString = false;
  let escaped = false;
  for (let index = 0; index < bytes.length; index++) {
    const byte = bytes[index];
    if (inString) {
      if (escaped) escaped = false;
      else if (byte === BACKSLASH) escaped = true;
      else if (byte === QUOTE) inString = false;
    } else if (byte === QUOTE) inString = true;
    else if (byte === ARRAY || byte === OBJECT) {
      if (++depth > limit) return false;
    } else if (byte === ARRAY_END || byte === OBJECT_END) depth--;
  }
  return true;
}

let compiled: Record<BodyRoute, ValidateFunction> | undefined;

/** One validator per route, compiled once per process from schemas/ and request-schemas.ts. */
export function validators(): Record<BodyRoute, ValidateFunction> {
  if (compiled !== undefined) return compiled;
  const ajv = new Ajv({
    allErrors: false, // the first wrong field is the answer; a huge wrong array costs one error
    useDefaults: true, // a field added since the client's version gets its default, as manifests do
    strict: true,
    strictRequired: false, // connectors require requireTls, which their own schema defines
    allowUnionTypes: true,
    verbose: true, // errors carry their schema: titles say what was expected
    formats: SCHEMA_FORMATS,
  });
  const { referenced, runtimeConfig } = runtimeConfigSchemas();
  for (const schema of [...referenced, runtimeConfig]) ajv.addSchema(schema as AnySchemaObject);
  compiled = Object.fromEntries(
    Object.entries(BODY_RULES).map(([route, rule]) => [
      route,
      ajv.compile(rule.schema as AnySchemaObject),
    ]),
  ) as Record<BodyRoute, ValidateFunction>;
  return compiled;
}

const TYPE_NAMES: Record<string, string> = {
  object: 'an object',
  array: 'an array',
  string: 'a string',
  integer: 'an integer',
  number: 'a number',
  boolean: 'true or false',
  null: 'null',
};

/** The pointer of the wrong field and what its schema expected, in words. */
function describeError(problem: ErrorObject): { field: string; expected: string } {
  const params = problem.params as Record<string, unknown>;
  const parent = (problem.parentSchema ?? {}) as AnySchemaObject;
  const title = typeof parent.title === 'string' ? parent.title : undefined;
  const at = problem.instancePath;
  const shown = (value: unknown) => JSON.stringify(value)?.slice(0, 100) ?? String(value);
  switch (problem.keyword) {
    case 'required':
      return {
        field: `${at}/${pointerSegment(String(params.missingProperty))}`,
        expected: 'a value: the field is required',
      };
    case 'additionalProperties': {
      const known = Object.keys((parent.properties ?? {}) as Record<string, unknown>);
      return {
        field: `${at}/${pointerSegment(String(params.additionalProperty))}`,
        expected: `no such field (the fields here are ${known.join(', ') || 'none'})`,
      };
    }
    case 'type': {
      const types = String(params.type)
        .split(',')
        .map((type) => TYPE_NAMES[type] ?? type);
      return { field: at, expected: title ?? types.join(' or ') };
    }
    case 'enum':
      return {
        field: at,
        expected: `one of ${((params.allowedValues as unknown[]) ?? []).map(shown).join(', ')}`,
      };
    case 'const':
      return { field: at, expected: shown(params.allowedValue) };
    case 'pattern':
    case 'format':
      return { field: at, expected: title ?? `a string in the form ${String(params.format)}` };
    default:
      return { field: at, expected: title ?? bound(problem.keyword, params.limit) };
  }
}

/** minItems, maximum, uniqueItems...: the bound in words (ajv's message for anything else). */
function bound(keyword: string, limit: unknown): string {
  const words: Record<string, string> = {
    minItems: `at least ${String(limit)} items`,
    maxItems: `at most ${String(limit)} items`,
    minLength: `at least ${String(limit)} characters`,
    maxLength: `at most ${String(limit)} characters`,
    minimum: `a number of at least ${String(limit)}`,
    maximum: `a number of at most ${String(limit)}`,
    minProperties: `at least ${String(limit)} fields`,
    maxProperties: `at most ${String(limit)} fields`,
    uniqueItems: 'items without duplicates',
  };
  return words[keyword] ?? `a value that passes the schema's ${keyword}`;
}

/** RFC 6901: `~` and `/` in a key are escaped; a long key is cut, since it is echoed. */
function pointerSegment(key: string): string {
  return key.slice(0, 200).replace(/~/g, '~0').replace(/\//g, '~1');
}
