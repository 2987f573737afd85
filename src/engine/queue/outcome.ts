// What one delivery attempt did to each recipient of a queued message. Local and remote delivery
// both answer in this shape; the queue turns it into done, retry later, or bounce.
import { isPermanent, withDetail, type SmtpReply } from '../../smtp-reply.js';
import type { MessageContent } from './message-body.js';

/** A queued message as the delivery side sees it: the envelope, and the body read on demand. */
export interface OutboundMessage {
  id: string; // the queue entry id, "<message>.<n>"
  from: string; // "" for the null sender
  recipients: string[];
  size: number;
  receivedAt: Date;
  /** The whole body in memory: for small messages (and tests); delivery reads content(). */
  body(): Promise<Buffer>;
  /** The body where it is: in memory, or a stored file read in chunks (message-body.ts). */
  content?(): Promise<MessageContent>;
}

export interface RecipientFailure {
  recipient: string;
  /** The reply that decided it (the remote's, parsed where it arrived, or one of ours). */
  reply: SmtpReply;
  /** 5xx: bounce now; otherwise keep the recipient queued for the next attempt. */
  permanent: boolean;
}

/** Every recipient of the message appears once, in delivered or in failures. */
export interface DeliveryOutcome {
  delivered: string[];
  failures: RecipientFailure[];
}

/** The same failure for every recipient of a message (a hop failed, no route, DNS). */
export function failAll(
  message: OutboundMessage,
  reply: SmtpReply,
  permanent: boolean,
): DeliveryOutcome {
  return {
    delivered: [],
    failures: message.recipients.map((recipient) => ({ recipient, reply, permanent })),
  };
}

/** A failure from our own reply table, permanent when the table says 5xx. */
export function failAllWith(
  message: OutboundMessage,
  reply: SmtpReply,
  detail?: string,
): DeliveryOutcome {
  return failAll(message, withDetail(reply, detail), isPermanent(reply));
}
