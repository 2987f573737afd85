// Settlement as a pure decision (settle.ts), over generated records, outcomes, policies and times:
// every recipient ends in exactly one state, never both delivered and bounced; expiry bounces
// exactly the unresolved ones; permanent replies never retry; the delay notice goes at most once;
// a retry is never due past the expiry. Chains of attempts settle each recipient once.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { requireDomainName } from '../../src/domain-name.js';
import type { DeliveryOutcome, RecipientFailure } from '../../src/engine/queue/outcome.js';
import type { ControlRecord } from '../../src/engine/queue/record.js';
import {
  DELAY_NOTICE_AFTER_MS,
  expiresAt,
  reportlessBecause,
  settle,
  suspendedOutcome,
  type SettlePolicy,
} from '../../src/engine/queue/settle.js';
import type { SmtpReply } from '../../src/smtp-reply.js';

const T0 = Date.parse('2026-11-02T10:00:00Z');
const HOUR = 3_600_000;

const TEMPORARY: SmtpReply = { code: 451, enhanced: '4.4.1', text: 'Try later' };
const PERMANENT: SmtpReply = { code: 550, enhanced: '5.1.1', text: 'No such user' };

type Fate = 'delivered' | 'permanent' | 'temporary' | 'missing' | 'delivered-and-failed';

function record(
  recipients: string[],
  attempts: number,
  delayNotifiedAt: string | null,
): ControlRecord {
  return {
    version: 1,
    id: 'M1.1',
    message: 'M1',
    nextHopDomain: requireDomainName('fabrikam.com'),
    from: 'alice@adatum.com',
    recipients,
    size: 10,
    receivedAt: new Date(T0).toISOString(),
    connector: 'from-partners',
    remoteAddress: '127.0.0.1',
    domainSecured: null,
    attempts,
    lastError: null,
    lastAttemptAt: null,
    nextAttemptAt: new Date(T0).toISOString(),
    delayNotifiedAt,
  };
}

/** The outcome the fates describe, plus hostile extras: recipients the record does not have. */
function outcomeOf(recipients: string[], fates: Fate[], strangers: string[]): DeliveryOutcome {
  const delivered: string[] = [...strangers];
  const failures: RecipientFailure[] = strangers.map((recipient) => ({
    recipient,
    reply: PERMANENT,
    permanent: true,
  }));
  recipients.forEach((recipient, i) => {
    const fate = fates[i] ?? 'missing';
    if (fate === 'delivered' || fate === 'delivered-and-failed') delivered.push(recipient);
    if (fate === 'permanent' || fate === 'delivered-and-failed')
      failures.push({ recipient, reply: PERMANENT, permanent: true });
    if (fate === 'temporary') failures.push({ recipient, reply: TEMPORARY, permanent: false });
  });
  return { delivered, failures };
}

const fateArb = fc.constantFrom<Fate>(
  'delivered',
  'permanent',
  'temporary',
  'missing',
  'delivered-and-failed',
);
const recipientsArb = fc
  .uniqueArray(fc.integer({ min: 0, max: 50 }), { minLength: 1, maxLength: 6 })
  .map((ns) => ns.map((n) => `user${n}@fabrikam.com`));
const policyArb: fc.Arbitrary<SettlePolicy> = fc.record(
  {
    hostname: fc.constant('mail.treyresearch.net'),
    retrySchedule: fc.array(fc.integer({ min: 1, max: 10 * HOUR }), { maxLength: 5 }),
    expireAfter: fc.integer({ min: 1, max: 100 * HOUR }),
    delayNoticeAfter: fc.integer({ min: 0, max: 100 * HOUR }),
  },
  { requiredKeys: ['hostname', 'retrySchedule', 'expireAfter'] },
);
const caseArb = fc
  .record({
    recipients: recipientsArb,
    attempts: fc.nat({ max: 20 }),
    notified: fc.boolean(),
    policy: policyArb,
    elapsed: fc.integer({ min: 0, max: 200 * HOUR }),
    strangers: fc.array(fc.constantFrom('eve@fabrikam.com', 'mallory@contoso.com'), {
      maxLength: 2,
    }),
  })
  .chain((c) =>
    fc
      .array(fateArb, { minLength: c.recipients.length, maxLength: c.recipients.length })
      .map((fates) => ({ ...c, fates })),
  );

type Case = typeof caseArb extends fc.Arbitrary<infer T> ? T : never;

