// What the primary and its receive workers say to each other over the IPC channel (node:cluster,
// advanced serialization: Dates and Buffers arrive as they left). No I/O.
import type { RuntimeConfig, SmtpReply } from '../../model.js';
import type { EngineEvent } from '../events.js';
import type { LogLevel } from '../log.js';
import type { JournalLocation, SegmentId } from '../queue/journal.js';
import type { ControlRecord } from '../queue/record.js';

/** The environment a worker is started with: its writer name and the state directory. */
export const WORKER_ENV = {
  writer: 'DOMSEC_WORKER_WRITER',
  stateDir: 'DOMSEC_WORKER_STATE',
} as const;

/** The stdio slot at which a worker holds the state lock's pipe (it covers the whole group). */
export const LOCK_FD = 4;

/** The primary to a worker. */
export type PrimaryMessage =
  /** Build this generation and bind what it adds; answer prepared or prepare-failed. */
  | {
      type: 'prepare';
      number: number;
      config: RuntimeConfig;
      appliedAt: Date;
      /** The group's session ticket secret, the same in every prepare (server-tls.ts ticketKeys). */
      ticketSecret: Buffer;
    }
  /** The prepared generation runs now. */
  | { type: 'commit'; number: number }
  /** The prepared generation is applied nowhere: undo what was bound for it. */
  | { type: 'abort'; number: number }
  /** Stop accepting, let the sessions end, close the journal, exit. */
  | { type: 'stop' }
  /** The answer to an admission: counted in, or the refusal. */
  | { type: 'admitted'; id: number; connector: string; client: string; refusal?: SmtpReply }
  /** A connector's stress (counted over the group) started or ended: shorten or restore waits. */
  | {
      type: 'stress';
      connector: string;
      stressed: boolean;
      sessions: number;
      maxInboundConnection: number;
    };

/** One listener as a worker sees it. */
export interface WorkerListener {
  binding: string;
  address: string | null;
  port: number | null;
  listening: boolean;
}

/** What a worker runs, told whenever it changes. */
export interface WorkerReport {
  generation: number;
  listeners: WorkerListener[];
  policy: { address: string; port: number } | null;
}

/** A worker to the primary. */
export type WorkerMessage =
  /** Started: ready for a generation. */
  | { type: 'ready'; writer: string }
  /** Ready to commit: where each listener of the generation listens, ours included. */
  | { type: 'prepared'; number: number; listeners: WorkerListener[] }
  | { type: 'prepare-failed'; number: number; reason: string }
  /** A message is durable in the worker's journal segment (the client may already have its 250). */
  | { type: 'accepted'; message: string; records: ControlRecord[]; location: JournalLocation }
  /** A large message is durable in the file store (data/, control/), committed by the worker. */
  | { type: 'stored'; message: string; records: ControlRecord[] }
  /** The worker appends no more to this segment, which holds `messages` messages. */
  | { type: 'sealed'; segment: SegmentId; messages: number }
  /** What happened in the worker, for the primary's event log, metrics and partner health. */
  | { type: 'event'; event: EngineEvent }
  | ({ type: 'report' } & WorkerReport)
  /** A line for the primary's log (the worker has no log of its own). */
  | { type: 'log'; level: LogLevel; event: string; fields: Record<string, unknown> }
  /** May this connection be counted in on its connector? (the primary counts the group's) */
  | {
      type: 'admit';
      id: number;
      connector: string;
      client: string;
      maxInboundConnection: number;
      maxInboundConnectionPerSource: number;
      partnerRange: boolean;
    }
  /** A session admitted earlier ended. */
  | { type: 'release'; connector: string; client: string }
  /** Sessions closed in the worker when a connector's stress started (their wait was over). */
  | { type: 'stress-closed'; connector: string; closed: number }
  /** Stopped: every session ended; `sessions` were open when it stopped accepting. */
  | { type: 'stopped'; sessions: number };
