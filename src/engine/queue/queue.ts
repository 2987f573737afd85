// The durable message queue, in one paragraph. A message is accepted once it is durable in the
// queue's journal, one append and one sync shared with the messages that arrived meanwhile
// (message-files.ts, journal.ts); accept() resolves (the client gets 250) only after that. A large
// one (over 256 KB, receive/message.ts) bypasses the journal: its body is written into the file
// store's data/ as it arrives (spool), fsync'ed with its control records before the 250, and read
// back in chunks for delivery (message-body.ts); cut short, it is an orphan body that recovery
// removes. A message has one entry per next-hop domain (recipient domain, lower-cased): envelope,
// attempts, last error, next attempt time. An entry delivered at its first attempt is only marked
// done in the journal; one that must wait moves, with its message, to the file store: its body in
// data/<id>.eml, a control record per entry in control/<id>.<n>.json, rewritten after each attempt
// (temporary name, fsync, rename, directory fsync) and deleted when nothing is left, the body going
// with the last record that names it. Opening the queue replays the journal into the file store and
// recovers that (store.ts). An entry is ready when its next attempt is due, active while the
// dispatcher holds it, retry otherwise. What an attempt did is decided by settle.ts (pure) and
// applied here: a permanent (5xx) failure, or one still temporary after expireAfter, ends the
// recipient with a non-delivery report to the sender, queued here like any message. So a crash can
// repeat a delivery but never lose an acknowledged message. An operator may suspend a next-hop
// domain (Exchange's Suspend-Queue): its entries stay queued, are never handed out, and still
// expire; the suspended set is operational state kept in suspended.json, not in any manifest.
// MessageQueue is the one owner of its entries (entry.ts): the files only read them.
import type { QueuedMessageSummary } from '../../model.js';
import type { EngineLog } from '../log.js';
import { loggedEvents, type EngineEvents } from '../events.js';
import type {
  BodySpool,
  IncomingEnvelope,
  IncomingMessage,
  MessageSink,
  SpooledMessage,
} from '../message-sink.js';
import { buildNonDeliveryReport, headerSection, type BouncedRecipient } from './dsn.js';
import type { DeliveryOutcome, OutboundMessage } from './outcome.js';
import { listMessages, summarize, type Entry, type NextHopSummary } from './entry.js';
import { groupByDomain } from './recipients.js';
import { MessageFiles, type MessageFilesOptions } from './message-files.js';
import { contentHead } from './message-body.js';
import type { JournalLocation, SegmentId } from './journal.js';
import { BodyFile } from './store.js';
import { entryId, MessageIds, type ControlRecord } from './record.js';
import {
  expiredWhileSuspended,
  reportlessBecause,
  settle,
  suspendedOutcome,
  type SettlePolicy,
} from './settle.js';
import { nextHopDomainOf, SuspendedDomains } from './suspended.js';
import type { DomainName } from '../../domain-name.js';

export type { SettlePolicy } from './settle.js';

export type QueueOptions = MessageFilesOptions & {
  /** Where acceptances and deliveries are told; the queue's log only when not given. */
  events?: EngineEvents;
};

/** At most this much of accepted bodies stays in memory waiting for its first attempt. */
const BODY_CACHE_BYTES = 32 * 1024 * 1024;
/** A report quotes the original's header section, read from at most this much of it. */
const REPORTED_HEAD_BYTES = 64 * 1024;

export class MessageQueue implements MessageSink {
  private readonly entries = new Map<string, Entry>();
  /** Message id -> its entries still queued (the body goes with the last). */
  private readonly byMessage = new Map<string, Set<Entry>>();
  private readonly listeners = new Set<() => void>();
  private readonly pending = new Set<Promise<unknown>>();
  private readonly ids = new MessageIds();
  private cachedBytes = 0;
  private closed = false;

