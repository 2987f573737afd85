// Durations ("90s", "15m", "2d"), sizes ("25MB", "512KB") and endpoints ("host:port",
// "[v6]:port") as manifests, logs and the status write them. Shared by config (validation), the
// engine (timers, limits, listener keys, protocol log) and the control plane: one grammar each.

const DURATION = /^(\d+)(ms|s|m|h|d)$/;
const DURATION_UNITS: Record<string, number> = {
  ms: 1,
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

/** Milliseconds of a duration such as "15m"; undefined when it is not one. */
export function parseDuration(text: string): number | undefined {
  const match = DURATION.exec(text.trim());
  if (!match) return undefined;
  return Number(match[1]) * (DURATION_UNITS[match[2] ?? ''] ?? Number.NaN);
}

export function requireDuration(text: string): number {
  const ms = parseDuration(text);
  if (ms === undefined) throw new RangeError(`not a duration: ${JSON.stringify(text)}`);
  return ms;
}

const SIZE = /^(\d+)(B|KB|MB|GB)?$/i;
const SIZE_UNITS: Record<string, number> = { B: 1, KB: 1024, MB: 1024 ** 2, GB: 1024 ** 3 };

/** Bytes of a size such as "25MB" (binary multiples, as Exchange's limits); undefined when not one. */
export function parseSize(text: string | number): number | undefined {
  if (typeof text === 'number') return Number.isSafeInteger(text) && text >= 0 ? text : undefined;
  const match = SIZE.exec(text.trim());
  if (!match) return undefined;
  return Number(match[1]) * (SIZE_UNITS[(match[2] ?? 'B').toUpperCase()] ?? Number.NaN);
}

export function requireSize(text: string | number): number {
  const bytes = parseSize(text);
  if (bytes === undefined) throw new RangeError(`not a size: ${JSON.stringify(text)}`);
  return bytes;
}

/** "host:port" or "[v6]:port" into its parts. */
export function parseHostPort(text: string): { host: string; port: number } | undefined {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text.trim());
  if (!match) return undefined;
  const port = Number(match[3]);
  if (port > 65535) return undefined;
  return { host: (match[1] ?? match[2]) as string, port };
}

/**
 * "192.0.2.1:25", "[2001:db8::1]:25", "mail.adatum.com:25": the one way an endpoint is written
 * (protocol log, listener keys, status, errors), which parseHostPort reads back. A host with a
 * colon is an IPv6 literal and goes in brackets.
 */
export function formatEndpoint(host: string, port: number | string): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}
