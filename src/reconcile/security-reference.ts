// The security classification of every field, as docs/plan-format.md lists it: generated from
// the table in security-fields.ts, so the documentation cannot drift from what plans compute.
// test/reconcile/security-reference.test.ts keeps the committed file equal (UPDATE_DOCS=1).
import { KINDS } from '../model.js';
import { SECURITY_FIELDS } from './security-fields.js';

export const SECURITY_BEGIN = '<!-- BEGIN GENERATED FROM src/reconcile/security-fields.ts -->';
export const SECURITY_END = '<!-- END GENERATED FROM src/reconcile/security-fields.ts -->';

const cell = (text: string) => text.replace(/\s+/g, ' ').replace(/\|/g, '\\|').trim();

export function securityReference(): string {
  const lines = [SECURITY_BEGIN, ''];
  for (const kind of KINDS) {
    const rules = SECURITY_FIELDS[kind];
    lines.push(`### ${kind}`, '', '| field | classification |', '|---|---|');
    for (const rule of rules.fields) {
      const from =
        rule.from === undefined ? '' : ` (from ${rule.from.map((f) => `\`${f}\``).join(', ')})`;
      const below = rule.whole === true ? ' and everything in it' : '';
      lines.push(`| \`${rule.path}\`${from}${below} | ${cell(rule.rule)} |`);
    }
    lines.push(`| *created* | ${cell(rules.created.rule)} |`);
    lines.push(`| *deleted* | ${cell(rules.deleted.rule)} |`, '');
  }
  lines.push(SECURITY_END);
  return `${lines.join('\n')}\n`;
}

/** The document with its generated part replaced (appended when it has none yet). */
export function withSecurityReference(document: string): string {
  const begin = document.indexOf(SECURITY_BEGIN);
  const end = document.indexOf(SECURITY_END);
  if (begin === -1 || end === -1 || end < begin)
    return `${document.trimEnd()}\n\n${securityReference()}`;
  return (
    document.slice(0, begin) + securityReference() + document.slice(end + SECURITY_END.length + 1)
  );
}
