// Idle SMTP client sessions kept for the next dispatch round to the same next hop (SPEC §4.6),
// as Postfix's connection cache does (smtp_connection_cache_time_limit, 2 s): one per hop and
// TLS policy, closed when idle too long, when the generation changes, and on close().
import type { NextHop } from '../dns.js';
import type { Generation } from '../generation.js';
import type { TlsPolicy } from './route.js';
import type { SmtpClientSession } from './session.js';

/** Postfix's default for smtp_connection_cache_time_limit. */
export const DEFAULT_CONNECTION_CACHE_MS = 2_000;

interface IdleSession {
  session: SmtpClientSession;
  /** A session verified under one generation never serves another (new anchors, new certificate). */
  generation: Generation;
  timer: NodeJS.Timeout;
}

export class ConnectionCache {
  private readonly idle = new Map<string, IdleSession>();
  private readonly closing = new Set<Promise<void>>();
  private closed = false;

  /** idleMs: how long an unused session is kept; 0 or less keeps none. */
  constructor(private readonly idleMs: number) {}

  /** The key of what a session was opened and verified for: the hop, its name, the policy. */
  static key(hop: NextHop, policy: TlsPolicy, connector: string): string {
    const partner = policy.kind === 'domain-secure' ? policy.partner.domain : '';
    return JSON.stringify([hop.address, hop.port, hop.host, policy.kind, partner, connector]);
  }

  /**
   * Takes the idle session for this key out of the cache, if it is still open and was opened under
   * this very generation. Sessions of older generations are closed on the way.
   */
  take(key: string, generation: Generation): SmtpClientSession | undefined {
    this.dropOtherGenerations(generation);
    const found = this.idle.get(key);
    if (found === undefined) return undefined;
    this.idle.delete(key);
    clearTimeout(found.timer);
    if (found.session.usable) return found.session;
    this.retire(found.session);
    return undefined;
  }

  /**
   * Keeps a session for later and returns true; false when it is not kept (cache off or closed,
   * session no longer usable): the caller closes it.
   */
  keep(key: string, generation: Generation, session: SmtpClientSession): boolean {
    if (this.closed || this.idleMs <= 0 || !session.usable) return false;
    this.dropOtherGenerations(generation);
    const previous = this.idle.get(key);
    if (previous !== undefined) {
      // One idle session per hop and policy: the one just used has the freshest state.
      clearTimeout(previous.timer);
      this.retire(previous.session);
    }
    const timer = setTimeout(() => {
      if (this.idle.get(key)?.session !== session) return;
      this.idle.delete(key);
      this.retire(session);
    }, this.idleMs);
    timer.unref();
    this.idle.set(key, { session, generation, timer });
    session.note(`kept open for reuse (${this.idleMs} ms)`);
    return true;
  }

  get size(): number {
    return this.idle.size;
  }

  /** Closes every idle session (QUIT) and resolves once they are gone; later keep() closes at once. */
  async close(): Promise<void> {
    this.closed = true;
    for (const [key, { session, timer }] of this.idle) {
      clearTimeout(timer);
      this.idle.delete(key);
      this.retire(session);
    }
    await Promise.all([...this.closing]);
  }

  /** Closes the idle sessions opened under any other generation (an apply happened). */
  dropOtherGenerations(generation: Generation): void {
    for (const [key, idle] of this.idle) {
      if (idle.generation === generation) continue;
      clearTimeout(idle.timer);
      this.idle.delete(key);
      this.retire(idle.session);
    }
  }

  private retire(session: SmtpClientSession): void {
    const closing = session.close().catch(() => undefined);
    this.closing.add(closing);
    void closing.finally(() => this.closing.delete(closing));
  }
}
