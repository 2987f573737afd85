// The scheduler: takes due queue entries, one next-hop domain at a time (all of a domain's due
// messages go in one batch, so over one SMTP connection), hands them to local or remote delivery
// and settles the outcomes. Kicked on every accept; otherwise one bounded, unref'd timer. A
// suspended domain is never dispatched (an attempt already started finishes); its mail only expires.
import type { Generation } from '../generation.js';
import type { EngineLog } from '../log.js';
import { REPLIES } from '../replies.js';
import { withDetail } from '../../smtp-reply.js';
import { failAll, type DeliveryOutcome, type OutboundMessage } from './outcome.js';
import type { MessageQueue } from './queue.js';
import type { DomainName } from '../../domain-name.js';

/** Delivers one message into local mailboxes. */
export type DeliverLocal = (
  message: OutboundMessage,
  generation: Generation,
) => Promise<DeliveryOutcome>;

/**
 * Delivers a batch for one next-hop domain (one connection where it can); resolves with one
 * outcome per message, in order, and never rejects for a delivery failure. close(), when given,
 * ends the connections it keeps between rounds; generationChanged() those an older generation
 * opened (a new certificate or new anchors must not ride an old verified session).
 */
export interface DeliverRemote {
  (
    domain: DomainName,
    messages: OutboundMessage[],
    generation: Generation,
    signal: AbortSignal,
  ): Promise<DeliveryOutcome[]>;
  close?: () => Promise<void>;
  generationChanged?: (generation: Generation) => void;
}

export interface DispatcherOptions {
  queue: MessageQueue;
  /** The running configuration; undefined before the first apply (nothing is dispatched). */
  generation: () => Generation | undefined;
  deliverLocal: DeliverLocal;
  deliverRemote: DeliverRemote;
  log: EngineLog;
  /** Defaults to the queue's clock. */
  now?: () => number;
  /** Next-hop domains delivered at once (default 8). */
  concurrency?: number;
  /** Local deliveries of one batch under way at once (default 1). */
  localConcurrency?: (generation: Generation) => number;
  /** Messages per domain per round, i.e. per connection (default 100). */
  batchSize?: number;
}

/** The timer re-checks at least this often, so a clock jump or a missed kick costs little. */
const MAX_SLEEP_MS = 60_000;
/**
 * A round reads the whole queue. While deliveries are in flight (their end kicks a round anyway),
 * an accept's round waits this many times the last round's duration, at most ACCEPT_ROUND_MAX_MS:
 * measured with 3,000 queued messages, one round per accept was a fifth of the CPU per message.
 */
const ACCEPT_ROUND_SPACING = 20;
const ACCEPT_ROUND_MAX_MS = 200;
/**
 * While accepts come closer together than this, rounds wait this long, so that a round's batch
 * of deliveries shares the fsyncs of new/ and of the file system's journal.
 */
const GATHER_MS = 20;

export class Dispatcher {
  private readonly inFlight = new Map<DomainName, Promise<void>>();
  private readonly abort = new AbortController();
  private timer: NodeJS.Timeout | undefined;
  private kickPending = false;
  private started = false;
  private closed = false;
  private unsubscribe: (() => void) | undefined;
  private lastGeneration: Generation | undefined;
  private acceptTimer: NodeJS.Timeout | undefined;
  private lastAcceptAt = -Infinity;
  /** How long the last round took (ms). */
  private lastRoundMs = 0;

  constructor(private readonly options: DispatcherOptions) {}

  private get now(): number {
    return (this.options.now ?? this.options.queue.clock)();
  }

  start(): void {
    if (this.started || this.closed) return;
    this.started = true;
    this.unsubscribe = this.options.queue.onQueued(() => this.kickAfterAccept());
    this.kick();
  }

  /** Retries now every idle entry (or those of one next-hop domain); returns how many. */
  retry(domain?: DomainName): number {
    const count = this.options.queue.retryNow(domain);
    this.options.log.log('info', 'queue.retry', { domain: domain ?? null, entries: count });
    this.kick();
    return count;
  }