function decide(c: Case) {
  const now = T0 + c.elapsed;
  const notifiedAt = c.notified ? new Date(T0 + 1).toISOString() : null;
  const before = record(c.recipients, c.attempts, notifiedAt);
  const outcome = outcomeOf(c.recipients, c.fates, c.strangers);
  return { before, now, decision: settle(before, outcome, c.policy, now) };
}

describe('settle', () => {
  it('puts every recipient of the record in exactly one state, and no other address in any', () => {
    fc.assert(
      fc.property(caseArb, (c) => {
        const { decision } = decide(c);
        const kept = decision.next.state === 'deferred' ? decision.next.record.recipients : [];
        const all = [...decision.delivered, ...decision.bounced.map((b) => b.recipient), ...kept];
        assert.deepEqual([...all].sort(), [...c.recipients].sort());
        assert.equal(new Set(all).size, all.length, 'a recipient in two states');
      }),
      { numRuns: 2_000 },
    );
  });

  it('never bounces a recipient the attempt delivered, even one also reported failed', () => {
    fc.assert(
      fc.property(caseArb, (c) => {
        const { decision } = decide(c);
        const delivered = c.recipients.filter((_, i) =>
          ['delivered', 'delivered-and-failed'].includes(c.fates[i] ?? ''),
        );
        assert.deepEqual(decision.delivered, delivered);
        const bounced = new Set(decision.bounced.map((b) => b.recipient));
        for (const recipient of delivered) assert.ok(!bounced.has(recipient));
      }),
      { numRuns: 2_000 },
    );
  });

  it('never retries a permanent reply: it bounces with that reply', () => {
    fc.assert(
      fc.property(caseArb, (c) => {
        const { decision } = decide(c);
        const kept = decision.next.state === 'deferred' ? decision.next.record.recipients : [];
        c.recipients.forEach((recipient, i) => {
          if (c.fates[i] !== 'permanent') return;
          assert.ok(!kept.includes(recipient));
          const bounce = decision.bounced.find((b) => b.recipient === recipient);
          assert.deepEqual(bounce?.reply, PERMANENT);
        });
      }),
      { numRuns: 2_000 },
    );
  });

  it('at the expiry bounces exactly the unresolved recipients (5.4.7, with the last error); before it, only permanent ones', () => {
    fc.assert(
      fc.property(caseArb, (c) => {
        const { before, now, decision } = decide(c);
        const unresolved = c.recipients.filter((_, i) =>
          ['temporary', 'missing'].includes(c.fates[i] ?? ''),
        );
        const permanent = c.recipients.filter((_, i) => c.fates[i] === 'permanent');
        const expired = decision.bounced.filter((b) => b.reply.enhanced === '5.4.7');
        if (now >= expiresAt(before, c.policy)) {
          assert.equal(decision.next.state, 'done');
          assert.deepEqual(
            expired.map((b) => b.recipient),
            unresolved,
          );
          for (const b of expired) assert.match(b.reply.text, /Last error: /);
          assert.equal(decision.notice, undefined);
        } else {
          assert.deepEqual(expired, []);
          assert.equal(decision.next.state === 'deferred', unresolved.length > 0);
        }
        assert.deepEqual(
          decision.bounced.filter((b) => b.reply.enhanced !== '5.4.7').map((b) => b.recipient),
          permanent,
        );
      }),
      { numRuns: 2_000 },
    );
  });

  it('reschedules from the schedule, never past the expiry, counting the attempt and keeping the rest of the record', () => {
    fc.assert(
      fc.property(caseArb, (c) => {
        const { before, now, decision } = decide(c);
        if (decision.next.state !== 'deferred') return;
        const { record: after, dueAt } = decision.next;
        const schedule = c.policy.retrySchedule;
        const delay = schedule[Math.min(c.attempts, schedule.length - 1)] ?? 5 * 60_000;
        assert.equal(dueAt, Math.min(now + delay, expiresAt(before, c.policy)));
        assert.ok(dueAt > now && dueAt <= expiresAt(before, c.policy));
        assert.equal(after.nextAttemptAt, new Date(dueAt).toISOString());
        assert.equal(after.attempts, c.attempts + 1);
        assert.equal(after.lastAttemptAt, new Date(now).toISOString());
        assert.equal(after.lastError, decision.lastError);
        assert.ok(after.lastError !== null);
        // Nothing else of the record changes.
        assert.deepEqual(after, {
          ...before,
          recipients: after.recipients,
          attempts: after.attempts,
          lastError: after.lastError,
          lastAttemptAt: after.lastAttemptAt,
          nextAttemptAt: after.nextAttemptAt,
          delayNotifiedAt: after.delayNotifiedAt,
        });
      }),
      { numRuns: 1_000 },
    );
  });

  it('sends a delay notice only past its threshold, only when none went, for exactly the recipients kept', () => {
    fc.assert(
      fc.property(caseArb, (c) => {
        const { before, now, decision } = decide(c);
        const threshold = T0 + (c.policy.delayNoticeAfter ?? DELAY_NOTICE_AFTER_MS);
        const due = !c.notified && now >= threshold && decision.next.state === 'deferred';
        assert.equal(decision.notice !== undefined, due);
        if (decision.next.state !== 'deferred') return;
        const after = decision.next.record;
        if (decision.notice === undefined) {
          assert.equal(after.delayNotifiedAt, before.delayNotifiedAt);
          return;
        }
        assert.equal(after.delayNotifiedAt, new Date(now).toISOString());
        assert.deepEqual(
          decision.notice.recipients.map((r) => r.recipient),
          after.recipients,
        );
        assert.equal(decision.notice.willRetryUntil.getTime(), expiresAt(before, c.policy));
      }),
      { numRuns: 2_000 },
    );
  });

  it('over a chain of attempts settles each recipient once, with at most one delay notice, and ends by the expiry', () => {
    const attemptArb = fc.record({
      fates: fc.array(fateArb, { minLength: 6, maxLength: 6 }),
      wait: fc.integer({ min: 0, max: 30 * HOUR }),
    });
    fc.assert(
      fc.property(
        recipientsArb,
        policyArb,
        fc.array(attemptArb, { minLength: 1, maxLength: 12 }),
        (recipients, policy, attempts) => {
          let current = record(recipients, 0, null);
          let now = T0;
          const settled: string[] = [];
          let notices = 0;
          for (const attempt of attempts) {
            const outcome = outcomeOf(current.recipients, attempt.fates, []);
            const decision = settle(current, outcome, policy, now);
            settled.push(...decision.delivered, ...decision.bounced.map((b) => b.recipient));
            if (decision.notice !== undefined) notices += 1;
            if (decision.next.state === 'done') {
              current = { ...current, recipients: [] };
              break;
            }
            current = decision.next.record;
            now = Math.max(now + attempt.wait, decision.next.dueAt);
          }
          assert.ok(notices <= 1, `${notices} delay notices`);
          assert.equal(new Set(settled).size, settled.length, 'a recipient settled twice');
          assert.deepEqual([...settled, ...current.recipients].sort(), [...recipients].sort());
          // Once the expiry has passed the next attempt ends the entry.
          if (current.recipients.length > 0 && now >= expiresAt(current, policy)) {
            const last = settle(current, { delivered: [], failures: [] }, policy, now);
            assert.equal(last.next.state, 'done');
          }
        },
      ),
      { numRuns: 500 },
    );
  });

  it('expires an entry of a suspended domain with its last error, or the suspension when never tried', () => {
    const fresh = record(['bob@fabrikam.com', 'carol@fabrikam.com'], 0, null);
    const policy: SettlePolicy = { hostname: 'h', retrySchedule: [HOUR], expireAfter: HOUR };
    const never = settle(fresh, suspendedOutcome(fresh), policy, T0 + HOUR);
    assert.equal(never.next.state, 'done');
    assert.deepEqual(
      never.bounced.map((b) => [b.recipient, b.reply.code, b.reply.enhanced]),
      [
        ['bob@fabrikam.com', 550, '5.4.7'],
        ['carol@fabrikam.com', 550, '5.4.7'],
      ],
    );
    assert.match(never.bounced[0]?.reply.text ?? '', /queue for fabrikam\.com is suspended/);
    const tried = { ...fresh, lastError: '451 4.4.1 Try later' };
    const last = settle(tried, suspendedOutcome(tried), policy, T0 + HOUR);
    assert.match(last.bounced[0]?.reply.text ?? '', /Last error: 451 4\.4\.1 Try later$/);
  });

  it('sends no report to the null sender nor to a sender without a domain, and one to any other', () => {
    assert.equal(reportlessBecause(''), 'null sender');
    for (const from of ['alice', '@adatum.com', 'alice@']) {
      assert.equal(reportlessBecause(from), 'sender has no domain', from);
    }
    fc.assert(
      fc.property(fc.string({ minLength: 1 }), fc.string({ minLength: 1 }), (local, domain) => {
        const from = `${local}@${domain.replaceAll('@', '')}`;
        assert.equal(
          reportlessBecause(from),
          domain.replaceAll('@', '') === '' ? 'sender has no domain' : undefined,
        );
      }),
      { numRuns: 1_000 },
    );
  });
});
