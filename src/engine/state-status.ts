// The engine's reconcile status as one record (kept in <state>/reconcile-status.json): every
// attempt from any source changes it here, and what `domsec status` shows is computed from it and
// from what runs now (a listener that stopped is drift). Pure: the engine keeps and saves it.
import type { ReconcileOutcome, ReconcileReport, ReconcileStatus } from '../model.js';

export interface StatusRecord {
  formatVersion: 1;
  /** Whether the last attempt left the engine running what it was asked to. */
  ready: boolean;
  lastAppliedGeneration: number | null;
  lastAppliedAt: string | null;
  lastAppliedBy: string | null;
  lastAttemptAt: string | null;
  lastAttemptOutcome: ReconcileOutcome | null;
  lastAttemptError: string | null;
  lastAttemptBy: string | null;
  /** The last reconciler that reported (watch, serve --watch), and when its entry lapses. */
  reconciler: string | null;
  reconcilerReportedAt: string | null;
  reconcilerExpiresAt: string | null;
  /** The longest time between two of its reports seen so far (ms): its heartbeat. */
  reconcilerIntervalMs: number | null;
}

/** One attempt to change what the engine runs, from whichever source. */
export interface Attempt {
  outcome: ReconcileOutcome;
  /** The generation the engine runs after it. */
  generation: number;
  error: string | null;
  /** "apply", "rollback of generation 3", "serve -f manifests", a reconciler's name. */
  by: string;
}

/**
 * How long a reconciler's entry stays without a new report: three of its heartbeats, as seen
 * between its reports (watch reports after every attempt, so --resync sets the beat), never
 * under a second nor over an hour; a quarter of an hour until a second report shows its beat.
 */
export const RECONCILER_MISSED_BEATS = 3;
export const RECONCILER_MIN_TTL_MS = 1_000;
export const RECONCILER_MAX_TTL_MS = 3_600_000;
export const RECONCILER_FIRST_TTL_MS = 900_000;

export const EMPTY_STATUS: StatusRecord = {
  formatVersion: 1,
  ready: false,
  lastAppliedGeneration: null,
  lastAppliedAt: null,
  lastAppliedBy: null,
  lastAttemptAt: null,
  lastAttemptOutcome: null,
  lastAttemptError: null,
  lastAttemptBy: null,
  reconciler: null,
  reconcilerReportedAt: null,
  reconcilerExpiresAt: null,
  reconcilerIntervalMs: null,
};

export function recordAttempt(record: StatusRecord, attempt: Attempt, now: Date): StatusRecord {
  const succeeded = attempt.outcome === 'applied' || attempt.outcome === 'unchanged';
  const at = now.toISOString();
  // Unchanged also means what was asked for is what runs: that generation is the applied one.
  const applied = succeeded && attempt.generation > 0;
  return {
    ...record,
    ready: succeeded,
    lastAppliedGeneration: applied ? attempt.generation : record.lastAppliedGeneration,
    lastAppliedAt: attempt.outcome === 'applied' ? at : record.lastAppliedAt,
    lastAppliedBy: attempt.outcome === 'applied' ? attempt.by : record.lastAppliedBy,
    lastAttemptAt: at,
    lastAttemptOutcome: attempt.outcome,
    lastAttemptError: succeeded ? null : attempt.error,
    lastAttemptBy: attempt.by,
  };
}

/** A reconciler's report (POST /v1/status): its attempt, and a heartbeat that renews its entry. */
export function recordReport(
  record: StatusRecord,
  report: ReconcileReport,
  now: Date,
): StatusRecord {
  const attempted = recordAttempt(
    record,
    {
      outcome: report.outcome,
      generation: report.generation,
      error: report.error,
      by: report.reconciler,
    },
    now,
  );
  const same = record.reconciler === report.reconciler && record.reconcilerReportedAt !== null;
  const since = same ? now.getTime() - Date.parse(record.reconcilerReportedAt ?? '') : NaN;
  const interval = Number.isFinite(since)
    ? Math.max(since, same ? (record.reconcilerIntervalMs ?? 0) : 0)
    : null;
  const ttl =
    interval === null
      ? RECONCILER_FIRST_TTL_MS
      : Math.min(
          RECONCILER_MAX_TTL_MS,
          Math.max(RECONCILER_MIN_TTL_MS, RECONCILER_MISSED_BEATS * interval),
        );
  return {
    ...attempted,
    reconciler: report.reconciler,
    reconcilerReportedAt: now.toISOString(),
    reconcilerExpiresAt: new Date(now.getTime() + ttl).toISOString(),
    reconcilerIntervalMs: interval,
  };
}

