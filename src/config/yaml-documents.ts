// YAML manifest files into documents that remember where each field was written, so that every
// diagnostic can point at FILE:LINE:COL. js-yaml reads the data, with one schema (yaml-schema.ts),
// and tells where each node starts as it reads (its listener), which is all a diagnostic needs.
// The `yaml` package, which keeps every node's position but reads ten times slower, parses a file
// when js-yaml refuses it or the file uses what the two might read differently (anchors, complex
// or null keys, directives): then both read it, and a document they disagree on is refused; and
// when js-yaml's node starts do not fit its data (flow pairs like `[a: 1]`), for positions only.
// Syntax errors and duplicate keys become diagnostics.
import { dirname } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import jsYaml from 'js-yaml';
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
import { MANIFEST_SCHEMA } from './yaml-schema.js';

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

/** A document the `yaml` package parsed, and its file's lines. */
interface Parsed {
  document: Document.Parsed;
  lines: LineCounter;
}

/**
 * Positions from a document the `yaml` package parsed (computed by `parsed` on first use; the
 * start of the file if it has no such document, which no reading both packages agree on gives).
 */
function yamlLocator(file: string, parsed: () => Parsed | undefined): Locator {
  return (path) => {
    const source = parsed();
    if (source === undefined) return { value: { file, line: 1, col: 1 }, complete: false };
    const { document, lines } = source;
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

export interface ParsedFile {
  documents: ManifestDocument[];
  diagnostics: Diagnostic[];
}

/** Every non-empty document of a file; a document with a syntax error is reported, not returned. */
export function parseManifestFile(text: string, file: string, path: string): ParsedFile {
  const quick = readQuickly(text);
  if (quick.sure) {
    // Positions from js-yaml's node starts; from the file parsed by `yaml` (once, when first
    // asked for, shared by its documents) where they do not fit the data.
    let parsed: { documents: Document.Parsed[]; lines: LineCounter } | undefined;
    const positions = (index: number) => (): Parsed | undefined => {
      if (parsed === undefined) {
        const lines = new LineCounter();
        const all = parseAllDocuments(text, { lineCounter: lines, prettyErrors: false });
        parsed = { documents: Array.isArray(all) ? all.filter((d) => !isEmpty(d)) : [], lines };
      }
      const document = parsed.documents[index];
      return document === undefined ? undefined : { document, lines: parsed.lines };
    };
    const documents: ManifestDocument[] = [];
    const lines = lineStarts(text);
    const fitting = quick.nodes.length === quick.documents.length;
    quick.documents.forEach((data, index) => {
      if (data === null) return; // `---` and nothing, or only comments: no manifest
      // The n-th non-empty document is the n-th non-empty one the `yaml` package finds.
      const fallback = yamlLocator(file, positions(documents.length));
      const root = fitting ? quick.nodes[index] : undefined;
      const locator =
        root === undefined ? fallback : nodeLocator(file, text, lines, root, fallback);
      documents.push(new ManifestDocument(file, path, index, data, locator));
    });
    return { documents, diagnostics: [] };
  }
  return readCarefully(text, file, path, quick);
}

/** What js-yaml made of a file (its documents, and the nodes it read them from), and whether that is all there is to do. */
type QuickReading = { sure: true; documents: unknown[]; nodes: ReadNode[] } | UnsureReading;

/**
 * A node as js-yaml read it: the offset it started reading at (before any separating space or
 * comment), what it made of it, and the nodes read inside it, in order: a sequence's items, a
 * mapping's keys and values alternating.
 */
interface ReadNode {
  start: number;
  result: unknown;
  /** Entries of a mapping, items of a sequence, when it was read (the data may change later). */
  size: number;
  inside: ReadNode[];
  /** `inside` paired with the data, when first asked for (null: they do not fit). */
  entries?: Entries | null;
}

type Entries = { keys: Map<string, [ReadNode, ReadNode]> } | { items: ReadNode[] };

/** A reading that needs the `yaml` package's too: js-yaml's documents, or why it refused. */
interface UnsureReading {
  sure: false;
  documents: unknown[] | undefined;
  failure?: Error;
}

/** Where an anchor may begin: aliases need one. A false alarm only costs a careful reading. */
const ANCHOR = /(?:^|[\s[{,:])&/m;
/** `? key` (an explicit key), or a flow collection used as a key (`[a, b]: 1`, `{a: 1}: 2`). */
const COMPLEX_KEY = /(?:^|[\s[{,])\?(?=\s|$)|[\]}][ \t]*:/m;
/**
 * A sequence entry with nothing after its dash. js-yaml 4 reads `- -` followed by `- b` as
 * [[null, b]] where YAML (and the `yaml` package) reads [[null], b].
 */
const EMPTY_ENTRY = /(?:^|[ \t])-[ \t]*(?:#.*)?$/m;
/** Directives (`%YAML 1.1` changes what `yes` means to the `yaml` package) and `%TAG`s. */
const DIRECTIVE = /^%/m;

/** js-yaml's reader state, as its listener sees it (the part read here). */
interface ReaderState {
  position: number;
  result: unknown;
}

function readQuickly(text: string): QuickReading {
  let documents: unknown[];
  let warned = false;
  // The nodes js-yaml composes, as it opens and closes them: one tree per document.
  const nodes: ReadNode[] = [];
  const open: ReadNode[] = [];
  // js-yaml drops a byte order mark before it reads: its offsets are one short of the text's.
  const shift = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  try {
    documents = [];
    jsYaml.loadAll(text, (document) => documents.push(document), {
      schema: MANIFEST_SCHEMA,
      onWarning: () => {
        warned = true;
      },
      listener: (event: 'open' | 'close', state: ReaderState) => {
        if (event === 'open') {
          open.push({ start: state.position + shift, result: undefined, size: 0, inside: [] });
          return;
        }
        const node = open.pop();
        if (node === undefined) return;
        const result = state.result;
        node.result = result;
        if (Array.isArray(result)) node.size = result.length;
        else if (typeof result === 'object' && result !== null)
          node.size = Object.keys(result).length;
        (open[open.length - 1]?.inside ?? nodes).push(node);
      },
    } as jsYaml.LoadOptions);
  } catch (cause) {
    // A YAMLException, or a RangeError from nesting deeper than the stack.
    if (cause instanceof jsYaml.YAMLException || cause instanceof RangeError) {
      return { sure: false, documents: undefined, failure: cause };
    }
    throw cause;
  }
  const sure =
    !warned &&
    !ANCHOR.test(text) &&
    !COMPLEX_KEY.test(text) &&
    !EMPTY_ENTRY.test(text) &&
    !DIRECTIVE.test(text) &&
    documents.every(plainTree);
  return sure ? { sure: true, documents, nodes } : { sure: false, documents };
}

/** Offsets where lines begin: after `\n`, `\r\n` or a lone `\r`, as js-yaml counts lines. */
function lineStarts(text: string): number[] {
  const starts = [0];
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x0a || (c === 0x0d && text.charCodeAt(i + 1) !== 0x0a)) starts.push(i + 1);
  }
  return starts;
}

function positionAt(file: string, starts: number[], offset: number): SourcePosition {
  let low = 0;
  let high = starts.length - 1;
  while (low < high) {
    const middle = (low + high + 1) >> 1;
    if ((starts[middle] as number) <= offset) low = middle;
    else high = middle - 1;
  }
  return { file, line: low + 1, col: offset - (starts[low] as number) + 1 };
}

const SPACE = new Set([0x20, 0x09, 0x0a, 0x0d]);

/**
 * Where a node's content begins, from where js-yaml started reading it: past separating space,
 * comments and tags (as the `yaml` package places a tagged node at its value). A null node
 * (`key:` and nothing, or `~`) is on its line, where its space and tags end.
 */
function contentStart(text: string, offset: number, empty: boolean): number {
  let i = offset;
  if (empty) {
    // Space and tags (`!!null ~`) on the line, then the null written (`~`, `""`) or nothing.
    for (;;) {
      const c = text.charCodeAt(i);
      if (c === 0x20 || c === 0x09) i++;
      else if (c === 0x21 /* ! */) while (i < text.length && !SPACE.has(text.charCodeAt(i))) i++;
      else return i;
    }
  }
  while (i < text.length) {
    const c = text.charCodeAt(i);
    if (SPACE.has(c)) {
      i++;
    } else if (c === 0x23 /* # */) {
      while (i < text.length && text.charCodeAt(i) !== 0x0a && text.charCodeAt(i) !== 0x0d) i++;
    } else if (c === 0x21 /* ! */) {
      while (i < text.length && !SPACE.has(text.charCodeAt(i))) i++;
    } else {
      break;
    }
  }
  return i;
}

/**
 * The nodes read inside a collection, paired with its data, or undefined when they do not fit
 * (a flow pair `[a: 1]`, `{a}` without a value): then the caller asks the `yaml` package.
 */
function entriesOf(written: ReadNode): Entries | undefined {
  // A node js-yaml first tried as a mapping's key (`- [a]`, `- {b: c}`) holds itself once more.
  let node = written;
  let only = node.inside[0];
  while (only !== undefined && node.inside.length === 1 && only.result === node.result) {
    node = only;
    only = node.inside[0];
  }
  const { result, inside, size } = node;
  if (Array.isArray(result)) return inside.length === size ? { items: inside } : undefined;
  if (typeof result !== 'object' || result === null) return undefined;
  // A block mapping tries one more key where it ends, and finds none.
  const read =
    inside.length % 2 === 1 && inside[inside.length - 1]?.result === null
      ? inside.slice(0, -1)
      : inside;
  if (read.length !== 2 * size) return undefined;
  const keys = new Map<string, [ReadNode, ReadNode]>();
  for (let i = 0; i < read.length; i += 2) {
    const key = read[i] as ReadNode;
    if (typeof key.result === 'object' && key.result !== null) return undefined;
    keys.set(String(key.result), [key, read[i + 1] as ReadNode]);
  }
  return keys.size === size && [...keys.keys()].every((key) => Object.hasOwn(result, key))
    ? { keys }
    : undefined;
}

/** Positions from js-yaml's nodes; `fallback` for a path through nodes that do not fit. */
function nodeLocator(
  file: string,
  text: string,
  lines: number[],
  root: ReadNode,
  fallback: Locator,
): Locator {
  const at = (node: ReadNode) =>
    positionAt(file, lines, contentStart(text, node.start, node.result === null));
  return (path) => {
    let node = root;
    let key: ReadNode | undefined;
    const located = (complete: boolean): Located => ({
      ...(key === undefined ? {} : { key: at(key) }),
      value: at(node),
      complete,
    });
    for (const segment of path) {
      if (node.entries === undefined) node.entries = entriesOf(node) ?? null;
      const entries = node.entries;
      if (entries === null) return fallback(path);
      if ('keys' in entries) {
        const pair = entries.keys.get(String(segment));
        if (pair === undefined) return located(false);
        [key, node] = pair;
      } else {
        const item = typeof segment === 'number' ? entries.items[segment] : undefined;
        if (item === undefined) return located(false);
        key = undefined;
        node = item;
      }
    }
    return located(true);
  };
}

/**
 * Keys longer than this may have been written longer than 1024 characters (escapes), which YAML
 * forbids for an implicit key and js-yaml does not check.
 */
const LONG_KEY = 100;

/**
 * Whether data is a tree whose keys mean the same to both packages: no collection reached twice
 * (an alias, which may also be a cycle), no key `null` (js-yaml's key for `~:` and `null:`, where
 * the `yaml` package has an empty one) and no long key. Visits each collection once.
 */
function plainTree(root: unknown): boolean {
  const seen = new Set<object>();
  const pending: unknown[] = [root];
  while (pending.length > 0) {
    const value = pending.pop();
    if (typeof value !== 'object' || value === null) continue;
    if (seen.has(value)) return false;
    seen.add(value);
    if (Array.isArray(value)) {
      for (const item of value as unknown[]) pending.push(item);
      continue;
    }
    for (const [key, item] of Object.entries(value)) {
      if (key === 'null' || key.length > LONG_KEY) return false;
      pending.push(item);
    }
  }
  return true;
}

/** `---` followed by nothing (or only comments), or `~`: an empty document, not a manifest. */
function isEmpty(document: Document.Parsed): boolean {
  const contents = document.contents;
  return contents === null || (isScalar(contents) && contents.value === null);
}

/**
 * A file js-yaml refused, or that it read but that needs the `yaml` package's reading too: the
 * `yaml` package reports what is wrong where, and a document is kept only when js-yaml reads it
 * and both read the same data.
 */
function readCarefully(text: string, file: string, path: string, quick: UnsureReading): ParsedFile {
  const lines = new LineCounter();
  const parsed = parseAllDocuments(text, { lineCounter: lines, prettyErrors: false });
  const documents: ManifestDocument[] = [];
  const diagnostics: Diagnostic[] = [];
  const at = (offset: number) => ({ file, ...lines.linePos(offset) });
  const refuse = (offset: number, message: string, hint?: string) =>
    diagnostics.push(error('YAML', at(offset), message, hint));
  const all = Array.isArray(parsed) ? parsed : [];
  const quickly = (quick.documents ?? []).filter((data) => data !== null);
  let nonEmpty = 0;

  for (const [index, document] of all.entries()) {
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
    if (document.errors.length > 0 || isEmpty(document)) continue;
    const start = document.contents?.range?.[0] ?? document.range[0];
    const ours = nonEmpty++;
    const version = document.directives?.yaml.version;
    if (version !== undefined && version !== '1.2') {
      refuse(
        document.range[0],
        `this document asks for YAML ${version}; manifests are read as YAML 1.2`,
        'remove the %YAML directive',
      );
      continue;
    }
    let expected: unknown;
    try {
      expected = document.toJS({ maxAliasCount: 100 });
    } catch (cause) {
      refuse(start, `cannot read this document: ${firstLine((cause as Error).message)}`);
      continue;
    }
    let data: unknown;
    if (quick.documents !== undefined) {
      data = quickly[ours];
    } else {
      // js-yaml refused the file: read this document alone, which `yaml` found no error in.
      const alone = readAlone(text.slice(document.range[0], document.range[2]));
      if (alone instanceof Error) {
        const offset = document.range[0] + markOffset(alone);
        refuse(offset, `cannot read this document: ${reasonOf(alone)}`, hintFor(alone));
        continue;
      }
      data = alone;
    }
    if (hasCycle(data)) {
      refuse(start, 'cannot read this document: an alias refers to a node that contains it');
      continue;
    }
    if (!isDeepStrictEqual(data, expected)) {
      refuse(
        start,
        'this document reads differently to YAML readers (a key that is null, a number or a collection?)',
        'write keys as plain strings, and quote values that should be strings',
      );
      continue;
    }
    documents.push(
      new ManifestDocument(
        file,
        path,
        index,
        data,
        yamlLocator(file, () => ({ document, lines })),
      ),
    );
  }
  // Whatever js-yaml refused is refused, even where the `yaml` package saw nothing wrong.
  if (quick.failure !== undefined && !diagnostics.some((d) => d.severity === 'error')) {
    refuse(
      markOffset(quick.failure),
      `cannot read this file: ${reasonOf(quick.failure)}`,
      hintFor(quick.failure),
    );
    documents.length = 0;
  }
  return { documents, diagnostics };
}

/** One document's text read by js-yaml: its data, or why not. */
function readAlone(text: string): unknown {
  try {
    const documents = jsYaml.loadAll(text, undefined, { schema: MANIFEST_SCHEMA });
    return documents.length === 1 ? documents[0] : new Error('not one document');
  } catch (cause) {
    if (cause instanceof jsYaml.YAMLException || cause instanceof RangeError) return cause;
    throw cause;
  }
}

function markOffset(failure: Error): number {
  return failure instanceof jsYaml.YAMLException ? (failure.mark?.position ?? 0) : 0;
}

/** js-yaml's reason, without its position (the diagnostic has it), and not too long to print. */
function reasonOf(failure: Error): string {
  if (failure instanceof RangeError) return 'it is nested too deeply';
  const reason = failure instanceof jsYaml.YAMLException ? failure.reason : failure.message;
  const line = firstLine(reason || failure.message);
  return line.length > 200 ? `${line.slice(0, 200)}...` : line;
}

function hintFor(failure: Error): string | undefined {
  const reason = failure instanceof jsYaml.YAMLException ? failure.reason : '';
  if (/unknown tag|explicit tag/.test(reason)) {
    return 'manifests hold plain data: remove the tag (`!!binary`, `!custom`, ...)';
  }
  if (/duplicated mapping key/.test(reason)) return 'a key may appear once in a mapping';
  return undefined;
}

/** Whether a collection contains itself (an alias to an ancestor); visits each node once. */
function hasCycle(root: unknown): boolean {
  const done = new Set<object>();
  const open = new Set<object>();
  // Depth-first with an explicit stack: [node, children left to visit].
  const stack: [object, unknown[]][] = [];
  const enter = (value: unknown): boolean => {
    if (typeof value !== 'object' || value === null || done.has(value)) return false;
    if (open.has(value)) return true;
    open.add(value);
    stack.push([value, Array.isArray(value) ? [...(value as unknown[])] : Object.values(value)]);
    return false;
  };
  if (enter(root)) return true;
  while (stack.length > 0) {
    const top = stack[stack.length - 1] as [object, unknown[]];
    if (top[1].length === 0) {
      stack.pop();
      open.delete(top[0]);
      done.add(top[0]);
      continue;
    }
    if (enter(top[1].pop())) return true;
  }
  return false;
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
