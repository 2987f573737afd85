// The two YAML readers of a manifest file: js-yaml reads the data, the `yaml` package the
// positions. Whatever the loader accepts, the `yaml` package reads the same (data, document
// order) with no error or warning; what the loader refuses is refused with a position; and the
// meaning of a scalar is YAML 1.2's core schema, not YAML 1.1's.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { parseAllDocuments } from 'yaml';
import { parseManifestFile } from '../../src/config/yaml-documents.js';

const REPOSITORY = new URL('../../', import.meta.url).pathname;

/** What the loader makes of a text: the data of its documents, or its error diagnostics. */
function ours(text: string): { data: unknown[] } | { errors: string[] } {
  const parsed = parseManifestFile(text, 'x.yaml', '/x.yaml');
  const errors = parsed.diagnostics.filter((d) => d.severity === 'error');
  if (errors.length > 0) return { errors: errors.map((d) => `${d.line}:${d.col} ${d.message}`) };
  return { data: parsed.documents.map((document) => document.data) };
}

/** What the `yaml` package makes of it: the non-empty documents' data, or its complaints. */
function theirs(text: string): { data: unknown[] } | { problems: string[] } {
  const documents = parseAllDocuments(text);
  if (!Array.isArray(documents)) return { data: [] };
  const problems = documents.flatMap((d) => [...d.errors, ...d.warnings]).map((p) => p.message);
  if (problems.length > 0) return { problems };
  const data: unknown[] = [];
  for (const document of documents) {
    try {
      const value: unknown = document.toJS({ maxAliasCount: 100 });
      if (value !== null) data.push(value);
    } catch (cause) {
      return { problems: [(cause as Error).message] };
    }
  }
  return { data };
}

function yamlFiles(directory: string): string[] {
  return readdirSync(directory).flatMap((name) => {
    const path = join(directory, name);
    if (statSync(path).isDirectory()) return name === 'node_modules' ? [] : yamlFiles(path);
    return /\.ya?ml$/.test(name) ? [path] : [];
  });
}

/** Plain scalars whose meaning differs between YAML 1.1, 1.2 and parsers' own schemas. */
// prettier-ignore
const HOSTILE_PLAIN = ['', 'yes', 'no', 'on', 'off', 'y', 'n', 'Yes', 'NO', 'On', '~', 'null', 'Null',
  'NULL', 'true', 'True', 'TRUE', 'false', 'tRUE', '0', '-0', '+1', '012', '089', '0o17', '0o8',
  '0x1F', '0X1F', '0xg', '0b101', '1_000', '1e3', '1E3', '-1.5e-3', '.5', '-.5', '+.5', '1.', '1.0',
  '.inf', '-.Inf', '+.INF', '.nan', '.NaN', 'nan', 'inf', '2001-12-14', '2001-12-14T21:59:43.10-05:00',
  '12:30:00', '1:20', '190:20:30', '<<', '=', '123456789012345678901234567890', '1e400', '0.1e-400',
  '9007199254740993', '-', 'a#b', 'é', 'a b', '192.0.2.1', '2001:db8::1', '192.0.2.0/24',
  'http://example.com/a?b=c', '/etc/pki/mail.pem', 'mail.adatum.com', 'contoso-root', '*.x'];
/** Quoted and tagged scalars, written as they are. */
// prettier-ignore
const HOSTILE_WRITTEN = ["'yes'", "'it''s'", "''", '""', '"\\x41\\u00e9\\U0001F600"', '"\\N\\_\\L\\P"',
  '"a\\tb"', '"\\0"', '"\\/"', '"say \\"hi\\""', "'#'", '"1e3"', '!!str 12', '!!str yes', '!!int "12"',
  '!!int 0x1F', '!!float 1', '!!float 1.5', '!!bool true', '!!null ~', '!!null ""', '!!binary aGk=',
  '!!js/function "function () {}"', '!!js/regexp /a/', '!!js/undefined ~', '!custom x',
  '!!timestamp 2001-12-14', '!<tag:yaml.org,2002:str> x', '!!python/object:os.system x',
  '!!merge <<', '!!set {a: ~}', '!!omap [a: 1]'];
/** Block scalars (a PEM written inline, say), their lines indented below their key by `block`. */
// prettier-ignore
const BLOCK_SCALARS = ['|\n-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----', '>-\nfolded\ntext',
  '|+\nkept\n', '|-\nstripped', '>\nfolded\n\n  more indented\nback', '|2\n  two more', '"multi\nline"',
  "'single\n\nquoted'", 'plain\ncontinued', '|\n# not a comment'];
