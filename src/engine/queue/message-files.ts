// Where a queued message's bytes are: a small one in the journal from its acceptance, and in the
// file store (data/, control/) once it must wait for a retry; a large one in the file store from
// the start (its body written there as it arrived); the move between them, and the replay at open.
import { join } from 'node:path';
import type { EngineLog } from '../log.js';
import type { StoredEntry } from './entry.js';
import { Journal, type JournalLocation, type JournalMessage, type SegmentId } from './journal.js';
import type { MessageContent } from './message-body.js';
import type { ControlRecord } from './record.js';
import { QueueStore, type BodyFile } from './store.js';

const REPLAY_BATCH = 64;

export interface MessageFilesOptions {
  /** How long idle messages may stay in a rotated-out journal segment (tests shorten it). */
  rotatedGraceMs?: number;
  /** A journal segment is rotated out after this many bytes (tests make it small). */
  segmentBytes?: number;
}

export class MessageFiles {
  /** Messages being moved from the journal to the file store. */
  private readonly moving = new Map<string, Promise<void>>();
  /** Message id -> where its body is in the journal. A message not here is in the file store. */
  private readonly inJournal = new Map<string, JournalLocation>();

  private constructor(
    private readonly store: QueueStore,
    private readonly journal: Journal,
  ) {}

  /**
   * Opens (creating) the queue directory: the journal is replayed into the file store, then the
   * file store is recovered. Resolves with every entry's record.
   */
  static async open(
    directory: string,
    log: EngineLog,
    options: MessageFilesOptions = {},
  ): Promise<{ files: MessageFiles; records: ControlRecord[] }> {
    const store = new QueueStore(directory);
    await store.prepare();
    const journal = await replayJournal(store, log, options);
    const records = await store.recover(log);
    return { files: new MessageFiles(store, journal), records };
  }

  /** Called with a segment rotated out: what is still idle in it should move() to the files. */
  set onRotate(listener: (segment: SegmentId) => void) {
    this.journal.onRotate = listener;
  }

  rotatedOut(segment: SegmentId): boolean {
    return this.journal.rotatedOut(segment);
  }

  /** The journal segment that holds a message; undefined: it is in the file store. */
  journalSegment(message: string): SegmentId | undefined {
    return this.inJournal.get(message)?.segment;
  }

  /**
   * A message a receive worker made durable in its journal segment joins the queue where it is;
   * false when it already had.
   */
  adopt(message: string, records: readonly ControlRecord[], location: JournalLocation): boolean {
    if (!this.journal.adopt(message, location, records.length)) return false;
    this.inJournal.set(message, location);
    return true;
  }

  /** A receive worker rotated a segment holding `messages` out: it goes once they are spent. */
  seal(segment: SegmentId, messages: number): void {
    this.journal.seal(segment, messages);
  }

  /** Every control record in the file store now (read only). */
  storedRecords(): Promise<ControlRecord[]> {
    return this.store.readRecords();
  }

  /** A receive worker is gone: the messages of its segments the queue had not heard of. */
  async writerGone(writer: string): Promise<JournalMessage[]> {
    const found = await this.journal.writerGone(writer);
    for (const held of found) this.inJournal.set(held.message, held.body);
    return found;
  }

  /** Makes a new message durable (the commit before 250); resolves with where its body is. */
  async accept(
    message: string,
    records: readonly ControlRecord[],
    body: Buffer,
  ): Promise<JournalLocation> {
    const location = await this.journal.accept(message, records, body);
    this.inJournal.set(message, location);
    return location;
  }

  /** A body for a large new message, written into the file store as it arrives. */
  openBody(message: string): Promise<BodyFile> {
    return this.store.openBody(message);
  }

  /**
   * Makes a new message whose body was written as it arrived durable (the commit before 250): it
   * goes to the file store at once, never through the journal (or its memory).
   */
  acceptWritten(message: string, records: readonly ControlRecord[], body: BodyFile): Promise<void> {
    return this.store.commit(message, body, records);
  }

  /** The whole body in memory. */
  body(entry: StoredEntry): Promise<Buffer> {
    if (entry.body !== undefined) return Promise.resolve(entry.body);
    const location = this.inJournal.get(entry.record.message);
    if (location !== undefined) return this.journal.read(location);
    return this.store.readBody(entry.record.message);
  }

