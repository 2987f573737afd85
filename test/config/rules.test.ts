// The rules of validate, run from one table (rule-cases.ts) as ESLint's RuleTester runs its
// cases: each valid case loads without a diagnostic, each invalid case reports exactly its
// diagnostics, in order, at their fields, with their messages and hints; an error refuses the
// configuration and a warning does not. Every DS code of the catalogue has both kinds of case.
import assert from 'node:assert/strict';
import { cp, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DIAGNOSTIC_CODES } from '../../src/config/diagnostic-codes.js';
import type { Diagnostic } from '../../src/model.js';
import { CaseLab, codes, FIXTURES, positionIn } from './cases.js';
import { RULE_CASES, type ExpectedDiagnostic, type Loaded, type Manifests } from './rule-cases.js';

const SEVERITY = new Map(DIAGNOSTIC_CODES.map((entry) => [entry.code, entry.severity]));

function matches(actual: string | undefined, expected: string | RegExp, what: string): void {
  if (typeof expected === 'string') assert.equal(actual, expected, what);
  else assert.match(actual ?? '', expected, what);
}

async function assertDiagnostic(
  actual: Diagnostic,
  expected: ExpectedDiagnostic,
  dir: string,
): Promise<void> {
  const what = `${expected.code}: ${actual.message}`;
  assert.equal(actual.code, expected.code);
  const severity = SEVERITY.get(expected.code);
  if (severity === 'error' || severity === 'warning') assert.equal(actual.severity, severity, what);
  if (expected.at !== undefined) {
    assert.equal(resolve(actual.file), join(dir, expected.at.file), what);
    const position = await positionIn(
      join(dir, expected.at.file),
      expected.at.needle,
      expected.at.occurrence,
    );
    assert.deepEqual(
      { line: actual.line, col: actual.col },
      position,
      `${expected.code} at ${expected.at.needle}`,
    );
  }
  if (expected.line !== undefined) assert.equal(actual.line, expected.line, what);
  if (expected.message !== undefined) matches(actual.message, expected.message, 'message');
  if (expected.hint !== undefined) matches(actual.hint, expected.hint, `hint of ${what}`);
}

describe('configuration rules', () => {
  let cases: CaseLab;
  before(async () => {
    cases = await CaseLab.create();
  });
  after(async () => {
    await cases.remove();
  });

  const load = (manifests: Manifests): Promise<Loaded> =>
    cases.load(manifests.fixture, async (dir) => {
      for (const [file, content] of Object.entries(manifests.files ?? {})) {
        const path = join(dir, file);
        const text = typeof content === 'string' ? content : content(await readFile(path, 'utf8'));
        await writeFile(path, text);
      }
      await manifests.prepare?.(dir);
    });

  it('accepts the base configuration without any diagnostic', async () => {
    const result = await load({});
    assert.deepEqual(result.diagnostics, []);
    assert.ok(result.config);
  });

  it('has a valid and an invalid case for every DS code of the catalogue, and no case for a code it lacks', () => {
    const catalogue = DIAGNOSTIC_CODES.map((entry) => entry.code);
    const missing = catalogue
      .filter((code) => /^DS\d{3}$/.test(code))
      .filter((code) => {
        const entry = RULE_CASES.find((cases) => cases.code === code);
        const refuses = entry?.invalid.some((c) => c.diagnostics.some((d) => d.code === code));
        return entry === undefined || entry.valid.length === 0 || refuses !== true;
      });
    assert.deepEqual(missing, [], 'each needs a valid case and an invalid case that reports it');
    for (const entry of RULE_CASES) assert.ok(catalogue.includes(entry.code), entry.code);
    const names = RULE_CASES.flatMap((e) =>
      [...e.valid, ...e.invalid].map((c) => `${e.code} ${c.name}`),
    );
    assert.equal(new Set(names).size, names.length, 'case names are unique');
  });

  for (const entry of RULE_CASES) {
    describe(entry.code, () => {
      for (const valid of entry.valid) {
        it(`passes ${valid.name}`, async () => {
          const result = await load(valid);
          assert.deepEqual(result.diagnostics, []);
          assert.ok(result.config, 'a configuration without diagnostics compiles');
          await valid.check?.(result);
        });
      }
      for (const invalid of entry.invalid) {
        it(`reports ${invalid.name}`, async () => {
          const result = await load(invalid);
          assert.deepEqual(
            codes(result.diagnostics),
            invalid.diagnostics.map((d) => d.code),
            JSON.stringify(result.diagnostics, null, 2),
          );
          for (const [index, expected] of invalid.diagnostics.entries())
            await assertDiagnostic(result.diagnostics[index] as Diagnostic, expected, result.dir);
          const refused = result.diagnostics.some((d) => d.severity === 'error');
          assert.equal(result.config === undefined, refused, 'errors refuse, warnings do not');
          await invalid.check?.(result);
        });
      }
    });
  }

  it('reports every problem at once, across files', async () => {
    const result = await load({
      fixture: 'DS001',
      prepare: (dir) => cp(join(FIXTURES, 'DS007', 'partners.yaml'), join(dir, 'partners.yaml')),
    });
    assert.deepEqual(codes(result.diagnostics), ['DS001', 'DS007']);
  });
});
