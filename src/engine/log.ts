// The engine's event log: structured events written by pino, one JSON object per line (or a
// readable pretty form on a terminal), so operators can grep and ship it. Never pass a private
// key, a token or a message body in fields; the paths below are redacted in case one slips in.
import { pino, type DestinationStream } from 'pino';
import { prettyFactory } from 'pino-pretty';
import { SECRET_FIELDS } from '../secret-fields.js';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type LogFormat = 'json' | 'pretty';

export const LOG_LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error'];

export interface EngineLog {
  log(level: LogLevel, event: string, fields?: Record<string, unknown>): void;
}

/** Fields that could carry a secret (secret-fields.ts); redacted at the top level and one level down. */
const REDACTED = SECRET_FIELDS.flatMap((name) => [name, `*.${name}`]);

export interface PinoLogOptions {
  /** Where lines go; standard error by default. */
  write?: (line: string) => void;
  level?: LogLevel;
  format?: LogFormat;
  /** Colours in the pretty form (a terminal that allows them). */
  colorize?: boolean;
}

/** EngineLog on pino: `{"level":"info","time":"…","event":"queue.accepted",…}` per line. */
export function pinoLog(options: PinoLogOptions = {}): EngineLog {
  const write = options.write ?? ((line: string) => process.stderr.write(line));
  // The pretty form is formatted in this thread, line by line: no worker, nothing lost on exit.
  const pretty =
    options.format === 'pretty'
      ? prettyFactory({
          colorize: options.colorize ?? false,
          messageKey: 'event',
          translateTime: 'SYS:HH:MM:ss.l',
          ignore: 'pid,hostname',
        })
      : undefined;
  const destination: DestinationStream =
    pretty === undefined ? { write } : { write: (line) => write(pretty(line)) };
  const logger = pino(
    {
      level: options.level ?? 'info',
      base: undefined,
      messageKey: 'event',
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      redact: { paths: REDACTED, censor: '[redacted]' },
    },
    destination,
  );
  return {
    log(level, event, fields = {}) {
      logger[level](fields, event);
    },
  };
}

/** The format serve uses unless told: pretty for a person at a terminal, JSON for a collector. */
export function defaultLogFormat(stream: { isTTY?: boolean } = process.stderr): LogFormat {
  return stream.isTTY === true ? 'pretty' : 'json';
}

/** JSON lines to a writer at a minimum level: the form serve used before --log-format. */
export function jsonLog(
  write: (line: string) => void = (line) => process.stderr.write(line),
  minimum: LogLevel = 'info',
): EngineLog {
  return pinoLog({ write, level: minimum, format: 'json' });
}

/** A log that keeps its entries, for tests and for the control API's recent events. */
export function memoryLog(): EngineLog & {
  entries: { level: LogLevel; event: string; fields: Record<string, unknown> }[];
} {
  const entries: { level: LogLevel; event: string; fields: Record<string, unknown> }[] = [];
  return { entries, log: (level, event, fields = {}) => entries.push({ level, event, fields }) };
}
