// Receive limits: connections per connector and per client, idle time, session time, recipients
// and header size from the connector a session is placed on; line length and junk commands per
// listener. Each refused with one standard reply (replies.ts), smtp-server's own wording rewritten.
import type { SMTPServer, SMTPServerSession } from 'smtp-server';
import type { SMTPConnection } from 'smtp-server/lib/smtp-connection.js';
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
  /** The longest a session may last. */
  sessionTimeout: number;
  maxRecipientsPerMessage: number;
  /** Octets of the header section, up to the empty line. */
  maxHeaderSize: number;
}

const parsedLimits = new WeakMap<ReceiveConnectorSpec, ConnectorLimits>();

/** The limits of a connector spec, parsed once per spec (so once per generation). */
export function connectorLimits(spec: ReceiveConnectorSpec): ConnectorLimits {
  let limits = parsedLimits.get(spec);
  if (limits === undefined) {
    limits = {
      maxInboundConnection: spec.maxInboundConnection,
      maxInboundConnectionPerSource: spec.maxInboundConnectionPerSource,
      inactivityTimeout: requireDuration(spec.connectionInactivityTimeout),
      sessionTimeout: requireDuration(spec.connectionTimeout),
      maxRecipientsPerMessage: spec.maxRecipientsPerMessage,
      maxHeaderSize: requireSize(spec.maxHeaderSize),
    };
    parsedLimits.set(spec, limits);
  }
  return limits;
}

/**
 * Counts the sessions this listener holds per connector, and per remote address on a connector
 * (Exchange counts both per connector). Each admission is judged by the limits of the generation
 * the session starts in, so an apply changes them for new sessions only.
 */
export class ConnectionCounter {
  private readonly perConnector = new Map<string, number>();
  private readonly perClient = new Map<string, number>();

  /** The refusal when one more session would exceed a limit; otherwise counts it in. */
  admit(connector: string, client: string, limits: ConnectorLimits): SmtpReply | undefined {
    const onConnector = this.perConnector.get(connector) ?? 0;
    if (onConnector >= limits.maxInboundConnection) return REPLIES.tooManyConnections;
    const key = clientKey(connector, client);
    const fromClient = this.perClient.get(key) ?? 0;
    if (fromClient >= limits.maxInboundConnectionPerSource) return REPLIES.tooManyFromClient;
    this.perConnector.set(connector, onConnector + 1);
    this.perClient.set(key, fromClient + 1);
    return undefined;
  }

  release(connector: string, client: string): void {
    decrement(this.perConnector, connector);
    decrement(this.perClient, clientKey(connector, client));
  }
}

function clientKey(connector: string, client: string): string {
  return `${connector} ${client}`;
}

function decrement(counts: Map<string, number>, key: string): void {
  const left = (counts.get(key) ?? 0) - 1;
  if (left > 0) counts.set(key, left);
  else counts.delete(key);
}

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
  /** The placed connector's inactivity timeout; undefined: the listener's until placed. */
  idleTimeout?: number;
  sessionTimer?: NodeJS.Timeout;
}

/**
 * Enforces the limits on every connection smtp-server creates. Its built-in limit replies get our
 * codes and texts; junk commands beyond `junkCommandsPerSession` are answered 421 and the session
 * closed (smtp-server has no per-command hook, so this wraps its dispatcher `_onCommand`); the
 * idle timer (`_armTimeout`) takes the placed connector's value, and a session timer ends a
 * session past the connector's connectionTimeout.
 */
export class ReceiveLimiter {
  private readonly connections = new Map<string, ConnectionLimits>();

  constructor(server: SMTPServer, limits: ReceiveLimits) {
    adaptConnections(server, (connection) => this.adapt(connection, limits));
  }

  /** At session start: the connector's limits apply to this session from now to its end. */
  place(sessionId: string, limits: ConnectorLimits): void {
    const state = this.connections.get(sessionId);
    if (state === undefined) return;
    state.idleTimeout = limits.inactivityTimeout;
    state.connection._armTimeout();
    clearTimeout(state.sessionTimer);
    state.sessionTimer = setTimeout(() => this.endSession(state), limits.sessionTimeout);
    state.sessionTimer.unref();
  }

  private endSession(state: ConnectionLimits): void {
    const { connection } = state;
    if (connection._closing || connection._closed) return;
    // As smtp-server's idle timer: a reply we owe (a hook deciding, a message being queued)
    // is given first, so that a client is never told to retry a message we may still accept.
    const parser = connection._parser;
    const owed =
      connection._handlerPending ||
      (connection._dataStream && parser !== false && !parser._dataMode);
    if (owed) {
      state.sessionTimer = setTimeout(() => this.endSession(state), SESSION_TIMEOUT_RECHECK_MS);
      state.sessionTimer.unref();
      return;
    }
    const reply = REPLIES.sessionTimeout;
    connection.send(reply.code, `${reply.enhanced} ${reply.text}`, false);
  }

  private adapt(connection: SMTPConnection, limits: ReceiveLimits): void {
    const state: ConnectionLimits = { connection };
    this.connections.set(connection.id, state);
    const onClose = connection._onClose.bind(connection);
    connection._onClose = () => {
      clearTimeout(state.sessionTimer);
      this.connections.delete(connection.id);
      onClose();
    };
    connection._armTimeout = (socket = connection._socket) => {
      socket.setTimeout(state.idleTimeout ?? limits.idleTimeout, () => connection._onTimeout());
    };
    const send = connection.send.bind(connection);
    connection.send = (code, data, context) => {
      const text = typeof data === 'string' ? data : '';
      const rewrite = REWRITES.find((r) => r.code === code && r.text.test(text));
      if (rewrite === undefined) return send(code, data, context);
      send(rewrite.reply.code, `${rewrite.reply.enhanced} ${rewrite.reply.text}`, false);
      // A 500 does not close by itself, but the parser is gone after an over-long line.
      if (rewrite.close) connection.close();
    };
    const onCommand = connection._onCommand.bind(connection);
    let commands = 0;
    connection._onCommand = (command, callback) => {
      const verb = command.subarray(0, 5).toString('latin1').trim().toUpperCase();
      if (JUNK_COMMANDS.has(verb)) commands += 1;
      if (commands > limits.junkCommandsPerSession) {
        const reply = REPLIES.tooManyCommands;
        connection.send(reply.code, `${reply.enhanced} ${reply.text}`, false);
        return;
      }
      onCommand(command, callback);
    };
  }
}

/**
 * smtp-server holds every greeting back 100 ms to catch clients that talk first; that alone
 * caps a client at ten new connections a second. Greeting at once keeps the check (a command
 * before the greeting still gets "421 You talk too soon") without the wait, as Postfix does.
 */
export function greetWithoutDelay(server: SMTPServer): void {
  adaptConnections(server, (connection) => {
    connection.init = () => connection._setListeners(() => connection.connectionReady());
  });
}

/** Runs `adapt` on each connection smtp-server creates, before its init() (see its connect()). */
function adaptConnections(server: SMTPServer, adapt: (connection: SMTPConnection) => void): void {
  const connections = server.connections;
  const add = connections.add.bind(connections);
  connections.add = (connection) => {
    adapt(connection);
    return add(connection);
  };
}
