// smtp-server reports every command it reads ("C:") and every reply it writes ("S:") to its
// bunyan-style logger, keyed by session id; this adapter turns those into protocol log lines.
export type TraceLine = (sessionId: string, event: '<' | '>', data: string) => void;

/** The fields smtp-server puts first in each log call (see its SMTPConnection). */
interface TraceEntry {
  tnx?: unknown;
  cid?: unknown;
}

type LogCall = (entry?: TraceEntry | string, message?: unknown, ...args: unknown[]) => void;

export interface SmtpServerLogger {
  trace: LogCall;
  debug: LogCall;
  info: LogCall;
  warn: LogCall;
  error: LogCall;
  fatal: LogCall;
}

/**
 * A logger for smtp-server's `logger` option. AUTH lines arrive redacted by smtp-server, and DATA
 * content never passes through its command trace, so nothing secret or private reaches `line`.
 */
export function smtpServerLogger(line: TraceLine): SmtpServerLogger {
  const ignore: LogCall = () => undefined;
  return {
    trace: ignore,
    debug(entry, _message, ...args) {
      if (typeof entry !== 'object' || typeof entry.cid !== 'string') return;
      const text = typeof args[0] === 'string' ? args[0] : '';
      if (entry.tnx === 'command') line(entry.cid, '<', text);
      else if (entry.tnx === 'send') line(entry.cid, '>', text);
    },
    info: ignore,
    warn: ignore,
    // Connection failures also reach the server's 'error' event, where the listener logs them.
    error: ignore,
    fatal: ignore,
  };
}