  /**
   * Runs one dispatch round soon (coalesced); what accept, retry and apply call. The immediate
   * stays ref'd: libuv only polls without blocking for ref'd immediates, so an unref'd one waited
   * for the next unrelated wake-up (seconds, in an idle engine) before the round ran.
   */
  kick(): void {
    if (!this.started || this.closed || this.kickPending) return;
    this.kickPending = true;
    setImmediate(() => {
      this.kickPending = false;
      this.round();
    });
  }

  /** An accept's kick: at once when nothing is in flight, otherwise spaced by the rounds' cost. */
  private kickAfterAccept(): void {
    const now = performance.now();
    const busy = now - this.lastAcceptAt < GATHER_MS;
    this.lastAcceptAt = now;
    this.kickGathered(busy);
  }

  private kickGathered(busy: boolean): void {
    const delay = Math.max(
      busy ? GATHER_MS : 0,
      Math.min(this.lastRoundMs * ACCEPT_ROUND_SPACING, ACCEPT_ROUND_MAX_MS),
    );
    if ((this.inFlight.size === 0 && !busy) || delay < 1) return this.kick();
    if (this.kickPending || this.acceptTimer !== undefined) return;
    this.acceptTimer = setTimeout(() => {
      this.acceptTimer = undefined;
      this.kick();
    }, delay);
    this.acceptTimer.unref();
  }

  /** One round now; resolves when the deliveries it started are settled (tests, shutdown). */
  async dispatchDue(): Promise<void> {
    const started = this.round();
    await Promise.all(started);
  }

  private round(): Promise<void>[] {
    const started = performance.now();
    try {
      return this.roundNow();
    } finally {
      this.lastRoundMs = performance.now() - started;
    }
  }

  private roundNow(): Promise<void>[] {
    if (this.closed) return [];
    const generation = this.options.generation();
    const started: Promise<void>[] = [];
    if (generation !== undefined && generation !== this.lastGeneration) {
      if (this.lastGeneration !== undefined)
        this.options.deliverRemote.generationChanged?.(generation);
      this.lastGeneration = generation;
    }
    if (generation !== undefined) {
      const concurrency = this.options.concurrency ?? 8;
      const batchSize = this.options.batchSize ?? 100;
      const byDomain = new Map<DomainName, string[]>();
      // Domains in flight are filtered before the sort: an accept kicks a round, and while the
      // domain it queued for is being delivered that round must cost next to nothing.
      const idle = (domain: DomainName) => this.dispatchable(domain);
      for (const { id, nextHopDomain } of this.options.queue.due(this.now, idle)) {
        const ids = byDomain.get(nextHopDomain) ?? [];
        if (ids.length < batchSize) ids.push(id);
        byDomain.set(nextHopDomain, ids);
      }
      for (const [domain, ids] of byDomain) {
        if (this.inFlight.size >= concurrency) break;
        const work = this.dispatch(domain, ids, generation).finally(() => {
          this.inFlight.delete(domain);
          // Messages may have arrived for this domain meanwhile, or a slot freed up for another.
          this.kickGathered(performance.now() - this.lastAcceptAt < GATHER_MS);
        });
        this.inFlight.set(domain, work);
        started.push(work);
      }
      started.push(this.expireSuspended(generation));
    }
    this.arm(generation);
    return started;
  }

  /** Not in flight and not suspended: a round may start a delivery for it. */
  private dispatchable(domain: DomainName): boolean {
    return !this.inFlight.has(domain) && !this.options.queue.isSuspended(domain);
  }

  /** Suspended mail still expires (Exchange does the same); the timer wakes for it too. */
  private async expireSuspended(generation: Generation): Promise<void> {
    try {
      await this.options.queue.expireSuspended(generation);
    } catch (error) {
      this.options.log.log('error', 'queue.expire-failed', { error: (error as Error).message });
    }
  }

