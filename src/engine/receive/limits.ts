// Receive limits: idle time (shorter under stress, capacity.ts), session time, recipients and
// header size from the connector a session is placed on; line length and junk commands per
// listener. Each refused with one standard reply (replies.ts), smtp-server's own wording rewritten.
import type { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import type { SMTPServerSession } from 'smtp-server';
import {
  connectionSocket,
  isEnding,
  isReadingStream,
  owesReply,
  timeOut,
  type ConnectionPatches,
  type SMTPConnection,
} from './smtp-server-adapter.js';
import { REPLIES } from '../replies.js';
import type { ReceiveConnectorSpec, SmtpReply } from '../../model.js';
import { requireDuration, requireSize } from '../../units.js';

/** What holds for every session of a listener, whichever connector it is placed on. */
export interface ReceiveLimits {
  /** Longest command line in octets, CRLF excluded (RFC 5321 §4.5.3.1.4 allows 512 plus extensions). */
  commandLineLength: number;
  /**
   * Commands that move no mail (NOOP, RSET, VRFY, EXPN, HELP, HELO/EHLO, ETRN) in one session
   * before it is closed: Postfix's smtpd_junk_command_limit. Mail itself is never capped.
   */
  junkCommandsPerSession: number;
  /** Time a client may stay silent before its session is placed on a connector (ms). */
  idleTimeout: number;
}

/** Junk commands as Postfix's default; idle as Exchange's default ConnectionInactivityTimeout. */
export const DEFAULT_RECEIVE_LIMITS: ReceiveLimits = {
  commandLineLength: 2048,
  junkCommandsPerSession: 100,
  idleTimeout: 5 * 60_000,
};

/** A connector's limits (its spec's Exchange-named fields), durations in ms. */
export interface ConnectorLimits {
  /** Sessions at once on the connector, on this listener. */
  maxInboundConnection: number;
  /** Sessions at once from one remote address on the connector. */
  maxInboundConnectionPerSource: number;
  /** Silence allowed while we wait for the client. */
  inactivityTimeout: number;
  /** Under stress: silence allowed, and the time from connect to EHLO/HELO. */
  stressInactivityTimeout: number;
  /** The longest a session may last. */
  sessionTimeout: number;
  maxRecipientsPerMessage: number;
  /** Octets of the header section, up to the empty line. */
  maxHeaderSize: number;
}

/** The limits of a connector spec, parsed (the generation build does it once per connector). */
export function connectorLimits(spec: ReceiveConnectorSpec): ConnectorLimits {
  return {
    maxInboundConnection: spec.maxInboundConnection,
    maxInboundConnectionPerSource: spec.maxInboundConnectionPerSource,
    inactivityTimeout: requireDuration(spec.connectionInactivityTimeout),
    stressInactivityTimeout: requireDuration(spec.stressInactivityTimeout),
    sessionTimeout: requireDuration(spec.connectionTimeout),
    maxRecipientsPerMessage: spec.maxRecipientsPerMessage,
    maxHeaderSize: requireSize(spec.maxHeaderSize),
  };
}

// The counter lives with capacity and stress; the engine shares one across its listeners.
export { ConnectionCounter } from './capacity.js';

/** RCPT beyond the connector's MaxRecipientsPerMessage: 452, the client sends the rest later (RFC 5321 §4.5.3.1.10). */
export function recipientLimitReply(
  session: SMTPServerSession,
  limits: ConnectorLimits,
): SmtpReply | undefined {
  return session.envelope.rcptTo.length >= limits.maxRecipientsPerMessage
    ? REPLIES.tooManyRecipients
    : undefined;
}

/**
 * Whether the header section (up to the first empty line; the whole message when there is none)
 * is longer than `limit` octets. Looks at no more than limit + 4 octets of the message.
 */
export function headerExceeds(message: Buffer, limit: number): boolean {
  const window = message.subarray(0, limit + 4);
  if (window[0] === 0x0a || (window[0] === 0x0d && window[1] === 0x0a)) return false;
  const crlf = window.indexOf('\r\n\r\n');
  const lf = window.subarray(0, crlf === -1 ? window.length : crlf).indexOf('\n\n');
  // The section's size counts the line end of its last field.
  const size = lf !== -1 ? lf + 1 : crlf !== -1 ? crlf + 2 : message.length;
  return size > limit;
}

/** smtp-server's own texts for the limits it enforces, and the reply we give instead. */
const JUNK_COMMANDS = new Set(['NOOP', 'RSET', 'VRFY', 'EXPN', 'HELP', 'HELO', 'EHLO', 'ETRN']);

const REWRITES: { code: number; text: RegExp; reply: SmtpReply; close: boolean }[] = [
  { code: 421, text: /^Error: Command line too long/, reply: REPLIES.lineTooLong, close: true },
  { code: 421, text: /^Timeout - closing connection/, reply: REPLIES.idleTimeout, close: false },
  {
    code: 500,
    text: /^Error: command not recognized/,
    reply: REPLIES.unrecognizedCommand,
    close: false,
  },
  {
    code: 421,
    text: /^Error: too many unrecognized commands/,
    reply: REPLIES.tooManyErrors,
    close: false,
  },
];

/** While the session's reply is ours to give (a hook deciding, a message being queued), no timer cuts it. */
const SESSION_TIMEOUT_RECHECK_MS = 1_000;

interface ConnectionLimits {
  connection: SMTPConnection;
  /** When the connection was accepted, and when the client last sent a byte (clock ms). */
  connectedAt: number;
  heardAt: number;
  /** The connector the session is placed on, and its limits; undefined until placed. */
  connector?: string;
  limits?: ConnectorLimits;
  /**
   * The session saw its connector under stress: the shorter waits apply to it until it ends, as
   * a Postfix smtpd started under stress keeps its timeouts (else a flood outlives the stress).
   */
  stressed: boolean;
  /** The client has said EHLO or HELO (once is enough: STARTTLS asks for it again at once). */
  greeted: boolean;
  /** The idle timer is armed with what was left of a wait: the next byte arms it whole. */
  partialWait: boolean;
  /** The socket the idle timer runs on: during STARTTLS, the TLS socket being set up. */
  timed?: Socket;
  sessionTimer?: NodeJS.Timeout;
  greetingTimer?: NodeJS.Timeout;
}

/**
 * Enforces the limits on every connection smtp-server creates. Its built-in limit replies get our
 * codes and texts; junk commands beyond `junkCommandsPerSession` are answered 421 and the session
 * closed; the idle timer takes the placed connector's value, shorter under stress, and a
 * session timer ends a session past the connector's connectionTimeout. It works through the
 * patches `connection()` returns for each connection (smtp-server-adapter.ts applies them).
 */
export class ReceiveLimiter {
  private readonly connections = new Map<string, ConnectionLimits>();
  /** Sockets whose 'timeout' and 'data' this limiter listens to (one listener each, ever). */
  private readonly watchedSockets = new WeakSet<Socket>();

  constructor(
    private readonly limits: ReceiveLimits,
    private readonly clock: () => number = Date.now,
  ) {}

  /**
   * At session start: the connector's limits apply to this session from now to its end;
   * `stressed`: the connector is under stress now (see stress()).
   */
  place(sessionId: string, connector: string, limits: ConnectorLimits, stressed: boolean): void {
    const state = this.connections.get(sessionId);
    if (state === undefined) return;
    state.connector = connector;
    state.limits = limits;
    clearTimeout(state.sessionTimer);
    state.sessionTimer = setTimeout(() => this.endSession(state), limits.sessionTimeout);
    state.sessionTimer.unref();
    if (stressed) this.stressOn(state);
    else this.arm(state);
  }

  /**
   * A connector entered stress: every session of it on this listener gets the shorter waits at
   * once, and one already silent longer, or not greeted within the wait since its connect, is
   * closed now with 421 4.4.2. Returns how many sessions were closed.
   */
  stress(connector: string): number {
    let closed = 0;
    for (const state of this.connections.values()) {
      if (state.connector !== connector || state.stressed) continue;
      if (this.stressOn(state)) closed += 1;
    }
    return closed;
  }

  /** Under stress from now: returns true when the session was ended for a wait already over. */
  private stressOn(state: ConnectionLimits): boolean {
    state.stressed = true;
    const { connection } = state;
    if (isEnding(connection)) return false;
    const wait = this.idleTimeout(state);
    const now = this.clock();
    if (!state.greeted) {
      const left = state.connectedAt + wait - now;
      if (left <= 0 && !owesReply(connection)) {
        this.endIdle(state);
        return true;
      }
      clearTimeout(state.greetingTimer);
      state.greetingTimer = setTimeout(() => this.greetingOver(state), Math.max(left, 0));
      state.greetingTimer.unref();
    }
    // A message arriving or a TLS handshake has no silence we can see: the wait starts now.
    const silent = isReadingStream(connection) ? 0 : now - state.heardAt;
    if (silent >= wait && !owesReply(connection)) {
      this.endIdle(state);
      return true;
    }
    this.arm(state, state.timed, Math.max(wait - silent, 1));
    return false;
  }

  private greetingOver(state: ConnectionLimits): void {
    state.greetingTimer = undefined;
    const { connection } = state;
    if (state.greeted || isEnding(connection)) return;
    if (owesReply(connection)) {
      state.greetingTimer = setTimeout(() => this.greetingOver(state), SESSION_TIMEOUT_RECHECK_MS);
      state.greetingTimer.unref();
      return;
    }
    this.endIdle(state);
  }

  /** The wait for the client now: the connector's (the listener's until placed), shorter under stress. */
  private idleTimeout(state: ConnectionLimits): number {
    const wait = state.limits?.inactivityTimeout ?? this.limits.idleTimeout;
    return state.stressed && state.limits !== undefined
      ? Math.min(wait, state.limits.stressInactivityTimeout)
      : wait;
  }

  /** smtp-server's idle timer, with one 'timeout' listener per socket (its own adds one per arming). */
  private arm(
    state: ConnectionLimits,
    socket: Socket = state.timed ?? connectionSocket(state.connection),
    wait?: number,
  ): void {
    state.timed = socket;
    state.partialWait = wait !== undefined;
    socket.setTimeout(wait ?? this.idleTimeout(state));
    if (this.watchedSockets.has(socket)) return;
    this.watchedSockets.add(socket);
    socket.on('timeout', () => timeOut(state.connection));
    const hear = () =>
      socket.on('data', () => {
        state.heardAt = this.clock();
        if (state.partialWait) this.arm(state, socket);
      });
    // A 'data' listener sets a stream flowing: the TLS socket of a STARTTLS gets it only once
    // secure, in the same turn as smtp-server pipes it to its parser, so no byte is missed.
    if (socket instanceof TLSSocket && socket !== connectionSocket(state.connection))
      socket.once('secure', hear);
    else hear();
  }

  private endIdle(state: ConnectionLimits): void {
    const reply = REPLIES.idleTimeout;
    state.connection.send(reply.code, `${reply.enhanced} ${reply.text}`, false);
  }

  private endSession(state: ConnectionLimits): void {
    const { connection } = state;
    if (isEnding(connection)) return;
    // As smtp-server's idle timer: a reply we owe (a hook deciding, a message being queued)
    // is given first, so that a client is never told to retry a message we may still accept.
    if (owesReply(connection)) {
      state.sessionTimer = setTimeout(() => this.endSession(state), SESSION_TIMEOUT_RECHECK_MS);
      state.sessionTimer.unref();
      return;
    }
    const reply = REPLIES.sessionTimeout;
    connection.send(reply.code, `${reply.enhanced} ${reply.text}`, false);
  }

  /** The patches that enforce the limits on one new connection (see smtp-server-adapter.ts). */
  connection(connection: SMTPConnection): ConnectionPatches {
    const limits = this.limits;
    const now = this.clock();
    const state: ConnectionLimits = {
      connection,
      connectedAt: now,
      heardAt: now,
      stressed: false,
      greeted: false,
      partialWait: false,
    };
    this.connections.set(connection.id, state);
    let commands = 0;
    return {
      closing: () => {
        clearTimeout(state.sessionTimer);
        clearTimeout(state.greetingTimer);
        this.connections.delete(connection.id);
      },
      // Without an argument: the socket armed last (during STARTTLS, the TLS one).
      armTimeout: (socket) => this.arm(state, socket),
      send: (send, code, data, context) => {
        const text = typeof data === 'string' ? data : '';
        const rewrite = REWRITES.find((r) => r.code === code && r.text.test(text));
        if (rewrite === undefined) return send(code, data, context);
        send(rewrite.reply.code, `${rewrite.reply.enhanced} ${rewrite.reply.text}`, false);
        // A 500 does not close by itself, but the parser is gone after an over-long line.
        if (rewrite.close) connection.close();
      },
      command: (onCommand, command, callback) => {
        const verb = command.subarray(0, 5).toString('latin1').trim().toUpperCase();
        if (JUNK_COMMANDS.has(verb)) commands += 1;
        if (verb === 'EHLO' || verb === 'HELO') state.greeted = true;
        if (commands > limits.junkCommandsPerSession) {
          const reply = REPLIES.tooManyCommands;
          connection.send(reply.code, `${reply.enhanced} ${reply.text}`, false);
          return;
        }
        onCommand(command, callback);
      },
    };
  }
}
