// A partner's session for TLS resumption tests: EHLO, STARTTLS (offering an earlier session if
// given) as mail.adatum.com with a client certificate, then MAIL FROM, whose reply tells how the
// receiving side judged the certificate; the session ticket it got, to resume with next time.
import assert from 'node:assert/strict';
import { connect as connectTcp, type Socket } from 'node:net';
import { connect as connectTls, type TLSSocket } from 'node:tls';

const WAIT_MS = 5_000;

/** The next complete reply on the socket (all lines of a multi-line one), bounded. */
export function readReply(socket: Socket | TLSSocket): Promise<string> {
  return new Promise((resolve, reject) => {
    let buffer = '';
    const timer = setTimeout(() => finish(new Error(`no reply within ${WAIT_MS} ms`)), WAIT_MS);
    const onData = (chunk: Buffer) => {
      buffer += chunk.toString('latin1');
      if (/(?:^|\r\n)\d{3} [^\r\n]*\r\n$/.test(buffer)) finish();
    };
    const onClose = () => finish(new Error(`closed after ${JSON.stringify(buffer)}`));
    const finish = (error?: Error) => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('close', onClose);
      if (error === undefined) resolve(buffer.trim());
      else reject(error);
    };
    socket.on('data', onData);
    socket.once('close', onClose);
  });
}

export interface ResumeAttempt {
  resumed: boolean;
  /** The reply to MAIL FROM of the partner. */
  mailFrom: string;
  /** A session ticket to resume with next time. */
  session: Buffer | undefined;
}

export interface ResumeAttemptOptions {
  port: number;
  host?: string;
  /** The client certificate and key presented. */
  client: { keyPem: string; certPem: string };
  /** The CA the server's certificate is checked against; not checked without one. */
  serverCa?: string;
  /** An earlier session to offer. */
  session?: Buffer;
  maxVersion?: 'TLSv1.2' | 'TLSv1.3';
}

export async function resumeAttempt(options: ResumeAttemptOptions): Promise<ResumeAttempt> {
  const raw = connectTcp({ port: options.port, host: options.host ?? '127.0.0.1', noDelay: true });
  raw.on('error', () => undefined);
  try {
    assert.match(await readReply(raw), /^220 /);
    raw.write('EHLO mail.adatum.com\r\n');
    assert.match(await readReply(raw), /STARTTLS/);
    raw.write('STARTTLS\r\n');
    assert.match(await readReply(raw), /^220 /);
    const tls = connectTls({
      socket: raw,
      servername: 'mail.treyresearch.net',
      ...(options.serverCa === undefined
        ? { rejectUnauthorized: false }
        : { ca: [options.serverCa] }),
      ...(options.maxVersion === undefined ? {} : { maxVersion: options.maxVersion }),
      key: options.client.keyPem,
      cert: options.client.certPem,
      ...(options.session === undefined ? {} : { session: options.session }),
    });
    tls.on('error', () => undefined);
    let session: Buffer | undefined;
    tls.on('session', (ticket: Buffer) => (session ??= ticket));
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no TLS handshake')), WAIT_MS);
      tls.once('secureConnect', () => {
        clearTimeout(timer);
        resolve();
      });
    });
    tls.write('EHLO mail.adatum.com\r\n');
    await readReply(tls);
    tls.write('MAIL FROM:<alice@adatum.com>\r\n');
    const mailFrom = await readReply(tls);
    const resumed = tls.isSessionReused();
    tls.write('QUIT\r\n');
    await readReply(tls).catch(() => '');
    tls.end();
    return { resumed, mailFrom, session };
  } finally {
    raw.destroy();
  }
}
