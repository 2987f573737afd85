// A seeded property test: thousands of mutations of a valid configuration (keys deleted, wrong
// types, random bytes, truncation, tabs, deep nesting, huge strings). validate must never throw
// or hang, and must answer with a configuration or with diagnostics that carry positions.
// DOMSEC_FUZZ_SEED and DOMSEC_FUZZ_CASES reproduce or widen a run.
import assert from 'node:assert/strict';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parse, stringify } from 'yaml';
import { loadConfiguration } from '../../src/config/index.js';
import type { Diagnostic } from '../../src/model.js';
import { CaseLab } from './cases.js';

const SEED = Number(process.env.DOMSEC_FUZZ_SEED ?? 20261125);
const CASES = Number(process.env.DOMSEC_FUZZ_CASES ?? 2000);

/** mulberry32: small, fast, and the same sequence on every platform. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Random = () => number;
const pick = <T>(next: Random, items: readonly T[]): T =>
  items[Math.floor(next() * items.length)] as T;

const WRONG_VALUES: readonly unknown[] = [
  null,
  0,
  -1,
  1e308,
  true,
  '',
  'x'.repeat(300),
  [],
  [null],
  {},
  { a: 1 },
  '127.0.0.1:99999',
  '*',
  '../../../../etc/passwd',
  '🦀.example',
];

/** Every container in the data (maps and lists), to mutate one of them in place. */
function containers(value: unknown, found: (object | unknown[])[] = []): (object | unknown[])[] {
  if (value !== null && typeof value === 'object') {
    found.push(value);
    for (const child of Object.values(value)) containers(child, found);
  }
  return found;
}

function nested(depth: number, kind: 'map' | 'list'): unknown {
  let value: unknown = 'deep';
  for (let i = 0; i < depth; i++) value = kind === 'map' ? { a: value } : [value];
  return value;
}

/** One structural mutation of the parsed documents, written back as YAML. */
function mutateData(text: string, next: Random): string {
  const documents = text.split(/^---$/m).map((part) => parse(part) as unknown);
  const targets = containers(documents).slice(1);
  const target = pick(next, targets) as Record<string, unknown>;
  const keys = Object.keys(target);
  const key = keys.length === 0 ? 'extra' : pick(next, keys);
  switch (Math.floor(next() * 5)) {
    case 0:
      Reflect.deleteProperty(target, key);
      break;
    case 1:
      target[key] = pick(next, WRONG_VALUES);
      break;
    case 2:
      target[key] = 'h'.repeat(20_000 + Math.floor(next() * 80_000));
      break;
    case 3:
      target[key] = nested(50 + Math.floor(next() * 400), next() < 0.5 ? 'map' : 'list');
      break;
    default:
      target[`${key}x`] = target[key];
  }
  return documents.map((d) => stringify(d)).join('---\n');
}

/** One textual mutation: bytes, truncation, tabs, brackets, deep flow nesting, duplicates. */
function mutateText(text: string, next: Random): Buffer {
  const at = Math.floor(next() * text.length);
  const head = Buffer.from(text.slice(0, at));
  const tail = Buffer.from(text.slice(at));
  switch (Math.floor(next() * 7)) {
    case 0: {
      const bytes = Buffer.alloc(1 + Math.floor(next() * 16));
      for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(next() * 256);
      return Buffer.concat([head, bytes, tail.subarray(bytes.length)]);
    }
    case 1:
      return head;
    case 2:
      return Buffer.concat([head, Buffer.from('\t'), tail]);
    case 3:
      return Buffer.concat([
        head,
        Buffer.from(
          pick(next, [
            '[',
            ']',
            '{',
            '}',
            ':',
            '&a',
            '*a',
            '"',
            "'",
            '\n- ',
            '!!binary ',
            '<<: ',
            '%YAML 1.1\n',
          ]),
        ),
        tail,
      ]);
    case 4: {
      const depth = 100 + Math.floor(next() * 5000);
      return Buffer.concat([head, Buffer.from('['.repeat(depth) + ']'.repeat(depth)), tail]);
    }
    case 5: {
      const lines = text.split('\n');
      const line = Math.floor(next() * lines.length);
      lines.splice(line, 0, lines[line] ?? '');
      return Buffer.from(lines.join('\n'));
    }
    default:
      return Buffer.concat([head, Buffer.from('\u0000\u00ff\ufeff\u202e'), tail]);
  }
}

function assertAnswer(diagnostics: readonly Diagnostic[], valid: boolean, label: string): void {
  const errors = diagnostics.filter((d) => d.severity === 'error');
  assert.equal(valid, errors.length === 0, `${label}: a configuration iff no error`);
  for (const d of diagnostics) {
    assert.ok(/^(DS\d{3}|SCHEMA|YAML|LOAD)$/.test(d.code), `${label}: code ${d.code}`);
    assert.ok(typeof d.file === 'string' && d.file.length > 0, `${label}: file`);
    assert.ok(Number.isInteger(d.line) && d.line >= 1, `${label}: line ${d.line}`);
    assert.ok(Number.isInteger(d.col) && d.col >= 1, `${label}: col ${d.col}`);
    assert.ok(typeof d.message === 'string' && d.message.length > 0, `${label}: message`);
    assert.ok(
      d.message.length < 2000,
      `${label}: a message does not echo huge input: ${d.message.slice(0, 300)}`,
    );
    assert.ok(!d.message.includes('internal error'), `${label}: ${d.message}`);
  }
}

describe('validate under mutation', () => {
  let cases: CaseLab;
  let dir: string;
  let originals: Map<string, string>;
  before(async () => {
    cases = await CaseLab.create();
    dir = await cases.prepare();
    const names = (await readdir(dir)).filter((name) => name.endsWith('.yaml'));
    originals = new Map(
      await Promise.all(
        names.map(async (name) => [name, await readFile(join(dir, name), 'utf8')] as const),
      ),
    );
  });
  after(async () => {
    await cases.remove();
  });

  it(`never throws, never hangs, always answers with positions (${CASES} cases, seed ${SEED})`, async () => {
    const next = random(SEED);
    const names = [...originals.keys()].sort();
    const started = performance.now();
    let refused = 0;
    for (let index = 0; index < CASES; index++) {
      const name = pick(next, names);
      const original = originals.get(name) ?? '';
      const mutated = next() < 0.5 ? mutateText(original, next) : mutateData(original, next);
      await writeFile(join(dir, name), mutated);
      const label = `case ${index} (seed ${SEED}, ${name})`;
      const before = performance.now();
      const result = await loadConfiguration([dir]);
      assert.ok(performance.now() - before < 2000, `${label}: answered in under 2 s`);
      assertAnswer(result.diagnostics, result.config !== undefined, label);
      if (result.config === undefined) refused++;
      await writeFile(join(dir, name), original);
    }
    // Most mutations break something; a run that refuses nothing is not mutating.
    assert.ok(refused > CASES / 3, `${refused} of ${CASES} refused`);
    assert.ok(performance.now() - started < 60_000);
  });
});
