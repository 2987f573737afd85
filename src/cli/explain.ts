// domsec explain KIND[.FIELD] | CODE: the documentation of a kind or a field, read from schemas/
// (type, default, allowed values, description, sub-fields) as `kubectl explain` prints it, or of
// a diagnostic code (DS001...), from the catalogue docs/troubleshooting.md is checked against.
import type { Command } from 'commander';
import { documentSchema, findKind, typeName, type SchemaNode } from '../config/schema-documents.js';
import { API_VERSION, KINDS } from '../model.js';
import { closestName } from '../config/suggest.js';
import {
  DIAGNOSTIC_CODES,
  findDiagnosticCode,
  type DiagnosticCodeEntry,
  looksLikeDiagnosticCode,
} from '../config/diagnostic-codes.js';
import { CliError } from './errors.js';
import { formatOption, jsonText, type OutputFormat } from './output.js';

/** What a path names: a diagnostic code, or a kind and the field walked to in its schema. */
type Explained =
  { code: DiagnosticCodeEntry } | { kind: string; walked: string[]; node: SchemaNode };

/** The text `domsec explain` prints for a path such as `PartnerDomain.domainSecure.send`. */
export function explain(path: string): string {
  const found = lookUp(path);
  return 'code' in found ? renderCode(found.code) : render(found.kind, found.walked, found.node);
}

/** The same as one JSON object (formatVersion 1): what the text says, field by field. */
export function explainJson(path: string): string {
  const found = lookUp(path);
  if ('code' in found) {
    const { code, severity, meaning, fix } = found.code;
    return jsonText({ code, severity, meaning, fix });
  }
  const { kind, walked, node } = found;
  return jsonText({
    kind,
    apiVersion: API_VERSION,
    ...(walked.length > 0 ? { field: walked.join('.') } : {}),
    ...fieldJson(node),
  });
}

/** One schema node as JSON: type, description, allowed values, default, sub-fields. */
function fieldJson(node: SchemaNode): Record<string, unknown> {
  const allowed = node.enum ?? (node.const === undefined ? undefined : [node.const]);
  const container = node.type === 'array' && node.items !== undefined ? node.items : node;
  const required = new Set(container.required ?? []);
  const properties = Object.entries(container.properties ?? {});
  return {
    type: typeName(node),
    description: node.description ?? null,
    ...(allowed === undefined ? {} : { allowed }),
    ...(node.default === undefined ? {} : { default: node.default }),
    ...(properties.length === 0
      ? {}
      : {
          fields: properties.map(([name, child]) => ({
            name,
            required: required.has(name),
            type: typeName(child),
            description: child.description ?? null,
          })),
        }),
  };
}

function lookUp(path: string): Explained {
  if (looksLikeDiagnosticCode(path)) return { code: findCode(path) };
  const [kindName = '', ...fields] = path.split('.').filter((part) => part !== '');
  const kind = findKind(kindName);
  if (kind === undefined) {
    const closest = closestName(kindName, KINDS);
    throw new CliError(
      `unknown kind "${kindName}": ${closest === undefined ? `the kinds are ${KINDS.join(', ')}` : `did you mean ${closest}?`}`,
    );
  }
  const document = documentSchema(kind);
  // A kind is described by its spec's description, as kubectl describes a kind by its type.
  const root: SchemaNode = { ...document, description: document.properties?.spec?.description };
  // `PartnerDomain.domain` is short for `PartnerDomain.spec.domain`.
  const top = Object.keys(root.properties ?? {});
  const steps = fields.length > 0 && !top.includes(fields[0] ?? '') ? ['spec', ...fields] : fields;
  let node = root;
  const walked: string[] = [];
  for (const step of steps) {
    const container = node.type === 'array' && node.items !== undefined ? node.items : node;
    const child = container.properties?.[step];
    if (child === undefined) {
      const names = Object.keys(container.properties ?? {});
      const closest = closestName(step, names);
      const where = [kind, ...walked].join('.');
      throw new CliError(
        `${where} has no field "${step}"${closest === undefined ? (names.length > 0 ? `: its fields are ${names.join(', ')}` : '') : `: did you mean ${closest}?`}`,
      );
    }
    walked.push(step);
    node = child;
  }
  return { kind, walked, node };
}

