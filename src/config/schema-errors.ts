// ajv's errors as an administrator reads them: which object, which field, what was expected
// (the schema's title for the value's form), what was written, and the closest valid name.
import type { AnySchemaObject, ErrorObject } from 'ajv';
import type { Diagnostic } from '../model.js';
import { parseDomainName } from '../domain-name.js';
import { error } from './diagnostics.js';
import { closestName } from './suggest.js';
import type { FieldPath, ManifestDocument } from './yaml-documents.js';

export function describeSchemaErrors(
  errors: readonly ErrorObject[],
  document: ManifestDocument,
  prefix: FieldPath,
  subject: string,
): Diagnostic[] {
  const out: Diagnostic[] = [];
  const seen = new Set<string>();
  for (const problem of errors) {
    // A failed `if` only says its `then` failed, and a oneOf branch's own failures are summed up
    // by the oneOf error: both would repeat what another error says better.
    if (problem.keyword === 'if' || /\/oneOf\/\d+\//.test(problem.schemaPath)) continue;
    // propertyNames is summed up by the error about the key itself (see describe).
    if (problem.keyword === 'propertyNames') continue;
    const diagnostic = describe(
      problem,
      document,
      [...prefix, ...pointerPath(problem.instancePath)],
      subject,
    );
    // A value can fail its pattern and its format with one message: say it once.
    const key = `${diagnostic.line}:${diagnostic.col}:${diagnostic.message}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(diagnostic);
  }
  return out;
}

function describe(
  problem: ErrorObject,
  document: ManifestDocument,
  path: FieldPath,
  subject: string,
): Diagnostic {
  const params = problem.params as Record<string, unknown>;
  const parent = (problem.parentSchema ?? {}) as AnySchemaObject;
  const field = fieldName(path);
  const value = describeValue(problem.data);
  const valueError = (message: string, hint?: string) =>
    error('SCHEMA', document.valueAt(path), `${subject}: ${message}`, hint);
  const fieldError = (at: FieldPath, message: string, hint?: string) =>
    error('SCHEMA', document.at(at), `${subject}: ${message}`, hint);

  if (problem.propertyName !== undefined) {
    // A key that fails propertyNames: ajv reports it against the mapping, we point at the key.
    return fieldError(
      [...path, problem.propertyName],
      `\`${field}\` has an invalid key ${describeValue(problem.propertyName)}: keys must be ${typeof parent.title === 'string' ? parent.title : 'of another form'}`,
    );
  }
  switch (problem.keyword) {
    case 'additionalProperties': {
      const unknown = String(params.additionalProperty);
      const known = Object.keys((parent.properties ?? {}) as Record<string, unknown>);
      const closest = closestName(unknown, known);
      const where = path.length === 0 ? 'the document' : `\`${field}\``;
      return fieldError(
        [...path, unknown],
        `unknown field \`${unknown}\` in ${where}`,
        closest !== undefined
          ? `did you mean \`${closest}\`?`
          : `the fields of ${where} are ${known.map((k) => `\`${k}\``).join(', ')}`,
      );
    }
    case 'required': {
      const missing = String(params.missingProperty);
      const property = (parent.properties as Record<string, AnySchemaObject> | undefined)?.[
        missing
      ];
      return fieldError(
        path,
        `\`${fieldName([...path, missing])}\` is required`,
        typeof property?.description === 'string' ? firstSentence(property.description) : undefined,
      );
    }
    case 'type':
      return valueError(`\`${field}\` must be ${typePhrase(String(params.type))}, not ${value}`);
    case 'pattern':
    case 'format':
      return valueError(
        `\`${field}\` must be ${typeof parent.title === 'string' ? parent.title : 'of another form'}, not ${value}`,
        nameHint(parent.format, problem.data),
      );
    case 'enum': {
      const allowed = (params.allowedValues as unknown[]).map(String);
      const closest =
        typeof problem.data === 'string' ? closestName(problem.data, allowed) : undefined;
      return valueError(
        `\`${field}\` must be one of ${allowed.join(', ')}, not ${value}`,
        closest === undefined ? undefined : `did you mean \`${closest}\`?`,
      );
    }
    case 'const':
      return valueError(`\`${field}\` must be \`${String(params.allowedValue)}\`, not ${value}`);
    case 'minimum':
    case 'maximum':
    case 'exclusiveMinimum':
    case 'exclusiveMaximum': {
      const bound = {
        minimum: 'at least',
        maximum: 'at most',
        exclusiveMinimum: 'more than',
        exclusiveMaximum: 'less than',
      }[problem.keyword];
      return valueError(`\`${field}\` must be ${bound} ${String(params.limit)}, not ${value}`);
    }
    case 'minLength':
      return valueError(`\`${field}\` must not be empty`);
    case 'minItems':
      return fieldError(
        path,
        `\`${field}\` needs at least ${count(Number(params.limit), 'entry', 'entries')}`,
      );
    case 'maxItems':
      return fieldError(
        path,
        `\`${field}\` takes at most ${count(Number(params.limit), 'entry', 'entries')}`,
      );
    case 'uniqueItems': {
      const later = Math.max(Number(params.i), Number(params.j));
      return error(
        'SCHEMA',
        document.valueAt([...path, later]),
        `${subject}: \`${field}\` lists ${describeValue(arrayItem(problem.data, later))} twice`,
      );
    }
    case 'minProperties':
    case 'maxProperties': {
      const names = Object.keys((parent.properties ?? {}) as Record<string, unknown>);
      const expected =
        typeof parent.title === 'string' && names.length > 0
          ? parent.title
          : `at ${problem.keyword === 'minProperties' ? 'least' : 'most'} ${count(Number(params.limit), 'field', 'fields')}`;
      return fieldError(path, `\`${field}\` takes ${expected}`);
    }
    case 'oneOf': {
      const branches = (Array.isArray(problem.schema) ? problem.schema : []) as AnySchemaObject[];
      const choices = branches.flatMap((branch) =>
        (branch.required ?? []).map((name: string) => {
          const constant = (branch.properties as Record<string, AnySchemaObject> | undefined)?.[
            name
          ]?.const;
          return constant === undefined ? `\`${name}\`` : `\`${name}: ${String(constant)}\``;
        }),
      );
      return fieldError(path, `\`${field}\` takes exactly one of ${choices.join(', ')}`);
    }
    default:
      return fieldError(path, `\`${field}\` ${String(problem.message)}`);
  }
}

