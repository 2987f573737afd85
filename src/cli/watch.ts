// domsec watch: reconcile the engine from a manifest directory on every settled change and every
// --resync interval, reporting each attempt to the engine (`domsec status`), until interrupted.
import type { Command } from 'commander';
import { loadConfiguration } from '../config/index.js';
import { watchManifests, type WatchEvent } from '../reconcile/watch.js';
import { requireDuration } from '../units.js';
import { CliError, commandAction } from './errors.js';
import { fileOption, manifestPaths } from './manifests.js';
import { formatOption, jsonText, processOutput, type Output, type OutputFormat } from './output.js';
import { addTargetOptions, connectEngine, type TargetOptions } from './target.js';

export interface WatchCommandOptions extends TargetOptions {
  file: string[];
  /** A duration ("5m", "30s"): reconcile this often even without a change. */
  resync?: string;
  /** Apply changes that weaken domain security too (otherwise refused and reported). */
  approveWeakening: boolean;
  /** A duration ("1s"): how long every file read must be quiet before a change is taken. */
  settle?: string;
  /** Delete objects the manifests no longer hold (otherwise kept and reported). */
  prune?: boolean;
  /** json: one object per event, one per line (docs/output-formats.md). */
  output?: OutputFormat;
}

export async function watchCommand(
  options: WatchCommandOptions,
  out: Output,
  signal: AbortSignal,
): Promise<number> {
  const resyncMs = parseResync(options.resync);
  const settleMs = parseSettle(options.settle);
  // The manifests only tell where the engine is; a broken file here must not stop the watch.
  const load = await loadConfiguration(options.file);
  const client = await connectEngine(options, load.config);
  await watchManifests({
    paths: options.file,
    client,
    signal,
    print: (text) => out.stdout(text),
    ...(options.output === 'json' ? { report: (event) => out.stdout(watchEventLine(event)) } : {}),
    approveWeakening: options.approveWeakening,
    prune: options.prune === true,
    ...(resyncMs === undefined ? {} : { resyncMs }),
    ...(settleMs === undefined ? {} : { settleMs }),
  });
  return 0;
}

/** An event as one JSON line: the text is kept as message, except a plan's (the plan is there). */
export function watchEventLine({ text, ...event }: WatchEvent): string {
  return jsonText(event.event === 'plan' ? event : { ...event, message: text.trimEnd() }, true);
}

/** The --resync interval in milliseconds (watch and serve --watch share the flag). */
export function parseResync(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  try {
    return requireDuration(text);
  } catch {
    throw new CliError(`--resync ${text} is not a duration (e.g. 30s, 5m, 1h)`);
  }
}

/** The --settle window in milliseconds (watch and serve --watch share the flag). */
export function parseSettle(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  try {
    return requireDuration(text);
  } catch {
    throw new CliError(`--settle ${text} is not a duration (e.g. 1s, 500ms, 5s)`);
  }
}

function shutdownSignal(): AbortSignal {
  const controller = new AbortController();
  for (const name of ['SIGINT', 'SIGTERM'] as const) process.once(name, () => controller.abort());
  return controller.signal;
}

export function register(program: Command, out: Output = processOutput()): void {
  addTargetOptions(
    program
      .command('watch')
      .description('apply the manifest directory to the engine on every change')
      .addOption(fileOption()),
  )
    .addOption(formatOption())
    .option('--resync <duration>', 'also reconcile at this interval, correcting drift (e.g. 5m)')
    .option('--approve-weakening', 'also apply changes that weaken domain security')
    .option(
      '--settle <duration>',
      'take a change once every file read has been quiet this long (default 1s)',
    )
    .option('--prune', 'delete objects the manifests no longer hold (otherwise kept and reported)')
    .action(
      commandAction(
        async (o: {
          file?: string[];
          server?: string;
          tokenFile?: string;
          resync?: string;
          approveWeakening?: boolean;
          settle?: string;
          prune?: boolean;
          output: OutputFormat;
        }) =>
          watchCommand(
            {
              ...o,
              file: manifestPaths(o.file, { output: o.output, out }),
              approveWeakening: o.approveWeakening === true,
            },
            out,
            shutdownSignal(),
          ),
      ),
    );
}
