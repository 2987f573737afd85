// Receive limits: connections per connector and per client, command line length, commands per
// session and idle time, each refused with one standard reply (replies.ts). smtp-server enforces
// line length and idle time itself; its own wording is rewritten here per connection.
import type { SMTPServer } from 'smtp-server';
import type { SMTPConnection } from 'smtp-server/lib/smtp-connection.js';
import { REPLIES } from '../replies.js';
import type { SmtpReply } from '../../model.js';

export interface ReceiveLimits {
  /** Sessions at once on one connector of this listener. */
  connectionsPerConnector: number;
  /** Sessions at once from one remote address on this listener. */
  connectionsPerClient: number;
  /** Longest command line in octets, CRLF excluded (RFC 5321 §4.5.3.1.4 allows 512 plus extensions). */
  commandLineLength: number;
  /**
   * Commands that move no mail (NOOP, RSET, VRFY, EXPN, HELP, HELO/EHLO, ETRN) in one session
   * before it is closed: Postfix's smtpd_junk_command_limit. Mail itself is never capped.
   */
  junkCommandsPerSession: number;
  /** Time the client may stay silent while we wait for it (ms). */
  idleTimeout: number;
}

/** Exchange's MaxInboundConnection and ConnectionInactivityTimeout; per client twice Postfix's 50, as closing sessions count until their socket is gone. */
export const DEFAULT_RECEIVE_LIMITS: ReceiveLimits = {
  connectionsPerConnector: 5000,
  connectionsPerClient: 100,
  commandLineLength: 2048,
  junkCommandsPerSession: 100,
  idleTimeout: 5 * 60_000,
};

/** Counts the sessions this listener holds, per connector and per remote address. */
export class ConnectionCounter {
  private readonly perConnector = new Map<string, number>();
  private readonly perClient = new Map<string, number>();

  constructor(private readonly limits: ReceiveLimits) {}

  /** The refusal when one more session would exceed a limit; otherwise counts it in. */
  admit(connector: string, client: string): SmtpReply | undefined {
    const onConnector = this.perConnector.get(connector) ?? 0;
    if (onConnector >= this.limits.connectionsPerConnector) return REPLIES.tooManyConnections;
    const fromClient = this.perClient.get(client) ?? 0;
    if (fromClient >= this.limits.connectionsPerClient) return REPLIES.tooManyFromClient;
    this.perConnector.set(connector, onConnector + 1);
    this.perClient.set(client, fromClient + 1);
    return undefined;
  }

  release(connector: string, client: string): void {
    decrement(this.perConnector, connector);
    decrement(this.perClient, client);
  }
}

function decrement(counts: Map<string, number>, key: string): void {
  const left = (counts.get(key) ?? 0) - 1;
  if (left > 0) counts.set(key, left);
  else counts.delete(key);
}

/** smtp-server's own texts for the limits it enforces, and the reply we give instead. */
const JUNK_COMMANDS = new Set(['NOOP', 'RSET', 'VRFY', 'EXPN', 'HELP', 'HELO', 'EHLO', 'ETRN']);

const REWRITES: { code: number; text: RegExp; reply: SmtpReply; close: boolean }[] = [
  { code: 421, text: /^Error: Command line too long/, reply: REPLIES.lineTooLong, close: true },
  { code: 421, text: /^Timeout - closing connection/, reply: REPLIES.idleTimeout, close: false },
  {
    code: 421,
    text: /^Error: too many unrecognized commands/,
    reply: REPLIES.tooManyErrors,
    close: false,
  },
];

/**
 * Wraps every connection smtp-server creates: its built-in limit replies get our codes and texts,
 * and junk commands beyond `junkCommandsPerSession` are answered 421 and the session closed. smtp-server
 * has no per-command hook, so this wraps the connection's own dispatcher (`_onCommand`).
 */
export function enforceLimits(server: SMTPServer, limits: ReceiveLimits): void {
  adaptConnections(server, (connection) => {
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
  });
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
