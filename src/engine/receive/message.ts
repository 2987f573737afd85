// Reads the message of one DATA command as it arrives: the header section is held (up to
// maxHeaderSize) and prepared, the body's line ends are normalised on the way, and a body over
// MEMORY_LIMIT goes to the sink's spool in chunks of about WRITE_CHUNK, so that a session's memory
// does not grow with its message. Past a limit the rest is drained unread, and what was spooled
// removed, so that the client still gets its refusal after the final dot.
import type { Readable } from 'node:stream';
import type { PreparedMessage } from '../headers.js';
import {
  HeaderSectionScanner,
  LineEndNormalizer,
  type MalformedMessage,
} from '../message-reading.js';
import type { BodySpool, DomainSecuredBy, SpooledBody } from '../message-sink.js';

/** Bodies up to this size stay in memory (the queue's journal and body cache keep them fast). */
export const MEMORY_LIMIT = 256 * 1024;
/** A spooled body is written in writes of about this size. */
export const WRITE_CHUNK = 64 * 1024;

export interface ReceiveOptions {
  /** The placed connector's maxMessageSize: bytes of DATA as received (dot-unstuffed). */
  limit: number;
  maxHeaderSize: number;
  /** Reads and marks the header section, its empty line included (prepareReceived). */
  prepare(header: Buffer): PreparedMessage | MalformedMessage;
  /** Where a large body goes; absent: every message is held whole in memory. */
  spool?: BodySpool;
  /** Bodies larger than this are spooled (default MEMORY_LIMIT). */
  memoryLimit?: number;
}

/** What came of one DATA stream; `size` counts its bytes as received. */
export type ReceivedData =
  | { kind: 'oversized'; size: number }
  | { kind: 'header-too-big'; size: number }
  | { kind: 'malformed'; size: number; reason: string }
  /** The spool failed (a full disk): nothing of the message is kept. */
  | { kind: 'unstored'; size: number; error: Error }
  | {
      kind: 'received';
      size: number;
      /** The prepared message: in memory, or spooled (written, not yet durable). */
      body: Buffer | SpooledBody;
      domainSecured?: DomainSecuredBy;
    };

type Refusal = Exclude<ReceivedData, { kind: 'received' | 'oversized' }>;

/**
 * Resolves at the end of the message; rejects when the stream fails (the client went away), having
 * removed what was spooled. A refusal is decided as early as it can be, but answered only at the
 * end, in today's order: over the size limit, then the header section's size, then its reading.
 */
export async function receiveMessage(
  stream: Readable,
  options: ReceiveOptions,
): Promise<ReceivedData> {
  const reader = new MessageReader(options);
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) await reader.push(chunk);
  } catch (error) {
    await reader.discard();
    throw error;
  }
  return reader.finish();
}

class MessageReader {
  private size = 0;
  private readonly scanner = new HeaderSectionScanner();
  private readonly normalizer = new LineEndNormalizer();
  /** The header section as received, until its end is found. */
  private header: Buffer[] | undefined = [];
  /** Prepared bytes not yet written to the spool (all of them while in memory). */
  private held: Buffer[] = [];
  private heldBytes = 0;
  private spooled: SpooledBody | undefined;
  private domainSecured: DomainSecuredBy | undefined;
  private refusal: Refusal | undefined;
  private draining = false;
  private readonly memoryLimit: number;

  constructor(private readonly options: ReceiveOptions) {
    this.memoryLimit = options.memoryLimit ?? MEMORY_LIMIT;
  }

  async push(chunk: Buffer): Promise<void> {
    this.size += chunk.length;
    if (this.draining) return;
    if (this.size > this.options.limit) {
      await this.drain();
      return;
    }
    if (this.header !== undefined) {
      this.header.push(chunk);
      const end = this.scanner.push(chunk);
      if (end === undefined) {
        if (this.scanner.sizeAtLeast > this.options.maxHeaderSize) await this.headerTooBig();
        return;
      }
      if (end.size > this.options.maxHeaderSize) {
        await this.headerTooBig();
        return;
      }
      const received = Buffer.concat(this.header);
      this.header = undefined;
      if (!this.startBody(received.subarray(0, end.end))) return;
      await this.emit(this.normalizer.push(received.subarray(end.end)));
      return;
    }
    await this.emit(this.normalizer.push(chunk));
  }

  async finish(): Promise<ReceivedData> {
    const size = this.size;
    if (size > this.options.limit) return { kind: 'oversized', size };
    const early = this.refused();
    if (early !== undefined) return early;
    if (this.header !== undefined) {
      // No empty line: the whole message is its header section (RFC 5322 §3.5, no body).
      const end = this.scanner.finish();
      if (end.size > this.options.maxHeaderSize) {
        this.header = undefined;
        return { kind: 'header-too-big', size };
      }
      const received = Buffer.concat(this.header);
      this.header = undefined;
      if (!this.startBody(received))
        return this.refused() ?? { kind: 'malformed', size, reason: 'unreadable' };
    }
    await this.emit(this.normalizer.finish(), true);
    const late = this.refused();
    if (late !== undefined) return late;
    const secured = this.domainSecured === undefined ? {} : { domainSecured: this.domainSecured };
    if (this.spooled !== undefined)
      return { kind: 'received', size, body: this.spooled, ...secured };
    const body =
      this.held.length === 1 ? (this.held[0] ?? Buffer.alloc(0)) : Buffer.concat(this.held);
    return { kind: 'received', size, body, ...secured };
  }

  /** The refusal decided, with the message's whole size; undefined: none. */
  private refused(): ReceivedData | undefined {
    return this.refusal === undefined ? undefined : { ...this.refusal, size: this.size };
  }

  /** Removes what was spooled; the message is not kept. */
  async discard(): Promise<void> {
    this.header = undefined;
    this.held = [];
    this.heldBytes = 0;
    const spooled = this.spooled;
    this.spooled = undefined;
    await spooled?.discard();
  }

  /** The header section read and marked: false when it is refused. */
  private startBody(header: Buffer): boolean {
    const prepared = this.options.prepare(header);
    if ('malformed' in prepared) {
      this.refuse({ kind: 'malformed', size: this.size, reason: prepared.malformed });
      return false;
    }
    this.domainSecured = prepared.domainSecured;
    this.hold(prepared.body);
    return true;
  }

  private async headerTooBig(): Promise<void> {
    this.refuse({ kind: 'header-too-big', size: this.size });
    await this.drain();
  }

  private refuse(refusal: Refusal): void {
    this.refusal ??= refusal;
    this.draining = true;
    this.header = undefined;
  }

  /** The rest is read and dropped; what was spooled goes now. */
  private async drain(): Promise<void> {
    this.draining = true;
    await this.discard();
  }

  private hold(bytes: Buffer): void {
    if (bytes.length === 0) return;
    this.held.push(bytes);
    this.heldBytes += bytes.length;
  }

  /** Keeps prepared bytes: in memory up to the limit, then in the spool, WRITE_CHUNK at a time. */
  private async emit(bytes: Buffer, last = false): Promise<void> {
    this.hold(bytes);
    const spool = this.options.spool;
    if (spool === undefined) return;
    if (this.spooled === undefined && this.heldBytes <= this.memoryLimit) return;
    if (!last && this.heldBytes < WRITE_CHUNK) return;
    try {
      this.spooled ??= await spool.open();
      const chunks = this.held;
      this.held = [];
      this.heldBytes = 0;
      await this.spooled.write(chunks);
    } catch (error) {
      this.refuse({ kind: 'unstored', size: this.size, error: error as Error });
      await this.discard();
    }
  }
}
