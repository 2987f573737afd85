// Continuous reconciliation from a manifest directory: a save is taken once every file watch reads
// has been quiet for the settle window, then validated, planned and applied (deleting only with
// --prune); a broken edit is reported and the engine keeps its last good configuration.
import { resolve } from 'node:path';
import { formatDiagnostics, loadConfiguration } from '../config/index.js';
import { displayPath } from '../config/manifest-files.js';
import type { ControlClient } from '../control/client.js';
import type { Diagnostic, Plan, ReconcileReport, RuntimeConfig } from '../model.js';
import { describeConfig } from '../objects.js';
import { FileWatcher } from './file-watcher.js';
import { judgePlan } from './gate.js';
import { computePlan } from './plan.js';
import { applyReconciliation } from './reconcile.js';
import { keepDroppedObjects } from './retained-objects.js';
import { SettleWindow } from './settle-window.js';
import { withRevision } from './source.js';
import {
  differences,
  digest,
  lookAt,
  newlySeen,
  quietFor,
  WatchedFiles,
  type FileLooks,
} from './watched-files.js';

export interface WatchOptions {
  paths: string[];
  client: ControlClient;
  signal: AbortSignal;
  print: (text: string) => void;
  /** Each event as data (`watch -o json`); when given, print is not called. */
  report?: (event: WatchEvent) => void;
  /** Every file watch reads must be quiet this long before a change is taken (default 1 s). */
  settleMs?: number;
  /** Delete objects the manifests no longer hold; without it they are kept and reported. */
  prune?: boolean;
  /** How often replaced roots are looked for, and watching retried while it cannot (1 s). */
  retryMs?: number;
  /** Reconcile this often even without a change, correcting drift (a replaced certificate file). */
  resyncMs?: number;
  /** Named in the status reported to the engine after each attempt. */
  reconciler?: string;
  /**
   * How often the last report is sent again while nothing changes (default 60 s): the engine
   * lets a reconciler's entry lapse after three missed beats, so a quiet watch must still beat.
   */
  heartbeatMs?: number;
  /**
   * Apply changes that weaken domain security too (DESIGN: watch applies them only when started
   * with --approve-weakening); without it they are refused, printed and reported.
   */
  approveWeakening?: boolean;
  /** Called after each reconciliation, for tests and progress displays. */
  onReconciled?: (outcome: WatchOutcome) => void;
}

/** What watch says as it runs: `text` is the line print shows, the rest the same as data. */
export interface WatchEvent {
  event:
    | 'watching'
    | 'not-watching'
    | 'resync'
    | 'invalid'
    | 'kept'
    | 'plan'
    | 'refused'
    | 'applied'
    | 'failed';
  text: string;
  paths?: string[];
  diagnostics?: Diagnostic[];
  kept?: string[];
  plan?: Plan;
  generation?: number;
}

function say(options: WatchOptions, event: WatchEvent): void {
  if (options.report === undefined) options.print(event.text);
  else options.report(event);
}

export type WatchOutcome =
  /** kept: objects the manifests dropped that stay (`Kind/name`), without --prune. */
  | { status: 'applied'; generation: number; kept: string[] }
  | { status: 'unchanged'; kept: string[] }
  | { status: 'invalid'; errors: number }
  | { status: 'failed'; message: string };

/** How long every file watch reads must be quiet before a change is taken (--settle). */
export const DEFAULT_SETTLE_MS = 1_000;
/** How often the roots are looked at for a replacement, and watching retried while it cannot. */
const DEFAULT_RETRY_MS = 1_000;

