// Settlement, as one pure decision: what an attempt's outcome does to a queue entry's record under
// the running policy at a given time. Per recipient of the record: delivered, bounced (a permanent
// reply now, or still unresolved once expireAfter has passed since the message arrived) or kept
// for a retry; the retry time from the schedule (never past the expiry); a delay notice for the
// kept ones once, after delayNoticeAfter. No I/O and no clock: queue.ts writes the reports and the
// record the decision names, in the order its comments give.
import { REPLIES } from '../replies.js';
import { smtpReplyText, storedReply, withDetail, type SmtpReply } from '../../smtp-reply.js';
import type { BouncedRecipient } from './dsn.js';
import type { DeliveryOutcome } from './outcome.js';
import type { ControlRecord } from './record.js';

/** What settling an attempt needs from the running configuration (a Generation has all three). */
export interface SettlePolicy {
  hostname: string;
  retrySchedule: readonly number[]; // ms
  expireAfter: number; // ms
  /**
   * A delay notice after this long in the queue (ms): the Organization's queue.delayNotice, which a
   * Generation carries; 4 hours (the Organization's default) for a caller that gives none.
   */
  delayNoticeAfter?: number;
}

export const DELAY_NOTICE_AFTER_MS = 4 * 3_600_000;

/** Used when a configuration gives no schedule at all: better slow than a tight loop. */
export const FALLBACK_RETRY_MS = 5 * 60_000;

export interface Settlement {
  /** The record's recipients this attempt delivered, in the record's order. */
  delivered: string[];
  /** A non-delivery report for these (permanent replies, then the expired ones); empty: none. */
  bounced: BouncedRecipient[];
  /** A delay notice for the recipients kept, the message retried until willRetryUntil. */
  notice?: { recipients: BouncedRecipient[]; willRetryUntil: Date };
  /** The reply the record keeps as its last error (text), null when nothing failed. */
  lastError: string | null;
  /** done: nothing left, the entry goes; deferred: the record to write and when it is next due. */
  next: { state: 'done' } | { state: 'deferred'; record: ControlRecord; dueAt: number };
}

/** When a record's message expires (ms): expireAfter after it arrived. */
export function expiresAt(record: ControlRecord, policy: SettlePolicy): number {
  return Date.parse(record.receivedAt) + policy.expireAfter;
}

/**
 * The decision for one attempt. A recipient the outcome both delivered and failed counts as
 * delivered (the remote took it); one it does not name at all stays queued with a local error.
 */
export function settle(
  record: ControlRecord,
  outcome: DeliveryOutcome,
  policy: SettlePolicy,
  now: number,
): Settlement {
  const delivered = new Set(outcome.delivered);
  const failures = new Map(outcome.failures.map((f) => [f.recipient, f]));
  const done: string[] = [];
  const bounced: BouncedRecipient[] = [];
  let remaining: string[] = [];
  let lastReply: SmtpReply | undefined;
  for (const recipient of record.recipients) {
    if (delivered.has(recipient)) {
      done.push(recipient);
      continue;
    }
    const failure = failures.get(recipient);
    if (failure?.permanent === true) {
      bounced.push({ recipient, reply: failure.reply });
      continue;
    }
    lastReply ??= failure?.reply ?? withDetail(REPLIES.localError, 'no result for this recipient');
    remaining.push(recipient);
  }
  lastReply ??= bounced[0]?.reply;
  // The record keeps the last error as text: what `queue` shows, and earlier versions read.
  const lastError = lastReply === undefined ? null : smtpReplyText(lastReply);

  const expiry = expiresAt(record, policy);
  if (remaining.length > 0 && now >= expiry) {
    const expired = REPLIES.messageExpired;
    const reply = { ...expired, text: `${expired.text}. Last error: ${lastError ?? 'none'}` };
    for (const recipient of remaining) bounced.push({ recipient, reply });
    remaining = [];
  }
  if (remaining.length === 0)
    return { delivered: done, bounced, lastError, next: { state: 'done' } };

  const schedule = policy.retrySchedule;
  const delay = schedule[Math.min(record.attempts, schedule.length - 1)] ?? FALLBACK_RETRY_MS;
  const dueAt = Math.min(now + delay, expiry);
  let delayNotifiedAt = record.delayNotifiedAt ?? null;
  let notice: Settlement['notice'];
  const noticeAt =
    Date.parse(record.receivedAt) + (policy.delayNoticeAfter ?? DELAY_NOTICE_AFTER_MS);
  if (delayNotifiedAt === null && now >= noticeAt) {
    const reply = lastReply ?? REPLIES.localError;
    notice = {
      recipients: remaining.map((recipient) => ({ recipient, reply })),
      willRetryUntil: new Date(expiry),
    };
    delayNotifiedAt = new Date(now).toISOString();
  }
  const updated: ControlRecord = {
    ...record,
    delayNotifiedAt,
    recipients: remaining,
    attempts: record.attempts + 1,
    lastError,
    lastAttemptAt: new Date(now).toISOString(),
    nextAttemptAt: new Date(dueAt).toISOString(),
  };
  return {
    delivered: done,
    bounced,
    ...(notice === undefined ? {} : { notice }),
    lastError,
    next: { state: 'deferred', record: updated, dueAt },
  };
}

/** An idle entry of a suspended next-hop domain whose message has expired: it is settled as one. */
export function expiredWhileSuspended(
  record: ControlRecord,
  policy: SettlePolicy,
  now: number,
): boolean {
  return expiresAt(record, policy) <= now;
}

/**
 * The outcome an expired entry of a suspended domain is settled with: every recipient failed
 * temporarily with its last error (or the suspension when it was never tried), so settle() expires
 * them all.
 */
export function suspendedOutcome(record: ControlRecord): DeliveryOutcome {
  // The last error is stored as text (what earlier versions wrote too): read back here.
  const { lastError, nextHopDomain } = record;
  const reply =
    lastError === null
      ? withDetail(REPLIES.localError, `the queue for ${nextHopDomain} is suspended`)
      : storedReply(lastError, REPLIES.localError);
  return {
    delivered: [],
    failures: record.recipients.map((recipient) => ({ recipient, reply, permanent: false })),
  };
}

/**
 * Why no report (non-delivery or delay) can go to a record's sender; undefined: one goes. RFC 3464
 * §2: a report about a report (the null sender) would loop; Postfix and Exchange drop it too.
 */
export function reportlessBecause(
  from: string,
): 'null sender' | 'sender has no domain' | undefined {
  if (from === '') return 'null sender';
  const at = from.lastIndexOf('@');
  if (at <= 0 || at === from.length - 1) return 'sender has no domain';
  return undefined;
}
