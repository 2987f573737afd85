// Every use of smtp-server's private internals, in one module. smtp-server has no per-command
// hook, no hook on its idle timer, on its replies or on a connection's end, and holds every
// greeting back 100 ms; the receive limits need all five. This module patches each private method
// once, in a fixed order, from one hook on the server's connection set, and reads the private
// state the limits look at through named functions. test/engine/smtp-server-contract.test.ts
// checks each touchpoint against the installed smtp-server, and the listener refuses to start on
// a version outside the range those tests ran against.
import { createRequire } from 'node:module';
import type { Socket } from 'node:net';
import type { SMTPServer } from 'smtp-server';
import type { SMTPConnection } from 'smtp-server/lib/smtp-connection.js';

export type { SMTPConnection };

/** The smtp-server releases the contract tests ran against: 3.21 and later 3.x. */
export const SUPPORTED_SMTP_SERVER = '>=3.21.0 <4.0.0';

/**
 * Why `version` is outside SUPPORTED_SMTP_SERVER, or undefined when it is inside. A pre-release
 * is outside (its internals are not yet those of the release).
 */
export function smtpServerVersionError(version: string): string | undefined {
  const match = /^(\d+)\.(\d+)\.(\d+)$/.exec(version);
  const major = Number(match?.[1]);
  const minor = Number(match?.[2]);
  if (match !== null && major === 3 && minor >= 21) return undefined;
  return (
    `smtp-server ${JSON.stringify(version)} is outside the tested range ${SUPPORTED_SMTP_SERVER}: ` +
    'domsec relies on its private connection internals; install a version in the range'
  );
}

let installed: string | undefined;

/** The installed smtp-server's version, from its package.json. */
export function installedSmtpServerVersion(): string {
  if (installed === undefined) {
    const require = createRequire(import.meta.url);
    const manifest = require('smtp-server/package.json') as { version?: unknown };
    installed = typeof manifest.version === 'string' ? manifest.version : '';
  }
  return installed;
}

/** Throws one clear error when the installed smtp-server is outside SUPPORTED_SMTP_SERVER. */
export function assertSmtpServerVersion(version: string = installedSmtpServerVersion()): void {
  const error = smtpServerVersionError(version);
  if (error !== undefined) throw new Error(error);
}

type Send = SMTPConnection['send'];
type OnCommand = SMTPConnection['_onCommand'];

/** What one connection's patches do; each is optional, each wraps one private method. */
export interface ConnectionPatches {
  /**
   * Runs before smtp-server's `_onClose()` each time it runs (the socket's 'close', and again
   * after a close()). `_onClose` is where smtp-server removes the connection from its set and
   * then calls the onClose handler once: the end of a connection, however it ends.
   */
  closing?: () => void;
  /**
   * Replaces `_armTimeout(socket?)`: smtp-server calls it with no argument once the socket is set
   * up and when its idle timer fired while a reply is owed, and with the TLS socket as STARTTLS
   * begins; its own arms `socket.setTimeout(socketTimeout)` with a new 'timeout' listener each time.
   * The replacement owns the timer: `timeOut(connection)` is smtp-server's reaction to it.
   */
  armTimeout?: (socket: Socket | undefined) => void;
  /**
   * Wraps `send(code, data, context)`, through which smtp-server writes every reply, its own limit
   * replies included (their texts are matched by the caller); `context === false` skips its
   * enhanced-code mapping. A 421 closes the connection after writing.
   */
  send?: (
    original: Send,
    code: number,
    data?: string | string[] | null,
    context?: string | false,
  ) => void;
  /**
   * Wraps `_onCommand(command, callback)`, the dispatcher the parser calls with each command line
   * (a Buffer, CRLF stripped) outside DATA. Not calling `original` leaves the command unanswered
   * by smtp-server: the wrapper replies itself (or the parser waits for `callback`).
   */
  command?: (original: OnCommand, command: Buffer, callback?: () => void) => void;
}