export async function watchManifests(options: WatchOptions): Promise<void> {
  const settleMs = options.settleMs ?? DEFAULT_SETTLE_MS;
  const files = new WatchedFiles(options.paths.map((path) => resolve(path)));
  const session: WatchSession = { files, taken: undefined, memory: undefined, kept: '' };
  // One thing at a time: attempts and resyncs never overlap.
  let running: Promise<void> = Promise.resolve();
  const serially = (work: () => Promise<void>) => {
    running = running.then(work).catch((error: unknown) => {
      say(options, { event: 'failed', text: `Watch failed: ${(error as Error).message}\n` });
    });
  };

  const attempt = (looks: FileLooks) =>
    serially(async () => {
      if (!watcher.health.watching) return; // said in the status; the guard retries
      const started = performance.now();
      const outcome = await reconcileOnce(options, session, looks, settleMs);
      if (outcome === 'settling') {
        window.change(); // a file changed while it was read, or is new and fresh
        return;
      }
      watcher.follow(files.outsideRoots(files.referenced));
      await reportOutcome(options, outcome, performance.now() - started);
      options.onReconciled?.(outcome);
    });
  const window = new SettleWindow({
    windowMs: settleMs,
    look: () => lookAt(files.all),
    settled: attempt,
    failed: (error) =>
      say(options, {
        event: 'failed',
        text: `Could not look at the manifests: ${error.message}\n`,
      }),
  });

  const watcher = await FileWatcher.start({
    roots: files.roots,
    retryMs: options.retryMs ?? DEFAULT_RETRY_MS,
    changed: (path) => {
      if (path === undefined || files.concerns(path)) window.change();
    },
    health: (health) =>
      serially(async () => {
        if (health.watching) {
          say(options, {
            event: 'watching',
            text: `Watching ${options.paths.join(', ')} again.\n`,
            paths: options.paths,
          });
          return;
        }
        say(options, { event: 'not-watching', text: `Not watching: ${health.reason}.\n` });
        const outcome: WatchOutcome = { status: 'failed', message: health.reason };
        await reportOutcome(options, outcome, 0);
        options.onReconciled?.(outcome);
      }),
  });
  say(options, {
    event: 'watching',
    text: `Watching ${options.paths.join(', ')} (engine ${options.client.url}; settle ${settleMs} ms${options.prune === true ? '; prune' : ''}).\n`,
    paths: options.paths,
  });
  // Reconcile once at start, as Flux does: at once when the files are not being saved.
  attempt(await lookAt(files.all));

  // The last report again, unchanged (a failed or invalid attempt stays one), as the heartbeat.
  const heartbeat = setInterval(() => {
    const last = lastReports.get(options);
    if (last !== undefined)
      void serially(() =>
        options.client.reportStatus(last).then(
          () => undefined,
          () => undefined,
        ),
      );
  }, options.heartbeatMs ?? DEFAULT_HEARTBEAT_MS);
  const resync =
    options.resyncMs === undefined
      ? undefined
      : setInterval(
          () => serially(() => resyncOnce(options, session, window, attempt)),
          options.resyncMs,
        );

  await new Promise<void>((resolve) => {
    if (options.signal.aborted) resolve();
    else options.signal.addEventListener('abort', () => resolve(), { once: true });
  });
  if (resync !== undefined) clearInterval(resync);
  clearInterval(heartbeat);
  window.close();
  await watcher.close();
  await running;
}

/** What a watch remembers between attempts. */
interface WatchSession {
  files: WatchedFiles;
  /** Digests of the files as the last attempt read them: a resync compares contents with them. */
  taken: FileLooks | undefined;
  /** The last configuration loaded: certificates and anchors a save drops are kept from it. */
  memory: RuntimeConfig | undefined;
  /** The objects last kept without --prune (printed when that list changes). */
  kept: string;
}

/**
 * A resync: the files' contents compared with the ones last taken (a change that no event
 * reported, a time that did not move) open a settle window; unchanged files are reconciled at
 * once, which corrects drift in the engine.
 */
async function resyncOnce(
  options: WatchOptions,
  session: WatchSession,
  window: SettleWindow,
  attempt: (looks: FileLooks) => void,
): Promise<void> {
  if (window.open) return; // a change is already settling
  const digests = await digest(await session.files.discovered());
  const changed = session.taken === undefined ? [] : differences(session.taken, digests);
  if (changed.length > 0) {
    const paths = changed.map((path) => displayPath(path));
    say(options, { event: 'resync', text: `Resync: ${paths.join(', ')} changed.\n`, paths });
    window.change();
    return;
  }
  attempt(await lookAt(session.files.all));
}

