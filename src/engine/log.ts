// The engine's event log: one JSON object per line, so operators can grep and ship it.
// Never pass a private key, a token or a message body in fields.

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export interface EngineLog {
  log(level: LogLevel, event: string, fields?: Record<string, unknown>): void;
}

export function jsonLog(
  write: (line: string) => void = (line) => process.stderr.write(line),
  minimum: LogLevel = 'info',
): EngineLog {
  const order: LogLevel[] = ['debug', 'info', 'warn', 'error'];
  const floor = order.indexOf(minimum);
  return {
    log(level, event, fields = {}) {
      if (order.indexOf(level) < floor) return;
      write(`${JSON.stringify({ time: new Date().toISOString(), level, event, ...fields })}\n`);
    },
  };
}

/** A log that keeps its entries, for tests and for the control API's recent events. */
export function memoryLog(): EngineLog & {
  entries: { level: LogLevel; event: string; fields: Record<string, unknown> }[];
} {
  const entries: { level: LogLevel; event: string; fields: Record<string, unknown> }[] = [];
  return { entries, log: (level, event, fields = {}) => entries.push({ level, event, fields }) };
}