/** "/spec/routing/smartHosts/0" into ['spec', 'routing', 'smartHosts', 0]. */
function pointerPath(pointer: string): (string | number)[] {
  if (pointer === '') return [];
  return pointer
    .slice(1)
    .split('/')
    .map((segment) => segment.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map((segment) => (/^(0|[1-9][0-9]*)$/.test(segment) ? Number(segment) : segment));
}

/** spec.routing.smartHosts[0] */
function fieldName(path: FieldPath): string {
  if (path.length === 0) return 'the document';
  return path
    .map((segment, i) =>
      typeof segment === 'number' ? `[${segment}]` : i === 0 ? segment : `.${segment}`,
    )
    .join('');
}

function typePhrase(type: string): string {
  const phrases: Record<string, string> = {
    string: 'text',
    integer: 'a whole number',
    number: 'a number',
    boolean: 'true or false',
    array: 'a list',
    object: 'a mapping',
    null: 'empty',
  };
  return type
    .split(',')
    .map((t) => phrases[t] ?? t)
    .join(' or ');
}

/** A written value as a message may show it: scalars quoted and shortened, structures named. */
export function describeValue(value: unknown): string {
  if (value === null || value === undefined) return 'nothing';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'string') {
    const short = value.length > 40 ? `${value.slice(0, 37)}...` : value;
    return JSON.stringify(short);
  }
  return String(value);
}

function arrayItem(data: unknown, index: number): unknown {
  return Array.isArray(data) ? (data as unknown[])[index] : undefined;
}

function count(n: number, one: string, many: string): string {
  return `${n} ${n === 1 ? one : many}`;
}

function firstSentence(text: string): string {
  const end = text.search(/\.(\s|$)/);
  return end === -1 ? text : text.slice(0, end + 1);
}

const NAME_FORMATS = new Set(['domain-name', 'address-space', 'certificate-name']);

/** For a domain field: why the value is not a name, and that either IDN form is welcome. */
function nameHint(format: unknown, data: unknown): string | undefined {
  if (typeof format !== 'string' || !NAME_FORMATS.has(format) || typeof data !== 'string')
    return undefined;
  const name = format !== 'domain-name' && data.startsWith('*.') ? data.slice(2) : data;
  const parsed = parseDomainName(name);
  const why = parsed.ok ? '' : `${parsed.reason}; `;
  return `${why}write the name with letters, digits and '-' in dot-separated labels; an internationalized name as its A-label (xn--...) or its U-label, which domsec normalises to the A-label`;
}
