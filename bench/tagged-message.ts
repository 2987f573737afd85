// The bench's 4 KB message, tagged with an id in its Subject so that its delivered file can be told
// apart, and the clock that the clients (the 250) and the delivery watch (new/) both read.

const HEAD = 'From: alice@adatum.com\r\nTo: bob@treyresearch.net\r\nSubject: bench ';
const BODY = (() => {
  const line = `${'x'.repeat(76)}\r\n`;
  // 24: the id and the blank line, so that the whole stays about 4 KB.
  return line.repeat(Math.ceil((4096 - HEAD.length - 24) / line.length));
})();

/** A 4 KB message whose Subject carries `id` (lower-case letters, digits, "-"). */
export function taggedMessage(id: string): string {
  return `${HEAD}${id}\r\n\r\n${BODY}`;
}

const SUBJECT = Buffer.from('\nSubject: bench ', 'latin1');

/** The id in the first bytes of a delivered file, as taggedMessage wrote it (no string made of the rest). */
export function messageTag(head: Buffer): string | undefined {
  const start = head.indexOf(SUBJECT);
  if (start < 0) return undefined;
  let end = start + SUBJECT.length;
  // Up to the line's end: CR LF as sent, or LF alone as a Maildir file may store it.
  while (end < head.length && head[end] !== 0x0d && head[end] !== 0x0a) end += 1;
  return end < head.length ? head.toString('latin1', start + SUBJECT.length, end) : undefined;
}

let tags = 0;
const PREFIX = process.pid.toString(36);

/** An id no other message of this run carries (the process id tells generators apart). */
export function nextTag(): string {
  tags += 1;
  return `${PREFIX}-${tags.toString(36)}`;
}

/**
 * Milliseconds on CLOCK_MONOTONIC (process.hrtime on Linux): one clock for every process of the
 * machine, unlike performance.now(), whose origin is each process's start.
 */
export function monotonicMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}
