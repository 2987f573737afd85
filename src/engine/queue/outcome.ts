// What one delivery attempt did to each recipient of a queued message. Local and remote delivery
// both answer in this shape; the queue turns it into done, retry later, or bounce.
import type { SmtpReply } from '../../model.js';
import { formatReply } from '../replies.js';
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
  /** The reply as a line: "550 5.1.1 User unknown". */
  reply: string;
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
  reply: string,
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
  return failAll(message, formatReply(reply, detail), reply.code >= 500);
}

/** A reply line is permanent when it starts with 5 (RFC 5321 §4.2.1). */
export function isPermanentReply(reply: string): boolean {
  return reply.trimStart().startsWith('5');
}

/** A multi-line reply ("250-a\r\n250 b") on one line: continuation codes dropped. */
export function oneLineReply(reply: string): string {
  return reply
    .trim()
    .replace(/\r?\n\d{3}[ -]?/g, ' ')
    .replace(/\s+/g, ' ');
}
