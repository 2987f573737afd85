// The config layer: manifest files in, a validated and compiled RuntimeConfig out, or the
// diagnostics that say why not. Reads files; knows nothing of sockets or the engine.
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Diagnostic, RuntimeConfig } from '../model.js';
import { compileConfiguration } from './compile.js';
import { error, formatDiagnostics, sortDiagnostics } from './diagnostics.js';
import { findManifestFiles, type ManifestFile } from './manifest-files.js';
import { groupByKind, type ManifestObject } from './manifest-objects.js';
import { readMaterial } from './material.js';
import { runRules } from './rules/index.js';
import { checkDocument, schemaValidators } from './schema.js';
import { parseManifestFile, type ManifestDocument } from './yaml-documents.js';

export { formatDiagnostics };
export { withSchemaDefaults } from './schema.js';

export interface LoadResult {
  config: RuntimeConfig | undefined;
  diagnostics: Diagnostic[];
  files: string[];
}

export interface LoadOptions {
  /** The time certificates are checked against (tests); now by default. */
  now?: Date;
  /** What `-` reads: standard input by default (tests give their own). */
  stdin?: () => Promise<Buffer>;
}

/** The path that means standard input, as `-f -` gives it. */
export const STDIN = '-';

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
  const discovery = await findManifestFiles(paths.filter((path) => path !== STDIN));
  diagnostics.push(...discovery.diagnostics);
  if (paths.length === 0) {
    diagnostics.push(error('LOAD', { file: '-', line: 1, col: 1 }, 'no manifest paths given'));
  }
  // Standard input is read once however often `-` is given; its relative paths are taken from
  // the working directory, as if it were a file there.
  const stdin = paths.includes(STDIN)
    ? { path: join(process.cwd(), '<stdin>'), file: '<stdin>' }
    : undefined;
  if (stdin !== undefined) discovery.files.push(stdin);

  // Files are read a few ahead of the one being parsed (reading them one after another left the
  // process waiting on the disk), and parsed in their order.
  const reads: Promise<FileText>[] = [];
  const readText = async (file: ManifestFile): Promise<FileText> => {
    const problems: Diagnostic[] = [];
    const text =
      file === stdin
        ? await readStandardInput(file, options.stdin ?? readProcessStdin, problems)
        : await readManifest(file, problems);
    return { text, problems };
  };
  const startRead = (index: number): void => {
    const file = discovery.files[index];
    if (file === undefined || reads[index] !== undefined) return;
    reads[index] = readText(file);
  };
  const documents: ManifestDocument[] = [];
  for (const [index, file] of discovery.files.entries()) {
    for (let ahead = index; ahead < index + READ_AHEAD; ahead++) startRead(ahead);
    const { text, problems } = await (reads[index] as Promise<FileText>);
    diagnostics.push(...problems);
    if (text === undefined) continue;
    const parsed = parseManifestFile(text, file.file, file.path);
    documents.push(...parsed.documents);
    diagnostics.push(...parsed.diagnostics);
  }

  const all: ManifestObject[] = [];
  const valid: ManifestObject[] = [];
  if (documents.length > 0) {
    // Compiled once, before the first document: a load of none does not need the schemas.
    const validators = await schemaValidators();
    for (const document of documents) {
      const checked = checkDocument(document, validators);
      diagnostics.push(...checked.diagnostics);
      if (checked.object !== undefined) all.push(checked.object);
      if (checked.object !== undefined && checked.valid) valid.push(checked.object);
    }
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

interface FileText {
  text: string | undefined;
  problems: Diagnostic[];
}

/** Manifest files being read while one is parsed: enough to keep the disk busy. */
const READ_AHEAD = 8;

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
    return decodeManifest(file, await readFile(file.path), diagnostics);
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code ?? 'error';
    diagnostics.push(error('LOAD', at, `${file.file} cannot be read (${code})`));
    return undefined;
  }
}

async function readStandardInput(
  file: ManifestFile,
  read: () => Promise<Buffer>,
  diagnostics: Diagnostic[],
): Promise<string | undefined> {
  const at = { file: file.file, line: 1, col: 1 };
  try {
    const bytes = await read();
    if (bytes.length > MAX_MANIFEST_BYTES) {
      diagnostics.push(error('LOAD', at, 'standard input is larger than 4 MB: not a manifest'));
      return undefined;
    }
    return decodeManifest(file, bytes, diagnostics);
  } catch (cause) {
    diagnostics.push(error('LOAD', at, `standard input cannot be read (${String(cause)})`));
    return undefined;
  }
}

async function readProcessStdin(): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of process.stdin) {
    const bytes = Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk));
    chunks.push(bytes);
    size += bytes.length;
    if (size > MAX_MANIFEST_BYTES) break; // enough to refuse it; the rest is never buffered
  }
  return Buffer.concat(chunks);
}

const UTF8 = new TextDecoder('utf-8', { fatal: true });

/** YAML is text: bytes that are not UTF-8 are refused at the first one that is not. */
function decodeManifest(
  file: ManifestFile,
  bytes: Buffer,
  diagnostics: Diagnostic[],
): string | undefined {
  try {
    return UTF8.decode(bytes);
  } catch {
    const bad = firstInvalidUtf8(bytes);
    const before = new TextDecoder('utf-8').decode(bytes.subarray(0, bad)).split('\n');
    const at = {
      file: file.file,
      line: before.length,
      col: (before[before.length - 1]?.length ?? 0) + 1,
    };
    const hex = bytes[bad]?.toString(16).padStart(2, '0') ?? '';
    diagnostics.push(
      error(
        'LOAD',
        at,
        `${file.file} is not UTF-8 text (byte 0x${hex} at offset ${bad})`,
        'manifests are YAML in UTF-8; convert the file (iconv -t UTF-8) or remove it from the directory',
      ),
    );
    return undefined;
  }
}

/** Offset of the sequence that is not UTF-8 (lead and continuation bytes; overlongs aside). */
function firstInvalidUtf8(bytes: Buffer): number {
  for (let offset = 0; offset < bytes.length;) {
    const lead = bytes[offset] ?? 0;
    const length =
      lead < 0x80
        ? 1
        : lead >= 0xc2 && lead < 0xe0
          ? 2
          : lead >= 0xe0 && lead < 0xf0
            ? 3
            : lead >= 0xf0 && lead < 0xf5
              ? 4
              : 0;
    if (length === 0) return offset;
    for (let next = offset + 1; next < offset + length; next++) {
      const byte = bytes[next];
      if (byte === undefined || (byte & 0xc0) !== 0x80) return offset;
    }
    offset += length;
  }
  return Math.max(0, bytes.length - 1); // an overlong or a surrogate: the decoder knows better
}