const SAFE_KEYS = [
  'apiVersion',
  'kind',
  'metadata',
  'name',
  'spec',
  'domain',
  'trustAnchors',
  'contoso.com',
  'a',
  'b',
  'x-y',
  'under_score',
];
// prettier-ignore
const HOSTILE_KEYS = ['null', '~', 'true', 'False', '1', '01', '0x10', '1.5', '.inf', '"1"', "'a'",
  '"null"', '<<', '__proto__', 'constructor', 'yes', '"a b"', 'é', '"\\x61"', '-1', 'toString'];

type Tree =
  | { kind: 'scalar'; text: string }
  | { kind: 'map'; entries: [string, Tree][] }
  | { kind: 'seq'; items: Tree[] };

const scalar: fc.Arbitrary<Tree> = fc
  .oneof(
    { weight: 5, arbitrary: fc.constantFrom(...HOSTILE_PLAIN) },
    { weight: 1, arbitrary: fc.constantFrom(...HOSTILE_WRITTEN) },
    { weight: 2, arbitrary: fc.stringMatching(/^[a-z][a-z0-9.-]{0,12}$/) },
    { weight: 1, arbitrary: fc.constantFrom(...BLOCK_SCALARS) },
  )
  .map((text) => ({ kind: 'scalar', text }));
const key = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...SAFE_KEYS) },
  { weight: 1, arbitrary: fc.constantFrom(...HOSTILE_KEYS) },
);
const { tree } = fc.letrec<{ tree: Tree }>((recur) => ({
  tree: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    scalar,
    fc
      .uniqueArray(fc.tuple(key, recur('tree')), { maxLength: 4, selector: ([k]) => k })
      .map((entries) => ({
        kind: 'map' as const,
        entries,
      })),
    fc.array(recur('tree'), { maxLength: 4 }).map((items) => ({ kind: 'seq' as const, items })),
  ),
}));
const manifest = fc
  .uniqueArray(fc.tuple(key, tree), { minLength: 1, maxLength: 5, selector: ([k]) => k })
  .map((entries): Tree => ({ kind: 'map', entries }));

/** A tree in flow style: `{a: 1, b: [x, y]}`. */
function flow(node: Tree): string {
  if (node.kind === 'scalar') return node.text;
  if (node.kind === 'seq') return `[${node.items.map(flow).join(', ')}]`;
  return `{${node.entries.map(([k, v]) => `${k}: ${flow(v)}`).join(', ')}}`;
}

/** A tree in block style, `flowAt` choosing which collections are written in flow style. */
function block(node: Tree, indent: number, flowAt: (depth: number) => boolean, depth = 0): string {
  const pad = ' '.repeat(indent);
  const nested = (value: Tree): string => {
    if (value.kind === 'scalar') return ` ${value.text.replace(/\n/g, `\n${pad}  `)}\n`;
    if (flowAt(depth + 1)) return ` ${flow(value)}\n`;
    if (value.kind === 'map' && value.entries.length === 0) return ' {}\n';
    if (value.kind === 'seq' && value.items.length === 0) return ' []\n';
    return `\n${block(value, indent + 2, flowAt, depth + 1)}`;
  };
  if (node.kind === 'scalar') return `${pad}${node.text}\n`;
  if (node.kind === 'seq') return node.items.map((item) => `${pad}-${nested(item)}`).join('');
  return node.entries.map(([k, v]) => `${pad}${k}:${nested(v)}`).join('');
}

/** One to three documents, in block and flow style, with comments and empty documents. */
const text = fc
  .array(
    fc.record({
      manifest,
      flowAt: fc.func(fc.boolean()),
      comment: fc.constantFrom('', '# a comment\n', '---\n# only a comment\n'),
    }),
    { minLength: 1, maxLength: 3 },
  )
  .map((documents) =>
    documents
      .map(({ manifest, flowAt, comment }) => `${comment}${block(manifest, 0, flowAt)}`)
      .join('---\n'),
  );

