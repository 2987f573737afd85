// A queue entry as the queue holds it in memory (its control record, when it is next due, whether
// the dispatcher holds it, the body of a first attempt), and what the queue shows of its entries:
// per-domain summaries, messages. One owner changes an Entry: MessageQueue (queue.ts), settling
// with settle.ts's decisions. The files (message-files.ts) only read one, as a StoredEntry; where a
// message's bytes are (journal or file store) is theirs, not the entry's.
import type { QueuedMessageSummary, QueueStatus, QueueSummary } from '../../model.js';
import type { ControlRecord } from './record.js';
import type { DomainName } from '../../domain-name.js';

export interface Entry {
  record: ControlRecord;
  dueAt: number; // ms; retry() moves it without rewriting the file
  active: boolean;
  /** The body as accepted, until the first attempt is settled; undefined: read it from disk. */
  body?: Buffer;
}

/** What the files see of an entry: read-only. */
export type StoredEntry = Readonly<Pick<Entry, 'record' | 'body'>>;

/** A queue's summary as the engine keys it: by canonical next-hop domain. */
export type NextHopSummary = QueueSummary & { nextHopDomain: DomainName };

export function summarize(entries: Iterable<Entry>, now: number): NextHopSummary[] {
  const byDomain = new Map<DomainName, Entry[]>();
  for (const entry of entries) {
    const list = byDomain.get(entry.record.nextHopDomain) ?? [];
    list.push(entry);
    byDomain.set(entry.record.nextHopDomain, list);
  }
  return [...byDomain.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([nextHopDomain, list]) => {
      const status: QueueStatus = list.some((e) => e.active)
        ? 'active'
        : list.some((e) => e.dueAt <= now)
          ? 'ready'
          : 'retry';
      const tried = list.filter((e) => e.record.lastAttemptAt !== null);
      const latest = tried.sort((a, b) => attemptTime(b) - attemptTime(a))[0];
      const waiting = list.filter((e) => !e.active && e.record.attempts > 0).map((e) => e.dueAt);
      return {
        nextHopDomain,
        messageCount: list.length,
        status,
        lastError: latest?.record.lastError ?? null,
        nextRetryAt: waiting.length === 0 ? null : new Date(Math.min(...waiting)).toISOString(),
      };
    });
}

export function listMessages(entries: Iterable<Entry>): QueuedMessageSummary[] {
  return [...entries]
    .sort(
      (a, b) =>
        a.record.receivedAt.localeCompare(b.record.receivedAt) ||
        a.record.id.localeCompare(b.record.id),
    )
    .map(({ record, dueAt }) => ({
      id: record.id,
      nextHopDomain: record.nextHopDomain,
      from: record.from,
      recipients: [...record.recipients],
      size: record.size,
      receivedAt: record.receivedAt,
      attempts: record.attempts,
      lastError: record.lastError,
      nextRetryAt: record.attempts > 0 ? new Date(dueAt).toISOString() : null,
    }));
}

function attemptTime(entry: Entry): number {
  return entry.record.lastAttemptAt === null ? 0 : Date.parse(entry.record.lastAttemptAt);
}