async function reconcileOnce(
  options: WatchOptions,
  session: WatchSession,
  looks: FileLooks,
  settleMs: number,
): Promise<WatchOutcome | 'settling'> {
  try {
    const load = await loadConfiguration(options.paths);
    // Never apply a half-written save: what was read must be what the window saw settle, and
    // a file read for the first time (a certificate a new manifest names) must be quiet too.
    await session.files.update(load.files);
    const after = await lookAt(session.files.all);
    const changed = differences(looks, after).filter((path) => looks.has(path));
    if (changed.length > 0) return 'settling';
    if (!(await quietFor(newlySeen(looks, after), settleMs))) return 'settling';
    session.taken = await digest(await session.files.discovered());

    const errors = load.diagnostics.filter((d) => d.severity === 'error');
    if (load.config === undefined) {
      say(options, {
        event: 'invalid',
        text:
          formatDiagnostics(load.diagnostics, { warningsPerCode: 3 }) +
          `Refused: ${errors.length} error(s); the engine keeps its current configuration.\n`,
        diagnostics: load.diagnostics,
      });
      return { status: 'invalid', errors: errors.length };
    }
    const [loaded, state] = await Promise.all([
      withRevision(load.config, options.paths),
      options.client.state(),
    ]);
    // Without --prune nothing is deleted: what the manifests dropped is kept as it runs.
    const retention =
      options.prune === true
        ? { config: loaded, kept: [], unkeepable: [] }
        : keepDroppedObjects(loaded, state, session.memory);
    session.memory = retention.config;
    if (retention.unkeepable.length > 0) {
      const message = `the manifests no longer hold ${retention.unkeepable.join(', ')}, which watch cannot keep without --prune (its key or PEM is not known); restore it, or delete it with --prune or apply`;
      say(options, {
        event: 'refused',
        text: `Refused: ${message}; the engine keeps its current configuration.\n`,
      });
      return { status: 'failed', message };
    }
    const kept = retention.kept;
    if (kept.join(', ') !== session.kept) {
      session.kept = kept.join(', ');
      if (kept.length > 0)
        say(options, {
          event: 'kept',
          text: `Not deleting (watch runs without --prune): ${session.kept}.\n`,
          kept,
        });
    }
    const config = retention.config;
    const plan = computePlan(describeConfig(config), state);
    // Quiet while nothing changes: a resync finding nothing prints nothing.
    if (plan.changes.length === 0) return { status: 'unchanged', kept };
    const outcome = await judgePlan(plan, {
      approval: { kind: 'unattended', approveWeakening: options.approveWeakening === true },
      print: (text) => say(options, { event: 'plan', text, plan }),
    });
    if (outcome.status === 'refused') {
      say(options, {
        event: 'refused',
        text: `Refused: ${outcome.message}; the engine keeps its current configuration.\n`,
      });
      return { status: 'failed', message: outcome.message };
    }
    const result = await applyReconciliation({ load, state, config, plan }, options.client);
    say(options, {
      event: 'applied',
      text: `Applied: the engine runs generation ${result.generation}.\n`,
      generation: result.generation,
    });
    return { status: 'applied', generation: result.generation, kept };
  } catch (error) {
    const message = (error as Error).message;
    say(options, { event: 'failed', text: `Apply failed: ${message}\n` });
    return { status: 'failed', message };
  }
}

/** The last report of each running watch, sent again as its heartbeat. */
const lastReports = new WeakMap<WatchOptions, ReconcileReport>();
const DEFAULT_HEARTBEAT_MS = 60_000;

/** Tells the engine how the attempt went (`domsec status`); a failure to tell is printed, not fatal. */
async function reportOutcome(
  options: WatchOptions,
  outcome: WatchOutcome,
  durationMs: number,
): Promise<void> {
  try {
    const generation =
      outcome.status === 'applied' ? outcome.generation : (await options.client.state()).generation;
    const report: ReconcileReport = {
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
    };
    lastReports.set(options, report);
    await options.client.reportStatus(report);
  } catch (error) {
    say(options, {
      event: 'failed',
      text: `Could not report the reconcile status: ${(error as Error).message}\n`,
    });
  }
}
