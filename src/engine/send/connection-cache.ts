// Idle SMTP client sessions kept for the next round to the same next hop or relay,
// as Postfix's connection cache does (smtp_connection_cache_time_limit, 2 s): per hop and TLS
// policy, closed when idle too long, when the generation changes, and on close().
import type { Generation } from '../generation.js';
import { SmtpClientSession, type SessionSettings } from './session.js';

/** Postfix's default for smtp_connection_cache_time_limit. */
export const DEFAULT_CONNECTION_CACHE_MS = 2_000;

export interface ConnectionCacheLimits {
  /** Idle sessions kept per key (default 1): the one just used replaces the oldest. */
  perKey?: number;
  /** Idle sessions kept in all (default: no limit beyond perKey); a session past it is closed. */
  total?: number;
}

interface IdleSession {
  session: SmtpClientSession;
  /** A session verified under one generation never serves another (new anchors, new certificate). */
  generation: Generation;
  timer: NodeJS.Timeout;
}

export class ConnectionCache {
  /** Per key, oldest first. */
  private readonly idle = new Map<string, IdleSession[]>();
  private readonly closing = new Set<Promise<void>>();
  private closed = false;
  private readonly perKey: number;
  private readonly total: number;

  /** idleMs: how long an unused session is kept; 0 or less keeps none. */
  constructor(
    private readonly idleMs: number,
    limits: ConnectionCacheLimits = {},
  ) {
    this.perKey = Math.max(1, limits.perKey ?? 1);
    this.total = limits.total ?? Number.POSITIVE_INFINITY;
  }

  /** The key of what a session was opened and verified for: the hop, its name, the policy, the protocol. */
  static key(settings: Pick<SessionSettings, 'hop' | 'policy' | 'connector' | 'lmtp'>): string {
    const { hop, policy, connector } = settings;
    // A session verified for one partner, or under one domain's published policy, is not another's:
    // a session kept after an MTA-STS testing failure must never carry an enforce domain's mail.
    const partner =
      policy.kind === 'domain-secure'
        ? policy.partner.domain
        : policy.kind === 'dane'
          ? `${policy.domain} ${policy.records.map((r) => `${r.usage} ${r.selector} ${r.matchingType} ${r.data.toString('hex')}`).join(',')}`
          : policy.kind === 'mta-sts'
            ? `${policy.domain} ${policy.mode} ${String(policy.required)}`
            : '';
    const protocol = settings.lmtp === true ? 'lmtp' : 'smtp';
    return JSON.stringify([
      hop.address,
      hop.port,
      hop.host,
      policy.kind,
      partner,
      connector,
      protocol,
    ]);
  }

  /**
   * The session kept for this key when it still answers RSET (which also clears whatever its last
   * transaction left), otherwise a new one: connected, TLS negotiated and, for a partner, verified
   * (SmtpClientSession.open, which throws HopFailure). A kept session was opened under this same
   * generation and for this same key, so with the same policy and the same verification.
   */
  async open(
    key: string,
    generation: Generation,
    settings: SessionSettings,
  ): Promise<{ session: SmtpClientSession; reused: boolean }> {
    const kept = this.take(key, generation);
    if (kept !== undefined) {
      // Shutdown reaches a session through the signal it was opened with.
      if (kept.signal === settings.signal) {
        try {
          await kept.reset();
          kept.note('reused for a new batch');
          return { session: kept, reused: true };
        } catch {
          // The hop closed it while it was idle (its own timeout): not a failure of the hop.
        }
      }
      await kept.close();
    }
    return { session: await SmtpClientSession.open(settings), reused: false };
  }

  /**
   * Takes the newest idle session for this key out of the cache, if it is still open and was
   * opened under this very generation. Sessions of older generations are closed on the way.
   */
  take(key: string, generation: Generation): SmtpClientSession | undefined {
    this.dropOtherGenerations(generation);
    const list = this.idle.get(key);
    for (let found = list?.pop(); found !== undefined; found = list?.pop()) {
      clearTimeout(found.timer);
      if (found.session.usable) {
        if (list?.length === 0) this.idle.delete(key);
        return found.session;
      }
      this.retire(found.session);
    }
    this.idle.delete(key);
    return undefined;
  }

  /**
   * Keeps a session for later and returns true; false when it is not kept (cache off, closed or
   * full, session no longer usable): the caller closes it.
   */
  keep(key: string, generation: Generation, session: SmtpClientSession): boolean {
    if (this.closed || this.idleMs <= 0 || !session.usable) return false;
    this.dropOtherGenerations(generation);
    const list = this.idle.get(key) ?? [];
    while (list.length >= this.perKey) {
      // The one just used has the freshest state: the oldest of this key makes room.
      const oldest = list.shift();
      if (oldest === undefined) break;
      clearTimeout(oldest.timer);
      this.retire(oldest.session);
    }
    if (this.size >= this.total) {
      if (list.length === 0) this.idle.delete(key);
      return false;
    }
    const timer = setTimeout(() => {
      const current = this.idle.get(key);
      const index = current?.findIndex((idle) => idle.session === session) ?? -1;
      if (current === undefined || index === -1) return;
      current.splice(index, 1);
      if (current.length === 0) this.idle.delete(key);
      this.retire(session);
    }, this.idleMs);
    timer.unref();
    list.push({ session, generation, timer });
    this.idle.set(key, list);
    session.note(`kept open for reuse (${this.idleMs} ms)`);
    return true;
  }

  get size(): number {
    let count = 0;
    for (const list of this.idle.values()) count += list.length;
    return count;
  }

  /** Closes every idle session (QUIT) and resolves once they are gone; later keep() closes at once. */
  async close(): Promise<void> {
    this.closed = true;
    this.drop(() => true);
    await Promise.all([...this.closing]);
  }

  /** Closes the idle sessions opened under any other generation (an apply happened). */
  dropOtherGenerations(generation: Generation): void {
    this.drop((idle) => idle.generation !== generation);
  }

  private drop(which: (idle: IdleSession) => boolean): void {
    for (const [key, list] of this.idle) {
      const staying = list.filter((idle) => !which(idle));
      for (const idle of list) {
        if (staying.includes(idle)) continue;
        clearTimeout(idle.timer);
        this.retire(idle.session);
      }
      if (staying.length === 0) this.idle.delete(key);
      else this.idle.set(key, staying);
    }
  }

  private retire(session: SmtpClientSession): void {
    const closing = session.close().catch(() => undefined);
    this.closing.add(closing);
    void closing.finally(() => this.closing.delete(closing));
  }
}
