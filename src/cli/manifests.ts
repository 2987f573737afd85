// Loading manifests for a command: diagnostics printed, errors turned into a CliError.
import { formatDiagnostics, loadConfiguration, type LoadResult } from '../config/index.js';
import { Option } from 'commander';
import type { RuntimeConfig } from '../model.js';
import { CliError } from './errors.js';
import type { Output, OutputFormat } from './output.js';
import { progressStep } from './progress.js';

/** Warnings of one code shown by plan, apply and watch before the rest are counted. */
export const WARNINGS_PER_CODE = 3;

export async function loadOrFail(
  paths: string[],
  out: Output,
): Promise<LoadResult & { config: RuntimeConfig }> {
  const load = await progressStep()(`Reading manifests from ${paths.join(', ')}`, () =>
    loadConfiguration(paths),
  );
  if (load.diagnostics.length > 0) {
    out.stderr(formatDiagnostics(load.diagnostics, { warningsPerCode: WARNINGS_PER_CODE }));
  }
  if (load.config === undefined) {
    const errors = load.diagnostics.filter((d) => d.severity === 'error').length;
    throw new CliError(`${errors} error(s) in the manifests; nothing was done`);
  }
  return load as LoadResult & { config: RuntimeConfig };
}

const collect = (value: string, previous: string[] | undefined) => [...(previous ?? []), value];

/** `-f PATH` (repeatable); manifestPaths gives the default, ./manifests. */
export function fileOption(): Option {
  return new Option('-f, --file <path>', 'manifest file or directory (repeatable)').argParser(
    collect,
  );
}

const DEFAULT_MANIFESTS = 'manifests';

/**
 * The -f paths, or ./manifests when none was given; then, in text mode, one line on standard
 * error says so: a user who forgot -f sees why nothing of theirs was read (-o json keeps
 * standard error for diagnostics only).
 */
export function manifestPaths(
  given: string[] | undefined,
  notice?: { output: OutputFormat; out: Output },
): string[] {
  if (given !== undefined) return given;
  if (notice?.output === 'text')
    notice.out.stderr(`domsec: no -f given: reading ./${DEFAULT_MANIFESTS}\n`);
  return [DEFAULT_MANIFESTS];
}
