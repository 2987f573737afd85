// YAML manifest files into documents that remember where each field was written, so that every
// diagnostic can point at FILE:LINE:COL. Syntax errors and duplicate keys become diagnostics.
// Files in plain YAML are read by plain-yaml.ts, which finds a document's positions again only
// when a diagnostic asks; other files are parsed by the `yaml` package.
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
import { pathKey, plainPositions, readPlainDocuments, type PlainDocument } from './plain-yaml.js';

/** Keys and sequence indexes from the document root, e.g. ['spec', 'routing', 'smartHosts']. */
export type FieldPath = readonly (string | number)[];

export interface SourcePosition {
  file: string;
  line: number; // 1-based
  col: number; // 1-based
}

/** Where a field is written, as `find` reports it. */
interface Located {
  /** The key of the mapping entry reached last, when the last step was into a mapping. */
  key?: SourcePosition;
  /** The deepest value reached: the field itself when complete (its key when it has none). */
  value: SourcePosition;
  complete: boolean;
}

/** Finds a field path in one document's source. */
type Locator = (path: FieldPath) => Located;

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
    /** Positions, computed when first asked for: most loads never ask. */
    private readonly find: Locator,
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
    return found.key ?? found.value;
  }

  /** Where the value of the field is written (falls back like `at`). */
  valueAt(path: FieldPath): SourcePosition {
    const found = this.find(path);
    return found.complete ? found.value : (found.key ?? found.value);
  }

  /** Whether the field is written in the file (as opposed to filled in by a default). */
  has(path: FieldPath): boolean {
    return this.find(path).complete;
  }
}

/** Positions from a document the `yaml` package parsed (computed by `parsed` on first use). */
function yamlLocator(
  file: string,
  parsed: () => { document: Document.Parsed; lines: LineCounter },
): Locator {
  return (path) => {
    const { document, lines } = parsed();
    const position = (node: Node | null): SourcePosition => {
      const offset = node?.range?.[0] ?? document.range[0];
      return { file, ...lines.linePos(offset) };
    };
    let node: Node | null = document.contents;
    let key: Node | null = null;
    const located = (complete: boolean): Located => ({
      ...(key === null ? {} : { key: position(key) }),
      value: position(node ?? key),
      complete,
    });
    for (const segment of path) {
      if (node !== null && isAlias(node)) node = (node.resolve(document) as Node) ?? null;
      if (isMap(node)) {
        const pair = node.items.find(
          (item) => isScalar(item.key) && String(item.key.value) === String(segment),
        );
        if (pair === undefined) return located(false);
        key = pair.key as Node;
        node = (pair.value as Node | null) ?? null;
      } else if (isSeq(node) && typeof segment === 'number' && node.items[segment] !== undefined) {
        key = null;
        node = node.items[segment] as Node;
      } else {
        return located(false);
      }
    }
    return located(true);
  };
}

/** Positions from plain-yaml.ts's second reading of one document. */
function plainLocator(file: string, document: PlainDocument): Locator {
  return (path) => {
    // A second reading of this document only, as far as the path: a few microseconds.
    const places = plainPositions(document, path);
    for (let length = path.length; length >= 0; length--) {
      const place = places.get(pathKey(path.slice(0, length)));
      if (place === undefined) continue;
      return {
        ...(place.key === undefined ? {} : { key: { file, ...place.key } }),
        value: { file, ...place.value },
        complete: length === path.length,
      };
    }
    throw new Error(`${file}: the document has no top mapping`);
  };
}

export interface ParsedFile {
  documents: ManifestDocument[];
  diagnostics: Diagnostic[];
}

/** Every non-empty document of a file; a document with a syntax error is reported, not returned. */
export function parseManifestFile(text: string, file: string, path: string): ParsedFile {
  const plain = readPlainDocuments(text);
  if (plain !== undefined) {
    return {
      documents: plain.map(
        (document, index) =>
          new ManifestDocument(file, path, index, document.data, plainLocator(file, document)),
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
    documents.push(
      new ManifestDocument(
        file,
        path,
        index,
        data,
        yamlLocator(file, () => source),
      ),
    );
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