  /** The body where it is: a stored one is read in chunks by whoever delivers it. */
  content(entry: StoredEntry): Promise<MessageContent> {
    if (entry.body !== undefined || this.inJournal.has(entry.record.message))
      return this.body(entry);
    return Promise.resolve({
      path: this.store.bodyPath(entry.record.message),
      size: entry.record.size,
    });
  }

  /**
   * An entry is settled for good; forget() drops it from the queue's memory and says whether it
   * was the last to name its body. A move of the message may be running: this waits for it, so
   * that the files the move writes are removed too.
   */
  async finish(entry: StoredEntry, forget: () => boolean): Promise<void> {
    const { message } = entry.record;
    await this.settled(message);
    const location = this.inJournal.get(message);
    if (location !== undefined) {
      this.journal.done(entry.record.id, location.segment);
      if (forget()) this.inJournal.delete(message);
      return;
    }
    await this.store.removeControl(entry.record.id);
    if (forget()) await this.store.removeBody(entry.record.message);
  }

  /**
   * Replaces an entry's record (an attempt deferred it): the message moves to the file store
   * first if it is still in the journal, with the message's other entries (held: all it has).
   */
  async update(
    entry: StoredEntry,
    updated: ControlRecord,
    held: () => StoredEntry[],
  ): Promise<void> {
    await this.settled(entry.record.message);
    if (this.inJournal.has(entry.record.message)) await this.move(entry.record.message, held());
    await this.store.writeControl(updated);
  }

  /**
   * Moves a message still in the journal, with its entries (all it has still queued), to the file
   * store: body and control records committed there, then the journal's M record synced. Only then
   * may its files change.
   */
  move(message: string, held: readonly StoredEntry[]): Promise<void> {
    const running = this.moving.get(message);
    if (running !== undefined) return running;
    const location = this.inJournal.get(message);
    const first = held[0];
    if (location === undefined || first === undefined) return Promise.resolve();
    const { segment } = location;
    const ids = held.map((entry) => entry.record.id);
    const work = (async () => {
      const body = await this.body(first);
      await this.store.commit(
        message,
        body,
        held.map((entry) => entry.record),
      );
      try {
        await this.journal.moved(message, segment, held.length);
      } catch (error) {
        await this.store.discard(message, ids);
        throw error;
      }
      this.inJournal.delete(message);
    })().finally(() => this.moving.delete(message));
    this.moving.set(message, work);
    return work;
  }

  /** Waits for writes in flight, then closes the journal (it is replayed at the next open). */
  close(): Promise<void> {
    return this.journal.close();
  }

  /** Waits until no move of this message is running (a settle decides on a stable state). */
  private async settled(message: string): Promise<void> {
    for (let running = this.moving.get(message); running !== undefined;) {
      await running.catch(() => undefined);
      running = this.moving.get(message);
    }
  }
}

/**
 * Replays the journal into the file store: each message it still holds is committed there (what a
 * move cut short is discarded first), then the segments go. Damaged ones move to corrupt/.
 */
async function replayJournal(
  store: QueueStore,
  log: EngineLog,
  options: MessageFilesOptions,
): Promise<Journal> {
  const { journal, replayed } = await Journal.replay(
    join(store.directory, 'journal'),
    log,
    store.syncs,
    options,
  );
  // REPLAY_BATCH at a time: their fsyncs of data/ and control/ are shared (measured: 5,000
  // messages took 6.7 s one by one).
  for (let start = 0; start < replayed.live.length; start += REPLAY_BATCH) {
    await Promise.all(
      replayed.live.slice(start, start + REPLAY_BATCH).map(async (held) => {
        const ids = held.records.map((record) => record.id);
        await store.discard(held.message, ids);
        await store.commit(held.message, await journal.read(held.body), held.records);
      }),
    );
  }
  for (const segment of replayed.damaged) await journal.quarantine(segment, store.corruptDir);
  await journal.clear(replayed.segments.filter((segment) => !replayed.damaged.includes(segment)));
  if (replayed.live.length > 0)
    log.log('info', 'queue.journal-replayed', { messages: replayed.live.length });
  return journal;
}
