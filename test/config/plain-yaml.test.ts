// The fast reader of plain YAML: whatever it reads, it reads as the `yaml` package does (data,
// document order), whatever it is unsure of it gives back, and positions stay exact either way.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { readPlainYaml } from '../../src/config/plain-yaml.js';
import { parseManifestFile } from '../../src/config/yaml-documents.js';

const REPOSITORY = new URL('../../', import.meta.url).pathname;

/** What the loader made of a file before plain-yaml.ts: each document's toJS. */
function byYaml(text: string): unknown[] {
  return parseAllDocuments(text).map((document) => {
    assert.equal(document.errors.length, 0, `yaml errors: ${document.errors[0]?.message}`);
    return document.toJS();
  });
}

const PLAIN = [
  'apiVersion: domsec.io/v1alpha1\nkind: PartnerDomain\nmetadata: {name: contoso}\nspec:\n  domain: contoso.com\n  domainSecure: {send: true, receive: false}\n  trustAnchors: [contoso-root, system]\n',
  '# a comment first\n---\na: 1\nb: [x, y]\n---\n# between\nc:\n  - 192.0.2.0/24\n  - 2001:db8::/32\n  - http://example.com\n',
  'list:\n- a\n- b\nafter: TRUE\nnothing: ~\nzero: 0\nbig: 123456789012345\n',
  "bindings: ['127.0.0.2:2525', '[::1]:25']\nquoted: 'a # not a comment'\nempty: []\n",
  'hosts:\n  - host: a.example\n    port: 25\n  -   host: b.example\n      port: 26\nlast: 1abc\n',
  'nested:\n  deeper:\n    deepest: {k: [1, {v: false}]}\n  back: .foo\n',
  'trailing: value   \n\n   \nkey: 1_000\nother: 127.0.0.1\n',
];

const NOT_PLAIN = [
  'a: 1\na: 2\n', // a duplicate key: `yaml` reports it
  'a: "double"\n',
  'a: value # comment\n',
  'a: |\n  block\n',
  'a: &x 1\nb: *x\n',
  'a: !!str 1\n',
  'a: 1.5\n',
  'a: 0x1F\n',
  'a: 012\n',
  'a: -1\n',
  'a: .inf\n',
  'a:\n',
  'a: b: c\n',
  'a: multi\n  line\n',
  'a: [x,\n  y]\n',
  'a: {}\n',
  'a: [x, ]\n',
  'a: {b:c}\n',
  'a: x, y\n',
  "a: 'it''s'\n",
  'a:\tb\n',
  'a: 1\r\nb: 2\r\n',
  '%YAML 1.2\n---\na: 1\n',
  'a: 1\n...\n',
  'a: 1\n---\n',
  'a: 1\n---\n# only a comment\n---\nb: 2\n',
  '--- {a: 1}\n',
  '- a\n- b\n',
  '  a: 1\n',
  'just text\n',
  '__proto__: {a: 1}\n',
  'true: 1\n',
  '"key": 1\n',
  'a: 1\n  b: 2\n',
  'a:\n- x\n  - y\n',
  '# only comments\n',
  '',
];

function yamlFiles(directory: string): string[] {
  return readdirSync(directory).flatMap((name) => {
    const path = join(directory, name);
    if (statSync(path).isDirectory()) return name === 'node_modules' ? [] : yamlFiles(path);
    return /\.ya?ml$/.test(name) ? [path] : [];
  });
}

