// A message's top-level header fields as mailsplit reads them (lines split at LF, folded lines
// joined, the key before the first colon): the reference reader for differential tests.
import { createRequire } from 'node:module';
import type { Transform } from 'node:stream';

interface MailsplitNode {
  type: string;
  headers?: { getList(): { key: string; line: string }[] };
}

// mailsplit ships CommonJS without types: its Splitter is a Transform emitting MIME nodes.
const { Splitter } = createRequire(import.meta.url)('mailsplit') as {
  Splitter: new () => Transform;
};

/** The first node's fields, each as its key and its lines joined by CRLF. Bounded by `timeout`. */
export function mailsplitFields(
  message: Buffer,
  timeout = 5_000,
): Promise<{ key: string; line: string }[]> {
  return new Promise((resolve, reject) => {
    const splitter = new Splitter();
    let fields: { key: string; line: string }[] | undefined;
    const timer = setTimeout(() => reject(new Error(`mailsplit took over ${timeout} ms`)), timeout);
    splitter.on('data', (node: MailsplitNode) => {
      if (node.type === 'node' && fields === undefined) fields = node.headers?.getList() ?? [];
    });
    splitter.once('end', () => {
      clearTimeout(timer);
      if (fields === undefined) reject(new Error('mailsplit emitted no node'));
      // An empty header section reads as one field with an empty line: no field at all.
      else resolve(fields.filter((field) => field.line !== ''));
    });
    splitter.once('error', (error: Error) => {
      clearTimeout(timer);
      reject(error);
    });
    splitter.end(message);
  });
}
