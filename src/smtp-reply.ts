// An SMTP reply as a value: its basic code, its RFC 3463 enhanced status when it carries one, and
// its text. A remote's reply is parsed once, where it arrives (the send side); outcomes, hop
// failures and bounces carry the value, and it becomes a line of text only where a person reads
// it: the log, the queue's last error, the delivery status notification, the CLI.

export interface SmtpReply {
  /** 200-599. */
  readonly code: number;
  /** "5.1.1" (RFC 3463): present only when its class is the code's first digit ("550 4.1.1" has none). */
  readonly enhanced?: string;
  /** What follows the codes, continuation lines joined by single spaces; may be "". */
  readonly text: string;
}

const FIRST_LINE = /^([2-5]\d\d)(?:[ -](.*))?$/s;
const ENHANCED = /^([245])\.(\d{1,3})\.(\d{1,3})(?= |$)/;
const CONTINUATION_CODE = /^\d{3}(?:[ -]|$)/;
/** What a reply may hold before it is cut: a hostile server's answer is not the log's size. */
const MAX_TEXT = 2_000;

/**
 * The reply in a server's answer ("250-first\r\n250 last" or one line), or undefined when it does
 * not start with a reply code 200-599. Continuation lines lose their code and a repeated enhanced
 * status; white space (CR, LF, tabs) folds to single spaces; the text is bounded.
 */
export function parseSmtpReply(raw: string): SmtpReply | undefined {
  const lines = raw.trim().split(/\r?\n/);
  const first = FIRST_LINE.exec(lines[0] ?? '');
  if (first === null) return undefined;
  const code = Number(first[1]);
  let rest = fold(first[2] ?? '');
  const status = ENHANCED.exec(rest);
  const enhanced = status !== null && status[1] === first[1]?.charAt(0) ? status[0] : undefined;
  if (enhanced !== undefined) rest = rest.slice(enhanced.length).trimStart();
  const parts = [rest];
  for (const line of lines.slice(1)) {
    let text = fold(line.replace(CONTINUATION_CODE, ''));
    if (enhanced !== undefined && (text === enhanced || text.startsWith(`${enhanced} `))) {
      text = text.slice(enhanced.length);
    }
    parts.push(text.trim());
  }
  const text = parts
    .filter((part) => part !== '')
    .join(' ')
    .slice(0, MAX_TEXT);
  return enhanced === undefined ? { code, text } : { code, enhanced, text };
}

function fold(text: string): string {
  return text.replace(/\s+/g, ' ').trim();
}

/**
 * The reply on one line, as the log, the queue and the DSN quote it: "550 5.1.1 User unknown".
 * Line breaks in a detail of ours (an error's message) fold to spaces: never a second line.
 */
export function smtpReplyText(reply: SmtpReply): string {
  const parts = [String(reply.code), reply.enhanced ?? '', fold(reply.text)];
  return parts.filter((part) => part !== '').join(' ');
}

/** 5xx: the recipient bounces now (RFC 5321 §4.2.1); 4xx and anything else may be retried. */
export function isPermanent(reply: SmtpReply): boolean {
  return reply.code >= 500 && reply.code <= 599;
}

/** The RFC 3463 status a DSN gives for the reply: its enhanced status, or its class's x.0.0. */
export function deliveryStatus(reply: SmtpReply): string {
  if (reply.enhanced !== undefined) return reply.enhanced;
  const kind = Math.floor(reply.code / 100);
  return kind === 2 || kind === 4 || kind === 5 ? `${kind}.0.0` : '5.0.0';
}

/** One of our own replies (replies.ts) with what this case adds: "451 4.4.0 DNS query failed: x". */
export function withDetail(reply: SmtpReply, detail?: string): SmtpReply {
  const text = detail === undefined ? reply.text : `${reply.text}: ${detail}`;
  return reply.enhanced === undefined
    ? { code: reply.code, text }
    : { code: reply.code, enhanced: reply.enhanced, text };
}

/**
 * A reply read back from text stored by an earlier version (a queue entry's last error), or, when
 * the text holds none, `fallback` with the text as its detail.
 */
export function storedReply(text: string, fallback: SmtpReply): SmtpReply {
  return parseSmtpReply(text) ?? withDetail(fallback, fold(text).slice(0, MAX_TEXT));
}
