// The manifest reference of docs/manifests.md, generated from schemas/: one section per kind,
// each field with its type, default and meaning. test/config/reference-doc.test.ts keeps the
// committed file equal to this (UPDATE_DOCS=1 rewrites it).
import { KINDS } from '../model.js';
import { kindSchemas, typeName, type SchemaNode } from './schema-documents.js';

export const GENERATED_BEGIN = '<!-- BEGIN GENERATED FROM schemas/ -->';
export const GENERATED_END = '<!-- END GENERATED FROM schemas/ -->';

interface FieldRow {
  path: string;
  node: SchemaNode;
  required: boolean;
}

function rows(node: SchemaNode, prefix: string): FieldRow[] {
  const container = node.type === 'array' && node.items !== undefined ? node.items : node;
  const required = new Set(container.properties === undefined ? [] : (container.required ?? []));
  const own = Object.entries(container.properties ?? {}).flatMap(([name, child]) => {
    const path = prefix === '' ? name : `${prefix}.${name}`;
    return [{ path, node: child, required: required.has(name) }, ...rows(child, path)];
  });
  // A map (resolver.static): the fields of its values, under a placeholder key.
  const values = container.additionalProperties;
  if (container.properties === undefined && typeof values === 'object') {
    return [...own, ...rows(values, `${prefix}.<key>`)];
  }
  return own;
}

/** Markdown table cells: no line breaks, pipes escaped. */
function cell(text: string): string {
  return text.replace(/\s+/g, ' ').replace(/\|/g, '\\|').trim();
}

function meaning(node: SchemaNode): string {
  const parts = [node.description ?? ''];
  const allowed = node.enum ?? (node.const === undefined ? undefined : [node.const]);
  if (allowed !== undefined)
    parts.push(`One of: ${allowed.map((v) => `\`${String(v)}\``).join(', ')}.`);
  const item = node.type === 'array' ? node.items : node;
  if (item?.title !== undefined && item.enum === undefined && item.type !== 'object') {
    parts.push(`Format: ${item.title}.`);
  }
  return cell(parts.filter((p) => p !== '').join(' '));
}

/** The generated part of docs/manifests.md, between its markers (markers included). */
export function manifestReference(): string {
  const { specs, envelope } = kindSchemas();
  const lines = [GENERATED_BEGIN, ''];
  lines.push('## Every document', '', cell(envelope.description ?? ''), '');
  lines.push('| field | type | required | meaning |', '|---|---|---|---|');
  for (const row of rows(envelope, '').filter((r) => r.path !== 'spec')) {
    lines.push(
      `| \`${row.path}\` | ${cell(typeName(row.node))} | ${row.required ? 'yes' : ''} | ${meaning(row.node)} |`,
    );
  }
  lines.push(
    '| `spec` | object | yes | The desired state; its fields depend on the kind (below). |',
    '',
  );
  for (const kind of KINDS) {
    const spec = specs[kind];
    lines.push(`## ${kind}`, '', cell(spec.description ?? ''), '');
    lines.push(`\`domsec explain ${kind}\` prints the same from the schema.`, '');
    lines.push('| field (under `spec`) | type | default | meaning |', '|---|---|---|---|');
    for (const row of rows(spec, '')) {
      const fallback = row.required ? '*required*' : '';
      const initial =
        row.node.default === undefined ? fallback : `\`${JSON.stringify(row.node.default)}\``;
      lines.push(
        `| \`${row.path}\` | ${cell(typeName(row.node))} | ${cell(initial)} | ${meaning(row.node)} |`,
      );
    }
    lines.push('');
  }
  lines.push(GENERATED_END);
  return `${lines.join('\n')}\n`;
}

/** The document with its generated part replaced; the hand-written rest is kept. */
export function withReference(document: string): string {
  const begin = document.indexOf(GENERATED_BEGIN);
  const end = document.indexOf(GENERATED_END);
  if (begin === -1 || end === -1 || end < begin) {
    return `${document.trimEnd()}\n\n${manifestReference()}`;
  }
  return (
    document.slice(0, begin) + manifestReference() + document.slice(end + GENERATED_END.length + 1)
  );
}
