// The queue's journal: segment files of appended, checksummed records, where an accepted message
// first becomes durable with one fdatasync shared by every message that arrived meanwhile.
import { mkdir, open, readdir, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { EngineLog } from '../log.js';
import type { ControlRecord } from './record.js';
import type { DirectorySyncs } from './directory-syncs.js';
import {
  acceptPayload,
  createSegment,
  frame,
  HEADER_BYTES,
  parseSegmentName,
  readSegment,
  removeSegment,
  SEGMENT_BYTES,
  segmentFile,
  segmentId,
  writeBatch,
  type JournalLocation,
  type JournalMessage,
  type Pending,
  type RecordType,
  type SegmentId,
} from './journal-segments.js';
import type { FileHandle } from 'node:fs/promises';

export {
  SEGMENT_BYTES,
  type JournalLocation,
  type JournalMessage,
  type SegmentId,
} from './journal-segments.js';
export { WorkerJournal } from './worker-journal.js';

/** How long what is live in a rotated-out segment may stay there before it moves to files. */
const ROTATED_GRACE_MS = 10_000;

interface Segment {
  id: SegmentId;
  handle: FileHandle;
  /** Live entries whose A record is in this segment. */
  live: number;
  /**
   * The workers' segments present when this one was rotated out: the D and M records about their
   * messages may be here, so this one outlives them.
   */
  foreignAtRotation?: Set<SegmentId>;
}

/**
 * A receive worker's segment, read here and never written: the worker appends A records (each
 * synced before its 250), this journal counts what is live in it, writes the D and M records
 * about its messages into its own segments, and removes it once it is sealed and nothing in it is
 * live.
 */
interface ForeignSegment {
  id: SegmentId;
  writer: string;
  live: number;
  /** The worker appends no more to it (it rotated it out, or the worker is gone). */
  sealed: boolean;
  /**
   * How many messages the worker appended to it, told with the seal: the worker's notices of its
   * last messages may arrive after the seal, and it goes only once every one was adopted.
   */
  messages: number;
  /** Every message of it this journal learned of, finished ones too: a replay skips them. */
  known: Set<string>;
}

interface ReplayResult {
  live: JournalMessage[];
  /** Segments read (removed by clear() once their messages are safe elsewhere). */
  segments: SegmentId[];
  /** Of those, the ones with damage before their end: moved to corrupt/ rather than removed. */
  damaged: SegmentId[];
}

export interface JournalOptions {
  /** How long what is live in a rotated-out segment may stay before onRotate hears of it. */
  rotatedGraceMs?: number;
  /** A segment is rotated out after this many bytes (tests make it small). */
  segmentBytes?: number;
}

/**
 * Creating, renaming and fsync'ing files and directories for each message made the commit before
 * `250` cost two rounds of fsyncs and a dozen file system operations; an append to one open file,
 * with one fdatasync shared by every message that arrived meanwhile (group commit), costs a write
 * and a fraction of a sync.
 *
 * Segments are journal/<16 hex digits>.log, each a sequence of records: a 16-byte header ("DQJ1",
 * the type, three zero bytes, the payload's length, a CRC-32 of type, length and payload), then
 * the payload. Types:
 *   A  a message accepted: a JSON header (its control records) and its body; synced before 250.
 *   D  one entry settled for good (delivered or bounced); not synced, so a crash can repeat a
 *      delivery, never lose one.
 *   M  a message moved to the file store (control/ and data/): from then on the files say what
 *      becomes of it; synced before its files change again.
 * A message that needs no more than one attempt never leaves the journal: it is delivered, its D
 * written, and the segment is removed once none of its entries is live. One that must wait (a
 * deferral, a delay notice) is moved to the file store first, and so is every idle one still in
 * a segment ten seconds after that segment was rotated out. Opening the queue replays the journal,
 * moves what is still live to the file store and removes the segments.
 *
 * Receive workers (docs/workers.md) append A records to segments of their own,
 * journal/<writer>.<16 hex digits>.log, through a WorkerJournal; this journal adopts their
 * messages (adopt), writes the D and M records about them in its own segments, and removes a
 * worker's segment once it is sealed and nothing in it is live. The replay at open reads every
 * segment of every writer alike.
 *
 * Writes go one batch at a time, in order: a failed write (ENOSPC) rejects its batch, the segment
 * is truncated back and left for a new one, so no later record ever follows a torn one.
 */
export class Journal {
  private readonly segments = new Map<SegmentId, Segment>();
  private readonly foreign = new Map<SegmentId, ForeignSegment>();
  /**
   * Workers' segments this journal removes or removed (their messages all settled): never read or
   * adopted from again, or a re-read racing the removal would bring delivered mail back.
   */
  private readonly retired = new Set<SegmentId>();
  private active: Segment | undefined;
  private size = 0;
  private pending: Pending[] = [];
  private writing: Promise<void> | undefined;
  private closed = false;
  private readonly timers = new Set<NodeJS.Timeout>();
  /** Called with the id of a segment rotated out (its idle messages should move to files). */
  onRotate: ((segment: SegmentId) => void) | undefined;

  private constructor(
    readonly directory: string,
    private readonly log: EngineLog,
    private nextNumber: number,
    /** How long what is live in a rotated-out segment may stay before onRotate hears of it. */
    private readonly rotatedGraceMs: number,
    /** The queue's group commit of directory fsyncs (its file store's). */
    private readonly syncs: DirectorySyncs,
    private readonly segmentBytes: number,
  ) {}

  /**
   * Reads every segment, the workers' too: what they hold that is still live, to be moved to the
   * file store before clear() removes them. A torn tail ends a segment quietly; damage followed
   * by more data moves the segment to corrupt/ after what precedes it was read, with a log line.
   */
  static async replay(
    directory: string,
    log: EngineLog,
    syncs: DirectorySyncs,
    options: JournalOptions = {},
  ): Promise<{ journal: Journal; replayed: ReplayResult }> {
    await mkdir(directory, { recursive: true, mode: 0o700 });
    const names = (await readdir(directory)).sort();
    const accepted = new Map<string, JournalMessage>();
    const done = new Set<string>();
    const moved = new Set<string>();
    const ids: SegmentId[] = [];
    const damaged: SegmentId[] = [];
    let lastOwn = 0;
    for (const name of names) {
      const segment = parseSegmentName(name);
      if (segment === undefined) continue;
      ids.push(segment.id);
      if (segment.writer === undefined) lastOwn = Math.max(lastOwn, segment.number);
      const read = await readSegment(directory, segment.id, log);
      // A message is in one segment only (its id is new): a second A of it is the same message.
      for (const held of read.accepted)
        if (!accepted.has(held.message)) accepted.set(held.message, held);
      for (const id of read.done) done.add(id);
      for (const message of read.moved) moved.add(message);
      // Kept for investigation rather than removed.
      if (read.skipped > 0) damaged.push(segment.id);
    }
    const live: JournalMessage[] = [];
    for (const entry of accepted.values()) {
      if (moved.has(entry.message)) continue;
      const records = entry.records.filter((record) => !done.has(record.id));
      if (records.length > 0) live.push({ ...entry, records });
    }
    const journal = new Journal(
      directory,
      log,
      lastOwn + 1,
      options.rotatedGraceMs ?? ROTATED_GRACE_MS,
      syncs,
      options.segmentBytes ?? SEGMENT_BYTES,
    );
    return { journal, replayed: { live, segments: ids, damaged } };
  }

  /** Whether a segment has been rotated out (what is live in it should move to the file store). */
  rotatedOut(segment: SegmentId): boolean {
    const foreign = this.foreign.get(segment);
    if (foreign !== undefined) return foreign.sealed;
    return this.active?.id !== segment;
  }

  /** Reads a body back from a segment (one in use, a worker's, or one replayed and not open). */
  async read(location: JournalLocation): Promise<Buffer> {
    const kept = this.segments.get(location.segment)?.handle;
    const handle = kept ?? (await open(join(this.directory, segmentFile(location.segment)), 'r'));
    try {
      const buffer = Buffer.alloc(location.length);
      const { bytesRead } = await handle.read(buffer, 0, location.length, location.offset);
      if (bytesRead !== location.length)
        throw new Error(`journal segment ${location.segment} is short`);
      return buffer;
    } finally {
      if (kept === undefined) await handle.close();
    }
  }

  /** Removes replayed segments, once what they held is durable in the file store. */
  async clear(ids: readonly SegmentId[]): Promise<void> {
    for (const id of ids) await removeSegment(this.directory, id);
    if (ids.length > 0) await this.syncs.sync(this.directory);
  }

  /** Moves a damaged segment aside (recovery found records after a bad one). */
  async quarantine(id: SegmentId, corruptDir: string): Promise<void> {
    const name = segmentFile(id);
    await rename(join(this.directory, name), join(corruptDir, `journal-${name}.${Date.now()}`));
    await this.syncs.sync(corruptDir);
  }

  /** Appends an accepted message; resolves once it is durable, with where its body is. */
  async accept(
    message: string,
    records: readonly ControlRecord[],
    body: Buffer,
  ): Promise<JournalLocation> {
    const payload = acceptPayload(message, records, body);
    const at = await this.append('A', payload, true, records.length);
    const bodyOffset = at.offset + HEADER_BYTES + 4 + (payload[1]?.length ?? 0);
    return { segment: at.segment, offset: bodyOffset, length: body.length };
  }

  /**
   * A message a receive worker made durable in one of its segments joins this journal: its
   * entries count as live there until done() or moved(). False when this journal already knows
   * it (told twice, or found again in the segment of a worker that is gone).
   */
  adopt(message: string, location: JournalLocation, entries: number): boolean {
    const parsed = parseSegmentName(segmentFile(location.segment));
    if (parsed?.writer === undefined)
      throw new RangeError(`${location.segment} is no worker's segment`);
    if (this.retired.has(location.segment)) return false;
    let segment = this.foreign.get(location.segment);
    if (segment === undefined) {
      segment = {
        id: parsed.id,
        writer: parsed.writer,
        live: 0,
        sealed: false,
        messages: 0,
        known: new Set(),
      };
      this.foreign.set(segment.id, segment);
    }
    if (segment.known.has(message)) return false;
    segment.known.add(message);
    segment.live += entries;
    return true;
  }

  /**
   * A worker appends no more to this segment of its own, which holds `messages` messages: it goes
   * once every one of them was adopted and nothing in it is live.
   */
  seal(id: SegmentId, messages: number): void {
    const parsed = parseSegmentName(segmentFile(id));
    if (parsed?.writer === undefined) throw new RangeError(`${id} is no worker's segment`);
    if (this.retired.has(id)) return;
    let segment = this.foreign.get(id);
    if (segment === undefined) {
      segment = {
        id,
        writer: parsed.writer,
        live: 0,
        sealed: false,
        messages: 0,
        known: new Set(),
      };
      this.foreign.set(id, segment);
    }
    if (segment.sealed) return;
    segment.sealed = true;
    segment.messages = messages;
    if (spent(segment)) {
      void this.retireForeign(segment);
      return;
    }
    const sealed = segment;
    this.afterGrace(id, () => this.foreign.get(id) === sealed);
  }

  /**
   * A worker is gone (it exited or was killed): its segments are read again, every message in
   * them that this journal had not learned of is adopted and returned (the worker made it durable,
   * and may have answered 250, before telling), and they are all sealed.
   */
  async writerGone(writer: string): Promise<JournalMessage[]> {
    const found: JournalMessage[] = [];
    for (const name of (await readdir(this.directory)).sort()) {
      const parsed = parseSegmentName(name);
      if (parsed?.writer !== writer || this.retired.has(parsed.id)) continue;
      // Removed meanwhile (sealed and spent): nothing of it is left to find.
      const read = await readSegment(this.directory, parsed.id, this.log).catch(
        (error: NodeJS.ErrnoException) => {
          if (error.code === 'ENOENT') return undefined;
          throw error;
        },
      );
      // Its removal began while it was read: every message of it is settled.
      if (read === undefined || this.retired.has(parsed.id)) continue;
      for (const held of read.accepted)
        if (this.adopt(held.message, held.body, held.records.length)) found.push(held);
      const segment = this.foreign.get(parsed.id);
      if (segment !== undefined) segment.sealed = false; // sealed again below, with what it holds
      this.seal(parsed.id, read.accepted.length);
    }
    return found;
  }

  /** An entry is settled for good: not synced (a crash repeats its delivery at worst). */
  done(id: string, segment: SegmentId): void {
    this.release(segment, 1);
    this.append('D', [Buffer.from(JSON.stringify({ id }), 'utf8')], false, 0).catch(
      (error: Error) =>
        this.log.log('warn', 'queue.journal-write-failed', {
          record: 'D',
          id,
          error: error.message,
        }),
    );
  }

  /** A message's live entries are in the file store now; resolves once that is durable here. */
  async moved(message: string, segment: SegmentId, entries: number): Promise<void> {
    await this.append('M', [Buffer.from(JSON.stringify({ message }), 'utf8')], true, 0);
    this.release(segment, entries);
  }

  /** Waits for writes in flight, then closes the segments (they are replayed at the next open). */
  async close(): Promise<void> {
    this.closed = true;
    for (const timer of this.timers) clearTimeout(timer);
    while (this.writing !== undefined) await this.writing;
    for (const segment of this.segments.values())
      await segment.handle.close().catch(() => undefined);
    this.segments.clear();
    this.foreign.clear();
    this.active = undefined;
  }

  private release(id: SegmentId, entries: number): void {
    const foreign = this.foreign.get(id);
    if (foreign !== undefined) {
      foreign.live -= entries;
      if (spent(foreign)) void this.retireForeign(foreign);
      return;
    }
    const segment = this.segments.get(id);
    if (segment === undefined) return;
    segment.live -= entries;
    this.retireOldest();
  }

  /**
   * Retires rotated-out segments with nothing live, oldest first and only while every older one
   * is gone: the D and M records about a segment's messages are in newer segments, so a newer one
   * must outlive it, or a replay would bring back messages already delivered or moved. For the
   * same reason one outlives the workers' segments that were there when it was rotated out.
   */
  private retireOldest(): void {
    for (const segment of this.segments.values()) {
      if (segment === this.active || segment.live > 0) return;
      for (const id of segment.foreignAtRotation ?? []) if (this.foreign.has(id)) return;
      void this.retire(segment);
    }
  }

  /** A rotated-out segment with nothing live goes. */
  private async retire(segment: Segment): Promise<void> {
    this.segments.delete(segment.id);
    try {
      // The done records about its messages are in newer segments: synced first, so that a power
      // loss that undoes the unlink finds them too and delivers nothing twice.
      await this.syncOwn();
      await segment.handle.close();
      await unlink(join(this.directory, segmentFile(segment.id)));
    } catch (error) {
      this.log.log('warn', 'queue.journal-retire-failed', {
        segment: segment.id,
        error: (error as Error).message,
      });
    }
  }

  /** A worker's sealed segment with nothing live goes; then our own ones it held back may. */
  private async retireForeign(segment: ForeignSegment): Promise<void> {
    if (this.foreign.get(segment.id) !== segment || this.retired.has(segment.id)) return;
    this.retired.add(segment.id);
    try {
      // The D and M records about its messages are in our segments: synced before it goes.
      await this.syncOwn();
      await removeSegment(this.directory, segment.id);
    } catch (error) {
      this.log.log('warn', 'queue.journal-retire-failed', {
        segment: segment.id,
        error: (error as Error).message,
      });
      return;
    }
    if (this.foreign.get(segment.id) === segment) this.foreign.delete(segment.id);
    if (!this.closed) this.retireOldest();
  }

  private async syncOwn(): Promise<void> {
    await Promise.all(
      // One retired meanwhile is closed: skipped (at worst a power loss repeats a delivery).
      [...this.segments.values()].map((own) => own.handle.datasync().catch(() => undefined)),
    );
  }

  private append(
    type: RecordType,
    payload: Buffer[],
    durable: boolean,
    live: number,
  ): Promise<{ segment: SegmentId; offset: number }> {
    if (this.closed) return Promise.reject(new Error('the queue is closed'));
    const chunks = frame(type, payload);
    const bytes = chunks.reduce((sum, part) => sum + part.length, 0);
    return new Promise((resolve, reject) => {
      this.pending.push({ chunks, bytes, durable, live, resolve, reject });
      this.writing ??= this.pump().finally(() => {
        this.writing = undefined;
      });
    });
  }

  /**
   * Group commit: every request that arrived while the previous batch was being written and
   * synced goes in the next batch, with one writev and (if any of them asks) one fdatasync.
   */
  private async pump(): Promise<void> {
    while (this.pending.length > 0) {
      const batch = this.pending;
      this.pending = [];
      let segment: Segment;
      try {
        segment = await this.current();
      } catch (error) {
        for (const request of batch) request.reject(error as Error);
        continue;
      }
      const start = this.size;
      try {
        await writeBatch(segment.handle, batch, start);
      } catch (error) {
        await segment.handle.truncate(start).catch(() => undefined);
        this.rotate(); // never append after what may be a torn record
        for (const request of batch) request.reject(error as Error);
        continue;
      }
      let offset = start;
      for (const request of batch) {
        segment.live += request.live;
        request.resolve({ segment: segment.id, offset });
        offset += request.bytes;
      }
      this.size = offset;
      if (this.size >= this.segmentBytes) this.rotate();
    }
  }

  /** The segment being appended to; a new one is created (and its name made durable) on demand. */
  private async current(): Promise<Segment> {
    if (this.active !== undefined) return this.active;
    const id = segmentId(this.nextNumber);
    this.nextNumber += 1;
    const handle = await createSegment(this.directory, id, this.syncs);
    const segment: Segment = { id, handle, live: 0 };
    this.segments.set(id, segment);
    this.active = segment;
    this.size = 0;
    return segment;
  }

  private rotate(): void {
    const old = this.active;
    if (old === undefined) return;
    this.active = undefined;
    this.size = 0;
    old.foreignAtRotation = new Set(this.foreign.keys());
    if (old.live <= 0) {
      this.retireOldest();
      return;
    }
    // What is still live a while later (waiting for a retry, a suspended queue) moves to files;
    // a backlog being delivered meanwhile never moves.
    this.afterGrace(old.id, () => this.segments.get(old.id) === old);
  }

  /** onRotate hears of a segment after the grace, if it is still there then. */
  private afterGrace(id: SegmentId, stillThere: () => boolean): void {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      if (stillThere() && !this.closed) this.onRotate?.(id);
    }, this.rotatedGraceMs);
    timer.unref();
    this.timers.add(timer);
  }
}

/** A worker's sealed segment whose every message was adopted and settled or moved. */
function spent(segment: ForeignSegment): boolean {
  return segment.sealed && segment.live <= 0 && segment.known.size >= segment.messages;
}
