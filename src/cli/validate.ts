// domsec validate: schema and rule checks over the manifests; exit 1 on any error.
import { formatDiagnostics, loadConfiguration } from '../config/index.js';
import { CliError, EXIT } from './errors.js';
import type { Output } from './output.js';

export interface ValidateOptions {
  file: string[];
  output: 'text' | 'json';
}

export async function validateCommand(options: ValidateOptions, out: Output): Promise<number> {
  const load = await loadConfiguration(options.file);
  const errors = load.diagnostics.filter((d) => d.severity === 'error').length;
  const warnings = load.diagnostics.length - errors;
  if (options.output === 'json') {
    out.stdout(
      `${JSON.stringify({ formatVersion: 1, valid: errors === 0, files: load.files, diagnostics: load.diagnostics }, null, 2)}\n`,
    );
    return errors === 0 ? EXIT.ok : EXIT.error;
  }
  if (load.diagnostics.length > 0) out.stderr(formatDiagnostics(load.diagnostics));
  if (errors > 0)
    throw new CliError(
      `${errors} error(s), ${warnings} warning(s) in ${load.files.length} file(s)`,
    );
  const objects = load.config === undefined ? 0 : countObjects(load.config);
  out.stdout(
    `Valid: ${objects} object(s) in ${load.files.length} file(s)${warnings > 0 ? `, ${warnings} warning(s)` : ''}.\n`,
  );
  return EXIT.ok;
}

function countObjects(
  config: NonNullable<Awaited<ReturnType<typeof loadConfiguration>>['config']>,
): number {
  return (
    1 +
    config.certificates.length +
    config.trustAnchors.length +
    config.partners.length +
    config.sendConnectors.length +
    config.receiveConnectors.length
  );
}
