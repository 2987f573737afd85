// Delivery of accepted-domain mail to an internal mailbox server over SMTP or LMTP (RFC 2033), on
// nodemailer's SMTPConnection: the body as queued (marking included), each recipient's result kept
// (LMTP answers each one after the data): 4xx and lost sessions stay queued, 5xx are bounced by the
// queue. A session is kept open a moment after each message for the next one (Postfix's
// connection cache): the dispatcher hands over one message at a time.
import { isIP } from 'node:net';
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import type { RelayDelivery } from '../../model.js';
import { parseHostPort } from '../../units.js';
import type { Generation } from '../generation.js';
import type { EngineLog } from '../log.js';
import type { DeliverLocal } from '../queue/dispatcher.js';
import { failAll, type DeliveryOutcome, type OutboundMessage } from '../queue/outcome.js';
import { formatReply, REPLIES } from '../replies.js';
import {
  HopFailure,
  hopReply,
  messageRefusal,
  recipientOutcome,
  type SmtpError,
} from '../send/remote-replies.js';
import { DEFAULT_SEND_TIMEOUTS, type SendTimeouts } from '../send/session.js';

/** The ports RFC 5321 and RFC 2033 name; LMTP must not use 25. */
const DEFAULT_PORTS = { smtp: 25, lmtp: 24 } as const;

/** How long an idle session waits for the next message, and how many wait at most. */
const IDLE_SESSION_MS = 2_000;
const MAX_IDLE_SESSIONS = 4;

/** How long QUIT may take before the socket is cut. */
const QUIT_TIMEOUT_MS = 2_000;

export interface RelayDeliveryOptions {
  log: EngineLog;
  timeouts?: Partial<SendTimeouts>;
  /** Aborting closes the sessions in flight (their messages stay queued) and the idle ones. */
  signal?: AbortSignal;
}

/** The relay's host and port: "host", "host:port" or "[v6]:port", the protocol's port by default. */
export function relayTarget(relay: RelayDelivery): { host: string; port: number } {
  const parsed = parseHostPort(relay.host);
  if (parsed !== undefined) return parsed;
  return { host: relay.host.replace(/^\[(.*)\]$/, '$1'), port: DEFAULT_PORTS[relay.protocol] };
}

/** Delivery as the dispatcher calls it for accepted domains when the Organization relays them. */
export function createRelayDelivery(options: RelayDeliveryOptions): DeliverLocal {
  const timeouts = { ...DEFAULT_SEND_TIMEOUTS, ...options.timeouts };
  const idle = new IdleSessions();
  options.signal?.addEventListener('abort', () => idle.closeAll(), { once: true });
  return async (message: OutboundMessage, generation: Generation): Promise<DeliveryOutcome> => {
    const relay = generation.config.organization.spec.delivery.relay;
    if (relay === undefined) {
      return failAll(message, formatReply(REPLIES.localError, 'no relay configured'), false);
    }
    const settings = { relay, hostname: generation.hostname, timeouts, signal: options.signal };
    const outcome = await relayMessage(message, settings, idle);
    const deferred = outcome.failures.find((f) => !f.permanent);
    if (deferred !== undefined) {
      options.log.log('warn', 'delivery.relay_deferred', {
        id: message.id,
        relay: relay.host,
        reply: deferred.reply,
      });
    }
    return outcome;
  };
}

interface RelaySettings {
  relay: RelayDelivery;
  hostname: string;
  timeouts: SendTimeouts;
  signal: AbortSignal | undefined;
}

async function relayMessage(
  message: OutboundMessage,
  settings: RelaySettings,
  idle: IdleSessions,
): Promise<DeliveryOutcome> {
  const key = JSON.stringify([settings.relay, settings.hostname]);
  const reused = idle.take(key);
  if (reused !== undefined) {
    const attempt = await sendOver(reused, message, idle, key);
    // The server may have ended the idle session as we spoke: once more on a new one.
    if (!('failure' in attempt)) return attempt.outcome;
  }
  let session: RelaySession;
  try {
    session = await RelaySession.open(settings);
  } catch (error) {
    return failAll(message, failureReply(error), false);
  }
  const attempt = await sendOver(session, message, idle, key);
  return 'failure' in attempt ? failAll(message, attempt.failure, false) : attempt.outcome;
}

/** The message's outcome (the session parked for the next one), or why the session failed. */
async function sendOver(
  session: RelaySession,
  message: OutboundMessage,
  idle: IdleSessions,
  key: string,
): Promise<{ outcome: DeliveryOutcome } | { failure: string }> {
  try {
    const outcome = await session.send(message);
    // Ready for the next message, or closed when the server will not reset.
    if (await session.reset()) idle.park(key, session);
    else await session.quit();
    return { outcome };
  } catch (error) {
    await session.quit();
    return { failure: failureReply(error) };
  }
}

function failureReply(error: unknown): string {
  return error instanceof HopFailure
    ? error.reply
    : formatReply(REPLIES.localError, (error as Error).message);
}

/** Sessions waiting for the next message, each closed when none comes in time. */
class IdleSessions {
  private readonly sessions: { key: string; session: RelaySession; timer: NodeJS.Timeout }[] = [];
  private closed = false;

  take(key: string): RelaySession | undefined {
    const index = this.sessions.findIndex((s) => s.key === key && s.session.usable);
    if (index === -1) return undefined;
    const [found] = this.sessions.splice(index, 1);
    if (found === undefined) return undefined;
    clearTimeout(found.timer);
    return found.session;
  }

