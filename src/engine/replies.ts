// Every SMTP reply the engine gives for a policy decision, defined once so the same failure
// always answers the same way. Texts are Exchange's where admins search for them.
import type { SmtpReply } from '../model.js';

export const REPLIES = {
  connectionRefused: {
    code: 554,
    enhanced: '5.7.1',
    text: 'Connection refused: no receive connector accepts this client',
  },
  // Receive limits (receive/limits.ts); Exchange's wording where it has one.
  tooManyConnections: {
    code: 421,
    enhanced: '4.3.2',
    text: 'The maximum number of concurrent server connections has exceeded a limit, closing transmission channel',
  },
  tooManyFromClient: {
    code: 421,
    enhanced: '4.7.0',
    text: 'Too many concurrent connections from this client, closing transmission channel',
  },
  lineTooLong: { code: 500, enhanced: '5.5.2', text: 'Line too long' },
  // Exchange's answer to a command it does not know, or does not offer here (STARTTLS without Tls).
  unrecognizedCommand: { code: 500, enhanced: '5.3.3', text: 'Unrecognized command' },
  idleTimeout: {
    code: 421,
    enhanced: '4.4.2',
    text: 'Idle timeout, closing transmission channel',
  },
  tooManyCommands: {
    code: 421,
    enhanced: '4.7.0',
    text: 'Too many commands in one session, closing transmission channel',
  },
  tooManyErrors: {
    code: 421,
    enhanced: '4.7.0',
    text: 'Too many errors on this connection, closing transmission channel',
  },
  sessionTimeout: {
    code: 421,
    enhanced: '4.4.2',
    text: 'Session time limit exceeded, closing transmission channel',
  },
  tooManyRecipients: { code: 452, enhanced: '4.5.3', text: 'Too many recipients' },
  starttlsFirst: { code: 530, enhanced: '5.7.0', text: 'Must issue a STARTTLS command first' },
  certificateValidation: { code: 454, enhanced: '4.7.5', text: 'Certificate validation failure' },
  unableToRelay: { code: 550, enhanced: '5.7.1', text: 'Unable to relay' },
  // MAIL FROM one of our accepted domains from outside (Exchange's words for anonymous senders).
  cannotSendAsSender: {
    code: 550,
    enhanced: '5.7.1',
    text: 'Client does not have permissions to send as this sender',
  },
  // A domain that does not map to IDNA A-labels (domain-name.ts): RFC 3463 X.1.7 for the sender,
  // X.1.3 for a recipient, as Postfix and Exchange answer.
  badSenderDomain: { code: 501, enhanced: '5.1.7', text: 'Bad sender address syntax' },
  badRecipientDomain: { code: 501, enhanced: '5.1.3', text: 'Bad recipient address syntax' },
  messageTooBig: {
    code: 552,
    enhanced: '5.3.4',
    text: 'Message size exceeds fixed maximum message size',
  },
  headerTooBig: {
    code: 552,
    enhanced: '5.3.4',
    text: 'Header size exceeds fixed maximum size',
  },
  // A message readers after us could split into other lines or fields than we judged
  // (message-reading.ts); the detail says what.
  malformedHeader: { code: 550, enhanced: '5.6.0', text: 'Message header is malformed' },
  storageFull: { code: 452, enhanced: '4.3.1', text: 'Insufficient system storage' },
  localError: { code: 451, enhanced: '4.3.0', text: 'Local error in processing' },
  starttlsRequiredToSend: {
    code: 451,
    enhanced: '4.7.3',
    text: 'STARTTLS is required to send mail',
  },
  noRoute: { code: 451, enhanced: '4.4.0', text: 'No send connector covers the recipient domain' },
  // A domain-secure send connector whose recipient domain is no send-secure partner (route.ts).
  noSecurePartner: {
    code: 451,
    enhanced: '4.7.0',
    text: 'Domain security is required and no partner matches the recipient domain',
  },
  dnsFailure: { code: 451, enhanced: '4.4.0', text: 'DNS query failed' },
  unreachable: { code: 451, enhanced: '4.4.0', text: 'Primary target IP address responded with' },
  // Sending: what a hop or a DNS answer gives when the remote said nothing itself.
  unableToConnect: { code: 421, enhanced: '4.2.1', text: 'Unable to connect' },
  connectionDropped: { code: 421, enhanced: '4.4.2', text: 'Connection dropped' },
  tlsNegotiationFailed: { code: 454, enhanced: '4.7.0', text: 'TLS negotiation failed' },
  nonexistentDomain: { code: 550, enhanced: '5.1.2', text: 'Recipient domain does not exist' },
  nullMx: { code: 556, enhanced: '5.1.10', text: 'Recipient address has null MX' }, // RFC 7505
  badMailbox: { code: 550, enhanced: '5.1.3', text: 'Bad destination mailbox address' },
  messageExpired: {
    code: 550,
    enhanced: '5.4.7',
    text: 'Message expired before it could be delivered',
  },
} as const satisfies Record<string, SmtpReply>;

export function formatReply(reply: SmtpReply, detail?: string): string {
  return `${reply.code} ${reply.enhanced} ${reply.text}${detail === undefined ? '' : `: ${detail}`}`;
}

/** An Error that smtp-server turns into the reply (it reads responseCode). */
export class SmtpReplyError extends Error {
  readonly responseCode: number;
  readonly reply: SmtpReply;
  constructor(reply: SmtpReply, detail?: string) {
    super(`${reply.enhanced} ${reply.text}${detail === undefined ? '' : `: ${detail}`}`);
    this.name = 'SmtpReplyError';
    this.responseCode = reply.code;
    this.reply = reply;
  }
}
