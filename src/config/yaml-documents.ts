// YAML manifest files into documents that remember where each field was written, so that every
// diagnostic can point at FILE:LINE:COL. Syntax errors and duplicate keys become diagnostics.
// Files in plain YAML are read by plain-yaml.ts; the `yaml` package parses them again only when a
// diagnostic needs a position, which most loads never do.
import { dirname } from 'node:path';
import {
  isAlias,
  isMap,
  isScalar,
  isSeq,
  LineCounter,
  parseAllDocuments,
  type Document,
  type Node,
  type YAMLError,
} from 'yaml';
import type { Diagnostic } from '../model.js';
import { error, warning } from './diagnostics.js';
import { readPlainYaml } from './plain-yaml.js';

/** Keys and sequence indexes from the document root, e.g. ['spec', 'routing', 'smartHosts']. */
export type FieldPath = readonly (string | number)[];

export interface SourcePosition {
  file: string;
  line: number; // 1-based
  col: number; // 1-based
}

interface Found {
  /** The deepest node reached; the field itself when complete. */
  node: Node | null;
  /** The key of the mapping entry whose value is that node, when the last step was into a mapping. */
  key: Node | null;
  complete: boolean;
}

/** A document as the `yaml` package parsed it, with its file's lines: what positions come from. */
export interface ParsedSource {
  document: Document.Parsed;
  lines: LineCounter;
}

/** One YAML document of a manifest file, with its plain data and the source positions. */
export class ManifestDocument {
  constructor(
    /** The file as shown in diagnostics. */
    readonly file: string,
    /** The file's absolute path; relative paths in the manifest are taken from its directory. */
    readonly path: string,
    /** Position of the document in its file, from 0. */
    readonly index: number,
    /** The document as plain data (objects, arrays, scalars). */
    readonly data: unknown,
    /** The parsed document, computed (once per file) when a position is first asked for. */
    private readonly source: () => ParsedSource,
  ) {}

  get directory(): string {
    return dirname(this.path);
  }

  /**
   * Where the field is written: its key when it is a mapping entry, otherwise the value (a
   * sequence item). For a field that is absent, its closest written ancestor: the key of that
   * parent mapping, or the mapping itself at the top of the document.
   */
  at(path: FieldPath): SourcePosition {
    const found = this.find(path);
    return this.position(found.key ?? found.node);
  }

  /** Where the value of the field is written (falls back like `at`). */
  valueAt(path: FieldPath): SourcePosition {
    const found = this.find(path);
    if (!found.complete) return this.at(path);
    return this.position(found.node ?? found.key);
  }

  /** Whether the field is written in the file (as opposed to filled in by a default). */
  has(path: FieldPath): boolean {
    return this.find(path).complete;
  }

  private find(path: FieldPath): Found {
    const { document } = this.source();
    let node: Node | null = document.contents;
    let key: Node | null = null;
    for (const segment of path) {
      if (node !== null && isAlias(node)) node = (node.resolve(document) as Node) ?? null;
      if (isMap(node)) {
        const pair = node.items.find(
          (item) => isScalar(item.key) && String(item.key.value) === String(segment),
        );
        if (pair === undefined) return { node, key, complete: false };
        key = pair.key as Node;
        node = (pair.value as Node | null) ?? null;
      } else if (isSeq(node) && typeof segment === 'number' && node.items[segment] !== undefined) {
        key = null;
        node = node.items[segment] as Node;
      } else {
        return { node, key, complete: false };
      }
    }
    return { node, key, complete: true };
  }

  private position(node: Node | null): SourcePosition {
    const { document, lines } = this.source();
    const offset = node?.range?.[0] ?? document.range[0];
    const { line, col } = lines.linePos(offset);
    return { file: this.file, line, col };
  }
}

export interface ParsedFile {
  documents: ManifestDocument[];
  diagnostics: Diagnostic[];
}

/** Every non-empty document of a file; a document with a syntax error is reported, not returned. */
export function parseManifestFile(text: string, file: string, path: string): ParsedFile {
  const plain = readPlainYaml(text);
  if (plain !== undefined) {
    // The same documents as parseAllDocuments's, in its order: its documents[index] is ours.
    let parsed: Document.Parsed[] | undefined;
    const lines = new LineCounter();
    const source = (index: number) => (): ParsedSource => {
      parsed ??= parseAllDocuments(text, { lineCounter: lines, prettyErrors: false });
      const document = parsed[index];
      if (document === undefined) throw new Error(`${file}: document ${index} not found again`);
      return { document, lines };
    };
    return {
      documents: plain.map(
        (data, index) => new ManifestDocument(file, path, index, data, source(index)),
      ),
      diagnostics: [],
    };
  }

  const lines = new LineCounter();
  const parsed = parseAllDocuments(text, { lineCounter: lines, prettyErrors: false });
  const documents: ManifestDocument[] = [];
  const diagnostics: Diagnostic[] = [];
  const at = (offset: number) => ({ file, ...lines.linePos(offset) });
  if (!Array.isArray(parsed)) return { documents, diagnostics };

  parsed.forEach((document, index) => {
    const seen = new Set<number>();
    for (const problem of document.errors) {
      // One report per position: a single unclosed bracket makes the parser complain twice.
      if (seen.has(problem.pos[0])) continue;
      seen.add(problem.pos[0]);
      diagnostics.push(syntaxError(problem, text, at(problem.pos[0])));
    }
    for (const problem of document.warnings) {
      diagnostics.push(warning('YAML', at(problem.pos[0]), firstLine(problem.message)));
    }
    if (document.errors.length > 0) return;
    const contents = document.contents;
    // `---` followed by nothing (or only comments) is an empty document, not a manifest.
    if (contents === null || (isScalar(contents) && contents.value === null)) return;
    let data: unknown;
    try {
      data = document.toJS({ maxAliasCount: 100 });
    } catch (cause) {
      diagnostics.push(
        error(
          'YAML',
          at(contents.range?.[0] ?? 0),
          `cannot read this document: ${firstLine((cause as Error).message)}`,
        ),
      );
      return;
    }
    const source = { document, lines };
    documents.push(new ManifestDocument(file, path, index, data, () => source));
  });
  return { documents, diagnostics };
}

function syntaxError(problem: YAMLError, text: string, at: SourcePosition): Diagnostic {
  if (problem.code === 'DUPLICATE_KEY') {
    const key = /^["']?([^"':\n]*)/.exec(text.slice(problem.pos[0]))?.[1]?.trim() ?? '';
    return error(
      'YAML',
      at,
      `duplicate key \`${key}\`: a key may appear once in a mapping`,
      'remove one of them, or merge their values',
    );
  }
  const hint =
    problem.code === 'TAB_AS_INDENT'
      ? 'indent YAML with spaces'
      : 'check brackets, quotes and indentation on this line and the one before';
  return error('YAML', at, `YAML syntax: ${firstLine(problem.message)}`, hint);
}

function firstLine(message: string): string {
  return message.split('\n')[0] ?? message;
}