  park(key: string, session: RelaySession): void {
    if (this.closed || this.sessions.length >= MAX_IDLE_SESSIONS) {
      void session.quit();
      return;
    }
    const timer = setTimeout(() => {
      const index = this.sessions.findIndex((s) => s.session === session);
      if (index !== -1) this.sessions.splice(index, 1);
      void session.quit();
    }, IDLE_SESSION_MS);
    timer.unref();
    this.sessions.push({ key, session, timer });
  }

  closeAll(): void {
    this.closed = true;
    for (const { session, timer } of this.sessions.splice(0)) {
      clearTimeout(timer);
      session.close();
    }
  }
}

/** One session to the relay; nodemailer's callbacks as promises that also settle when it ends. */
class RelaySession {
  private failure: SmtpError | undefined;
  private ended = false;
  private readonly endWaiters = new Set<() => void>();

  private constructor(
    private readonly connection: SMTPConnection,
    private readonly required: boolean,
    private readonly signal: AbortSignal | undefined,
  ) {
    connection.on('error', (error: SmtpError) => {
      this.failure ??= error;
    });
    connection.on('end', () => {
      this.ended = true;
      for (const waiter of [...this.endWaiters]) waiter();
      this.endWaiters.clear();
    });
    if (signal !== undefined) {
      // Already aborted: step() refuses to start, nothing is opened.
      const onAbort = () => connection.close();
      signal.addEventListener('abort', onAbort, { once: true });
      connection.once('end', () => signal.removeEventListener('abort', onAbort));
    }
  }

  /** Connects (STARTTLS by the relay's tls setting) and greets; throws HopFailure. */
  static async open({ relay, hostname, timeouts, signal }: RelaySettings): Promise<RelaySession> {
    const { host, port } = relayTarget(relay);
    const servername = isIP(host) === 0 ? host : undefined;
    const connection = new SMTPConnection({
      host,
      port,
      name: hostname,
      lmtp: relay.protocol === 'lmtp',
      secure: false,
      ignoreTLS: relay.tls === 'none',
      requireTLS: relay.tls === 'required',
      opportunisticTLS: relay.tls === 'opportunistic',
      connectionTimeout: timeouts.connectMs,
      greetingTimeout: timeouts.greetingMs,
      socketTimeout: timeouts.socketMs,
      tls: {
        // An internal hop, encrypted but not authenticated (the schema says so): never a partner.
        rejectUnauthorized: false,
        checkServerIdentity: () => undefined,
        minVersion: 'TLSv1.2',
        ...(servername === undefined ? {} : { servername }),
      },
      logger: false,
    });
    const session = new RelaySession(connection, relay.tls === 'required', signal);
    try {
      await session.step<undefined>((done) => connection.connect((error) => done(error ?? null)));
    } catch (error) {
      session.close();
      throw new HopFailure(hopReply(error as SmtpError, session.required, 'connect'));
    }
    return session;
  }

  get usable(): boolean {
    return !this.ended && this.signal?.aborted !== true;
  }

  /** One message: its refusal is its outcome; a failure of the session throws HopFailure. */
  async send(message: OutboundMessage): Promise<DeliveryOutcome> {
    const body = await message.body();
    let info: SMTPConnection.SentMessageInfo;
    try {
      info = await this.step<SMTPConnection.SentMessageInfo>((done) =>
        this.connection.send(
          {
            from: message.from,
            to: message.recipients,
            size: message.size,
            use8BitMime: body.some((byte) => byte > 0x7f),
          },
          body,
          (error, result) => done(error ?? null, result),
        ),
      );
    } catch (error) {
      // A refusal of the message or some recipients is their outcome; anything else (a 4xx to
      // MAIL FROM, the session lost) leaves every recipient queued.
      const outcome = messageRefusal(message, error as SmtpError);
      if (outcome !== undefined) return outcome;
      throw new HopFailure(hopReply(error as SmtpError, this.required, 'send'));
    }
    return recipientOutcome(
      message,
      info.accepted.map(String),
      (info.rejectedErrors ?? []) as SmtpError[],
    );
  }

  /** RSET, so that the next message starts clean; false when the session cannot go on. */
  async reset(): Promise<boolean> {
    if (!this.usable) return false;
    try {
      await this.step<boolean | undefined>((done) =>
        this.connection.reset((error, ok) => done(error, ok)),
      );
      return true;
    } catch {
      return false;
    }
  }

  /** QUIT, then waits (bounded) until the socket is gone. */
  async quit(): Promise<void> {
    if (this.ended) return;
    const gone = new Promise<void>((resolve) => this.endWaiters.add(resolve));
    this.connection.quit();
    const timer = setTimeout(() => this.connection.close(), QUIT_TIMEOUT_MS);
    timer.unref();
    await gone;
    clearTimeout(timer);
  }

  close(): void {
    if (!this.ended) this.connection.close();
  }

  private step<T>(start: (done: (error: Error | null, value?: T) => void) => void): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      let settled = false;
      const finish = (error: Error | null, value?: T) => {
        if (settled) return;
        settled = true;
        this.endWaiters.delete(onEnd);
        if (error !== null) reject(error);
        else resolve(value as T);
      };
      // 'error' comes before 'end' and the step's own callback may come after it: a turn later
      // the specific error is known.
      const onEnd = () =>
        setImmediate(() =>
          finish(
            this.failure ?? Object.assign(new Error('connection closed'), { code: 'ECONNECTION' }),
          ),
        );
      if (this.ended || this.signal?.aborted === true) return onEnd();
      this.endWaiters.add(onEnd);
      start(finish);
    });
  }
}
