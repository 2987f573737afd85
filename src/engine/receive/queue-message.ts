// Hands one received message to the queue: marking headers first (SPEC §3.6), then the sink,
// which resolves only once the message is fsync'ed; a failure becomes the reply the client gets.
import type { SMTPServerSession } from 'smtp-server';
import { prepareHeaders } from '../headers.js';
import type { EngineLog } from '../log.js';
import type { DomainSecuredBy, MessageSink } from '../message-sink.js';
import { REPLIES, SmtpReplyError } from '../replies.js';
import type { TlsFacts } from './server-tls.js';

export interface ReceivedMessage {
  body: Buffer;
  hostname: string;
  sessionId: string;
  connector: string;
  remoteAddress: string;
  tls: TlsFacts | null;
  domainSecured: DomainSecuredBy | undefined;
}

/**
 * The queue cannot keep mail: a full disk or quota, or a state directory that became read-only or
 * unwritable. The client hears 452 4.3.1 (RFC 3463: mail system full) and retries later.
 */
const STORAGE_FAILURES = new Set(['ENOSPC', 'EDQUOT', 'EROFS', 'EACCES', 'EPERM']);

/** Resolves with the queue ids; rejects with the SmtpReplyError to answer (452 4.3.1, 451 4.3.0). */
export async function queueMessage(
  message: ReceivedMessage,
  session: SMTPServerSession,
  sink: MessageSink,
  log: EngineLog,
): Promise<string[]> {
  const receivedAt = new Date();
  const { tls, domainSecured } = message;
  try {
    const body = prepareHeaders(message.body, {
      hostname: message.hostname,
      domainSecured,
      tls: tls !== null,
      received: {
        heloName: session.hostNameAppearsAs || '',
        remoteAddress: message.remoteAddress,
        protocol: session.transmissionType || (tls === null ? 'ESMTP' : 'ESMTPS'),
        id: message.sessionId,
        tls: tls === null ? null : { version: tls.protocol ?? '', cipher: tls.cipher ?? '' },
        date: receivedAt,
      },
    });
    const envelope = session.envelope;
    return await sink.accept({
      from: envelope.mailFrom === false ? '' : envelope.mailFrom.address,
      recipients: envelope.rcptTo.map((recipient) => recipient.address),
      body,
      receivedAt,
      connector: message.connector,
      remoteAddress: message.remoteAddress,
      ...(domainSecured === undefined ? {} : { domainSecured }),
    });
  } catch (error) {
    const storage = STORAGE_FAILURES.has((error as NodeJS.ErrnoException).code ?? '');
    log.log('error', 'receive.queue_failed', {
      session: message.sessionId,
      connector: message.connector,
      error: (error as Error).message,
      reply: storage ? '452 4.3.1' : '451 4.3.0',
    });
    throw new SmtpReplyError(storage ? REPLIES.storageFull : REPLIES.localError);
  }
}
