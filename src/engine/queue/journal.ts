// The queue's journal: segment files of appended, checksummed records, where an accepted message
// first becomes durable with one fdatasync shared by every message that arrived meanwhile.
import { crc32 } from 'node:zlib';
import { mkdir, open, readdir, readFile, rename, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { EngineLog } from '../log.js';
import { checkControlRecord, type ControlRecord } from './record.js';
import type { DirectorySyncs } from './directory-syncs.js';
import { unwritten } from './store.js';

const MAGIC = Buffer.from('DQJ1', 'latin1');
const HEADER_BYTES = 16;
const SEGMENT_NAME = /^[0-9a-f]{16}\.log$/;
/** A segment is rotated out after this many bytes. */
export const SEGMENT_BYTES = 16 * 1024 * 1024;
/** How long what is live in a rotated-out segment may stay there before it moves to files. */
const ROTATED_GRACE_MS = 10_000;

type RecordType = 'A' | 'D' | 'M';

/** Where a body is: its segment and the byte range in it. */
export interface JournalLocation {
  segment: number;
  offset: number;
  length: number;
}

/** A message the journal holds: its live control records and where its body is. */
interface JournalMessage {
  message: string;
  records: ControlRecord[];
  body: JournalLocation;
}

interface Pending {
  chunks: Buffer[];
  bytes: number;
  durable: boolean;
  /** Entries this record makes live in its segment (counted before anything can rotate it). */
  live: number;
  resolve: (at: { segment: number; offset: number }) => void;
  reject: (error: Error) => void;
}

interface Segment {
  number: number;
  handle: FileHandle;
  /** Live entries whose A record is in this segment. */
  live: number;
}

function segmentName(number: number): string {
  return `${number.toString(16).padStart(16, '0')}.log`;
}

function frame(type: RecordType, payload: Buffer[]): Buffer[] {
  const length = payload.reduce((sum, part) => sum + part.length, 0);
  const header = Buffer.alloc(HEADER_BYTES);
  MAGIC.copy(header, 0);
  header.write(type, 4, 'latin1');
  header.writeUInt32BE(length, 8);
  let crc = crc32(header.subarray(4, 12));
  for (const part of payload) crc = crc32(part, crc);
  header.writeUInt32BE(crc, 12);
  return [header, ...payload];
}

/** An A record's payload: the JSON header's length, the JSON header, the body. */
function acceptPayload(message: string, records: readonly ControlRecord[], body: Buffer): Buffer[] {
  const json = Buffer.from(JSON.stringify({ message, records }), 'utf8');
  const length = Buffer.alloc(4);
  length.writeUInt32BE(json.length, 0);
  return [length, json, body];
}

interface ReplayResult {
  live: JournalMessage[];
  /** Segments read (removed by clear() once their messages are safe elsewhere). */
  segments: number[];
  /** Of those, the ones with damage before their end: moved to corrupt/ rather than removed. */
  damaged: number[];
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
 * Writes go one batch at a time, in order: a failed write (ENOSPC) rejects its batch, the segment
 * is truncated back and left for a new one, so no later record ever follows a torn one.
 */
export class Journal {
  private readonly segments = new Map<number, Segment>();
  private active: Segment | undefined;
  private size = 0;
  private pending: Pending[] = [];
  private writing: Promise<void> | undefined;
  private closed = false;
  private readonly timers = new Set<NodeJS.Timeout>();
  /** Called with the number of a segment rotated out (its idle messages should move to files). */
  onRotate: ((segment: number) => void) | undefined;

  private constructor(
    readonly directory: string,
    private readonly log: EngineLog,
    private nextNumber: number,
    /** How long what is live in a rotated-out segment may stay before onRotate hears of it. */
    private readonly rotatedGraceMs: number,
    /** The queue's group commit of directory fsyncs (its file store's). */
    private readonly syncs: DirectorySyncs,
  ) {}

  /**
   * Reads every segment: what they hold that is still live, to be moved to the file store before
   * clear() removes them. A torn tail (a crash in the middle of a write that was never
   * acknowledged) ends a segment quietly; damage followed by more data moves the segment to
   * corrupt/ after what precedes it was read, with a log line.
   */
  static async replay(
    directory: string,
    log: EngineLog,
    syncs: DirectorySyncs,
    rotatedGraceMs = ROTATED_GRACE_MS,
  ): Promise<{ journal: Journal; replayed: ReplayResult }> {
    await mkdir(directory, { recursive: true, mode: 0o700 });
    const names = (await readdir(directory)).filter((name) => SEGMENT_NAME.test(name)).sort();
    const accepted = new Map<string, JournalMessage>();
    const done = new Set<string>();
    const moved = new Set<string>();
    const numbers: number[] = [];
    const damaged: number[] = [];
    for (const name of names) {
      const number = Number.parseInt(name.slice(0, 16), 16);
      numbers.push(number);
      const path = join(directory, name);
      const data = await readFile(path);
      let offset = 0;
      let skipped = 0;
      while (offset + HEADER_BYTES <= data.length) {
        const header = data.subarray(offset, offset + HEADER_BYTES);
        if (!header.subarray(0, 4).equals(MAGIC)) break;
        const length = header.readUInt32BE(8);
        const end = offset + HEADER_BYTES + length;
        if (end > data.length) break;
        const payload = data.subarray(offset + HEADER_BYTES, end);
        const checks = crc32(payload, crc32(header.subarray(4, 12))) === header.readUInt32BE(12);
        const parsed = checks
          ? parseRecord(String.fromCharCode(header[4] ?? 0), payload)
          : undefined;
        if (parsed === undefined) {
          // The last thing written: a write cut short. Otherwise damage: skip the one record.
          if (!data.subarray(end).some((byte) => byte !== 0)) break;
          log.log('error', 'queue.corrupt-journal', { segment: name, at: offset, bytes: length });
          skipped += 1;
          offset = end;
          continue;
        }
        if (parsed.type === 'A') {
          const jsonEnd = 4 + parsed.jsonLength;
          accepted.set(parsed.message, {
            message: parsed.message,
            records: parsed.records,
            body: {
              segment: number,
              offset: offset + HEADER_BYTES + jsonEnd,
              length: length - jsonEnd,
            },
          });
        } else if (parsed.type === 'D') done.add(parsed.id);
        else moved.add(parsed.message);
        offset = end;
      }
      if (offset < data.length && data.subarray(offset).some((byte) => byte !== 0)) {
        // Unframed bytes at the end: a tail cut short (never acknowledged), or damage.
        log.log('info', 'queue.journal-torn-tail', {
          segment: name,
          at: offset,
          bytes: data.length - offset,
        });
      }
      // Kept for investigation rather than removed.
      if (skipped > 0) damaged.push(number);
    }
    const live: JournalMessage[] = [];
    for (const entry of accepted.values()) {
      if (moved.has(entry.message)) continue;
      const records = entry.records.filter((record) => !done.has(record.id));
      if (records.length > 0) live.push({ ...entry, records });
    }
    const journal = new Journal(directory, log, (numbers.at(-1) ?? 0) + 1, rotatedGraceMs, syncs);
    return { journal, replayed: { live, segments: numbers, damaged } };
  }

  /** Whether a segment has been rotated out (what is live in it should move to the file store). */
  rotatedOut(segment: number): boolean {
    return this.active?.number !== segment;
  }

  /** Reads a body back from a segment (one in use, or one replayed and not open). */
  async read(location: JournalLocation): Promise<Buffer> {
    const kept = this.segments.get(location.segment)?.handle;
    const handle = kept ?? (await open(join(this.directory, segmentName(location.segment)), 'r'));
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
  async clear(numbers: readonly number[]): Promise<void> {
    for (const number of numbers)
      await unlink(join(this.directory, segmentName(number))).catch(
        (error: NodeJS.ErrnoException) => {
          if (error.code !== 'ENOENT') throw error;
        },
      );
    if (numbers.length > 0) await this.syncs.sync(this.directory);
  }

  /** Moves a damaged segment aside (recovery found records after a bad one). */
  async quarantine(number: number, corruptDir: string): Promise<void> {
    const name = segmentName(number);
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

  /** An entry is settled for good: not synced (a crash repeats its delivery at worst). */
  done(id: string, segment: number): void {
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
  async moved(message: string, segment: number, entries: number): Promise<void> {
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
    this.active = undefined;
  }

  private release(number: number, entries: number): void {
    const segment = this.segments.get(number);
    if (segment === undefined) return;
    segment.live -= entries;
    this.retireOldest();
  }

  /**
   * Retires rotated-out segments with nothing live, oldest first and only while every older one
   * is gone: the D and M records about a segment's messages are in newer segments, so a newer one
   * must outlive it, or a replay would bring back messages already delivered or moved.
   */
  private retireOldest(): void {
    for (const segment of this.segments.values()) {
      if (segment === this.active || segment.live > 0) return;
      void this.retire(segment);
    }
  }

  /** A rotated-out segment with nothing live goes. */
  private async retire(segment: Segment): Promise<void> {
    this.segments.delete(segment.number);
    try {
      // The done records about its messages are in newer segments: synced first, so that a power
      // loss that undoes the unlink finds them too and delivers nothing twice.
      await Promise.all(
        // One retired meanwhile is closed: skipped (at worst a power loss repeats a delivery).
        [...this.segments.values()].map((newer) => newer.handle.datasync().catch(() => undefined)),
      );
      await segment.handle.close();
      await unlink(join(this.directory, segmentName(segment.number)));
    } catch (error) {
      this.log.log('warn', 'queue.journal-retire-failed', {
        segment: segment.number,
        error: (error as Error).message,
      });
    }
  }

  private append(
    type: RecordType,
    payload: Buffer[],
    durable: boolean,
    live: number,
  ): Promise<{ segment: number; offset: number }> {
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
        let position = start;
        const chunks = batch.flatMap((request) => request.chunks);
        const total = batch.reduce((sum, request) => sum + request.bytes, 0);
        let written = 0;
        while (written < total) {
          const { bytesWritten } = await segment.handle.writev(
            unwritten(chunks, written),
            position,
          );
          written += bytesWritten;
          position += bytesWritten;
        }
        if (batch.some((request) => request.durable)) await segment.handle.datasync();
      } catch (error) {
        await segment.handle.truncate(start).catch(() => undefined);
        this.rotate(); // never append after what may be a torn record
        for (const request of batch) request.reject(error as Error);
        continue;
      }
      let offset = start;
      for (const request of batch) {
        segment.live += request.live;
        request.resolve({ segment: segment.number, offset });
        offset += request.bytes;
      }
      this.size = offset;
      if (this.size >= SEGMENT_BYTES) this.rotate();
    }
  }

  /** The segment being appended to; a new one is created (and its name made durable) on demand. */
  private async current(): Promise<Segment> {
    if (this.active !== undefined) return this.active;
    const number = this.nextNumber;
    this.nextNumber += 1;
    const handle = await open(join(this.directory, segmentName(number)), 'wx+', 0o600);
    try {
      await this.syncs.sync(this.directory);
    } catch (error) {
      await handle.close();
      await unlink(join(this.directory, segmentName(number))).catch(() => undefined);
      throw error;
    }
    const segment: Segment = { number, handle, live: 0 };
    this.segments.set(number, segment);
    this.active = segment;
    this.size = 0;
    return segment;
  }

  private rotate(): void {
    const old = this.active;
    if (old === undefined) return;
    this.active = undefined;
    this.size = 0;
    if (old.live <= 0) {
      this.retireOldest();
      return;
    }
    // What is still live a while later (waiting for a retry, a suspended queue) moves to files;
    // a backlog being delivered meanwhile never moves.
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      if (this.segments.get(old.number) === old && !this.closed) this.onRotate?.(old.number);
    }, this.rotatedGraceMs);
    timer.unref();
    this.timers.add(timer);
  }
}

type Parsed =
  | { type: 'A'; message: string; records: ControlRecord[]; jsonLength: number }
  | { type: 'D'; id: string }
  | { type: 'M'; message: string };

function parseRecord(type: string, payload: Buffer): Parsed | undefined {
  try {
    if (type === 'A') {
      const jsonLength = payload.readUInt32BE(0);
      const header = JSON.parse(payload.subarray(4, 4 + jsonLength).toString('utf8')) as {
        message?: unknown;
        records?: unknown;
      };
      if (typeof header.message !== 'string' || !Array.isArray(header.records)) return undefined;
      const records: ControlRecord[] = [];
      for (const value of header.records as unknown[]) {
        const id = (value as { id?: unknown } | null)?.id;
        const record = checkControlRecord(value, typeof id === 'string' ? id : '');
        if (typeof record === 'string' || record.message !== header.message) return undefined;
        records.push(record);
      }
      return { type, message: header.message, records, jsonLength };
    }
    const value = JSON.parse(payload.toString('utf8')) as { id?: unknown; message?: unknown };
    if (type === 'D' && typeof value.id === 'string') return { type, id: value.id };
    if (type === 'M' && typeof value.message === 'string') return { type, message: value.message };
  } catch {
    return undefined;
  }
  return undefined;
}
