// Security impact of one change (weakens, strengthens or none, with the reasons a reviewer reads
// in the plan), judged field by field by the typed comparisons of security-fields.ts. A changed
// field that no rule classifies counts as weakening: an unknown change is never waved through.
import type { Change, FieldChange, JsonObject, JsonValue, Kind, SecurityImpact } from '../model.js';
import type { Verdict } from './security-comparisons.js';
import { ruleFor, SECURITY_FIELDS } from './security-fields.js';

export interface Impact {
  impact: SecurityImpact;
  reasons: string[];
}

export interface ChangeToJudge {
  kind: Kind;
  action: Change['action'];
  before: JsonObject | null;
  after: JsonObject | null;
  /** The changed leaves, as plan.ts's diffFields reports them (for update and replace). */
  fields: FieldChange[];
}

export function securityImpact(change: ChangeToJudge): Impact {
  return summarize(verdicts(change));
}

function verdicts({ kind, action, before, after, fields }: ChangeToJudge): Verdict[] {
  const rules = SECURITY_FIELDS[kind];
  if (before === null && after === null) return [];
  if (before === null) return after === null ? [] : rules.created.judge(after);
  if (after === null) return rules.deleted.judge(before);
  // A partner replaced is its old domain losing what it had, and the new one gaining its own.
  if (kind === 'PartnerDomain' && action === 'replace')
    return [...rules.deleted.judge(before), ...rules.created.judge(after)];

  const found: Verdict[] = [];
  for (const rule of rules.fields) {
    const was = get(before, rule.path);
    const will = get(after, rule.path);
    if (sameJson(was, will)) continue;
    found.push(...rule.compare(was, will, { before, after }));
  }
  for (const field of fields) {
    if (ruleFor(kind, field.path) !== undefined) continue;
    found.push({
      impact: 'weakens',
      reason: `${field.path} changed, and its security impact is not classified: treated as weakening`,
    });
  }
  return found;
}

function summarize(found: Verdict[]): Impact {
  const reasons = (impact: SecurityImpact) =>
    found.filter((v) => v.impact === impact).map((v) => v.reason);
  const weakening = reasons('weakens');
  if (weakening.length > 0) return { impact: 'weakens', reasons: weakening };
  const strengthening = reasons('strengthens');
  if (strengthening.length > 0) return { impact: 'strengthens', reasons: strengthening };
  return { impact: 'none', reasons: [] };
}

function get(object: JsonObject, path: string): JsonValue | undefined {
  let value: JsonValue | undefined = object;
  for (const key of path.split('.')) {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
    value = value[key];
  }
  return value;
}

function sameJson(a: JsonValue | undefined, b: JsonValue | undefined): boolean {
  return JSON.stringify(a ?? null) === JSON.stringify(b ?? null);
}
