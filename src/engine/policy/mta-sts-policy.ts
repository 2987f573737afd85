// MTA-STS (RFC 8461) as text: the `_mta-sts` TXT record, the policy file, and whether an MX host
// matches the policy's `mx` patterns. Pure; fetching and caching are mta-sts-fetch.ts and
// mta-sts-cache.ts. Anything that does not parse is no policy (§3.1, §3.2), never a looser one.
import { parseDomainName, type DomainName } from '../../domain-name.js';

export type StsMode = 'enforce' | 'testing' | 'none';

export interface StsPolicy {
  mode: StsMode;
  /** Canonical names, or "*." + a canonical name (one label wildcard). */
  mx: string[];
  /** Seconds; capped at RFC 8461's maximum (one year). */
  maxAge: number;
}

/** RFC 8461 §3.2: max_age is at most 31557600 seconds; a larger value is read as that. */
export const MAX_AGE_LIMIT = 31_557_600;
/** §3.3: a policy over 64 KB is not read. */
export const MAX_POLICY_BYTES = 65_536;

export type Parsed<T> = { ok: true; value: T } | { ok: false; reason: string };

/**
 * The id of a `_mta-sts.<domain>` TXT answer (each record its strings joined). §3.1: records not
 * starting with `v=STSv1;` are ignored; not exactly one left, or one without a valid id, is no
 * policy.
 */
export function parseStsRecord(records: readonly string[]): Parsed<{ id: string }> {
  const sts = records.filter((record) => /^v=STSv1(;|$)/.test(record));
  if (sts.length === 0) return { ok: false, reason: 'no v=STSv1 record' };
  if (sts.length > 1) return { ok: false, reason: `${sts.length} v=STSv1 records` };
  const fields = new Map<string, string>();
  // sts-text-record = sts-version 1*(*WSP ";" *WSP sts-field) [";"]
  for (const part of (sts[0] ?? '').split(';').slice(1)) {
    const field = /^[ \t]*([A-Za-z0-9_.-]+)=([^;\s]*)[ \t]*$/.exec(part);
    if (field === null) {
      if (/^[ \t]*$/.test(part)) continue;
      return { ok: false, reason: `malformed field ${JSON.stringify(part.slice(0, 40))}` };
    }
    const [, key = '', value = ''] = field;
    if (!fields.has(key)) fields.set(key, value);
  }
  const id = fields.get('id');
  if (id === undefined) return { ok: false, reason: 'no id' };
  if (!/^[A-Za-z0-9]{1,32}$/.test(id))
    return {
      ok: false,
      reason: `id ${JSON.stringify(id.slice(0, 40))} is not 1-32 letters and digits`,
    };
  return { ok: true, value: { id } };
}

/**
 * The policy file (§3.2): `key: value` lines ended by LF or CRLF, `version: STSv1`, `mode`,
 * `max_age`, one `mx` per pattern (required unless mode is none); unknown keys ignored, the first
 * of a repeated key kept (mx excepted).
 */
export function parseStsPolicy(text: string): Parsed<StsPolicy> {
  if (Buffer.byteLength(text, 'utf8') > MAX_POLICY_BYTES)
    return { ok: false, reason: `the policy is larger than ${MAX_POLICY_BYTES} bytes` };
  const single = new Map<string, string>();
  const mx: string[] = [];
  for (const line of text.split(/\r?\n/)) {
    if (line === '') continue;
    const field = /^([A-Za-z0-9_.-]+)[ \t]*:[ \t]*(.*?)[ \t]*$/.exec(line);
    if (field === null) continue; // not a field: ignored, like an unknown one
    const [, key = '', value = ''] = field;
    if (key === 'mx') {
      const pattern = mxPattern(value);
      if (pattern === undefined)
        return {
          ok: false,
          reason: `mx ${JSON.stringify(value.slice(0, 80))} is not a host name or *.name`,
        };
      mx.push(pattern);
    } else if (!single.has(key)) single.set(key, value);
  }
  if (single.get('version') !== 'STSv1') return { ok: false, reason: 'version is not STSv1' };
  const mode = single.get('mode');
  if (mode !== 'enforce' && mode !== 'testing' && mode !== 'none')
    return {
      ok: false,
      reason: `mode ${JSON.stringify(mode ?? null)} is not enforce, testing or none`,
    };
  const age = single.get('max_age');
  if (age === undefined || !/^[0-9]{1,10}$/.test(age))
    return { ok: false, reason: `max_age ${JSON.stringify(age ?? null)} is not 1 to 10 digits` };
  if (mode !== 'none' && mx.length === 0) return { ok: false, reason: `mode ${mode} without mx` };
  return {
    ok: true,
    value: { mode, mx: [...new Set(mx)], maxAge: Math.min(Number(age), MAX_AGE_LIMIT) },
  };
}

/** A pattern in canonical form: a host name, or "*." and a name; undefined when neither. */
export function mxPattern(written: string): string | undefined {
  const wildcard = written.startsWith('*.');
  const parsed = parseDomainName(wildcard ? written.slice(2) : written);
  if (!parsed.ok) return undefined;
  return wildcard ? `*.${parsed.name}` : parsed.name;
}

/**
 * §4.1: an MX host matches a pattern exactly, or a `*.` pattern by exactly one more left-most
 * label (`*.example.com` covers mx.example.com, not example.com nor a.b.example.com).
 */
export function mxMatches(patterns: readonly string[], host: DomainName): boolean {
  return patterns.some((pattern) => {
    if (!pattern.startsWith('*.')) return pattern === host;
    const parent = pattern.slice(2);
    if (!host.endsWith(`.${parent}`)) return false;
    const label = host.slice(0, -(parent.length + 1));
    return label.length > 0 && !label.includes('.');
  });
}