describe('plain YAML', () => {
  it('reads plain manifests as the yaml package does', () => {
    for (const text of PLAIN) {
      assert.deepEqual(readPlainYaml(text), byYaml(text), text);
    }
  });

  it('gives back to the yaml package what it is not sure of', () => {
    for (const text of NOT_PLAIN) assert.equal(readPlainYaml(text), undefined, text);
  });

  it('agrees with the yaml package on every manifest of the repository it reads', () => {
    let read = 0;
    for (const path of ['examples', 'manifests', 'test'].flatMap((dir) =>
      yamlFiles(join(REPOSITORY, dir)),
    )) {
      const text = readFileSync(path, 'utf8');
      const plain = readPlainYaml(text);
      if (plain === undefined) continue;
      read++;
      assert.deepEqual(plain, byYaml(text), path);
    }
    assert.ok(read > 0, 'no manifest of the repository is plain');
  });

  it('agrees with the yaml package on manifests broken at random, or gives them back', () => {
    const bases = [
      'a: b\nc:\n  - d\n  - e\nf: {g: h, i: [j, k]}\n',
      'k: v\n---\nk2: [a, b]\nm:\n  n: o\n',
      'l:\n- x: 1\n  y: 2\n- z\n',
    ];
    // prettier-ignore
    const pieces = ['a', 'key', 'x y', '1', '0', '01', '1.0', 'true', 'null', '~', '-', '- ', ': ',
      ':', ',', '[', ']', '{', '}', "'", "'q'", '#', ' #c', '*', '&', '!', '|', '>', '?', '%', '@',
      '`', '"', '---', '...', '\n', '\n  ', '\n    ', '\n- ', '\n  - ', ' ', '  ', 'é', '.5',
      '0x1', '192.0.2.1', 'a:b', 'TRUE', 'No', '<<', '__proto__', '\t', '\r'];
    let seed = 12345; // deterministic: a failure is the same failure on the next run
    const random = (n: number) => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    let read = 0;
    for (let round = 0; round < 20_000; round++) {
      let text = bases[random(bases.length)] ?? '';
      for (let edit = random(3); edit >= 0; edit--) {
        const at = random(text.length + 1);
        const piece = random(2) === 0 ? '' : (pieces[random(pieces.length)] ?? '');
        text = text.slice(0, at) + piece + text.slice(at + random(3));
      }
      const plain = readPlainYaml(text);
      if (plain === undefined) continue;
      read++;
      const documents = parseAllDocuments(text);
      const problems = Array.isArray(documents)
        ? documents.flatMap((d) => [...d.errors, ...d.warnings])
        : [];
      assert.deepEqual(problems, [], JSON.stringify(text));
      assert.deepEqual(plain, byYaml(text), JSON.stringify(text));
    }
    assert.ok(read > 1000, `only ${read} of the texts were read plain`);
  });

  it('points at the same FILE:LINE:COL whether the file was read plain or by yaml', () => {
    const plain =
      'apiVersion: v1\nkind: PartnerDomain\n---\nmetadata: {name: contoso}\nspec:\n  list:\n    - a\n    - b\n';
    // The same lines, one comment more at the end of a line: only `yaml` reads this one.
    const other = plain.replace('kind: PartnerDomain', 'kind: PartnerDomain # c');
    assert.notEqual(readPlainYaml(plain), undefined);
    assert.equal(readPlainYaml(other), undefined);
    const paths = [[], ['kind'], ['metadata', 'name'], ['spec', 'list', 1], ['spec', 'absent']];
    const a = parseManifestFile(plain, 'x.yaml', '/x.yaml').documents;
    const b = parseManifestFile(other, 'x.yaml', '/x.yaml').documents;
    assert.equal(a.length, 2);
    assert.equal(b.length, 2);
    for (const [index, document] of a.entries()) {
      const twin = b[index];
      assert.ok(twin !== undefined);
      assert.deepEqual(document.data, twin.data);
      for (const path of paths) {
        assert.deepEqual(document.at(path), twin.at(path), `at ${path.join('.')}`);
        assert.deepEqual(document.valueAt(path), twin.valueAt(path), `valueAt ${path.join('.')}`);
        assert.equal(document.has(path), twin.has(path));
      }
    }
    assert.deepEqual(a[1]?.valueAt(['spec', 'list', 1]), { file: 'x.yaml', line: 8, col: 7 });
  });

  it('finds every field at the position the yaml package gives, in every plain text', () => {
    const texts = [
      ...PLAIN,
      ...['examples', 'manifests', 'test']
        .flatMap((dir) => yamlFiles(join(REPOSITORY, dir)))
        .map((path) => readFileSync(path, 'utf8')),
    ];
    let compared = 0;
    for (const text of texts) {
      if (readPlainYaml(text) === undefined) continue;
      // A tab in a last comment line: the same positions, but only `yaml` reads it.
      const other = `${text}\n# \t\n`;
      assert.equal(readPlainYaml(other), undefined);
      const a = parseManifestFile(text, 'x.yaml', '/x.yaml').documents;
      const b = parseManifestFile(other, 'x.yaml', '/x.yaml').documents;
      assert.equal(a.length, b.length, text);
      for (const [index, document] of a.entries()) {
        const twin = b[index];
        assert.ok(twin !== undefined);
        for (const path of fieldPaths(document.data)) {
          const where = `${JSON.stringify(path)} in ${JSON.stringify(text.slice(0, 200))}`;
          assert.deepEqual(document.at(path), twin.at(path), `at ${where}`);
          assert.deepEqual(document.valueAt(path), twin.valueAt(path), `valueAt ${where}`);
          assert.equal(document.has(path), twin.has(path), `has ${where}`);
          compared++;
        }
      }
    }
    assert.ok(compared > 500, `only ${compared} positions compared`);
  });
});

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
