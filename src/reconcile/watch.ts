// Continuous reconciliation from a manifest directory: every save (debounced, editors' temp files
// and atomic renames included) is validated, planned and applied; a broken edit is reported and the
// engine keeps its last good configuration.
import { watch as watchFiles } from 'chokidar';
import { stat } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { formatDiagnostics } from '../config/index.js';
import type { ControlClient } from '../control/client.js';
import { applyReconciliation, planFromManifests } from './reconcile.js';
import { judgePlan } from './gate.js';

export interface WatchOptions {
  paths: string[];
  client: ControlClient;
  signal: AbortSignal;
  print: (text: string) => void;
  debounceMs?: number;
  /** Reconcile this often even without a change, correcting drift (a replaced certificate file). */
  resyncMs?: number;
  /** Named in the status reported to the engine after each attempt. */
  reconciler?: string;
  /**
   * Apply changes that weaken domain security too (DESIGN: watch applies them only when started
   * with --approve-weakening); without it they are refused, printed and reported.
   */
  approveWeakening?: boolean;
  /** Called after each reconciliation, for tests and progress displays. */
  onReconciled?: (outcome: WatchOutcome) => void;
}

export type WatchOutcome =
  | { status: 'applied'; generation: number }
  | { status: 'unchanged' }
  | { status: 'invalid'; errors: number }
  | { status: 'failed'; message: string };

/** A manifest written or a directory changed this recently may be half-way through a save. */
const SETTLE_MS = 100;
/** An empty manifest this recent is taken for a save in progress (truncated, not yet written). */
const EMPTY_SETTLE_MS = 2_000;
/** Attempts put off while files settle, before the manifests are taken as they are. */
const MAX_SETTLE_ATTEMPTS = 30;

export async function watchManifests(options: WatchOptions): Promise<void> {
  const debounceMs = options.debounceMs ?? 100;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> = Promise.resolve();
  let pending = false;

  let settleAttempts = 0;
  const reconcile = async (): Promise<void> => {
    const started = performance.now();
    const outcome = await reconcileOnce(options, settleAttempts < MAX_SETTLE_ATTEMPTS);
    if (outcome === 'settling') {
      // Read again shortly: what was read may be a file between its truncation and its write.
      settleAttempts++;
      setTimeout(schedule, SETTLE_MS).unref();
      return;
    }
    settleAttempts = 0;
    await reportOutcome(options, outcome, performance.now() - started);
    options.onReconciled?.(outcome);
  };
  const schedule = () => {
    if (timer !== undefined) clearTimeout(timer);
    timer = setTimeout(() => {
      timer = undefined;
      if (pending) return;
      pending = true;
      // Reconciliations never overlap: the next one starts after the previous has finished.
      running = running.then(() => {
        pending = false;
        return reconcile();
      });
    }, debounceMs);
  };

  const watcher = watchFiles(options.paths, {
    ignoreInitial: true,
    ignored: (path: string) => isIgnored(basename(path)),
    awaitWriteFinish: { stabilityThreshold: 50, pollInterval: 20 },
  });
  watcher.on('all', (_event, path) => {
    if (/\.ya?ml$/.test(path)) schedule();
  });
  await new Promise<void>((resolve) => watcher.once('ready', () => resolve()));
  options.print(`Watching ${options.paths.join(', ')} (engine ${options.client.url}).\n`);
  schedule(); // reconcile once at start, as Flux does
  const resync =
    options.resyncMs === undefined ? undefined : setInterval(schedule, options.resyncMs);

  await new Promise<void>((resolve) => {
    if (options.signal.aborted) resolve();
    else options.signal.addEventListener('abort', () => resolve(), { once: true });
  });
  if (timer !== undefined) clearTimeout(timer);
  if (resync !== undefined) clearInterval(resync);
  await watcher.close();
  await running;
}

async function reconcileOnce(
  options: WatchOptions,
  waitForSaves: boolean,
): Promise<WatchOutcome | 'settling'> {
  try {
    const reconciliation = await planFromManifests(options.paths, options.client);
    // Never apply a half-written save: chokidar waits for a file to settle before it reports
    // it, but the directory is read whole, after any event, and an editor may be mid-save on
    // another file (or this one again) by then.
    if (waitForSaves && (await savesInProgress(options.paths, reconciliation.load.files))) {
      return 'settling';
    }
    const errors = reconciliation.load.diagnostics.filter((d) => d.severity === 'error');
    if (reconciliation.plan === undefined) {
      options.print(formatDiagnostics(reconciliation.load.diagnostics, { warningsPerCode: 3 }));
      options.print(
        `Refused: ${errors.length} error(s); the engine keeps its current configuration.\n`,
      );
      return { status: 'invalid', errors: errors.length };
    }
    // Quiet while nothing changes: a resync finding nothing prints nothing.
    if (reconciliation.plan.changes.length === 0) return { status: 'unchanged' };
    const outcome = await judgePlan(reconciliation.plan, {
      approval: { kind: 'unattended', approveWeakening: options.approveWeakening === true },
      print: options.print,
    });
    if (outcome.status === 'refused') {
      options.print(`Refused: ${outcome.message}; the engine keeps its current configuration.\n`);
      return { status: 'failed', message: outcome.message };
    }
    const result = await applyReconciliation(reconciliation, options.client);
    options.print(`Applied: the engine runs generation ${result.generation}.\n`);
    return { status: 'applied', generation: result.generation };
  } catch (error) {
    const message = (error as Error).message;
    options.print(`Apply failed: ${message}\n`);
    return { status: 'failed', message };
  }
}

/**
 * Whether a manifest file or directory changed within SETTLE_MS (a save under way, or a file
 * renamed away by an editor keeping a backup), or a manifest is empty and fresh (truncated, its
 * content not yet written).
 */
async function savesInProgress(roots: string[], files: string[]): Promise<boolean> {
  const directories = new Set([...roots, ...files.map((file) => dirname(file))]);
  const now = Date.now();
  for (const path of [...directories, ...files]) {
    let info;
    try {
      info = await stat(path);
    } catch {
      return true; // gone since it was read: a rename or a delete under way
    }
    const age = now - info.mtimeMs;
    if (age < SETTLE_MS) return true;
    if (info.isFile() && info.size === 0 && age < EMPTY_SETTLE_MS) return true;
  }
  return false;
}

/** Tells the engine how the attempt went (`domsec status`); a failure to tell is printed, not fatal. */
async function reportOutcome(
  options: WatchOptions,
  outcome: WatchOutcome,
  durationMs: number,
): Promise<void> {
  try {
    const generation =
      outcome.status === 'applied' ? outcome.generation : (await options.client.state()).generation;
    await options.client.reportStatus({
      outcome: outcome.status,
      generation,
      error:
        outcome.status === 'failed'
          ? outcome.message
          : outcome.status === 'invalid'
            ? `${outcome.errors} error(s) in the manifests`
            : null,
      reconciler: options.reconciler ?? `watch ${options.paths.join(', ')}`,
      durationMs: Math.round(durationMs),
    });
  } catch (error) {
    options.print(`Could not report the reconcile status: ${(error as Error).message}\n`);
  }
}

/** Hidden files and editors' temporary files (Emacs .#x and #x#, Vim .swp, backups x~). */
export function isIgnored(name: string): boolean {
  if (name === '.' || name === '..') return false;
  return (
    name.startsWith('.') ||
    name.startsWith('#') ||
    name.endsWith('~') ||
    /\.(swp|swx|tmp)$/.test(name)
  );
}
