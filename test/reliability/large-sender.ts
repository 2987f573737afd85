// Large test messages from adatum.com: made a few lines at a time while their body is hashed, sent
// over a mutual-TLS session as a stream, and read back from a Maildir with the same hash.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { Readable } from 'node:stream';
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import { ADATUM, TREY } from '../support/manifests.js';
import type { PartnerLab } from './partner-lab.js';

const LINE = 78; // body line length, CRLF included

/** The body of message `id`: lines of text that differ per message and per line, CRLF ended. */
function bodyLine(id: string, n: number): string {
  const text = `${id} line ${n} `;
  return `${text}${'abcdefghijklmnopqrstuvwxyz0123456789'.repeat(3).slice(0, LINE - 2 - text.length)}\r\n`;
}

/** Message `id`'s header section and its body, produced a few lines at a time (never whole). */
export function messageStream(
  id: string,
  bytes: number,
): { stream: Readable; bodyHash: () => string } {
  const hash = createHash('sha256');
  const lines = Math.floor(bytes / LINE);
  let n = 0;
  const header =
    `From: sender@${ADATUM.domain}\r\nTo: box@${TREY.domain}\r\nSubject: large ${id}\r\n` +
    `X-Test-Id: ${id}\r\n\r\n`;
  const stream = new Readable({
    read() {
      if (n === 0) this.push(Buffer.from(header, 'latin1'));
      if (n >= lines) {
        this.push(null);
        return;
      }
      const block = Array.from({ length: Math.min(800, lines - n) }, () => bodyLine(id, n++)).join(
        '',
      );
      const bytes = Buffer.from(block, 'latin1');
      hash.update(bytes);
      this.push(bytes);
    },
  });
  return { stream, bodyHash: () => hash.digest('hex') };
}

/**
 * One mutual-TLS session sending one message of about `bytes`; resolves with its reply code (0: no
 * reply, the engine went away) and the hash of the body sent.
 */
export async function sendLarge(
  lab: Pick<PartnerLab, 'port' | 'client'>,
  id: string,
  to: string,
  bytes: number,
): Promise<{ code: number; bodyHash: string }> {
  const connection = new SMTPConnection({
    host: '127.0.0.1',
    port: lab.port,
    name: ADATUM.hostname,
    servername: TREY.hostname,
    requireTLS: true,
    connectionTimeout: 10_000,
    greetingTimeout: 10_000,
    socketTimeout: 60_000,
    tls: {
      ca: [lab.client.serverCa],
      key: lab.client.certificate.keyPem,
      cert: lab.client.certificate.certPem,
    },
  });
  const failed = new Promise<never>((_, reject) => connection.on('error', reject));
  failed.catch(() => undefined);
  try {
    await Promise.race([
      failed,
      new Promise<void>((resolve, reject) =>
        connection.connect((error) => (error ? reject(error) : resolve())),
      ),
    ]);
    const { stream, bodyHash } = messageStream(id, bytes);
    const info = await Promise.race([
      failed,
      new Promise<{ response: string }>((resolve, reject) =>
        connection.send({ from: `sender@${ADATUM.domain}`, to: [to] }, stream, (error, result) =>
          error || result === undefined ? reject(error) : resolve(result),
        ),
      ),
    ]);
    return { code: Number(info.response.slice(0, 3)), bodyHash: bodyHash() };
  } catch (error) {
    return { code: (error as { responseCode?: number }).responseCode ?? 0, bodyHash: '' };
  } finally {
    connection.close();
  }
}

/** The hash of what follows a stored message's header section, and its X-Test-Id. */
export async function storedBody(
  path: string,
): Promise<{ id: string | undefined; bodyHash: string }> {
  const handle = await open(path, 'r');
  const buffer = Buffer.alloc(64 * 1024);
  const { bytesRead } = await handle
    .read(buffer, 0, buffer.length, 0)
    .finally(() => handle.close());
  const head = buffer.subarray(0, bytesRead).toString('latin1');
  const end = head.indexOf('\r\n\r\n');
  const id = /^X-Test-Id: (\S+?)\r?$/m.exec(head.slice(0, end))?.[1];
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { start: end + 4 }) as AsyncIterable<Buffer>)
    hash.update(chunk);
  return { id, bodyHash: hash.digest('hex') };
}
