// The typed comparisons a field's security impact is judged by: before value x after value ->
// weakens, strengthens or neutral, with the reason a reviewer reads. Pure; the table of which
// field uses which is security-fields.ts.
import type { JsonObject, JsonValue, SecurityImpact } from '../model.js';
import { rangesBeyond } from '../ip-coverage.js';

export interface Verdict {
  impact: SecurityImpact;
  reason: string;
}

/** The whole specs the field belongs to, for comparisons that depend on a sibling field. */
export interface Specs {
  before: JsonObject;
  after: JsonObject;
}

/** Undefined when the field is absent from that side (an older engine, a partial object). */
export type Comparison = (
  before: JsonValue | undefined,
  after: JsonValue | undefined,
  specs: Specs,
) => Verdict[];

export interface Classification {
  /** One line for docs/plan-format.md: which change weakens, which strengthens. */
  rule: string;
  compare: Comparison;
}

const weakens = (reason: string): Verdict => ({ impact: 'weakens', reason });
const strengthens = (reason: string): Verdict => ({ impact: 'strengthens', reason });

/** Changing it never makes the engine accept or verify differently. */
export function neutral(why: string): Classification {
  return { rule: `neutral: ${why}`, compare: () => [] };
}

/** A boolean whose `true` is the stricter setting; absent reads as `fallback`. */
export function stricterWhenOn(what: string, fallback = false): Classification {
  return {
    rule: `turning it off weakens, turning it on strengthens`,
    compare: (before, after) => {
      const was = before === undefined || before === null ? fallback : before === true;
      const will = after === undefined || after === null ? fallback : after === true;
      if (was && !will) return [weakens(`${what} turned off`)];
      if (!was && will) return [strengthens(`${what} turned on`)];
      return [];
    },
  };
}

/** A boolean whose `true` is the looser setting; absent reads as `fallback`. */
export function looserWhenOn(on: string, off: string, fallback = false): Classification {
  return {
    rule: `turning it on weakens, turning it off strengthens`,
    compare: (before, after) => {
      const was = before === undefined || before === null ? fallback : before === true;
      const will = after === undefined || after === null ? fallback : after === true;
      if (!was && will) return [weakens(on)];
      if (was && !will) return [strengthens(off)];
      return [];
    },
  };
}

/**
 * An enum ordered from the strictest value to the loosest. A value not in the order (unknown
 * to this domsec) counts as the loosest: fail closed.
 */
export function ordered(
  what: string,
  strictestFirst: readonly string[],
  /** The value an absent field stands for; without one, a field added or removed is not compared. */
  absent?: string,
): Classification {
  const rank = (value: JsonValue | undefined) => {
    const index = strictestFirst.indexOf(String(value));
    return index === -1 ? strictestFirst.length : index;
  };
  return {
    rule:
      `ordered ${strictestFirst.join(' > ')}: a looser value weakens, a stricter one strengthens` +
      (absent === undefined ? '' : `; absent counts as ${absent}`),
    compare: (was, will) => {
      const before = was ?? absent;
      const after = will ?? absent;
      if (before === undefined || after === undefined) return [];
      if (rank(after) > rank(before)) return [weakens(`${what} loosened to ${String(after)}`)];
      if (rank(after) < rank(before)) return [strengthens(`${what} raised to ${String(after)}`)];
      return [];
    },
  };
}

/** A set where each member admits more: an added member weakens, a removed one strengthens. */
export function widensWhenAdded(what: string, why: string): Classification {
  return {
    rule: `a set: an added member weakens (${why}), a removed one strengthens`,
    compare: (before, after) => {
      const was = list(before);
      const will = list(after);
      const added = will.filter((item) => !was.includes(item));
      const removed = was.filter((item) => !will.includes(item));
      return [
        ...(added.length > 0 ? [weakens(`${what} added: ${added.join(', ')}`)] : []),
        ...(removed.length > 0 ? [strengthens(`${what} removed: ${removed.join(', ')}`)] : []),
      ];
    },
  };
}

/**
 * IP ranges compared by the addresses they cover. With `emptyMeansAny`, an empty list admits
 * every address (a PartnerDomain's remoteIPRanges).
 */
export function addressCoverage(what: string, emptyMeansAny: boolean): Classification {
  const ranges = (value: JsonValue | undefined) => {
    const written = list(value);
    return emptyMeansAny && written.length === 0 ? ['0.0.0.0/0', '::/0'] : written;
  };
  return {
    rule: `compared by the addresses covered${emptyMeansAny ? ' (empty: any address)' : ''}: reaching an address the old ranges did not weakens, covering fewer strengthens`,
    compare: (before, after) => {
      if (before === undefined && after === undefined) return [];
      const was = ranges(before);
      const will = ranges(after);
      const widened = rangesBeyond(will, was);
      const narrowed = rangesBeyond(was, will);
      if (widened.length > 0) {
        const removed = emptyMeansAny && list(after).length === 0;
        return [
          weakens(
            removed
              ? `${what}: restriction removed (any address)`
              : `${what} widened: ${widened.join(', ')}`,
          ),
        ];
      }
      return narrowed.length > 0 ? [strengthens(`${what} narrowed`)] : [];
    },
  };
}

/** A value whose every change makes the engine accept something else (a CA's certificate). */
export function anyChangeWeakens(what: string): Classification {
  return {
    rule: `any change weakens (${what})`,
    compare: (before, after) =>
      JSON.stringify(before ?? null) === JSON.stringify(after ?? null)
        ? []
        : [weakens(`${what}: ${show(before)} -> ${show(after)}`)],
  };
}

export function list(value: JsonValue | undefined): string[] {
  return Array.isArray(value) ? value.map(String) : [];
}

function show(value: JsonValue | undefined): string {
  return value === undefined || value === null ? '(none)' : String(value);
}
