// Hands one received message to the queue: its one reading and marking first (headers.ts), then
// the sink, which resolves only once the message is fsync'ed; a refusal or failure becomes the
// reply the client gets.
import type { SMTPServerSession } from 'smtp-server';
import { prepareReceived } from '../headers.js';
import type { EngineLog } from '../log.js';
import type { DomainSecuredBy, MessageSink } from '../message-sink.js';
import { STORAGE_FAILURE_CODES, type StorageGuard } from '../queue/storage-guard.js';
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
 * Resolves with the queue ids; rejects with the SmtpReplyError to answer. A message that cannot be
 * read one way only (message-reading.ts) is refused with 550 5.6.0 and nothing is stored. The
 * queue cannot keep mail (a full disk or quota, a state directory that became read-only or
 * unwritable, see STORAGE_FAILURE_CODES): 452 4.3.1 (RFC 3463: mail system full), the client
 * retries later, and `storage` refuses the next transactions at MAIL FROM until space is back.
 * Otherwise 451 4.3.0.
 */
export async function queueMessage(
  message: ReceivedMessage,
  session: SMTPServerSession,
  sink: MessageSink,
  log: EngineLog,
  storage?: StorageGuard,
): Promise<string[]> {
  const receivedAt = new Date();
  const { tls, domainSecured } = message;
  const prepared = prepareReceived(message.body, {
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
  if ('malformed' in prepared) {
    log.log('info', 'receive.message_refused', {
      session: message.sessionId,
      connector: message.connector,
      reason: prepared.malformed,
      reply: `${REPLIES.malformedHeader.code} ${REPLIES.malformedHeader.enhanced}`,
    });
    throw new SmtpReplyError(REPLIES.malformedHeader, prepared.malformed);
  }
  const { body } = prepared;
  if (domainSecured !== undefined && prepared.domainSecured === undefined) {
    log.log('info', 'receive.partner_author_mismatch', {
      session: message.sessionId,
      connector: message.connector,
      partner: domainSecured.partner,
    });
  }
  try {
    const envelope = session.envelope;
    return await sink.accept({
      from: envelope.mailFrom === false ? '' : envelope.mailFrom.address,
      recipients: envelope.rcptTo.map((recipient) => recipient.address),
      body,
      receivedAt,
      connector: message.connector,
      remoteAddress: message.remoteAddress,
      ...(prepared.domainSecured === undefined ? {} : { domainSecured: prepared.domainSecured }),
    });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const short = STORAGE_FAILURE_CODES.has(code ?? '');
    log.log('error', 'receive.queue_failed', {
      session: message.sessionId,
      connector: message.connector,
      error: (error as Error).message,
      reply: short ? '452 4.3.1' : '451 4.3.0',
    });
    if (short) storage?.noteFailure(code);
    throw new SmtpReplyError(short ? REPLIES.storageFull : REPLIES.localError);
  }
}
