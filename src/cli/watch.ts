// domsec watch: reconcile the engine from a manifest directory on every change, until interrupted.
import { watchManifests } from '../reconcile/watch.js';
import { loadConfiguration } from '../config/index.js';
import type { Output } from './output.js';
import { connectEngine, type TargetOptions } from './target.js';

export interface WatchCommandOptions extends TargetOptions {
  file: string[];
}

export async function watchCommand(
  options: WatchCommandOptions,
  out: Output,
  signal: AbortSignal,
): Promise<number> {
  // The manifests only tell where the engine is; a broken file here must not stop the watch.
  const load = await loadConfiguration(options.file);
  const client = await connectEngine(options, load.config);
  await watchManifests({ paths: options.file, client, signal, print: (text) => out.stdout(text) });
  return 0;
}
