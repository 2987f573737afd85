// A fast reader for the plain YAML that manifests are almost always written in (block mappings
// and sequences, one-line flow collections, plain and simple single-quoted scalars), giving the
// same data as the `yaml` package at a fraction of its cost (it was most of `validate` on 10,000
// partners), and the positions of one document's fields when a diagnostic asks for them. It
// reports no errors: anything outside that subset, or anything it is not sure of, makes it give
// the whole file back to the `yaml` package.

/** A file read as plain YAML: the data of each of its documents, in order. */
export type PlainDocuments = unknown[];

/** One document of a plain file: its data, and its lines to find positions in again. */
export interface PlainDocument {
  data: unknown;
  lines: readonly Line[];
}

/** A line and column, both from 1, as the `yaml` package's LineCounter gives them. */
export interface PlainPosition {
  line: number;
  col: number;
}

/** Where a written field is: its key (none for a sequence item) and its value. */
export interface PlainPlace {
  key?: PlainPosition;
  value: PlainPosition;
}

/** Thrown inside the reader when the text leaves the subset; never escapes readPlainYaml. */
class NotPlain extends Error {}
const notPlain = (): never => {
  throw new NotPlain();
};

interface Line {
  /** Line number in the file, from 1. */
  number: number;
  /** Column of the first character of content, from 0. */
  indent: number;
  /** The line from its first character of content, trailing spaces removed. */
  text: string;
}

/** Keys the subset takes: they mean the same as a string key to every YAML schema. */
const KEY = /^[A-Za-z_][A-Za-z0-9_-]*$/;
const RESERVED_KEY = /^(?:true|True|TRUE|false|False|FALSE|null|Null|NULL|__proto__)$/;
/** A block mapping entry: `key:` alone, or `key: value`. */
const ENTRY = /^([A-Za-z_][A-Za-z0-9_-]*):(?: +(.*))?$/;
/** The core schema's (YAML 1.2) non-string plain scalars, as the `yaml` package resolves them. */
const NUMBER_LIKE =
  /^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+|[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.nan|\.NaN|\.NAN)$/;
