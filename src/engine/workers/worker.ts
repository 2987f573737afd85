// A receive worker: one of the processes that share the engine's receive listeners
// (docs/workers.md). It runs receive only: its listener set on the listeners the primary holds
// (node:cluster), its own journal segments, and a generation slot that follows the primary's,
// prepare then commit. Delivery, the admin API, the status and the state lock are the primary's;
// what happens here (events, log lines, sessions) is told to it. It ends with the primary.
import { join } from 'node:path';
import { EngineEvents } from '../events.js';
import { buildGeneration } from '../generation.js';
import type { EngineLog } from '../log.js';
import { ProtocolLog } from '../protocol-log.js';
import { DirectorySyncs } from '../queue/directory-syncs.js';
import { WorkerJournal } from '../queue/journal.js';
import { StorageGuard } from '../queue/storage-guard.js';
import { GenerationSlot, type PreparedGeneration } from '../runtime/generation-slot.js';
import { ListenerSet } from '../runtime/listener-set.js';
import type { PrimaryMessage, WorkerMessage, WorkerReport } from './protocol.js';
import { WorkerCounter } from './worker-counter.js';
import { WorkerSink } from './worker-sink.js';

/** How often a worker looks whether what it runs changed (a listener bound, a generation), to tell. */
const REPORT_MS = 200;
/** A worker tells at least this often, changed or not: its primary knows it is alive. */
const HEARTBEAT_MS = 1_000;
/** How often a worker checks that its primary is still its parent (a backstop to the channel). */
const PARENT_CHECK_MS = 500;

export interface ReceiveWorkerOptions {
  stateDir: string;
  writer: string;
  /** The channel to the primary (process.send in a cluster worker). */
  send: (message: WorkerMessage) => boolean;
  /** Messages from the primary arrive here. */
  onMessage: (listener: (message: PrimaryMessage) => void) => void;
  /** Called once the worker is done (stopped, or its primary is gone): the process exits. */
  exit: (code: number) => void;
}

/** Runs a receive worker until the primary stops it or goes away. */
export function runReceiveWorker(options: ReceiveWorkerOptions): void {
  const { send } = options;
  const log: EngineLog = {
    log(level, event, fields = {}) {
      try {
        send({ type: 'log', level, event, fields });
      } catch {
        // Fields that cannot cross the channel: the line goes without them.
        send({ type: 'log', level, event, fields: { unsent: Object.keys(fields) } });
      }
    },
  };
  const events = new EngineEvents();
  events.subscribe((event) => {
    send({ type: 'event', event });
  });
  const journal = new WorkerJournal(
    join(options.stateDir, 'queue', 'journal'),
    options.writer,
    new DirectorySyncs(),
  );
  journal.onSeal = (segment, messages) => send({ type: 'sealed', segment, messages });
  const sink = new WorkerSink(journal, join(options.stateDir, 'queue'), (notice) =>
    notice.location === undefined
      ? send({ type: 'stored', message: notice.message, records: notice.records })
      : send({
          type: 'accepted',
          message: notice.message,
          records: notice.records,
          location: notice.location,
        }),
  );
  const counter = new WorkerCounter(send);
  /** The group's session ticket secret, from the first prepare on (before any listener). */
  let ticketSecret: Buffer | undefined;
  const slot = new GenerationSlot();
  const protocolLog = new ProtocolLog(join(options.stateDir, 'logs', 'protocol'));
  const listeners = new ListenerSet({
    slot,
    sink,
    log,
    events,
    protocolLog,
    counter,
    ticketSecret: () => ticketSecret,
    storage: new StorageGuard({ directory: join(options.stateDir, 'queue'), log }),
  });
  let prepared: PreparedGeneration | undefined;
  let stopping = false;
  let lastReport = '';
  let lastSent = 0;

  const report = (): void => {
    const generation = slot.current;
    const current: WorkerReport = {
      generation: slot.number,
      listeners: listeners.state(generation).map((listener) => ({
        binding: listener.binding,
        address: listener.address,
        port: listener.port,
        listening: listener.listening,
      })),
      policy: listeners.policyAddress(),
    };
    const text = JSON.stringify(current);
    if (text === lastReport && Date.now() - lastSent < HEARTBEAT_MS) return;
    lastReport = text;
    lastSent = Date.now();
    send({ type: 'report', ...current });
  };
  const reporting = setInterval(report, REPORT_MS);

  const stop = async (): Promise<void> => {
    if (stopping) return;
    stopping = true;
    clearInterval(reporting);
    const closing = listeners.close();
    await closing.closed;
    await journal.close();
    await protocolLog.close();
    send({ type: 'stopped', sessions: closing.sessions });
    options.exit(0);
  };

  /** One message at a time, in order: an abort or a commit waits for the prepare before it. */
  const handle = async (message: PrimaryMessage): Promise<void> => {
    switch (message.type) {
      case 'prepare': {
        ticketSecret ??= message.ticketSecret;
        try {
          const next = buildGeneration(message.config, message.number, {
            appliedAt: message.appliedAt,
            previous: slot.current,
          });
          const staged = slot.prepare(next);
          try {
            await listeners.prepare(staged);
          } catch (error) {
            slot.abort(staged);
            throw error;
          }
          prepared = staged;
          const ready = listeners.preparedListeners().map((listener) => ({
            ...listener,
            listening: listener.address !== null,
          }));
          send({ type: 'prepared', number: message.number, listeners: ready });
        } catch (error) {
          send({ type: 'prepare-failed', number: message.number, reason: describe(error) });
        }
        return;
      }
      case 'commit': {
        if (prepared?.generation.number !== message.number) return;
        const committing = prepared;
        prepared = undefined;
        slot.commit(committing);
        report();
        return;
      }
      case 'abort': {
        if (prepared?.generation.number !== message.number) return;
        const aborting = prepared;
        prepared = undefined;
        try {
          await listeners.abort(aborting);
        } finally {
          slot.abort(aborting);
        }
        return;
      }
      case 'stop':
        await stop();
        return;
    }
  };
  let handling: Promise<void> = Promise.resolve();
  options.onMessage((message) => {
    // Admissions and stress are answered at once: a connection waits for them, not for an apply.
    if (message.type === 'admitted') {
      counter.answered(message.id, message.connector, message.client, {
        ...(message.refusal === undefined ? {} : { refusal: message.refusal }),
      });
      return;
    }
    if (message.type === 'stress') {
      const { type: _type, ...change } = message;
      const closed = counter.stress(change);
      if (closed > 0) send({ type: 'stress-closed', connector: message.connector, closed });
      return;
    }
    handling = handling.then(() =>
      handle(message).catch((error: unknown) =>
        log.log('error', 'workers.message-failed', {
          message: message.type,
          error: describe(error),
        }),
      ),
    );
  });
  send({ type: 'ready', writer: options.writer });
}

/**
 * Ends the worker with its primary: when the channel closes (the primary exited or was killed)
 * or when its parent is no longer the primary. What it acknowledged is in its journal segments,
 * which the next start recovers; the state lock's pipe it inherited (LOCK_FD, never closed) keeps
 * the state directory locked until it is gone, so that no new engine replays a segment still
 * being written.
 */
export function endWithPrimary(parent: number, exit: () => void): void {
  process.once('disconnect', exit);
  const check = setInterval(() => {
    if (process.ppid !== parent) exit();
  }, PARENT_CHECK_MS);
  check.unref();
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
