// The journal's segment files: their names (the queue's own and each receive worker's), the
// record format (a checksummed header, then the payload), reading a segment back as far as it can
// be trusted, and the batched, synced writes that append to one. No state of its own.
import { crc32 } from 'node:zlib';
import { open, readFile, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { EngineLog } from '../log.js';
import { checkControlRecord, type ControlRecord } from './record.js';
import type { DirectorySyncs } from './directory-syncs.js';
import { unwritten } from './store.js';

export const MAGIC = Buffer.from('DQJ1', 'latin1');
export const HEADER_BYTES = 16;
/** The queue's own segments are <16 hex>.log; a receive worker's are <writer>.<16 hex>.log. */
export const SEGMENT_NAME = /^(?:([a-z0-9]{1,16})\.)?([0-9a-f]{16})\.log$/;
/** A receive worker's name in its segments' names. */
export const WRITER_NAME = /^[a-z0-9]{1,16}$/;
/** A segment is rotated out after this many bytes. */
export const SEGMENT_BYTES = 16 * 1024 * 1024;

export type RecordType = 'A' | 'D' | 'M';

/**
 * A segment's name without .log: the queue's own are 16 hex digits, a receive worker's are its
 * writer name, a dot and 16 hex digits.
 */
export type SegmentId = string;

/** Where a body is: its segment and the byte range in it. */
export interface JournalLocation {
  segment: SegmentId;
  offset: number;
  length: number;
}

/** A message the journal holds: its live control records and where its body is. */
export interface JournalMessage {
  message: string;
  records: ControlRecord[];
  body: JournalLocation;
}

export interface Pending {
  chunks: Buffer[];
  bytes: number;
  durable: boolean;
  /** Entries this record makes live in its segment (counted before anything can rotate it). */
  live: number;
  resolve: (at: { segment: SegmentId; offset: number }) => void;
  reject: (error: Error) => void;
}

export function segmentId(number: number, writer?: string): SegmentId {
  const hex = number.toString(16).padStart(16, '0');
  return writer === undefined ? hex : `${writer}.${hex}`;
}

export function segmentFile(id: SegmentId): string {
  return `${id}.log`;
}

/** The writer of a segment (undefined: the queue's own) and its number; undefined: no segment. */
export function parseSegmentName(
  name: string,
): { id: SegmentId; writer?: string; number: number } | undefined {
  const match = SEGMENT_NAME.exec(name);
  if (match === null) return undefined;
  const [, writer, hex = ''] = match;
  return {
    id: name.slice(0, -4),
    ...(writer === undefined ? {} : { writer }),
    number: Number.parseInt(hex, 16),
  };
}

export function frame(type: RecordType, payload: Buffer[]): Buffer[] {
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
export function acceptPayload(
  message: string,
  records: readonly ControlRecord[],
  body: Buffer,
): Buffer[] {
  const json = Buffer.from(JSON.stringify({ message, records }), 'utf8');
  const length = Buffer.alloc(4);
  length.writeUInt32BE(json.length, 0);
  return [length, json, body];
}

/** What one segment holds, record by record, as far as it can be read. */
export interface SegmentRecords {
  accepted: JournalMessage[];
  done: string[];
  moved: string[];
  /** Records skipped for damage followed by more data. */
  skipped: number;
}

/**
 * Reads one segment. A torn tail (a crash in the middle of a write that was never acknowledged)
 * ends it quietly; a bad record followed by more data is skipped with a log line.
 */
export async function readSegment(
  directory: string,
  id: SegmentId,
  log: EngineLog,
): Promise<SegmentRecords> {
  const name = segmentFile(id);
  const data = await readFile(join(directory, name));
  const read: SegmentRecords = { accepted: [], done: [], moved: [], skipped: 0 };
  let offset = 0;
  while (offset + HEADER_BYTES <= data.length) {
    const header = data.subarray(offset, offset + HEADER_BYTES);
    if (!header.subarray(0, 4).equals(MAGIC)) break;
    const length = header.readUInt32BE(8);
    const end = offset + HEADER_BYTES + length;
    if (end > data.length) break;
    const payload = data.subarray(offset + HEADER_BYTES, end);
    const checks = crc32(payload, crc32(header.subarray(4, 12))) === header.readUInt32BE(12);
    const parsed = checks ? parseRecord(String.fromCharCode(header[4] ?? 0), payload) : undefined;
    if (parsed === undefined) {
      // The last thing written: a write cut short. Otherwise damage: skip the one record.
      if (!data.subarray(end).some((byte) => byte !== 0)) break;
      log.log('error', 'queue.corrupt-journal', { segment: name, at: offset, bytes: length });
      read.skipped += 1;
      offset = end;
      continue;
    }
    if (parsed.type === 'A') {
      const jsonEnd = 4 + parsed.jsonLength;
      read.accepted.push({
        message: parsed.message,
        records: parsed.records,
        body: { segment: id, offset: offset + HEADER_BYTES + jsonEnd, length: length - jsonEnd },
      });
    } else if (parsed.type === 'D') read.done.push(parsed.id);
    else read.moved.push(parsed.message);
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
  return read;
}

/** One writev of a batch at `position` (looping over short writes), one fdatasync if asked. */
export async function writeBatch(
  handle: FileHandle,
  batch: Pending[],
  position: number,
): Promise<void> {
  const chunks = batch.flatMap((request) => request.chunks);
  const total = batch.reduce((sum, request) => sum + request.bytes, 0);
  let written = 0;
  while (written < total) {
    const { bytesWritten } = await handle.writev(unwritten(chunks, written), position + written);
    written += bytesWritten;
  }
  if (batch.some((request) => request.durable)) await handle.datasync();
}

/** A new segment file, its name made durable before anything is appended. */
export async function createSegment(
  directory: string,
  id: SegmentId,
  syncs: DirectorySyncs,
): Promise<FileHandle> {
  const path = join(directory, segmentFile(id));
  const handle = await open(path, 'wx+', 0o600);
  try {
    await syncs.sync(directory);
  } catch (error) {
    await handle.close();
    await unlink(path).catch(() => undefined);
    throw error;
  }
  return handle;
}

export async function removeSegment(directory: string, id: SegmentId): Promise<void> {
  await unlink(join(directory, segmentFile(id))).catch((error: NodeJS.ErrnoException) => {
    if (error.code !== 'ENOENT') throw error;
  });
}

export type Parsed =
  | { type: 'A'; message: string; records: ControlRecord[]; jsonLength: number }
  | { type: 'D'; id: string }
  | { type: 'M'; message: string };

export function parseRecord(type: string, payload: Buffer): Parsed | undefined {
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
