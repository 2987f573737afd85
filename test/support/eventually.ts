// The one way tests wait for something that happens later: poll a probe, bounded in time, and
// fail with what was awaited and the last value seen.
import { inspect } from 'node:util';

export interface EventuallyOptions<T> {
  /** The bound: the wait fails once this much time has passed (10 s unless told). */
  timeoutMs?: number;
  /** Time between two probes (50 ms unless told). */
  intervalMs?: number;
  /** When the value counts as arrived; without it, anything but undefined, null and false. */
  until?: (value: T) => boolean;
  /** Added to the error of a timed-out wait: state that explains it (a peer's log). */
  explain?: () => unknown;
}

const DEFAULT_TIMEOUT_MS = 10_000;
const DEFAULT_INTERVAL_MS = 50;
/** The last value is shown at most this long: a wait must not flood the output. */
const SHOWN_CHARACTERS = 500;

/** The error of a wait that ran out of time (a probe's own error ends the wait as it is). */
export class WaitTimedOut extends Error {
  override name = 'WaitTimedOut';
}

type Arrived<T> = Exclude<T, undefined | null | false>;

/**
 * Resolves with the probe's value once it has arrived (see `until`); rejects when `timeoutMs` has
 * passed, with `what` and the last value the probe returned. A probe that throws ends the wait.
 * The third argument is the timeout in ms, or the options.
 */
export function eventually<T>(
  what: string,
  probe: () => T | Promise<T>,
  options: EventuallyOptions<T> & { until: (value: T) => boolean },
): Promise<T>;
export function eventually<T>(
  what: string,
  probe: () => T | Promise<T>,
  options?: number | EventuallyOptions<T>,
): Promise<Arrived<T>>;
export async function eventually<T>(
  what: string,
  probe: () => T | Promise<T>,
  options: number | EventuallyOptions<T> = {},
): Promise<T> {
  const {
    timeoutMs = DEFAULT_TIMEOUT_MS,
    intervalMs = DEFAULT_INTERVAL_MS,
    until = arrived,
    explain,
  } = typeof options === 'number' ? { timeoutMs: options } : options;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (until(value)) return value;
    if (Date.now() >= deadline) {
      let message = `timed out after ${timeoutMs} ms waiting for ${what}; last seen: ${shown(value)}`;
      if (explain !== undefined) message += `\n${String(await explain())}`;
      throw new WaitTimedOut(message);
    }
    await new Promise((resolve) => setTimeout(resolve, Math.min(intervalMs, timeoutMs)));
  }
}

function arrived(value: unknown): boolean {
  return value !== undefined && value !== null && value !== false;
}

function shown(value: unknown): string {
  const text = inspect(value, { depth: 3, breakLength: Infinity, maxArrayLength: 20 });
  return text.length > SHOWN_CHARACTERS ? `${text.slice(0, SHOWN_CHARACTERS)}…` : text;
}
