// domsec serve: run the transport engine and its admin API. Starts from the manifests (-f), or
// from the configuration applied before the last stop (kept in the state directory), or empty;
// manifests that do not validate or weaken it leave it on that saved generation, Ready=False.
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import {
  formatDiagnostics,
  loadConfiguration,
  withSchemaDefaults,
  type LoadResult,
} from '../config/index.js';
import { startControlServer } from '../control/server.js';
import { ControlClient } from '../control/client.js';
import {
  ApplyNotCommittedError,
  defaultLogFormat,
  Engine,
  LOG_LEVELS,
  pinoLog,
  StateDirectoryError,
  StateLockedError,
  StateLockError,
  type EngineLog,
  type LogFormat,
  type LogLevel,
} from '../engine/index.js';
import type { RuntimeConfig } from '../model.js';
import { passGate, savedGenerationState } from '../reconcile/gate.js';
import { isLoopback } from '../reconcile/loopback.js';
import { withRevision } from '../reconcile/source.js';
import { describeConfig } from '../objects.js';
import { keptConfigReader } from '../control/kept-generations.js';
import { watchManifests } from '../reconcile/watch.js';
import { parseHostPort } from '../units.js';
import { usableCores } from './cores.js';
import { CliError } from './errors.js';
import { WARNINGS_PER_CODE } from './manifests.js';
import { progressStep } from './progress.js';
import { parseResync, parseSettle, watchEventLine } from './watch.js';
import { jsonText, type Output, type OutputFormat } from './output.js';

export interface ServeOptions {
  file?: string[];
  state: string;
  admin?: string;
  watch: boolean;
  /** With --watch: also reconcile at this interval, correcting drift. */
  resync?: string;
  /** With --watch: how long every file read must be quiet before a change is taken. */
  settle?: string;
  /** With --watch: delete objects the manifests no longer hold. */
  prune?: boolean;
  /** With -f (at start, and with --watch): also apply manifests that weaken the saved generation. */
  approveWeakening?: boolean;
  /** json (default when standard error is not a terminal) or pretty. */
  logFormat?: string;
  /** debug, info (default), warn or error. */
  logLevel?: string;
  /** json: the startup summary (and --watch's events) as one JSON object per line. */
  output?: OutputFormat;
  /** Receive processes sharing the listeners (docs/workers.md); the usable cores unless told. */
  workers?: string;
}

const DEFAULT_ADMIN = '127.0.0.1:8025';
/** Diagnostics named in the status's reason and the log line when manifests do not validate. */
const DIAGNOSTICS_NAMED = 3;
/** More receive workers than this is a typing error, not a machine. */
const MAX_WORKERS = 256;