export interface SmtpServerAdaptation {
  /**
   * Greets at once instead of after smtp-server's 100 ms wait for clients that talk first (that
   * wait alone caps a client at ten new connections a second). Replaces `init()` with what it
   * does after its timer: `_setListeners(() => connectionReady())`. A command before the greeting
   * still gets smtp-server's "421 You talk too soon", as Postfix does without the wait.
   */
  greetAtOnce?: boolean;
  /** Called for each new connection, before any patch is applied; returns its patches. */
  connection?: (connection: SMTPConnection) => ConnectionPatches;
}

const adapted = new WeakSet<SMTPServer>();

/**
 * Adapts `server` once, before it accepts a connection: one hook on `connections.add`, which
 * smtp-server's connect() calls with each new connection before `connection.init()` (so before
 * any byte is read or written). On each connection, in this order: `adaptation.connection`,
 * then `_onClose`, `_armTimeout`, `send`, `_onCommand`, `init`. Throws when the installed
 * smtp-server is outside SUPPORTED_SMTP_SERVER, or when `server` was adapted already.
 */
export function adaptSmtpServer(server: SMTPServer, adaptation: SmtpServerAdaptation): void {
  assertSmtpServerVersion();
  if (adapted.has(server)) throw new Error('smtp-server: this server is adapted already');
  adapted.add(server);
  const connections = server.connections;
  const add = connections.add.bind(connections);
  connections.add = (connection) => {
    patchConnection(connection, adaptation);
    return add(connection);
  };
}

function patchConnection(connection: SMTPConnection, adaptation: SmtpServerAdaptation): void {
  const patches = adaptation.connection?.(connection) ?? {};
  const { closing, armTimeout, send, command } = patches;
  if (closing !== undefined) {
    const onClose = connection._onClose.bind(connection);
    connection._onClose = () => {
      closing();
      onClose();
    };
  }
  if (armTimeout !== undefined) connection._armTimeout = (socket) => armTimeout(socket);
  if (send !== undefined) {
    const original: Send = connection.send.bind(connection);
    connection.send = (code, data, context) => send(original, code, data, context);
  }
  if (command !== undefined) {
    const original: OnCommand = connection._onCommand.bind(connection);
    connection._onCommand = (line, callback) => command(original, line, callback);
  }
  if (adaptation.greetAtOnce === true) {
    connection.init = () => connection._setListeners(() => connection.connectionReady());
  }
}

// ---- Reading private state (the same fields smtp-server's own _onTimeout reads) ----

/** The connection is ending or ended (`_closing`: close() was called; `_closed`: _onClose ran). */
export function isEnding(connection: SMTPConnection): boolean {
  return connection._closing || connection._closed;
}

/**
 * The client is sending bytes we cannot see as commands: a TLS handshake (`_upgrading`) or a
 * message (`_parser._dataMode`, true from the DATA reply to the final dot).
 */
export function isReadingStream(connection: SMTPConnection): boolean {
  const parser = connection._parser;
  return connection._upgrading || (parser !== false && parser._dataMode);
}

/**
 * A reply is ours to give: a hook is deciding (`_handlerPending`), or the message is in and the
 * onData handler has not called back (`_dataStream` set while the parser left data mode).
 */
export function owesReply(connection: SMTPConnection): boolean {
  const parser = connection._parser;
  return (
    connection._handlerPending ||
    (connection._dataStream !== false &&
      connection._dataStream !== null &&
      parser !== false &&
      !parser._dataMode)
  );
}

/** The socket smtp-server reads from now: the raw one, the TLS one once STARTTLS succeeded. */
export function connectionSocket(connection: SMTPConnection): Socket {
  return connection._socket;
}

/**
 * smtp-server's reaction to its idle timer (`_onTimeout`): destroys a socket already closing,
 * re-arms while a reply is owed (through `_armTimeout`), else answers 421 and closes.
 */
export function timeOut(connection: SMTPConnection): void {
  connection._onTimeout();
}
