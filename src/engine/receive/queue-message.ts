// Hands the message of one DATA command to the queue as it arrives (message.ts): its one reading
// and marking first (headers.ts), its body in memory or spooled to the queue's storage, then the
// sink, which resolves only once the message is fsync'ed; a refusal or failure becomes the reply.
import type { Readable } from 'node:stream';
import type { SMTPServerSession } from 'smtp-server';
import { prepareReceived } from '../headers.js';
import type { EngineLog } from '../log.js';
import type {
  DomainSecuredBy,
  IncomingEnvelope,
  MessageSink,
  SpooledMessage,
} from '../message-sink.js';
import { STORAGE_FAILURE_CODES, type StorageGuard } from '../queue/storage-guard.js';
import { REPLIES, SmtpReplyError } from '../replies.js';
import { receiveMessage } from './message.js';
import type { TlsFacts } from './server-tls.js';

export interface ReceivedMessage {
  hostname: string;
  sessionId: string;
  connector: string;
  remoteAddress: string;
  tls: TlsFacts | null;
  domainSecured: DomainSecuredBy | undefined;
  /** The placed connector's maxMessageSize and maxHeaderSize. */
  maxMessageSize: number;
  maxHeaderSize: number;
  /** A line for the protocol log (verbose connectors). */
  trace: (line: string) => void;
}

/**
 * Resolves with the queue ids and the message's size as received; rejects with the
 * SmtpReplyError to answer, or with the stream's error when the client went away. Over the
 * connector's size limit: 552 5.3.4, and so for a header section over maxHeaderSize. A message
 * that cannot be read one way only (message-reading.ts) is refused with 550 5.6.0. Nothing of a
 * refused message is stored. The queue cannot keep mail (a full disk or quota, a state directory
 * that became read-only or unwritable, see STORAGE_FAILURE_CODES): 452 4.3.1 (RFC 3463: mail
 * system full), the client retries later, and `storage` refuses the next transactions at MAIL
 * FROM until space is back. Otherwise 451 4.3.0.
 */
export async function queueMessage(
  stream: Readable,
  message: ReceivedMessage,
  session: SMTPServerSession,
  sink: MessageSink,
  log: EngineLog,
  storage?: StorageGuard,
): Promise<{ ids: string[]; size: number }> {
  const receivedAt = new Date();
  const { tls, domainSecured } = message;
  const marking = {
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
  };
  const received = await receiveMessage(stream, {
    limit: message.maxMessageSize,
    maxHeaderSize: message.maxHeaderSize,
    prepare: (header) => prepareReceived(header, marking),
    ...(sink.spool === undefined ? {} : { spool: sink.spool }),
  });
  switch (received.kind) {
    case 'oversized':
      message.trace(
        `message of ${received.size} bytes over the limit of ${message.maxMessageSize}`,
      );
      throw new SmtpReplyError(REPLIES.messageTooBig);
    case 'header-too-big':
      message.trace(`header section over the limit of ${message.maxHeaderSize} bytes`);
      throw new SmtpReplyError(REPLIES.headerTooBig);
    case 'malformed':
      log.log('info', 'receive.message-refused', {
        session: message.sessionId,
        connector: message.connector,
        reason: received.reason,
        reply: `${REPLIES.malformedHeader.code} ${REPLIES.malformedHeader.enhanced}`,
      });
      throw new SmtpReplyError(REPLIES.malformedHeader, received.reason);
    case 'unstored':
      throw storageFailure(received.error, message, log, storage);
    case 'received':
      break;
  }
  if (domainSecured !== undefined && received.domainSecured === undefined) {
    log.log('info', 'receive.partner-author-mismatch', {
      session: message.sessionId,
      connector: message.connector,
      partner: domainSecured.partner,
    });
  }
  const envelope: IncomingEnvelope = {
    from: session.envelope.mailFrom === false ? '' : session.envelope.mailFrom.address,
    recipients: session.envelope.rcptTo.map((recipient) => recipient.address),
    receivedAt,
    connector: message.connector,
    remoteAddress: message.remoteAddress,
    ...(received.domainSecured === undefined ? {} : { domainSecured: received.domainSecured }),
  };
  const { body } = received;
  try {
    const ids = Buffer.isBuffer(body)
      ? await sink.accept({ ...envelope, body })
      : await acceptSpooled(sink, { ...envelope, body });
    return { ids, size: received.size };
  } catch (error) {
    throw storageFailure(error as Error, message, log, storage);
  }
}

/** A spooled body is the sink's own: it removes what was written when it cannot keep it. */
function acceptSpooled(sink: MessageSink, message: SpooledMessage): Promise<string[]> {
  if (sink.spool === undefined) return Promise.reject(new Error('a spooled body without a spool'));
  return sink.spool.accept(message);
}

/** The reply for a message the queue could not keep, logged; a storage shortage noted. */
function storageFailure(
  error: Error,
  message: ReceivedMessage,
  log: EngineLog,
  storage: StorageGuard | undefined,
): SmtpReplyError {
  const code = (error as NodeJS.ErrnoException).code;
  const short = STORAGE_FAILURE_CODES.has(code ?? '');
  log.log('error', 'receive.queue-failed', {
    session: message.sessionId,
    connector: message.connector,
    error: error.message,
    reply: short ? '452 4.3.1' : '451 4.3.0',
  });
  if (short) storage?.noteFailure(code);
  return new SmtpReplyError(short ? REPLIES.storageFull : REPLIES.localError);
}