export async function serveCommand(
  options: ServeOptions,
  out: Output,
  signal: AbortSignal,
): Promise<number> {
  const resyncMs = parseResync(options.resync);
  const settleMs = parseSettle(options.settle);
  const workers = parseWorkers(options.workers);
  const json = options.output === 'json';
  if (options.resync !== undefined && !options.watch)
    throw new CliError('--resync goes with --watch');
  if ((options.settle !== undefined || options.prune === true) && !options.watch)
    throw new CliError(`${options.prune === true ? '--prune' : '--settle'} goes with --watch`);
  if (options.watch && options.file === undefined)
    throw new CliError('--watch needs -f with the manifest directory');
  // Manifests that do not validate are not fatal yet: the state may hold a generation to start on.
  const load = options.file === undefined ? undefined : await readManifests(options.file, out);
  const log = pinoLog({
    write: (line) => out.stderr(line),
    ...logSettings(options),
    colorize: process.stderr.isTTY === true && (process.env.NO_COLOR ?? '') === '',
  });
  const engine = await openEngine(options.state, log, workers);
  const by = `serve -f ${(options.file ?? []).join(', ')}`;
  try {
    const invalid = load !== undefined && load.config === undefined ? load : undefined;
    if (invalid !== undefined && (await engine.lastApplied()) === undefined)
      throw new CliError(
        `${errorCount(invalid)} error(s) in the manifests and no saved generation in ${options.state} to start on; nothing was started`,
      );
    // Manifests that weaken the saved generation are refused here, before the admin address and
    // token are taken from them: the engine then comes up as it was.
    const desired =
      load?.config === undefined ? undefined : await withRevision(load.config, options.file ?? []);
    const refusal =
      invalid !== undefined
        ? {
            outcome: 'invalid' as const,
            error: invalidReason(invalid),
            said: `${errorCount(invalid)} error(s) in the manifests`,
          }
        : desired === undefined
          ? undefined
          : await startGate(engine, desired, options);
    const fromManifests = desired !== undefined && refusal === undefined;
    const initial = fromManifests ? desired : await engine.lastApplied();
    const admin = options.admin ?? initial?.organization.spec.admin.listen ?? DEFAULT_ADMIN;
    const listen = parseHostPort(admin);
    if (listen === undefined) throw new CliError(`--admin ${admin} is not host:port`);
    if (!isLoopback(listen.host)) {
      log.log('warn', 'admin.not-loopback', {
        listen: admin,
        hint: 'the admin API is reachable from the network',
      });
    }
    const token = await adminToken(initial, options.state);

    // From the state directory the engine comes back under the generation it had; manifests
    // given with -f are a new generation, once they pass the gate against that one.
    let result;
    try {
      result = fromManifests
        ? await engine.apply(desired, undefined, { by })
        : await engine.resume();
    } catch (error) {
      // At start there is no previous configuration to keep: say what stops the engine.
      const reason =
        error instanceof ApplyNotCommittedError ? error.reason : (error as Error).message;
      throw new CliError(
        `cannot start the engine from ${fromManifests ? 'the manifests' : `${options.state} (the configuration applied last)`}: ${reason}`,
      );
    }
    if (result !== undefined) {
      log.log('info', 'serve.started', {
        generation: result.generation,
        from: fromManifests ? 'manifests' : 'state',
      });
    }
    if (refusal !== undefined) {
      // Ready=False with the reason, as `domsec status` shows it, the metric and the log.
      await engine.recordOutcome({ outcome: refusal.outcome, error: refusal.error, by });
      engine.metrics.reconciled(refusal.outcome);
      log.log('warn', 'serve.manifests-refused', {
        outcome: refusal.outcome,
        reason: refusal.error,
        generation: engine.currentGeneration,
      });
      out.stdout(
        json
          ? jsonText(
              {
                event: 'refused',
                outcome: refusal.outcome,
                reason: refusal.said,
                generation: engine.currentGeneration,
              },
              true,
            )
          : `Refused the manifests: ${refusal.said}; the engine runs its saved generation ${engine.currentGeneration}.\n`,
      );
    }
    let control;
    try {
      control = await startControlServer({
        engine,
        host: listen.host,
        port: listen.port,
        token: token.value,
        log,
        keptConfig: keptConfigReader(options.state, withSchemaDefaults),
      });
    } catch (error) {
      throw new CliError(
        `cannot listen on the admin address ${admin} (${codeOf(error)}): give another with --admin or the Organization's admin.listen`,
      );
    }
    out.stdout(
      json
        ? jsonText(
            {
              event: 'ready',
              generation: engine.currentGeneration,
              admin: control.url,
              token: token.file === undefined ? { from: 'DOMSEC_TOKEN' } : { file: token.file },
            },
            true,
          )
        : `domsec engine ready: generation ${engine.currentGeneration}, admin API ${control.url} (token: ${token.where})\n`,
    );
    // Until a signal, or until the engine stops by itself (its state lock was lost).
    const running = AbortSignal.any([signal, engine.halted]);
    if (options.watch && options.file !== undefined) {
      await watchManifests({
        paths: options.file,
        client: new ControlClient(control.url, token.value),
        signal: running,
        print: (text) => out.stdout(text),
        ...(json ? { report: (event) => out.stdout(watchEventLine(event)) } : {}),
        approveWeakening: options.approveWeakening === true,
        prune: options.prune === true,
        ...(resyncMs === undefined ? {} : { resyncMs }),
        ...(settleMs === undefined ? {} : { settleMs }),
      });
    } else if (!running.aborted) {
      await new Promise<void>((done) =>
        running.addEventListener('abort', () => done(), { once: true }),
      );
    }
    await stop(engine, log, signal);
    await control.close();
    if (engine.halted.aborted)
      throw new CliError(`the engine stopped: ${(engine.halted.reason as Error).message}`);
  } finally {
    await engine.close();
  }
  return 0;
}

/** Engine.open's refusals (the state in use, not a directory, no flock) as one line each. */
async function openEngine(stateDir: string, log: EngineLog, workers: number): Promise<Engine> {
  try {
    // A configuration kept by an older domsec gets the defaults of fields added since.
    return await Engine.open({ stateDir, log, upgradeConfig: withSchemaDefaults, workers });
  } catch (error) {
    if (
      error instanceof StateLockedError ||
      error instanceof StateLockError ||
      error instanceof StateDirectoryError
    )
      throw new CliError(error.message);
    throw error;
  }
}

/**
 * --workers: a whole number from 1 to MAX_WORKERS; unless told, as many as the cores this
 * process may use (1: one process, no workers).
 */
function parseWorkers(given: string | undefined): number {
  if (given === undefined) return Math.min(usableCores(), MAX_WORKERS);
  const workers = /^[0-9]{1,4}$/.test(given) ? Number(given) : Number.NaN;
  if (!(workers >= 1 && workers <= MAX_WORKERS))
    throw new CliError(`--workers ${given}: expected a whole number from 1 to ${MAX_WORKERS}`);
  return workers;
}

