// A queue entry's control record: its schema (one version, written as JSON in control/<id>.json
// and in the journal's accept records), the check every record passes when it is read back (a record
// that fails is quarantined by the store, never guessed at nor delivered), and the ids of messages
// and entries. No I/O.
import { randomBytes } from 'node:crypto';
import type { DomainSecuredBy } from '../message-sink.js';
import { domainName, type DomainName } from '../../domain-name.js';

/** One queue entry: a message's envelope for one next-hop domain. The file is the commit point. */
export interface ControlRecord {
  version: 1;
  id: string; // "<message>.<n>", also the file name
  message: string; // the body is data/<message>.eml
  nextHopDomain: DomainName;
  from: string; // "" for the null sender
  recipients: string[]; // still to deliver
  size: number;
  receivedAt: string; // ISO
  connector: string;
  remoteAddress: string;
  domainSecured: DomainSecuredBy | null;
  attempts: number;
  lastError: string | null;
  lastAttemptAt: string | null;
  nextAttemptAt: string; // ISO
  /** When the delay notice went to the sender; absent or null: not yet. */
  delayNotifiedAt?: string | null;
}

const ENTRY_ID = /^[0-9A-Z]+\.\d+$/;

/**
 * Postfix-like long queue ids: time, then a sequence within the millisecond (so ids sort by arrival
 * even when several arrive in one, or the clock steps back), then randomness. One per queue: the
 * sequence is its state, not the process's.
 */
export class MessageIds {
  private lastTime = 0;
  private sequence = 0;

  next(now: number): string {
    if (now > this.lastTime) {
      this.lastTime = now;
      this.sequence = 0;
    } else {
      this.sequence += 1;
    }
    const sequence = this.sequence.toString(36).padStart(3, '0');
    return `${this.lastTime.toString(36)}${sequence}${randomBytes(5).toString('hex')}`.toUpperCase();
  }
}

/** The id of a message's n-th entry (from 1): also its control file's name. */
export function entryId(message: string, n: number): string {
  return `${message}.${n}`;
}

/** The message an entry id names ("<message>.<n>"); undefined when it is no entry id. */
export function messageOfEntry(id: string): string | undefined {
  return ENTRY_ID.test(id) ? id.slice(0, id.lastIndexOf('.')) : undefined;
}

/** Checks the shape field by field: a record we cannot trust is quarantined, not guessed at. */
export function parseControlRecord(text: string, expectedId: string): ControlRecord | string {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    return `not JSON: ${(error as Error).message}`;
  }
  return checkControlRecord(value, expectedId);
}

/** The same checks on a value already parsed (the journal's records). */
export function checkControlRecord(value: unknown, expectedId: string): ControlRecord | string {
  if (typeof value !== 'object' || value === null) return 'not an object';
  const record = value as Record<string, unknown>;
  const strings = [
    'id',
    'message',
    'nextHopDomain',
    'from',
    'receivedAt',
    'connector',
    'remoteAddress',
    'nextAttemptAt',
  ];
  for (const field of strings) {
    if (typeof record[field] !== 'string') return `${field} is not a string`;
  }
  if (record.version !== 1) return `unknown version ${String(record.version)}`;
  // Records of engines that keyed queues on a lower-cased spelling come back canonical.
  const domain = domainName(record.nextHopDomain as string);
  if (domain === undefined) return 'nextHopDomain is not a domain name';
  record.nextHopDomain = domain;
  if (record.id !== expectedId || !ENTRY_ID.test(expectedId))
    return 'id does not match the file name';
  if (!(record.id as string).startsWith(`${record.message as string}.`))
    return 'id does not name its message';
  const recipients = record.recipients;
  if (
    !Array.isArray(recipients) ||
    recipients.length === 0 ||
    !recipients.every((r) => typeof r === 'string')
  ) {
    return 'recipients is not a non-empty list of addresses';
  }
  if (!Number.isSafeInteger(record.attempts) || (record.attempts as number) < 0)
    return 'attempts is not a count';
  if (!Number.isSafeInteger(record.size) || (record.size as number) < 0)
    return 'size is not a byte count';
  for (const field of ['receivedAt', 'nextAttemptAt']) {
    if (Number.isNaN(Date.parse(record[field] as string))) return `${field} is not a time`;
  }
  for (const field of ['lastError', 'lastAttemptAt', 'delayNotifiedAt']) {
    if (field === 'delayNotifiedAt' && record[field] === undefined) continue; // older records
    if (record[field] !== null && typeof record[field] !== 'string')
      return `${field} is not a string or null`;
  }
  const secured = record.domainSecured;
  if (
    secured !== null &&
    (typeof secured !== 'object' ||
      typeof (secured as Record<string, unknown>).partner !== 'string')
  ) {
    return 'domainSecured is malformed';
  }
  return record as unknown as ControlRecord;
}
