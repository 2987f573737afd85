// The admin API's wire contract, shared by the control server (inside the engine process) and
// the control client (used by the CLI). JSON over HTTP on loopback, bearer token required.
import type {
  ApplyResult,
  EngineState,
  HistoryEntry,
  QueuedMessageSummary,
  ReconcileReport,
  RuntimeConfig,
} from '../model.js';

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
  domain?: string;
}

export interface RetryResponse {
  retried: number;
}

/** Error bodies carry a stable code the CLI maps to its messages and exit codes. */
export type ErrorCode =
  | 'unauthorized'
  | 'not-found'
  | 'bad-request'
  | 'too-large'
  | 'locked'
  | 'stale-plan'
  | 'apply-failed'
  | 'internal';

export interface ErrorResponse {
  error: { code: ErrorCode; message: string };
}