/** Drains the engine, saying why it stops and what it waited for. */
async function stop(engine: Engine, log: EngineLog, signal: AbortSignal): Promise<void> {
  const why = signal.aborted ? String(signal.reason ?? 'signal') : 'state lock lost';
  log.log('info', 'serve.stopping', { signal: why, generation: engine.currentGeneration });
  const started = performance.now();
  const drained = await engine.shutdown();
  log.log('info', 'serve.stopped', {
    signal: why,
    drainedSessions: drained.sessions,
    drainedDeliveries: drained.deliveries,
    ms: Math.round(performance.now() - started),
  });
}

/** The manifests, their diagnostics printed; a result without config when they have errors. */
async function readManifests(paths: string[], out: Output): Promise<LoadResult> {
  const load = await progressStep()(`Reading manifests from ${paths.join(', ')}`, () =>
    loadConfiguration(paths),
  );
  if (load.diagnostics.length > 0)
    out.stderr(formatDiagnostics(load.diagnostics, { warningsPerCode: WARNINGS_PER_CODE }));
  return load;
}

function errorCount(load: LoadResult): number {
  return load.diagnostics.filter((d) => d.severity === 'error').length;
}

/** The first errors, each as code file:line:col message, for the status and the log. */
function invalidReason(load: LoadResult): string {
  const errors = load.diagnostics.filter((d) => d.severity === 'error');
  const named = errors
    .slice(0, DIAGNOSTICS_NAMED)
    .map((d) => `${d.code} ${d.file}:${d.line}:${d.col} ${d.message}`);
  const more =
    errors.length > DIAGNOSTICS_NAMED ? `; and ${errors.length - DIAGNOSTICS_NAMED} more` : '';
  return `${errors.length} error(s) in the manifests: ${named.join('; ')}${more}`;
}

function codeOf(error: unknown): string {
  return (error as NodeJS.ErrnoException).code ?? (error as Error).message;
}

/**
 * Manifests given with -f on a state directory that has a saved generation go through the gate
 * as any apply does; the refusal when they weaken it without --approve-weakening, else undefined.
 * Without a saved generation the manifests are the first configuration, which nothing gates.
 */
async function startGate(
  engine: Engine,
  desired: RuntimeConfig,
  options: ServeOptions,
): Promise<{ outcome: 'failed'; error: string; said: string } | undefined> {
  const saved = await engine.lastApplied();
  if (saved === undefined) return undefined;
  // engine.resume() brings the saved configuration back under the last generation number.
  const generation = Math.max(1, ...engine.history().map((entry) => entry.generation));
  const outcome = await passGate({
    desired: describeConfig(desired),
    actual: savedGenerationState(saved, generation),
    approval: { kind: 'unattended', approveWeakening: options.approveWeakening === true },
    print: () => undefined, // serve prints the refusal, or the generation it starts on
  });
  return outcome.status === 'refused'
    ? { outcome: 'failed', error: outcome.message, said: outcome.message }
    : undefined;
}

/** --log-format and --log-level, checked; pretty on a terminal unless told. */
function logSettings(options: ServeOptions): { format: LogFormat; level: LogLevel } {
  const format = options.logFormat ?? defaultLogFormat();
  if (format !== 'json' && format !== 'pretty')
    throw new CliError(`--log-format ${format}: expected json or pretty`);
  const level = options.logLevel ?? 'info';
  if (!(LOG_LEVELS as readonly string[]).includes(level))
    throw new CliError(`--log-level ${level}: expected ${LOG_LEVELS.join(', ')}`);
  return { format, level: level as LogLevel };
}

/** DOMSEC_TOKEN, else the token file (the manifest's, or state/admin.token), made when missing. */
async function adminToken(
  config: RuntimeConfig | undefined,
  stateDir: string,
): Promise<{ value: string; where: string; file?: string }> {
  const fromEnvironment = process.env.DOMSEC_TOKEN;
  if (fromEnvironment !== undefined && fromEnvironment !== '')
    // Said on the ready line: a shell that exported another engine's token starts this one
    // with it, and no admin.token appears in the state directory.
    return { value: fromEnvironment, where: 'DOMSEC_TOKEN; no token file written' };
  const file = config?.organization.spec.admin.tokenFile ?? join(resolve(stateDir), 'admin.token');
  try {
    const value = (await readFile(file, 'utf8')).trim();
    if (value !== '') return { value, where: file, file };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT')
      throw new CliError(`cannot read the admin token file ${file} (${codeOf(error)})`);
  }
  const value = randomBytes(32).toString('base64url');
  try {
    await writeFile(file, `${value}\n`, { mode: 0o600, flag: 'w' });
  } catch (error) {
    throw new CliError(`cannot write the admin token file ${file} (${codeOf(error)})`);
  }
  return { value, where: file, file };
}

/** An address on this machine only: `localhost`, ::1 or 127.0.0.0/8. */
export { isLoopback };