/** How every boolean, null and number above begins. */
const MAYBE_NOT_STRING = /^[tTfFnN~0-9+.-]/;
const SAFE_INTEGER = /^(?:0|[1-9][0-9]{0,14})$/;
/** Characters that may start something other than a plain scalar, or that we leave to `yaml`. */
const INDICATOR = /^[-?:,[\]{}#&*!|>'"%@`]/;

/**
 * The documents of the file, or undefined when the file is not in the subset (then only the
 * `yaml` package may read it). Documents are those `parseAllDocuments` returns, in its order.
 */
export function readPlainYaml(text: string): PlainDocuments | undefined {
  return readPlainDocuments(text)?.map((document) => document.data);
}

/** Like readPlainYaml, keeping each document's lines for plainPositions. */
export function readPlainDocuments(text: string): PlainDocument[] | undefined {
  // Tabs, carriage returns, a byte order mark, directives and document end markers: the
  // `yaml` package's business.
  if (/[\t\r\uFEFF]|^(?:%|\.\.\.)/m.test(text)) return undefined;
  try {
    const documents: PlainDocument[] = [];
    let lines: Line[] = [];
    let started = false; // content, or a `---`, has been seen
    const finish = () => {
      // An empty document would be skipped by the loader; leaving it out here could shift the
      // documents' indexes against the `yaml` package's, so such a file is not plain.
      if (lines.length === 0) notPlain();
      documents.push({ data: readDocument(lines), lines });
      lines = [];
    };
    let number = 0;
    for (const raw of text.split('\n')) {
      number++;
      if (raw.startsWith('---')) {
        if (raw.trimEnd() !== '---') notPlain();
        if (started) finish();
        started = true;
        continue;
      }
      const content = raw.trimEnd();
      const indent = content.length - content.trimStart().length;
      if (content.length === indent || content[indent] === '#') continue; // blank or comment
      started = true;
      lines.push({ number, indent, text: content.slice(indent) });
    }
    if (started) finish();
    return documents.length === 0 ? undefined : documents;
  } catch (cause) {
    // NotPlain, or a RangeError from nesting deeper than the stack: either way the `yaml`
    // package reads the file and says what is wrong with it, as it did before this reader.
    if (cause instanceof NotPlain || cause instanceof RangeError) return undefined;
    throw cause;
  }
}

/**
 * The position of every field of a document readPlainDocuments returned, keyed by pathKey of its
 * field path; the empty path is the document's top mapping. Read again on demand: most loads
 * never ask. With a target, only the target and its ancestors are recorded, and the reading stops
 * once the target is found.
 */
export function plainPositions(
  document: PlainDocument,
  target?: readonly (string | number)[],
): Map<string, PlainPlace> {
  const places = new Map<string, PlainPlace>();
  try {
    readDocument([...document.lines], { places, target });
  } catch (cause) {
    if (cause !== TARGET_FOUND) throw cause;
  }
  return places;
}

/** Ends a targeted reading early; never escapes plainPositions. */
class TargetFound extends Error {}
/** Thrown as it is: constructing an Error per lookup (its stack) cost more than the reading. */
const TARGET_FOUND = new TargetFound('target found');

/** What a second reading records. */
interface Recording {
  places: Map<string, PlainPlace>;
  target: readonly (string | number)[] | undefined;
}

/** The key of a field path in plainPositions' map. */
export function pathKey(path: readonly (string | number)[]): string {
  return path.join('\u0000');
}

function readDocument(lines: Line[], recording?: Recording): unknown {
  // A copy: reading rewrites the lines of `- key: value` items, and the lines are kept for
  // plainPositions.
  const reader = new BlockReader([...lines], recording);
  const first = lines[0] ?? notPlain();
  // A document is a mapping at column 0; anything else is no manifest and `yaml` says why.
  if (first.indent !== 0 || !ENTRY.test(first.text)) notPlain();
  reader.place(undefined, { line: first.number, col: 1 });
  const data = reader.mapping(0);
  if (reader.next !== lines.length) notPlain();
  return data;
}

class BlockReader {
  next = 0;
  /** The field path being read, when positions are recorded. */
  private readonly path: (string | number)[] = [];

  private readonly places: Map<string, PlainPlace> | undefined;
  private readonly target: readonly (string | number)[] | undefined;

  constructor(
    private readonly lines: Line[],
    recording?: Recording,
  ) {
    this.places = recording?.places;
    this.target = recording?.target;
  }

  private peek(): Line | undefined {
    return this.lines[this.next];
  }

  /** Records where the field at the current path is written (only when recording). */
  place(key: PlainPosition | undefined, value: PlainPosition): void {
    if (this.places === undefined) return;
    const target = this.target;
    if (target !== undefined) {
      // Only the target's own ancestors: a prefix of it, compared as the yaml lookup compares.
      if (this.path.length > target.length) return;
      for (const [index, segment] of this.path.entries()) {
        if (String(segment) !== String(target[index])) return;
      }
    }
    this.places.set(pathKey(this.path), key === undefined ? { value } : { key, value });
    if (target !== undefined && this.path.length === target.length) throw TARGET_FOUND;
  }

  /** A block mapping whose keys are at column `indent`. */
  mapping(indent: number): Record<string, unknown> {
    const result: Record<string, unknown> = {};
    for (let line = this.peek(); line !== undefined && line.indent >= indent; line = this.peek()) {
      if (line.indent > indent) notPlain();
      const entry = ENTRY.exec(line.text) ?? notPlain();
      const key = entry[1] ?? notPlain();
      // A duplicate key is an error that `yaml` reports with its position.
      if (RESERVED_KEY.test(key) || Object.hasOwn(result, key)) notPlain();
      this.next++;
      const inline = entry[2];
      if (this.places === undefined) {
        result[key] = inline === undefined ? this.nested(indent) : this.lastValue(inline, line);
        continue;
      }
      this.path.push(key);
      const keyAt = { line: line.number, col: indent + 1 };
      if (inline === undefined) {
        const below = this.peek();
        this.place(
          keyAt,
          below === undefined ? keyAt : { line: below.number, col: below.indent + 1 },
        );
        result[key] = this.nested(indent);
      } else {
        const col = indent + line.text.length - inline.length + 1;
        this.place(keyAt, { line: line.number, col });
        result[key] = this.lastValue(inline, line);
      }
      this.path.pop();
    }
    return result;
  }

  /** A block sequence whose dashes are at column `indent`. */
  private sequence(indent: number): unknown[] {
    const result: unknown[] = [];
    for (let line = this.peek(); line !== undefined && line.indent >= indent; line = this.peek()) {
      if (line.indent > indent) notPlain();
      if (!line.text.startsWith('- ')) break; // a key of the mapping the sequence is a value in
      const rest = line.text.slice(2).trimStart();
      const column = indent + line.text.length - rest.length;
      this.path.push(result.length);
      this.place(undefined, { line: line.number, col: column + 1 });
      if (ENTRY.test(rest)) {
        // `- key: value` begins a mapping whose keys are at the column of `key`.
        this.lines[this.next] = { number: line.number, indent: column, text: rest };
        result.push(this.mapping(column));
      } else {
        this.next++;
        result.push(this.lastValue(rest, { ...line, indent, text: rest }, column));
      }
      this.path.pop();
    }
    return result;
  }

  /** The value of `key:` written on the lines below it. */
  private nested(indent: number): unknown {
    const line = this.peek() ?? notPlain(); // `key:` and nothing: null, left to `yaml`
    if (line.indent > indent) {
      return line.text.startsWith('- ') ? this.sequence(line.indent) : this.mapping(line.indent);
    }
    if (line.indent === indent && line.text.startsWith('- ')) return this.sequence(indent);
    return notPlain();
  }

  /**
   * A value written on the line just read, `text` being its end from column `start` (from 0);
   * the next line may not continue it.
   */
  private lastValue(
    text: string,
    line: Line,
    start = line.indent + line.text.length - text.length,
  ): unknown {
    const reader = new InlineReader(
      text,
      this.places === undefined ? undefined : this,
      line.number,
      start,
    );
    const value = reader.value(false);
    if (!reader.done()) notPlain();
    const after = this.peek();
    if (after !== undefined && after.indent > line.indent) notPlain(); // a multi-line scalar
    return value;
  }

  /** For InlineReader: enters an item or key of a flow collection, and leaves it. */
  enter(segment: string | number, key: PlainPosition | undefined, value: PlainPosition): void {
    this.path.push(segment);
    this.place(key, value);
  }

  leave(): void {
    this.path.pop();
  }
}

/** One line's value: a scalar, or flow collections closed on the same line. */
class InlineReader {
  private at = 0;
  constructor(
    private readonly text: string,
    /** Set when positions are recorded. */
    private readonly block: BlockReader | undefined,
    private readonly line: number,
    /** Column of the text's first character in its line, from 0. */
    private readonly start: number,
  ) {}

  done(): boolean {
    this.spaces();
    return this.at === this.text.length;
  }

  private spaces(): void {
    while (this.text[this.at] === ' ') this.at++;
  }

  private here(): PlainPosition {
    return { line: this.line, col: this.start + this.at + 1 };
  }

  value(inFlow: boolean): unknown {
    this.spaces();
    const char = this.text[this.at];
    if (char === '{') return this.flowMapping();
    if (char === '[') return this.flowSequence();
    if (char === "'") return this.singleQuoted();
    return this.plain(inFlow);
  }

  private flowMapping(): Record<string, unknown> {
    const result: Record<string, unknown> = {};
    this.at++;
    this.spaces();
    if (this.text[this.at] === '}') notPlain(); // `{}`: rare enough to leave to `yaml`
    for (;;) {
      this.spaces();
      const match = /^([A-Za-z_][A-Za-z0-9_-]*): /.exec(this.text.slice(this.at)) ?? notPlain();
      const key = match[1] ?? notPlain();
      if (!KEY.test(key) || RESERVED_KEY.test(key) || Object.hasOwn(result, key)) notPlain();
      const keyAt = this.here();
      this.at += match[0].length;
      if (this.block === undefined) {
        result[key] = this.value(true);
      } else {
        this.spaces();
        this.block.enter(key, keyAt, this.here());
        result[key] = this.value(true);
        this.block.leave();
      }
      if (this.separator('}')) return result;
    }
  }

  private flowSequence(): unknown[] {
    const result: unknown[] = [];
    this.at++;
    this.spaces();
    if (this.text[this.at] === ']') {
      this.at++;
      return result;
    }
    for (;;) {
      if (this.block === undefined) {
        result.push(this.value(true));
      } else {
        this.spaces();
        this.block.enter(result.length, undefined, this.here());
        result.push(this.value(true));
        this.block.leave();
      }
      if (this.separator(']')) return result;
    }
  }

  /** After an item: `,` and another (false), or the closing bracket (true). */
  private separator(close: string): boolean {
    this.spaces();
    const char = this.text[this.at];
    this.at++;
    if (char === close) return true;
    if (char !== ',') notPlain();
    this.spaces();
    if (this.text[this.at] === close) notPlain(); // a trailing comma
    return false;
  }

  private singleQuoted(): string {
    const end = this.text.indexOf("'", this.at + 1);
    if (end === -1 || this.text[end + 1] === "'") notPlain(); // unclosed, or an escaped quote
    const value = this.text.slice(this.at + 1, end);
    this.at = end + 1;
    return value;
  }

  private plain(inFlow: boolean): unknown {
    const rest = this.text.slice(this.at);
    const token = (inFlow ? /^[^,[\]{}]*/ : /^.*/).exec(rest)?.[0].trimEnd() ?? '';
    if (token === '' || INDICATOR.test(token) || token.includes('#')) notPlain();
    // `: ` ends a plain scalar in a block and any `:` may in a flow (`{a:b}`); flow indicators
    // inside a block scalar are legal but rare: leave all of these to `yaml`.
    if (inFlow ? token.includes(':') : /: | :|:$|[[\]{},]/.test(token)) notPlain();
    this.at += token.length;
    return resolvePlain(token);
  }
}

/** What the core schema makes of a plain scalar: booleans, small integers and strings here. */
function resolvePlain(token: string): unknown {
  if (!MAYBE_NOT_STRING.test(token)) return token; // most scalars: names, domains, paths
  if (/^(?:true|True|TRUE)$/.test(token)) return true;
  if (/^(?:false|False|FALSE)$/.test(token)) return false;
  if (/^(?:~|null|Null|NULL)$/.test(token)) return null;
  if (SAFE_INTEGER.test(token)) return Number(token);
  if (NUMBER_LIKE.test(token)) notPlain(); // other numbers: `yaml` knows their exact values
  return token;
}
