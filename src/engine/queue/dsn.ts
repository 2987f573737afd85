// Delivery status notifications (RFC 3464 multipart/report with message/delivery-status, RFC 3462):
// non-delivery reports and delay notices, built from the recipients and the original's header
// section. Pure; the queue sends them.
import { randomBytes } from 'node:crypto';
import { deliveryStatus, smtpReplyText, type SmtpReply } from '../../smtp-reply.js';

export interface BouncedRecipient {
  recipient: string;
  /** The reply that decided it: its status (RFC 3463) and, quoted, the diagnostic. */
  reply: SmtpReply;
}

export interface NonDeliveryReportInput {
  reportingMta: string; // our EHLO hostname
  /** The envelope sender the report goes to (never "": no report for a report). */
  to: string;
  queueId: string;
  arrivalDate: Date;
  /** The original message's header section (up to the blank line). */
  originalHeaders: string;
  recipients: BouncedRecipient[];
  now: Date;
  /** 'delayed': a delay notice (after 4 hours by default), the message stays queued. */
  action?: 'failed' | 'delayed';
  /** For a delay notice: when the queue gives up (RFC 3464 Will-Retry-Until). */
  willRetryUntil?: Date;
}

/** The header section of a message, bounded so a huge header cannot make a huge report. */
export function headerSection(body: Buffer, limit = 64 * 1024): string {
  const head = body.subarray(0, limit).toString('utf8');
  const end = head.search(/\r?\n\r?\n/);
  return (end === -1 ? head : head.slice(0, end)).replace(/\r?\n/g, '\r\n');
}

export function buildNonDeliveryReport(input: NonDeliveryReportInput): Buffer {
  const boundary = `=_domsec_${randomBytes(12).toString('hex')}`;
  const subject = originalSubject(input.originalHeaders);
  const delayed = input.action === 'delayed';
  const until = input.willRetryUntil;
  const intro = delayed
    ? [
        'Delivery to these recipients has been delayed; the server keeps trying.',
        ...(until === undefined ? [] : [`It gives up after ${rfc5322Date(until)}.`]),
        'No action is required on your part.',
      ]
    : ['Delivery has failed to these recipients:'];
  const lines: string[] = [
    `From: Mail Delivery System <postmaster@${input.reportingMta}>`,
    `To: <${input.to}>`,
    `Subject: ${delayed ? 'Delivery Delayed' : 'Undeliverable'}: ${subject === '' ? '(no subject)' : subject}`,
    `Date: ${rfc5322Date(input.now)}`,
    `Message-ID: <${randomBytes(12).toString('hex')}@${input.reportingMta}>`,
    'Auto-Submitted: auto-replied', // RFC 3834: no auto-reply loops
    'MIME-Version: 1.0',
    `Content-Type: multipart/report; report-type=delivery-status; boundary="${boundary}"`,
    '',
    'This is a MIME-encapsulated delivery status notification.',
    '',
    `--${boundary}`,
    'Content-Type: text/plain; charset=utf-8',
    'Content-Transfer-Encoding: 8bit',
    '',
    ...intro,
    '',
    ...input.recipients.flatMap((r) => [r.recipient, `    ${smtpReplyText(r.reply)}`, '']),
    'Diagnostic information for administrators:',
    `Generating server: ${input.reportingMta}`,
    `Queue ID: ${input.queueId}`,
    'The original message headers follow in the attached part.',
    '',
    `--${boundary}`,
    'Content-Type: message/delivery-status',
    '',
    `Reporting-MTA: dns; ${input.reportingMta}`,
    `X-Domsec-Queue-ID: ${input.queueId}`,
    `Arrival-Date: ${rfc5322Date(input.arrivalDate)}`,
    '',
    ...input.recipients.flatMap((r) => [
      `Final-Recipient: rfc822; ${r.recipient}`,
      `Action: ${delayed ? 'delayed' : 'failed'}`,
      `Status: ${deliveryStatus(r.reply)}`,
      `Diagnostic-Code: smtp; ${smtpReplyText(r.reply)}`,
      `Last-Attempt-Date: ${rfc5322Date(input.now)}`,
      ...(delayed && until !== undefined ? [`Will-Retry-Until: ${rfc5322Date(until)}`] : []),
      '',
    ]),
    `--${boundary}`,
    'Content-Type: text/rfc822-headers',
    '',
    input.originalHeaders,
    '',
    `--${boundary}--`,
    '',
  ];
  return Buffer.from(lines.join('\r\n'), 'utf8');
}

function originalSubject(headers: string): string {
  const match = /^Subject:[ \t]*(.*(?:\r\n[ \t].*)*)/im.exec(headers);
  return (match?.[1] ?? '').replace(/\r\n/g, '').trim();
}

/** "Tue, 14 Nov 2026 10:00:00 +0000" */
function rfc5322Date(date: Date): string {
  return date.toUTCString().replace(/GMT$/, '+0000');
}