  private constructor(
    private readonly files: MessageFiles,
    private readonly log: EngineLog,
    private readonly suspended: SuspendedDomains,
    readonly clock: () => number,
    private readonly events: EngineEvents,
  ) {}

  /** Opens (creating) the queue directory and recovers every entry on disk. */
  static async open(
    directory: string,
    log: EngineLog,
    clock: () => number = Date.now,
    options: QueueOptions = {},
  ): Promise<MessageQueue> {
    const { files, records } = await MessageFiles.open(directory, log, options);
    const queue = new MessageQueue(
      files,
      log,
      await SuspendedDomains.load(directory, log),
      clock,
      options.events ?? loggedEvents(log),
    );
    files.onRotate = (segment) => queue.moveIdle(segment);
    for (const record of records) {
      queue.add({ record, dueAt: Date.parse(record.nextAttemptAt), active: false });
    }
    log.log('info', 'queue.opened', {
      directory,
      entries: queue.entries.size,
      suspended: queue.suspended.list(),
    });
    return queue;
  }

  accept(message: IncomingMessage): Promise<string[]> {
    return this.track(this.write(message));
  }

  /**
   * Large bodies: written into the file store's data/ as they arrive (open), committed with their
   * control records (accept), never held in memory nor written to the journal.
   */
  readonly spool: BodySpool = {
    open: () => this.openBody(),
    accept: (message) => this.track(this.writeSpooled(message)),
  };

  private openBody(): Promise<BodyFile> {
    if (this.closed) return Promise.reject(new Error('the queue is closed'));
    return this.files.openBody(this.ids.next(this.clock()));
  }

  private async writeSpooled(message: SpooledMessage): Promise<string[]> {
    const { body } = message;
    if (!(body instanceof BodyFile)) throw new TypeError('a body this queue did not open');
    const now = this.clock();
    let records: ControlRecord[];
    try {
      if (this.closed) throw new Error('the queue is closed');
      records = this.recordsFor(body.message, message, body.size, now);
    } catch (error) {
      await body.discard();
      throw error;
    }
    // On failure the store removes the body too: a refused message leaves nothing behind.
    await this.files.acceptWritten(body.message, records, body);
    return this.accepted(body.message, message, records, now, undefined, undefined);
  }

  private async write(message: IncomingMessage): Promise<string[]> {
    if (this.closed) throw new Error('the queue is closed');
    const now = this.clock();
    const id = this.ids.next(now);
    const records = this.recordsFor(id, message, message.body.length, now);
    const location = await this.files.accept(id, records, message.body);
    // Kept in memory for the first attempt (bounded), so delivery does not read the file back.
    const cached = this.cachedBytes + message.body.length <= BODY_CACHE_BYTES;
    return this.accepted(id, message, records, now, location, cached ? message.body : undefined);
  }

  private recordsFor(
    id: string,
    message: IncomingEnvelope,
    size: number,
    now: number,
  ): ControlRecord[] {
    return recordsForMessage(id, message, size, now);
  }

  /**
   * A message a receive worker made durable in its own journal segment (docs/workers.md) joins
   * the queue where it is, as if accepted here. False when the queue already had it.
   */
  adopt(message: string, records: ControlRecord[], location: JournalLocation): boolean {
    const envelope = envelopeOf(records);
    if (this.closed || envelope === undefined) return false;
    if (!this.files.adopt(message, records, location)) return false;
    this.accepted(message, envelope, records, this.clock(), location, undefined);
    return true;
  }

  /**
   * A large message a receive worker committed to the file store itself (body in data/, records
   * in control/) joins the queue; false when the queue already had it.
   */
  adoptStored(message: string, records: ControlRecord[]): boolean {
    const envelope = envelopeOf(records);
    if (this.closed || envelope === undefined || this.byMessage.has(message)) return false;
    this.accepted(message, envelope, records, this.clock(), undefined, undefined);
    return true;
  }

  /** A receive worker rotated a journal segment holding `messages` out: it goes once they are spent. */
  seal(segment: SegmentId, messages: number): void {
    this.files.seal(segment, messages);
  }