/** A record read back from the state directory (older ones lack fields), or undefined. */
export function readStatusRecord(saved: unknown): StatusRecord | undefined {
  if (typeof saved !== 'object' || saved === null) return undefined;
  const fields = saved as Partial<StatusRecord>;
  if (fields.formatVersion !== 1 || typeof fields.ready !== 'boolean') return undefined;
  const text = (value: unknown) => (typeof value === 'string' ? value : null);
  const number = (value: unknown) => (typeof value === 'number' ? value : null);
  const outcomes: ReconcileOutcome[] = ['applied', 'unchanged', 'invalid', 'failed'];
  return {
    formatVersion: 1,
    ready: fields.ready,
    lastAppliedGeneration: number(fields.lastAppliedGeneration),
    lastAppliedAt: text(fields.lastAppliedAt),
    lastAppliedBy: text(fields.lastAppliedBy),
    lastAttemptAt: text(fields.lastAttemptAt),
    lastAttemptOutcome: outcomes.find((o) => o === fields.lastAttemptOutcome) ?? null,
    lastAttemptError: text(fields.lastAttemptError),
    lastAttemptBy: text(fields.lastAttemptBy),
    reconciler: text(fields.reconciler),
    reconcilerReportedAt: text(fields.reconcilerReportedAt),
    // An entry without an expiry (written before it had one) counts as lapsed.
    reconcilerExpiresAt: text(fields.reconcilerExpiresAt),
    reconcilerIntervalMs: number(fields.reconcilerIntervalMs),
  };
}

/** What runs now, for the status: the generation, the identity, and any drift found. */
export interface RunningFacts {
  generation: number;
  engineId: string;
  /** One line per thing that no longer runs as applied ("listener 127.0.0.1:25 is not listening"). */
  drift: string[];
}

export function viewStatus(
  record: StatusRecord,
  running: RunningFacts,
  now: Date,
): ReconcileStatus {
  const reasons: string[] = [];
  if (running.generation === 0 && record.lastAttemptOutcome === null)
    reasons.push('no configuration has been applied yet');
  else if (!record.ready)
    reasons.push(
      `the last attempt${record.lastAttemptBy === null ? '' : ` (${record.lastAttemptBy})`} ${record.lastAttemptOutcome === 'invalid' ? 'found the manifests invalid' : 'failed'}: ${record.lastAttemptError ?? 'no reason given'}; the engine runs generation ${running.generation}`,
    );
  reasons.push(...running.drift.map((line) => `drift: ${line}`));
  const expires = Date.parse(record.reconcilerExpiresAt ?? '');
  const active = record.reconciler !== null && Number.isFinite(expires) && expires > now.getTime();
  return {
    formatVersion: 1,
    ready: reasons.length === 0,
    reason: reasons.length === 0 ? null : reasons.join('; '),
    engineId: running.engineId,
    generation: running.generation,
    lastAppliedGeneration: record.lastAppliedGeneration,
    lastAppliedAt: record.lastAppliedAt,
    lastAppliedBy: record.lastAppliedBy,
    lastAttemptAt: record.lastAttemptAt,
    lastAttemptOutcome: record.lastAttemptOutcome,
    lastAttemptError: record.lastAttemptError,
    lastAttemptBy: record.lastAttemptBy,
    reconciler: active ? record.reconciler : null,
    lastReconciler: record.reconciler,
    reconcilerReportedAt: record.reconcilerReportedAt,
    reconcilerExpiresAt: record.reconcilerExpiresAt,
  };
}
