// A queued message's bytes as delivery reads them: in memory (a small message at its first attempt,
// or read back from the journal), or a file in the store's data/ read in chunks, so that delivering
// a large message never holds it whole.
import { isAscii } from 'node:buffer';
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import type { OutboundMessage } from './outcome.js';

/** A body in the file store: its path and its size (the control record's). */
export interface StoredBody {
  path: string;
  size: number;
}

export type MessageContent = Buffer | StoredBody;

/** Reads of a stored body are this size. */
export const READ_CHUNK = 64 * 1024;

export function contentSize(content: MessageContent): number {
  return Buffer.isBuffer(content) ? content.length : content.size;
}

/** A stored body as a stream of READ_CHUNK reads; destroy() it when it is not read to the end. */
export function readStoredBody(body: StoredBody): Readable {
  return createReadStream(body.path, { highWaterMark: READ_CHUNK });
}

/**
 * Whether any byte is over 0x7f (BODY=8BITMIME), read a chunk at a time for a stored body. A body
 * that cannot be read says yes: sending it then fails on the same read, with its reason.
 */
export async function hasEightBitBytes(content: MessageContent): Promise<boolean> {
  if (Buffer.isBuffer(content)) return !isAscii(content);
  try {
    for await (const chunk of readStoredBody(content) as AsyncIterable<Buffer>)
      if (!isAscii(chunk)) return true; // leaving the loop destroys the stream
  } catch {
    return true;
  }
  return false;
}

/** The first `limit` bytes (a report quotes the header section only). */
export async function contentHead(content: MessageContent, limit: number): Promise<Buffer> {
  if (Buffer.isBuffer(content)) return content.subarray(0, limit);
  const handle = await open(content.path, 'r');
  try {
    const head = Buffer.alloc(Math.min(limit, content.size));
    const { bytesRead } = await handle.read(head, 0, head.length, 0);
    return head.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}

/** What delivery reads: content() where the message has it (the queue's), else the whole body. */
export function messageContent(message: OutboundMessage): Promise<MessageContent> {
  return message.content?.() ?? message.body();
}