  /**
   * A receive worker is gone: the messages of its segments that the queue had not heard of (made
   * durable, perhaps answered 250, and never told) join it; resolves with how many.
   */
  async writerGone(writer: string): Promise<number> {
    const found = await this.files.writerGone(writer);
    // Received like any other message: told as accepted (metrics, partner health, the log).
    for (const held of found) {
      const envelope = envelopeOf(held.records);
      if (envelope !== undefined)
        this.accepted(held.message, envelope, held.records, this.clock(), held.body, undefined);
    }
    // Large messages it committed to the file store and did not get to tell (those of workers
    // still running, told or about to be, are the same messages: told twice is told once).
    const stored = new Map<string, ControlRecord[]>();
    for (const record of await this.files.storedRecords()) {
      if (this.byMessage.has(record.message)) continue;
      stored.set(record.message, [...(stored.get(record.message) ?? []), record]);
    }
    for (const [message, records] of stored) {
      const envelope = envelopeOf(records);
      if (this.byMessage.has(message) || envelope === undefined) continue;
      this.accepted(message, envelope, records, this.clock(), undefined, undefined);
    }
    const messages = found.length + stored.size;
    if (messages > 0) this.log.log('info', 'queue.worker-journal-replayed', { writer, messages });
    return messages;
  }

  /** A durable message's entries join the queue; the dispatcher hears of them. */
  private accepted(
    id: string,
    message: IncomingEnvelope,
    records: ControlRecord[],
    dueAt: number,
    journal: JournalLocation | undefined,
    body: Buffer | undefined,
  ): string[] {
    for (const record of records) {
      const entry: Entry = { record, dueAt, active: false };
      if (body !== undefined) {
        entry.body = body;
        this.cachedBytes += body.length;
      }
      this.add(entry);
    }
    this.events.emit({
      type: 'queue.accepted',
      message: id,
      entries: records.map((r) => r.id),
      from: message.from,
      nextHops: [...new Set(records.map((r) => r.nextHopDomain))],
      size: records[0]?.size,
      domainSecured: message.domainSecured ?? null,
      connector: message.connector,
      ...(journal === undefined ? { stored: 'data' as const } : {}),
    });
    this.notify();
    return records.map((r) => r.id);
  }

