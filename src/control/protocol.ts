// The admin API's wire contract, shared by the control server (inside the engine process) and
// the control client (used by the CLI). JSON over HTTP on loopback, bearer token required.
import type {
  ApplyResult,
  EngineState,
  HistoryEntry,
  ObjectState,
  QueuedMessageSummary,
  ReconcileReport,
  ReconcileStatus,
  RuntimeConfig,
} from '../model.js';
import type { StalePlan } from '../stale-plan.js';

export const API_PREFIX = '/v1';

export interface ApplyRequest {
  config: RuntimeConfig;
  /** When set, the apply is refused if the engine's generation moved since (a stale plan). */
  baseGeneration?: number;
}

export type ApplyResponse = ApplyResult;

export interface HistoryResponse {
  formatVersion: 1;
  generation: number; // the one running now
  entries: HistoryEntry[]; // newest first
}

/** GET /v1/history/GEN: a kept generation as GET /v1/state reports objects (secrets replaced). */
export interface KeptGenerationResponse {
  formatVersion: 1;
  generation: number;
  objects: ObjectState[];
}

export interface RollbackRequest {
  generation: number;
  /** As for apply: refused if the engine moved since the caller looked. */
  baseGeneration?: number;
}

/** POST /v1/status: a reconciler's report of one attempt; GET /v1/status returns ReconcileStatus. */
export type StatusReport = ReconcileReport;

export interface QueueResponse {
  queues: EngineState['queues'];
  messages: QueuedMessageSummary[];
}

export interface RetryRequest {
  /** Absent or null: every queue. */
  domain?: string | null;
}

export interface RetryResponse {
  retried: number;
  /** Suspended next-hop domains the retry left alone (the one asked for, or all of them). */
  suspended?: string[];
}

/** POST /v1/queues/suspend and /v1/queues/resume. */
export interface QueueHoldRequest {
  domain: string;
}

export interface SuspendResponse {
  domain: string;
  /** False when the domain was already suspended (nothing changed). */
  suspended: boolean;
  /** Entries queued for it now, all held. */
  messages: number;
}

export interface ResumeResponse {
  domain: string;
  /** False when the domain was not suspended (nothing changed). */
  resumed: boolean;
  /** Entries retried at once. */
  retried: number;
}

/** A partner's domain security in one direction, as the status page marks it. */
export type PartnerMark = 'secured' | 'failing' | 'not-configured' | 'no-session-yet';

export interface PartnerDirectionView {
  mark: PartnerMark;
  /** The last certificate verified in this direction (kept after a later refusal). */
  lastVerified: {
    subject: string;
    fingerprint: string;
    notAfter: string | null;
    at: string;
  } | null;
  lastRefusal: {
    reason: string;
    at: string;
    subject: string | null;
    fingerprint: string | null;
  } | null;
}

/** GET /v1/overview: everything the status page shows, in one read. */
export interface OverviewResponse {
  formatVersion: 1;
  generatedAt: string;
  organization: {
    name: string;
    hostname: string;
    acceptedDomains: string[];
    certificate: { name: string; subject: string; fingerprint: string; notAfter: string };
  } | null;
  partners: {
    name: string;
    domain: string;
    send: PartnerDirectionView;
    receive: PartnerDirectionView;
  }[];
  receiveConnectors: {
    name: string;
    bindings: { binding: string; listening: boolean }[];
    domainSecure: boolean;
    requireTls: boolean;
    sessions: number;
  }[];
  sendConnectors: {
    name: string;
    addressSpaces: string[];
    routing: string;
    domainSecure: boolean;
    requireTls: boolean;
    /** Sessions open now to next hops, kept idle ones included. */
    sessions: number;
  }[];
  queues: EngineState['queues'];
  /**
   * TLS policy outcomes of send sessions since the engine started, per policy domain (the first
   * 100 seen, then "other"), failures by RFC 8460 result type.
   */
  policyResults: {
    domain: string;
    policyTypes: string[];
    successful: number;
    failed: number;
    failures: { result: string; sessions: number }[];
  }[];
  reconcile: {
    generation: number;
    appliedAt: string | null;
    source: string | null;
    revision: string | null;
    status: ReconcileStatus;
  };
}

/** Error bodies carry a stable code the CLI maps to its messages and exit codes. */
export type ErrorCode =
  | 'unauthorized'
  | 'not-found'
  | 'method-not-allowed'
  | 'bad-request'
  | 'too-large'
  | 'unsupported-media-type'
  | 'locked'
  | 'stale-plan'
  | 'apply-failed'
  | 'internal';

export interface ErrorResponse {
  error: {
    code: ErrorCode;
    message: string;
    /** For a body that does not decode: the JSON pointer of the wrong field ("" for the body). */
    field?: string;
    /** What the field's schema expected, in words. */
    expected?: string;
    /** For stale-plan: why, as fields (absent from engines before this field). */
    stale?: StalePlan;
  };
}
