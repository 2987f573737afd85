// The config layer: manifest files in, a validated and compiled RuntimeConfig out, or the
// diagnostics that say why not. Reads files; knows nothing of sockets or the engine.
import { readFile, stat } from 'node:fs/promises';
import type { Diagnostic, RuntimeConfig } from '../model.js';
import { compileConfiguration } from './compile.js';
import { error, formatDiagnostics, sortDiagnostics } from './diagnostics.js';
import { findManifestFiles, type ManifestFile } from './manifest-files.js';
import { groupByKind, type ManifestObject } from './manifest-objects.js';
import { readMaterial } from './material.js';
import { runRules } from './rules/index.js';
import { checkDocument } from './schema.js';
import { parseManifestFile, type ManifestDocument } from './yaml-documents.js';

export { formatDiagnostics };

export interface LoadResult {
  config: RuntimeConfig | undefined;
  diagnostics: Diagnostic[];
  files: string[];
}

export interface LoadOptions {
  /** The time certificates are checked against (tests); now by default. */
  now?: Date;
}

/** Far beyond any hand-written manifest; a larger file is refused rather than parsed. */
const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

/**
 * Reads every *.yaml/*.yml under the paths (files or directories, recursive, stable sorted order,
 * hidden files and editor temp files like `.#x`, `x~`, `x.swp` ignored), validates against
 * schemas/ and the rules, compiles. config is undefined when any diagnostic is an error. Never
 * throws for bad input: every problem is a Diagnostic.
 */
export async function loadConfiguration(
  paths: string[],
  options: LoadOptions = {},
): Promise<LoadResult> {
  const diagnostics: Diagnostic[] = [];
  const discovery = await findManifestFiles(paths);
  diagnostics.push(...discovery.diagnostics);
  if (paths.length === 0) {
    diagnostics.push(error('LOAD', { file: '-', line: 1, col: 1 }, 'no manifest paths given'));
  }

  const documents: ManifestDocument[] = [];
  for (const file of discovery.files) {
    const text = await readManifest(file, diagnostics);
    if (text === undefined) continue;
    const parsed = parseManifestFile(text, file.file, file.path);
    documents.push(...parsed.documents);
    diagnostics.push(...parsed.diagnostics);
  }

  const all: ManifestObject[] = [];
  const valid: ManifestObject[] = [];
  for (const document of documents) {
    const checked = await checkDocument(document);
    diagnostics.push(...checked.diagnostics);
    if (checked.object !== undefined) all.push(checked.object);
    if (checked.object !== undefined && checked.valid) valid.push(checked.object);
  }

  const objects = groupByKind(valid);
  const material = await readMaterial(objects);
  diagnostics.push(
    ...runRules({
      objects,
      all,
      complete: !diagnostics.some((d) => d.severity === 'error'),
      material,
      files: discovery.files,
      now: options.now ?? new Date(),
    }),
  );

  let config: RuntimeConfig | undefined;
  if (!diagnostics.some((d) => d.severity === 'error')) {
    try {
      config = compileConfiguration(objects, material, { description: paths.join(', ') });
    } catch (cause) {
      // Rules passed but compiling failed: a bug, reported so that `watch` keeps running.
      const at = { file: discovery.files[0]?.file ?? '-', line: 1, col: 1 };
      diagnostics.push(error('LOAD', at, `internal error: ${(cause as Error).message}`));
    }
  }
  return {
    config,
    diagnostics: sortDiagnostics(diagnostics),
    files: discovery.files.map((file) => file.file),
  };
}

async function readManifest(
  file: ManifestFile,
  diagnostics: Diagnostic[],
): Promise<string | undefined> {
  const at = { file: file.file, line: 1, col: 1 };
  try {
    const info = await stat(file.path);
    if (info.size > MAX_MANIFEST_BYTES) {
      diagnostics.push(error('LOAD', at, `${file.file} is larger than 4 MB: not a manifest`));
      return undefined;
    }
    return await readFile(file.path, 'utf8');
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code ?? 'error';
    diagnostics.push(error('LOAD', at, `${file.file} cannot be read (${code})`));
    return undefined;
  }
}
