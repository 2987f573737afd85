// Rule cases for the config tests: a valid configuration (fixtures/base) with one file replaced by
// a case's own (fixtures/<CODE>/), beside the lab PKI, in a temporary directory.
import assert from 'node:assert/strict';
import { cp, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfiguration, type LoadResult } from '../../src/config/index.js';
import type { Diagnostic } from '../../src/model.js';
import { writeLabPki } from '../../src/pki/organization.js';

export const FIXTURES = fileURLToPath(new URL('./fixtures/', import.meta.url));

export const STORY = [
  { name: 'adatum', hostname: 'mail.adatum.com', domains: ['adatum.com'] },
  { name: 'treyresearch', hostname: 'mail.treyresearch.net', domains: ['treyresearch.net'] },
];

/** One lab PKI for a test file; each case copies adatum's pki/ from it. */
export class CaseLab {
  private constructor(readonly root: string) {}

  static async create(): Promise<CaseLab> {
    const root = await mkdtemp(join(tmpdir(), 'domsec-config-'));
    await writeLabPki(join(root, 'lab'), STORY);
    return new CaseLab(root);
  }

  /** A directory with base, the case's files over it, and adatum's pki/. */
  async prepare(fixture?: string): Promise<string> {
    const dir = await mkdtemp(join(this.root, `${fixture ?? 'base'}-`));
    await cp(join(FIXTURES, 'base'), dir, { recursive: true });
    if (fixture !== undefined) await cp(join(FIXTURES, fixture), dir, { recursive: true });
    await cp(join(this.root, 'lab', 'adatum', 'pki'), join(dir, 'pki'), { recursive: true });
    return dir;
  }

  async load(
    fixture?: string,
    adjust?: (dir: string) => Promise<void>,
  ): Promise<LoadResult & { dir: string }> {
    const dir = await this.prepare(fixture);
    if (adjust !== undefined) await adjust(dir);
    return { ...(await loadConfiguration([dir])), dir };
  }

  async remove(): Promise<void> {
    await rm(this.root, { recursive: true, force: true });
  }
}

export function codes(diagnostics: readonly Diagnostic[]): string[] {
  return diagnostics.map((d) => d.code);
}

/** Line and column (1-based) of the first occurrence of needle in a fixture file. */
export async function positionIn(
  path: string,
  needle: string,
  occurrence = 1,
): Promise<{ line: number; col: number }> {
  const lines = (await readFile(path, 'utf8')).split('\n');
  let seen = 0;
  for (const [index, text] of lines.entries()) {
    let from = 0;
    for (;;) {
      const col = text.indexOf(needle, from);
      if (col === -1) break;
      if (++seen === occurrence) return { line: index + 1, col: col + 1 };
      from = col + 1;
    }
  }
  throw new Error(`${needle} not in ${path}`);
}

/** The one diagnostic with the code, at the needle's position in file (within dir). */
export async function assertAt(
  diagnostics: readonly Diagnostic[],
  code: string,
  dir: string,
  file: string,
  needle: string,
  occurrence = 1,
): Promise<Diagnostic> {
  const found = diagnostics.filter((d) => d.code === code);
  assert.equal(
    found.length,
    1,
    `one ${code} expected, got:\n${JSON.stringify(diagnostics, null, 2)}`,
  );
  const diagnostic = found[0] as Diagnostic;
  assert.equal(resolve(diagnostic.file), join(dir, file));
  const expected = await positionIn(join(dir, file), needle, occurrence);
  assert.deepEqual(
    { line: diagnostic.line, col: diagnostic.col },
    expected,
    `${code} at ${needle}`,
  );
  return diagnostic;
}
