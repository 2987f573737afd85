// `npx domsec serve` runs as npm exec -> sh -> node: npm passes a SIGTERM to that shell only,
// which dies without passing it on, and the engine would run on with no parent. Under npm exec,
// the parent's end is taken as our SIGTERM.

/** How often the parent is looked at: a stopped wrapper is followed within this time. */
const CHECK_INTERVAL_MS = 500;

export interface LauncherWatch {
  /** The environment the process started with (npm exec sets npm_command=exec). */
  env?: NodeJS.ProcessEnv;
  /** The current parent's PID; process.ppid reads it anew each time. */
  parentPid?: () => number;
  intervalMs?: number;
  /** Told once when the launcher is gone, before the abort. */
  onLauncherExit?: (parentPid: number) => void;
}

/**
 * Aborts controller with 'SIGTERM' once the process that started us is gone, when that process
 * is npm exec's shell (npx). Outside npm exec nothing is watched: `domsec serve &` from a shell,
 * nohup or a service manager keep their usual meaning. Returns a function that stops watching.
 */
export function abortWhenLauncherExits(
  controller: AbortController,
  options: LauncherWatch = {},
): () => void {
  const env = options.env ?? process.env;
  if (env.npm_command !== 'exec') return () => undefined;
  const parentPid = options.parentPid ?? (() => process.ppid);
  const launcher = parentPid();
  const timer = setInterval(() => {
    if (parentPid() === launcher || controller.signal.aborted) return;
    clearInterval(timer);
    options.onLauncherExit?.(launcher);
    controller.abort('SIGTERM');
  }, options.intervalMs ?? CHECK_INTERVAL_MS);
  timer.unref(); // never what keeps the process alive
  controller.signal.addEventListener('abort', () => clearInterval(timer), { once: true });
  return () => clearInterval(timer);
}
