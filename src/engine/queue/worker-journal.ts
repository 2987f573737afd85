// A receive worker's side of the queue's journal (docs/workers.md): appends to segments of its
// own, never reads, settles or removes them.
import type { FileHandle } from 'node:fs/promises';
import type { ControlRecord } from './record.js';
import type { DirectorySyncs } from './directory-syncs.js';
import {
  acceptPayload,
  createSegment,
  frame,
  HEADER_BYTES,
  SEGMENT_BYTES,
  segmentId,
  WRITER_NAME,
  writeBatch,
  type JournalLocation,
  type Pending,
  type SegmentId,
} from './journal-segments.js';

/**
 * A receive worker's side of the journal: it appends A records to segments of its own (group
 * commit, one fdatasync per batch, as the queue's journal does) and never reads, settles or
 * removes them: the queue's journal adopts each message and removes a segment once it is sealed
 * (onSeal: the worker rotated it out) and nothing in it is live.
 */
export class WorkerJournal {
  private active: { id: SegmentId; handle: FileHandle; messages: number } | undefined;
  private size = 0;
  private nextNumber = 1;
  private pending: Pending[] = [];
  private writing: Promise<void> | undefined;
  private closed = false;
  /** Told of each segment rotated out (nothing more is appended to it) and how many it holds. */
  onSeal: ((segment: SegmentId, messages: number) => void) | undefined;

  constructor(
    readonly directory: string,
    readonly writer: string,
    private readonly syncs: DirectorySyncs,
    private readonly segmentBytes = SEGMENT_BYTES,
  ) {
    if (!WRITER_NAME.test(writer)) throw new RangeError(`${writer} is no writer name`);
  }

  /** Appends an accepted message; resolves once it is durable, with where its body is. */
  async accept(
    message: string,
    records: readonly ControlRecord[],
    body: Buffer,
  ): Promise<JournalLocation> {
    if (this.closed) throw new Error('the queue is closed');
    const payload = acceptPayload(message, records, body);
    const chunks = frame('A', payload);
    const bytes = chunks.reduce((sum, part) => sum + part.length, 0);
    const at = await new Promise<{ segment: SegmentId; offset: number }>((resolve, reject) => {
      this.pending.push({ chunks, bytes, durable: true, live: 0, resolve, reject });
      this.writing ??= this.pump().finally(() => {
        this.writing = undefined;
      });
    });
    const bodyOffset = at.offset + HEADER_BYTES + 4 + (payload[1]?.length ?? 0);
    return { segment: at.segment, offset: bodyOffset, length: body.length };
  }

  /** Waits for writes in flight and closes the segment in use (it stays for the queue's journal). */
  async close(): Promise<void> {
    this.closed = true;
    while (this.writing !== undefined) await this.writing;
    await this.active?.handle.close().catch(() => undefined);
    this.active = undefined;
  }

  private async pump(): Promise<void> {
    while (this.pending.length > 0) {
      const batch = this.pending;
      this.pending = [];
      let segment: { id: SegmentId; handle: FileHandle; messages: number };
      try {
        if (this.active === undefined) {
          const id = segmentId(this.nextNumber, this.writer);
          this.nextNumber += 1;
          const handle = await createSegment(this.directory, id, this.syncs);
          this.active = { id, handle, messages: 0 };
          this.size = 0;
        }
        segment = this.active;
      } catch (error) {
        for (const request of batch) request.reject(error as Error);
        continue;
      }
      const start = this.size;
      try {
        await writeBatch(segment.handle, batch, start);
      } catch (error) {
        await segment.handle.truncate(start).catch(() => undefined);
        this.seal(); // never append after what may be a torn record
        for (const request of batch) request.reject(error as Error);
        continue;
      }
      let offset = start;
      for (const request of batch) {
        request.resolve({ segment: segment.id, offset });
        offset += request.bytes;
      }
      segment.messages += batch.length;
      this.size = offset;
      if (this.size >= this.segmentBytes) this.seal();
    }
  }

  private seal(): void {
    const old = this.active;
    if (old === undefined) return;
    this.active = undefined;
    this.size = 0;
    void old.handle.close().catch(() => undefined);
    this.onSeal?.(old.id, old.messages);
  }
}