  /** Called after every accept (the dispatcher kicks itself); returns the unsubscribe. */
  onQueued(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Per next-hop domain. A suspended domain says `suspended` (even while an attempt started before
   * the suspension finishes), has no next retry, and is listed with no mail too, so that the hold
   * an operator placed stays visible until it is lifted.
   */
  summaries(): NextHopSummary[] {
    const summaries = summarize(this.entries.values(), this.clock());
    if (this.suspended.size === 0) return summaries;
    const listed = new Set(summaries.map((s) => s.nextHopDomain));
    for (const nextHopDomain of this.suspended.list()) {
      if (listed.has(nextHopDomain)) continue;
      summaries.push({
        nextHopDomain,
        messageCount: 0,
        status: 'suspended',
        lastError: null,
        nextRetryAt: null,
      });
    }
    return summaries
      .map((s) =>
        this.suspended.has(s.nextHopDomain)
          ? { ...s, status: 'suspended' as const, nextRetryAt: null }
          : s,
      )
      .sort((a, b) => a.nextHopDomain.localeCompare(b.nextHopDomain));
  }

  isSuspended(domain: DomainName): boolean {
    return this.suspended.has(domain);
  }

  /** The suspended next-hop domains, sorted. */
  suspendedDomains(): string[] {
    return this.suspended.list();
  }

  /**
   * Holds a next-hop domain: nothing more is handed out for it until resume(), across restarts.
   * A domain with no mail queued may be suspended (mail queued later waits). False when it already
   * was. Resolves once suspended.json is durable; a failed write leaves the domain as it was.
   */
  async suspend(domain: string): Promise<boolean> {
    const wanted = nextHopDomainOf(domain);
    const changed = await this.track(this.suspended.add(wanted));
    if (changed) this.log.log('info', 'queue.suspended', { domain: wanted });
    return changed;
  }

  /** Lifts a hold (the caller kicks delivery); false when the domain was not suspended. */
  async resume(domain: string): Promise<boolean> {
    const wanted = nextHopDomainOf(domain);
    const changed = await this.track(this.suspended.remove(wanted));
    if (changed) this.log.log('info', 'queue.resumed', { domain: wanted });
    return changed;
  }

  messages(): QueuedMessageSummary[] {
    return listMessages(this.entries.values());
  }

  /** Idle entries (of domains the filter admits) due now, by due time: [entry id, next-hop domain]. */
  due(
    now = this.clock(),
    admit: (domain: DomainName) => boolean = () => true,
  ): { id: string; nextHopDomain: DomainName }[] {
    return [...this.entries.values()]
      .filter((e) => !e.active && e.dueAt <= now && admit(e.record.nextHopDomain))
      .sort((a, b) => a.dueAt - b.dueAt || a.record.id.localeCompare(b.record.id))
      .map((e) => ({ id: e.record.id, nextHopDomain: e.record.nextHopDomain }));
  }

  /** When the earliest idle entry (of a domain the filter admits) falls due (ms); undefined: none. */
  nextDueAt(admit: (domain: DomainName) => boolean = () => true): number | undefined {
    let earliest: number | undefined;
    for (const entry of this.entries.values()) {
      if (entry.active || !admit(entry.record.nextHopDomain)) continue;
      if (earliest === undefined || entry.dueAt < earliest) earliest = entry.dueAt;
    }
    return earliest;
  }

  /** Marks idle entries active (the caller delivers them, then settles or releases each). */
  claim(ids: readonly string[]): OutboundMessage[] {
    const claimed: OutboundMessage[] = [];
    for (const id of ids) {
      const entry = this.entries.get(id);
      if (entry === undefined || entry.active) continue;
      entry.active = true;
      const { record } = entry;
      claimed.push({
        id: record.id,
        from: record.from,
        recipients: [...record.recipients],
        size: record.size,
        receivedAt: new Date(record.receivedAt),
        body: () => this.files.body(entry),
        content: () => this.files.content(entry),
      });
    }
    return claimed;
  }

  /** Gives an entry back unchanged (its attempt could not be made). */
  release(id: string): void {
    const entry = this.entries.get(id);
    if (entry === undefined) return;
    entry.active = false;
    // Missed by its segment's rotation while it was out: it moves now.
    const segment = this.files.journalSegment(entry.record.message);
    if (segment !== undefined && this.files.rotatedOut(segment)) this.moveIdle(segment);
  }

  /** Makes idle entries (of one next-hop domain, or all) due now; returns how many. Not suspended ones. */
  retryNow(wanted?: DomainName): number {
    const now = this.clock();
    let count = 0;
    for (const entry of this.entries.values()) {
      if (entry.active || (wanted !== undefined && entry.record.nextHopDomain !== wanted)) continue;
      if (this.suspended.has(entry.record.nextHopDomain)) continue;
      entry.dueAt = now;
      count += 1;
    }
    return count;
  }

  /**
   * Expires the idle entries of suspended domains older than expireAfter, with a non-delivery
   * report, as Exchange expires messages in a suspended queue: a hold never keeps mail forever.
   * Resolves with how many it ended once they are settled.
   */
  async expireSuspended(policy: SettlePolicy): Promise<number> {
    if (this.suspended.size === 0) return 0;
    const now = this.clock();
    const expired = [...this.entries.values()].filter(
      (e) =>
        !e.active &&
        this.suspended.has(e.record.nextHopDomain) &&
        expiredWhileSuspended(e.record, policy, now),
    );
    await Promise.all(
      expired.map((entry) => {
        entry.active = true;
        return this.settle(entry.record.id, suspendedOutcome(entry.record), policy);
      }),
    );
    return expired.length;
  }

  /** When the first idle entry of a suspended domain expires (ms); undefined: none. */
  nextSuspendedExpiryAt(expireAfter: number): number | undefined {
    if (this.suspended.size === 0) return undefined;
    let earliest: number | undefined;
    for (const { active, record } of this.entries.values()) {
      if (active || !this.suspended.has(record.nextHopDomain)) continue;
      const expiresAt = Date.parse(record.receivedAt) + expireAfter;
      if (earliest === undefined || expiresAt < earliest) earliest = expiresAt;
    }
    return earliest;
  }

  /** Records what an attempt did: done, bounced (with a report) or rescheduled. Releases the entry. */
  settle(id: string, outcome: DeliveryOutcome, policy: SettlePolicy): Promise<void> {
    return this.track(this.record(id, outcome, policy));
  }

  private async record(id: string, outcome: DeliveryOutcome, policy: SettlePolicy): Promise<void> {
    const entry = this.entries.get(id);
    if (entry === undefined) return;
    try {
      await this.apply(entry, outcome, policy);
    } finally {
      entry.active = false;
      this.forgetBody(entry);
    }
  }

  private forgetBody(entry: Entry): void {
    if (entry.body === undefined) return;
    this.cachedBytes -= entry.body.length;
    entry.body = undefined;
  }

  /** Applies the settlement (settle.ts) of an attempt: reports first, then the entry's files. */
  private async apply(entry: Entry, outcome: DeliveryOutcome, policy: SettlePolicy): Promise<void> {
    const { record } = entry;
    const now = this.clock();
    const decision = settle(record, outcome, policy, now);
    // The report is durable before the entry changes: a crash in between repeats, never loses it.
    if (decision.bounced.length > 0) await this.bounce(entry, decision.bounced, policy, now);

    if (decision.delivered.length > 0) {
      this.events.emit({
        type: 'queue.delivered',
        id: record.id,
        recipients: decision.delivered,
        nextHopDomain: record.nextHopDomain,
      });
    }
    const { next } = decision;
    if (next.state === 'done') {
      await this.files.finish(entry, () => this.remove(entry));
      this.log.log('info', 'queue.done', { id: record.id });
      return;
    }
    // Like the report, the notice is durable before the record says it went: a crash repeats it.
    const { notice } = decision;
    if (notice !== undefined)
      await this.bounce(entry, notice.recipients, policy, now, notice.willRetryUntil);
    // A record that changes lives in the file store: the message moves there first.
    await this.files.update(entry, next.record, () => this.entriesOf(record.message));
    entry.record = next.record;
    entry.dueAt = next.dueAt;
    this.log.log('warn', 'queue.deferred', {
      id: record.id,
      nextHopDomain: record.nextHopDomain,
      attempts: next.record.attempts,
      lastError: decision.lastError,
      nextAttemptAt: next.record.nextAttemptAt,
    });
  }

  private async bounce(
    entry: Entry,
    recipients: BouncedRecipient[],
    policy: SettlePolicy,
    now: number,
    /** Given: a delay notice (the message stays queued until then), not a non-delivery report. */
    willRetryUntil?: Date,
  ): Promise<void> {
    const { record } = entry;
    const fields = { id: record.id, recipients: recipients.map((r) => r.recipient) };
    const unreported = reportlessBecause(record.from);
    if (unreported !== undefined) {
      this.log.log('warn', 'queue.bounced-without-report', { ...fields, reason: unreported });
      return;
    }
    const original = await contentHead(await this.files.content(entry), REPORTED_HEAD_BYTES);
    const report = buildNonDeliveryReport({
      reportingMta: policy.hostname,
      to: record.from,
      queueId: record.id,
      arrivalDate: new Date(record.receivedAt),
      originalHeaders: headerSection(original, REPORTED_HEAD_BYTES),
      recipients,
      now: new Date(now),
      ...(willRetryUntil === undefined ? {} : { action: 'delayed' as const, willRetryUntil }),
    });
    const ids = await this.write({
      from: '',
      recipients: [record.from],
      body: report,
      receivedAt: new Date(now),
      connector: 'queue',
      remoteAddress: '',
    });
    const event = willRetryUntil === undefined ? 'queue.bounced' : 'queue.delay-notified';
    this.log.log('warn', event, { ...fields, report: ids[0], to: record.from });
  }

  private add(entry: Entry): void {
    this.entries.set(entry.record.id, entry);
    const message = entry.record.message;
    const entries = this.byMessage.get(message);
    if (entries === undefined) this.byMessage.set(message, new Set([entry]));
    else entries.add(entry);
  }

  /** Forgets a settled entry; true when it was the last to name its body. */
  private remove(entry: Entry): boolean {
    this.entries.delete(entry.record.id);
    const message = entry.record.message;
    const entries = this.byMessage.get(message);
    entries?.delete(entry);
    if (entries !== undefined && entries.size > 0) return false;
    this.byMessage.delete(message);
    return true;
  }

  /** Resolves once every write in flight ended; accept() refuses from now on. */
  async close(): Promise<void> {
    this.closed = true;
    this.listeners.clear();
    await Promise.allSettled([...this.pending]);
    await this.files.close();
  }

  private entriesOf(message: string): Entry[] {
    return [...(this.byMessage.get(message) ?? [])];
  }

  /** A segment was rotated out: its idle messages move to the file store, so it can go. */
  private moveIdle(segment: SegmentId): void {
    const messages = new Set<string>();
    for (const entry of this.entries.values()) {
      if (entry.active) continue;
      const { message } = entry.record;
      if (this.files.journalSegment(message) === segment) messages.add(message);
    }
    for (const message of messages) {
      void this.track(
        this.files
          .move(message, this.entriesOf(message))
          .catch((error: Error) =>
            this.log.log('warn', 'queue.move-failed', { message, error: error.message }),
          ),
      );
    }
  }

  private track<T>(work: Promise<T>): Promise<T> {
    this.pending.add(work);
    const forget = () => this.pending.delete(work);
    work.then(forget, forget);
    return work;
  }

  private notify(): void {
    for (const listener of this.listeners) {
      try {
        listener();
      } catch (error) {
        this.log.log('error', 'queue.listener-failed', { error: (error as Error).message });
      }
    }
  }
}

/** The envelope a message's control records tell (undefined: no records). */
function envelopeOf(records: readonly ControlRecord[]): IncomingEnvelope | undefined {
  const first = records[0];
  if (first === undefined) return undefined;
  return {
    from: first.from,
    recipients: records.flatMap((record) => record.recipients),
    receivedAt: new Date(first.receivedAt),
    connector: first.connector,
    remoteAddress: first.remoteAddress,
    ...(first.domainSecured === null ? {} : { domainSecured: first.domainSecured }),
  };
}

/** A new message's control records, one per next-hop domain, due now. */
export function recordsForMessage(
  id: string,
  message: IncomingEnvelope,
  size: number,
  now: number,
): ControlRecord[] {
  const groups = groupByDomain(message.recipients);
  if (groups.size === 0) throw new RangeError('a message needs at least one recipient');
  return [...groups].map(([domain, recipients], index): ControlRecord => ({
    version: 1,
    id: entryId(id, index + 1),
    message: id,
    nextHopDomain: domain,
    from: message.from,
    recipients,
    size,
    receivedAt: message.receivedAt.toISOString(),
    connector: message.connector,
    remoteAddress: message.remoteAddress,
    domainSecured: message.domainSecured ?? null,
    attempts: 0,
    lastError: null,
    lastAttemptAt: null,
    nextAttemptAt: new Date(now).toISOString(),
  }));
}
