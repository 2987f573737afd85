// What the remote's answers mean: nodemailer's errors read as a failure of the
// whole hop (with the reply the queue will quote) or as one message's per-recipient outcome.
// The remote's reply is parsed here, once, where it arrives; what follows carries the value.
import { REPLIES } from '../replies.js';
import { failAll, type DeliveryOutcome, type OutboundMessage } from '../queue/outcome.js';
import {
  isPermanent,
  parseSmtpReply,
  smtpReplyText,
  withDetail,
  type SmtpReply,
} from '../../smtp-reply.js';

/** The hop failed as a whole; `reply` is what the queue's last error quotes. */
export class HopFailure extends Error {
  override name = 'HopFailure';
  constructor(readonly reply: SmtpReply) {
    super(smtpReplyText(reply));
  }
}

/** The remote's reply in nodemailer's error, when the remote said one. */
export function remoteReply(error: SmtpError): SmtpReply | undefined {
  return error.response === undefined ? undefined : parseSmtpReply(error.response);
}

/** nodemailer's errors: an Error with the reply and the step that failed. */
export type SmtpError = Error & {
  code?: string;
  response?: string;
  responseCode?: number;
  command?: string;
  recipient?: string;
  rejectedErrors?: SmtpError[];
};

/**
 * A message the remote (or nodemailer) refused on its own: its outcome, recipient by recipient.
 * Undefined when the failure is the hop's: a 4xx to MAIL FROM, or the connection lost.
 */
export function messageRefusal(
  message: OutboundMessage,
  error: SmtpError,
): DeliveryOutcome | undefined {
  const reply = remoteReply(error);
  const permanent = reply !== undefined && isPermanent(reply);
  if (
    error.code === 'EENVELOPE' &&
    error.command === 'RCPT TO' &&
    error.rejectedErrors !== undefined
  ) {
    return recipientOutcome(message, [], error.rejectedErrors);
  }
  if (
    error.code === 'EENVELOPE' &&
    reply !== undefined &&
    (permanent || error.command !== 'MAIL FROM')
  ) {
    return failAll(message, reply, permanent);
  }
  if (error.code === 'EENVELOPE' && error.command === 'API') {
    // nodemailer refused the envelope before sending it (an address it cannot write).
    return failAll(message, withDetail(REPLIES.badMailbox, error.message), true);
  }
  if (error.code === 'EMESSAGE' && reply !== undefined) return failAll(message, reply, permanent);
  if (error.code === 'EMESSAGE' && error.command === 'MAIL FROM') {
    const detail = 'the remote announced a smaller SIZE';
    return failAll(message, withDetail(REPLIES.messageTooBig, detail), true);
  }
  return undefined;
}

/** The reply a failed hop is remembered by: the remote's own words when it said any. */
export function hopReply(
  error: SmtpError,
  mandatoryTls: boolean,
  stage: 'connect' | 'send',
): SmtpReply {
  const reply = remoteReply(error);
  if (error.code === 'ETLS') {
    // The server refused STARTTLS (or never offered it): Exchange's words, which admins search for.
    if (reply !== undefined) return mandatoryTls ? REPLIES.starttlsRequiredToSend : reply;
    return withDetail(REPLIES.tlsNegotiationFailed, error.message);
  }
  if (mandatoryTls && /does not support required STARTTLS/.test(error.message)) {
    return REPLIES.starttlsRequiredToSend;
  }
  if (reply !== undefined) return reply;
  const detail = error.message.replace(/^Error: /, '');
  return withDetail(
    stage === 'connect' ? REPLIES.unableToConnect : REPLIES.connectionDropped,
    detail,
  );
}

export function recipientOutcome(
  message: OutboundMessage,
  accepted: string[],
  rejected: SmtpError[],
): DeliveryOutcome {
  const failures = rejected
    .filter((e) => e.recipient !== undefined)
    .map((e) => {
      const reply = remoteReply(e) ?? withDetail(REPLIES.localError, e.message);
      return { recipient: e.recipient as string, reply, permanent: isPermanent(reply) };
    });
  const known = new Set([...accepted, ...failures.map((f) => f.recipient)]);
  // A recipient nodemailer reported on neither side stays queued rather than being assumed sent.
  for (const recipient of message.recipients) {
    if (!known.has(recipient)) {
      failures.push({
        recipient,
        reply: withDetail(REPLIES.localError, 'no reply for this recipient'),
        permanent: false,
      });
    }
  }
  return { delivered: accepted.filter((r) => message.recipients.includes(r)), failures };
}
