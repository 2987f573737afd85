// SMTP replies in tests: a reply value from its line, and a failure's reply back as its line.
import { parseSmtpReply, smtpReplyText, type SmtpReply } from '../../src/smtp-reply.js';

/** The reply a line spells ("550 5.1.1 User unknown"); throws for a line that is none. */
export function reply(line: string): SmtpReply {
  const parsed = parseSmtpReply(line);
  if (parsed === undefined) throw new Error(`not an SMTP reply: ${line}`);
  return parsed;
}

/** A reply as the log and the queue quote it; "" for none. */
export function replyText(value: SmtpReply | undefined): string {
  return value === undefined ? '' : smtpReplyText(value);
}