/** A diagnostic code's catalogue entry, or a one-line refusal naming the known codes. */
function findCode(code: string): DiagnosticCodeEntry {
  const entry = findDiagnosticCode(code);
  if (entry === undefined) {
    const codes = DIAGNOSTIC_CODES.map((known) => known.code);
    throw new CliError(
      `unknown diagnostic code "${code}": the codes are ${codes.filter((known) => known.startsWith('DS')).join(', ')} (and ${codes.filter((known) => !known.startsWith('DS')).join(', ')})`,
    );
  }
  return entry;
}

/** What a diagnostic code means and how to fix it. */
function renderCode(entry: DiagnosticCodeEntry): string {
  const lines = [`CODE:     ${entry.code}`, `SEVERITY: ${entry.severity}`, ''];
  lines.push('MEANING:', ...wrap(entry.meaning, '    '), '', 'FIX:', ...wrap(entry.fix, '    '));
  return `${lines.join('\n')}\n`;
}

function render(kind: string, walked: string[], node: SchemaNode): string {
  const lines = [`KIND:     ${kind}`, `VERSION:  ${API_VERSION}`, ''];
  if (walked.length > 0) {
    lines.push(`FIELD:    ${walked[walked.length - 1] ?? ''} <${typeName(node)}>`, '');
  }
  lines.push('DESCRIPTION:', ...wrap(node.description ?? '(no description)', '    '));
  lines.push(...facts(node, '    '));
  const fields = node.type === 'array' && node.items !== undefined ? node.items : node;
  const properties = Object.entries(fields.properties ?? {});
  if (properties.length > 0) {
    lines.push('', 'FIELDS:');
    const required = new Set(fields.required ?? []);
    for (const [name, child] of properties) {
      lines.push(`  ${name}\t<${typeName(child)}>${required.has(name) ? ' -required-' : ''}`);
      lines.push(...wrap(child.description ?? '', '    '), ...facts(child, '    '), '');
    }
    if (lines[lines.length - 1] === '') lines.pop();
  }
  return `${lines.join('\n')}\n`;
}

/** Default, allowed values and format of a field, one line each when present. */
function facts(node: SchemaNode, indent: string): string[] {
  const lines: string[] = [];
  const allowed = node.enum ?? (node.const === undefined ? undefined : [node.const]);
  if (allowed !== undefined) lines.push(`${indent}allowed: ${allowed.map(String).join(', ')}`);
  if (node.default !== undefined) lines.push(`${indent}default: ${JSON.stringify(node.default)}`);
  const item = node.type === 'array' ? node.items : node;
  if (item?.title !== undefined && item.enum === undefined)
    lines.push(`${indent}format: ${item.title}`);
  return lines;
}

function wrap(text: string, indent: string, width = 96): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/).filter((w) => w !== '')) {
    if (line !== '' && indent.length + line.length + 1 + word.length > width) {
      lines.push(`${indent}${line}`);
      line = word;
    } else {
      line = line === '' ? word : `${line} ${word}`;
    }
  }
  if (line !== '') lines.push(`${indent}${line}`);
  return lines;
}

export function register(program: Command): void {
  program
    .command('explain')
    .description(
      'document a kind or one of its fields, from schemas/ (like kubectl explain), or a diagnostic code',
    )
    .argument('<KIND[.FIELD]|CODE>', 'e.g. PartnerDomain, PartnerDomain.domainSecure.send, DS001')
    .addOption(formatOption())
    .action((path: string, o: { output: OutputFormat }) => {
      process.stdout.write(o.output === 'json' ? explainJson(path) : explain(path));
    });
}
