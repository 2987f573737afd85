// domsec serve: run the transport engine and its admin API. Starts from the manifests (-f), or
// from the configuration applied before the last stop (kept in the state directory), or empty.
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { withSchemaDefaults } from '../config/index.js';
import { startControlServer } from '../control/server.js';
import { ControlClient } from '../control/client.js';
import { Engine } from '../engine/engine.js';
import {
  defaultLogFormat,
  LOG_LEVELS,
  pinoLog,
  type LogFormat,
  type LogLevel,
} from '../engine/log.js';
import type { RuntimeConfig } from '../model.js';
import { passGate, savedGenerationState } from '../reconcile/gate.js';
import { isLoopback } from '../reconcile/loopback.js';
import { withRevision } from '../reconcile/source.js';
import { describeConfig } from '../objects.js';
import { keptConfigReader } from '../control/kept-generations.js';
import { watchManifests } from '../reconcile/watch.js';
import { parseHostPort } from '../units.js';
import { CliError } from './errors.js';
import { loadOrFail } from './manifests.js';
import { parseResync } from './watch.js';
import type { Output } from './output.js';

export interface ServeOptions {
  file?: string[];
  state: string;
  admin?: string;
  watch: boolean;
  /** With --watch: also reconcile at this interval, correcting drift. */
  resync?: string;
  /** With -f (at start, and with --watch): also apply manifests that weaken the saved generation. */
  approveWeakening?: boolean;
  /** json (default when standard error is not a terminal) or pretty. */
  logFormat?: string;
  /** debug, info (default), warn or error. */
  logLevel?: string;
}

const DEFAULT_ADMIN = '127.0.0.1:8025';

export async function serveCommand(
  options: ServeOptions,
  out: Output,
  signal: AbortSignal,
): Promise<number> {
  const resyncMs = parseResync(options.resync);
  if (options.resync !== undefined && !options.watch)
    throw new CliError('--resync goes with --watch');
  if (options.watch && options.file === undefined)
    throw new CliError('--watch needs -f with the manifest directory');
  const config =
    options.file === undefined ? undefined : (await loadOrFail(options.file, out)).config;
  const log = pinoLog({
    write: (line) => out.stderr(line),
    ...logSettings(options),
    colorize: process.stderr.isTTY === true && (process.env.NO_COLOR ?? '') === '',
  });
  // A configuration kept by an older domsec gets the defaults of fields added since.
  const engine = await Engine.open({
    stateDir: options.state,
    log,
    upgradeConfig: withSchemaDefaults,
  });
  try {
    // Manifests that weaken the saved generation are refused here, before the admin address and
    // token are taken from them: the engine then comes up as it was.
    const desired =
      config === undefined ? undefined : await withRevision(config, options.file ?? []);
    const refusal = desired === undefined ? undefined : await startGate(engine, desired, options);
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
      result = fromManifests ? await engine.apply(desired) : await engine.resume();
    } catch (error) {
      // At start there is no previous configuration to keep: say what stops the engine.
      const reason = (error as Error).message.replace(
        /; the previous configuration keeps running$/,
        '',
      );
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
      out.stdout(
        `Refused the manifests: ${refusal}; the engine runs its saved generation ${engine.currentGeneration}.\n`,
      );
      // Ready=False with the reason, as `domsec status` shows it.
      await engine.reportReconcile({
        outcome: 'failed',
        generation: engine.currentGeneration,
        error: refusal,
        reconciler: `serve -f ${(options.file ?? []).join(', ')}`,
      });
    }
    const control = await startControlServer({
      engine,
      host: listen.host,
      port: listen.port,
      token: token.value,
      log,
      keptConfig: keptConfigReader(options.state, withSchemaDefaults),
    });
    out.stdout(
      `domsec engine ready: generation ${engine.currentGeneration}, admin API ${control.url} (token: ${token.where})\n`,
    );
    if (options.watch && options.file !== undefined) {
      await watchManifests({
        paths: options.file,
        client: new ControlClient(control.url, token.value),
        signal,
        print: (text) => out.stdout(text),
        approveWeakening: options.approveWeakening === true,
        ...(resyncMs === undefined ? {} : { resyncMs }),
      });
    } else {
      await new Promise<void>((done) =>
        signal.addEventListener('abort', () => done(), { once: true }),
      );
    }
    await control.close();
  } finally {
    await engine.close();
  }
  return 0;
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
): Promise<string | undefined> {
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
  return outcome.status === 'refused' ? outcome.message : undefined;
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
): Promise<{ value: string; where: string }> {
  const fromEnvironment = process.env.DOMSEC_TOKEN;
  if (fromEnvironment !== undefined && fromEnvironment !== '')
    return { value: fromEnvironment, where: 'DOMSEC_TOKEN' };
  const file = config?.organization.spec.admin.tokenFile ?? join(resolve(stateDir), 'admin.token');
  try {
    const value = (await readFile(file, 'utf8')).trim();
    if (value !== '') return { value, where: file };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const value = randomBytes(32).toString('base64url');
  await writeFile(file, `${value}\n`, { mode: 0o600, flag: 'w' });
  return { value, where: file };
}

/** An address on this machine only: `localhost`, ::1 or 127.0.0.0/8. */
export { isLoopback };
