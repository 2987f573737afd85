// Reads the message of one DATA command into memory, up to the placed connector's size limit;
// past it the rest is drained unread so that the client still gets its 552 after the final dot.
import type { Readable } from 'node:stream';

export interface CollectedMessage {
  /** The message as received (dot-unstuffed); empty when it was over the limit. */
  body: Buffer;
  size: number;
  oversized: boolean;
}

/** Resolves at the end of the message; rejects when the stream fails (the client went away). */
export function collectMessage(stream: Readable, limit: number): Promise<CollectedMessage> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    stream.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= limit) chunks.push(chunk);
      else chunks.length = 0;
    });
    stream.once('end', () => {
      const oversized = size > limit;
      resolve({ body: oversized ? Buffer.alloc(0) : Buffer.concat(chunks, size), size, oversized });
    });
    stream.once('error', reject);
  });
}