/** What js-yaml may refuse though the `yaml` package reads it (warnings aside): stricter reading. */
const STRICTER = [
  /!/, // tags: unknown ones are errors, and `!!float 1`, `!!null ""` or `!!binary` too
  // a key that is not a string: js-yaml's `1` and `"1"` are one key, its null key is `null`
  /(?:^|[\s{,])(?:1|01|0x10|-1|1\.5|\.inf|null|~|true|False):(?:\s|$)/m,
  /(?:^|[ \t])-[ \t]*$/m, // an empty sequence entry, which js-yaml 4 misreads when nested
];

describe('YAML readers', () => {
  it('reads the YAML 1.2 core schema: yes is a string, 0o17 octal, << a key, tags refused', () => {
    const read = (value: string) => {
      const result = ours(`a: ${value}\n`);
      assert.ok('data' in result, `${value}: ${JSON.stringify(result)}`);
      return (result.data[0] as { a: unknown }).a;
    };
    for (const word of ['yes', 'no', 'on', 'off', 'y', 'Yes', 'NO']) assert.equal(read(word), word);
    assert.equal(read('true'), true);
    assert.equal(read('FALSE'), false);
    assert.equal(read('~'), null);
    assert.equal(read('Null'), null);
    assert.equal(read(''), null);
    assert.equal(read('0o17'), 15);
    assert.equal(read('012'), 12); // decimal in YAML 1.2, octal in 1.1
    assert.equal(read('0x1F'), 31);
    assert.equal(read('0b101'), '0b101');
    assert.equal(read('1_000'), '1_000');
    assert.equal(read('1e3'), 1000);
    assert.equal(read('-.5'), -0.5);
    assert.equal(read('.inf'), Infinity);
    assert.equal(read('-.Inf'), -Infinity);
    assert.ok(Number.isNaN(read('.nan')));
    assert.equal(read('2001-12-14'), '2001-12-14'); // no timestamps
    assert.equal(read('12:30:00'), '12:30:00'); // no sexagesimal numbers
    assert.equal(read('!!str 12'), '12');
    assert.deepEqual(ours('<<: {b: 1}\nc: 2\n'), { data: [{ '<<': { b: 1 }, c: 2 }] });

    for (const tagged of ['!!js/function "function () {}"', '!!binary aGk=', '!custom x']) {
      const result = ours(`a: 1\nb: ${tagged}\n`);
      assert.ok('errors' in result, tagged);
      assert.match(result.errors[0] ?? '', /^2:\d+ cannot read this document: unknown tag/, tagged);
    }
  });

  it('refuses a duplicate key at the second one, whatever reader notices', () => {
    assert.deepEqual(ours('a: 1\nb: 2\na: 3\n'), {
      errors: ['3:1 duplicate key `a`: a key may appear once in a mapping'],
    });
    // The same key to js-yaml once written as a string: `yaml` keeps both, js-yaml refuses.
    const result = ours('1: a\n"1": b\n');
    assert.ok('errors' in result);
    assert.match(result.errors[0] ?? '', /^2:1 cannot read this document: duplicated mapping key/);
  });

  it('reads anchors, refuses an alias bomb, a cycle, a null or complex key, and %YAML 1.1', () => {
    assert.deepEqual(ours('a: &x [1, {b: c}]\nd: *x\n'), {
      data: [{ a: [1, { b: 'c' }], d: [1, { b: 'c' }] }],
    });
    const bomb = ['a: &a [x, x, x, x, x, x, x, x, x]'];
    for (let level = 1; level < 9; level++) {
      const previous = String.fromCharCode(96 + level);
      bomb.push(
        `${String.fromCharCode(97 + level)}: &${String.fromCharCode(97 + level)} [${Array(9).fill(`*${previous}`).join(', ')}]`,
      );
    }
    const started = performance.now();
    const refused = ours(`${bomb.join('\n')}\n`);
    assert.ok(performance.now() - started < 1000, 'refused quickly');
    assert.ok('errors' in refused);
    assert.match(refused.errors[0] ?? '', /alias/i);

    assert.deepEqual(ours('a: &x [*x]\n'), {
      errors: ['1:1 cannot read this document: an alias refers to a node that contains it'],
    });
    for (const text of [
      '~: 1\n',
      'a: {null: 1}\n',
      '? [a, b]\n: 1\n',
      '? [a]\n: 1\n',
      '[a]: 1\n',
    ]) {
      const result = ours(text);
      assert.ok('errors' in result, text);
      assert.match(result.errors[0] ?? '', /reads differently/, text);
    }
    const old = ours('%YAML 1.1\n---\na: yes\n');
    assert.ok('errors' in old);
    assert.match(old.errors[0] ?? '', /asks for YAML 1\.1/);
    assert.deepEqual(ours('%YAML 1.2\n---\na: yes\n'), { data: [{ a: 'yes' }] });
  });

  it('refuses nesting past 100 levels, and reports where', () => {
    const deep = `a: ${'['.repeat(150)}${']'.repeat(150)}\n`;
    const result = ours(deep);
    assert.ok('errors' in result);
    assert.match(result.errors[0] ?? '', /^1:\d+ cannot read this document: nesting exceeded/);
  });

  it('keeps the documents of a file js-yaml refuses that the yaml package reads cleanly', () => {
    const parsed = parseManifestFile(
      'a: 1\n---\nb: [unclosed\n---\nc: 3\n---\nd: !custom x\n',
      'x.yaml',
      '/x.yaml',
    );
    assert.deepEqual(
      parsed.documents.map((d) => d.data),
      [{ a: 1 }, { c: 3 }],
    );
    const errors = parsed.diagnostics.filter((d) => d.severity === 'error');
    assert.deepEqual(
      errors.map((d) => [d.line, d.message.split(':')[0]]),
      [
        [4, 'YAML syntax'], // `yaml` finds the bracket unclosed where the next line starts
        [7, 'cannot read this document'],
      ],
    );
  });

  it('agrees with the yaml package on every manifest of the repository', () => {
    let read = 0;
    for (const path of ['examples', 'manifests', 'test'].flatMap((dir) =>
      yamlFiles(join(REPOSITORY, dir)),
    )) {
      const text = readFileSync(path, 'utf8');
      const mine = ours(text);
      const yours = theirs(text);
      if ('data' in mine) {
        read++;
        assert.deepEqual(yours, mine, path);
      } else {
        assert.ok('problems' in yours, `${path}: refused only by us: ${mine.errors.join('; ')}`);
      }
    }
    assert.ok(read > 20, `only ${read} manifests read`);
  });

  it('reads generated manifests as the yaml package does, or refuses them (fast-check)', () => {
    let accepted = 0;
    let refusedByBoth = 0;
    fc.assert(
      fc.property(text, (source) => {
        const mine = ours(source);
        const yours = theirs(source);
        if ('data' in mine) {
          accepted++;
          // Accepted: the `yaml` package reads the same, with no complaint.
          assert.ok('data' in yours, `yaml complains: ${JSON.stringify(yours)}`);
          assert.ok(isDeepStrictEqual(mine.data, yours.data), 'the same data');
        } else if ('problems' in yours) {
          refusedByBoth++;
        } else {
          // Refused by us alone: only where js-yaml reads more strictly.
          assert.ok(
            STRICTER.some((pattern) => pattern.test(source)),
            `refused by us alone: ${mine.errors.join('; ')}`,
          );
        }
      }),
      { numRuns: 1_000 },
    );
    assert.ok(accepted > 100, `only ${accepted} accepted`);
    assert.ok(refusedByBoth > 50, `only ${refusedByBoth} refused by both`);
  });

  it('points at the position the yaml package gives, whichever way the file was read', () => {
    // Each text read as it is (js-yaml alone), and with an anchor in a last comment (both read it).
    const texts = [
      '# a comment first\n---\na: 1\nb: [x, y]\n---\n---\n# between\nc:\n  - 192.0.2.0/24\n  - {d: e}\n',
      ...['examples', 'manifests']
        .flatMap((dir) => yamlFiles(join(REPOSITORY, dir)))
        .map((path) => readFileSync(path, 'utf8')),
    ];
    let compared = 0;
    for (const source of texts) {
      const a = parseManifestFile(source, 'x.yaml', '/x.yaml');
      const b = parseManifestFile(`${source}\n# &anchor\n`, 'x.yaml', '/x.yaml');
      if (a.diagnostics.length > 0) continue;
      assert.deepEqual(b.diagnostics, []);
      assert.equal(a.documents.length, b.documents.length);
      for (const [index, document] of a.documents.entries()) {
        const twin = b.documents[index];
        assert.ok(twin !== undefined);
        assert.deepEqual(document.data, twin.data);
        for (const path of fieldPaths(document.data)) {
          const where = `${JSON.stringify(path)} in ${JSON.stringify(source.slice(0, 200))}`;
          assert.deepEqual(document.at(path), twin.at(path), `at ${where}`);
          assert.deepEqual(document.valueAt(path), twin.valueAt(path), `valueAt ${where}`);
          assert.equal(document.has(path), twin.has(path), `has ${where}`);
          compared++;
        }
      }
    }
    assert.ok(compared > 500, `only ${compared} positions compared`);
    const [, second] = parseManifestFile(texts[0] ?? '', 'x.yaml', '/x.yaml').documents;
    assert.deepEqual(second?.valueAt(['c', 1, 'd']), { file: 'x.yaml', line: 10, col: 9 });
    assert.deepEqual(second?.at(['c', 0]), { file: 'x.yaml', line: 9, col: 5 });
    assert.equal(second?.has(['c', 2]), false);
  });
  it('points where the yaml package does on generated files, CRLF, comments, tags and BOM too (fast-check)', () => {
    // The quick reading's positions come from js-yaml's node starts; an anchor in a last comment
    // makes the file read carefully, with positions from the `yaml` package.
    const variant = fc.record({
      crlf: fc.boolean(),
      commentAfterKey: fc.boolean(),
      bom: fc.boolean(),
    });
    // Flow pairs (`[b: 1]`) and keys without values (`{e}`) do not fit js-yaml's node starts: the
    // `yaml` package places them.
    const pairs = 'a: [b: 1, c]\nd: {e}\n';
    const [flowPairs] = parseManifestFile(pairs, 'x.yaml', '/x.yaml').documents;
    const [flowTwin] = parseManifestFile(`${pairs}# &x\n`, 'x.yaml', '/x.yaml').documents;
    assert.deepEqual(flowPairs?.valueAt(['a', 0, 'b']), { file: 'x.yaml', line: 1, col: 8 });
    for (const path of fieldPaths(flowPairs?.data)) {
      assert.deepEqual(flowPairs?.valueAt(path), flowTwin?.valueAt(path), JSON.stringify(path));
    }
    let compared = 0;
    fc.assert(
      fc.property(text, variant, (generated, { crlf, commentAfterKey, bom }) => {
        let source = commentAfterKey ? generated.replace(/:\n/g, ': # note\n') : generated;
        if (crlf) source = source.replace(/\n/g, '\r\n');
        if (bom) source = `\ufeff${source}`;
        const quick = parseManifestFile(source, 'x.yaml', '/x.yaml');
        if (quick.diagnostics.length > 0) return;
        const careful = parseManifestFile(`${source}\n# &anchor\n`, 'x.yaml', '/x.yaml');
        assert.equal(careful.documents.length, quick.documents.length);
        for (const [index, document] of quick.documents.entries()) {
          const twin = careful.documents[index];
          assert.ok(twin !== undefined);
          // Defaults are filled into the data before rules ask where a field is written.
          const paths = fieldPaths(document.data);
          fillIn(document.data);
          for (const path of paths) {
            const where = `${JSON.stringify(path)} in ${JSON.stringify(source)}`;
            assert.deepEqual(document.at(path), twin.at(path), `at ${where}`);
            assert.deepEqual(document.valueAt(path), twin.valueAt(path), `valueAt ${where}`);
            assert.equal(document.has(path), twin.has(path), `has ${where}`);
            compared++;
          }
        }
      }),
      { numRuns: 600 },
    );
    assert.ok(compared > 1_000, `only ${compared} positions compared`);
  });
});

/** Adds a key to every mapping and an item to every sequence, as filling in defaults does. */
function fillIn(data: unknown): void {
  if (Array.isArray(data)) {
    data.forEach(fillIn);
    data.push('filled in');
  } else if (typeof data === 'object' && data !== null) {
    Object.values(data).forEach(fillIn);
    (data as Record<string, unknown>).filledIn = true;
  }
}

/** Every path of the data, plus an absent key under each mapping and past each sequence. */
function fieldPaths(data: unknown, prefix: (string | number)[] = []): (string | number)[][] {
  const paths = [prefix];
  if (Array.isArray(data)) {
    data.forEach((item, index) => paths.push(...fieldPaths(item, [...prefix, index])));
    paths.push([...prefix, data.length], [...prefix, 'absent']);
  } else if (typeof data === 'object' && data !== null) {
    for (const [key, value] of Object.entries(data))
      paths.push(...fieldPaths(value, [...prefix, key]));
    paths.push([...prefix, 'absent', 'deeper']);
  }
  return paths;
}