  private async dispatch(domain: DomainName, ids: string[], generation: Generation): Promise<void> {
    const { queue, log } = this.options;
    const messages = queue.claim(ids);
    if (messages.length === 0) return;
    if (generation.acceptedDomains.has(domain)) {
      await this.deliverLocally(messages, generation);
      return;
    }
    let outcomes: DeliveryOutcome[];
    try {
      outcomes = await this.options.deliverRemote(domain, messages, generation, this.abort.signal);
    } catch (error) {
      // A bug or a local fault, not the remote's answer: keep everything queued, say why.
      log.log('error', 'dispatch.failed', { domain, error: (error as Error).message });
      outcomes = messages.map((m) =>
        failAll(m, withDetail(REPLIES.localError, (error as Error).message), false),
      );
    }
    // Settled together: each entry's files are its own, and their directory fsyncs are shared.
    await Promise.all(
      messages.map((message, index) =>
        this.settle(
          message,
          outcomes[index] ?? failAll(message, REPLIES.localError, false),
          generation,
        ),
      ),
    );
  }

  /**
   * localConcurrency copies at a time, each settled as soon as it is in its mailbox: a crash
   * delivers again at most the messages in hand, not the batch. Several at once share the fsyncs
   * of new/ and the journal's writes; one at a time, a mailbox took about 1.4 ms per message.
   */
  private async deliverLocally(messages: OutboundMessage[], generation: Generation): Promise<void> {
    const settling: Promise<void>[] = [];
    let next = 0;
    const worker = async () => {
      while (next < messages.length) {
        const message = messages[next] as OutboundMessage;
        next += 1;
        let outcome: DeliveryOutcome;
        try {
          outcome = await this.options.deliverLocal(message, generation);
        } catch (error) {
          // A local fault, not the mailbox's answer: this message stays queued, the others go on.
          const reason = (error as Error).message;
          this.options.log.log('error', 'dispatch.failed', { id: message.id, error: reason });
          outcome = failAll(message, withDetail(REPLIES.localError, reason), false);
        }
        settling.push(this.settle(message, outcome, generation));
      }
    };
    const concurrency = this.options.localConcurrency?.(generation) ?? 1;
    const workers = Math.max(1, Math.min(concurrency, messages.length));
    await Promise.all(Array.from({ length: workers }, worker));
    await Promise.all(settling);
  }

  private async settle(
    message: OutboundMessage,
    outcome: DeliveryOutcome,
    generation: Generation,
  ): Promise<void> {
    try {
      await this.options.queue.settle(message.id, outcome, generation);
    } catch (error) {
      this.options.queue.release(message.id);
      this.options.log.log('error', 'queue.settle-failed', {
        id: message.id,
        error: (error as Error).message,
      });
    }
  }

  /**
   * Sleeps until the earliest idle entry of a domain not in flight is due, at most MAX_SLEEP_MS;
   * never keeps the process up. Entries already due wait for a free slot: the end of a domain's
   * dispatch kicks the next round, so no timer spins meanwhile.
   */
  private arm(generation: Generation | undefined): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.closed) return;
    let delay = MAX_SLEEP_MS; // without a configuration, apply kicks; the timer is a safety net
    if (generation !== undefined) {
      const { queue } = this.options;
      const due = queue.nextDueAt((domain) => this.dispatchable(domain));
      let expiry = queue.nextSuspendedExpiryAt(generation.expireAfter);
      // Past already: its expiry failed to settle (logged); try again later, never in a loop.
      if (expiry !== undefined && expiry <= this.now) expiry = this.now + MAX_SLEEP_MS;
      const next =
        due === undefined || expiry === undefined ? (due ?? expiry) : Math.min(due, expiry);
      if (next === undefined) return;
      delay = Math.min(next - this.now, MAX_SLEEP_MS);
      if (delay <= 0) return;
    }
    this.timer = setTimeout(() => this.round(), delay);
    this.timer.unref();
  }

  /**
   * Stops scheduling, ends the connections kept between rounds (QUIT), aborts those in flight and
   * waits until their outcomes are settled.
   */
  async close(): Promise<void> {
    this.closed = true;
    this.unsubscribe?.();
    if (this.timer !== undefined) clearTimeout(this.timer);
    if (this.acceptTimer !== undefined) clearTimeout(this.acceptTimer);
    const idle = this.options.deliverRemote.close?.();
    this.abort.abort();
    await Promise.allSettled([...this.inFlight.values(), idle]);
  }
}
