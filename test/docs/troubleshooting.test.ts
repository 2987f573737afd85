// docs/troubleshooting.md stays complete: every diagnostic code validate can print and every SMTP
// reply the engine gives (the REPLIES table, and reply texts written elsewhere in src/engine) has
// its row there, and the page lists no DS code that the code no longer has.
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { REPLIES } from '../../src/engine/replies.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const PAGE = join(root, 'docs', 'troubleshooting.md');

interface SourceFile {
  path: string;
  text: string;
}

async function sourceFiles(dir: string): Promise<SourceFile[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  const nested = await Promise.all(
    entries.map(async (entry): Promise<SourceFile[]> => {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) return sourceFiles(path);
      if (!entry.name.endsWith('.ts')) return [];
      return [{ path: relative(root, path), text: await readFile(path, 'utf8') }];
    }),
  );
  return nested.flat();
}

/** Lines that are code, not comments: a code only named in a comment is not one we print. */
function codeLines(text: string): string[] {
  return text.split('\n').filter((line) => !/^\s*(\/\/|\*|\/\*)/.test(line));
}

/** Every diagnostic code in src/: DS001... anywhere in code, and those given to error()/warning(). */
function diagnosticCodes(files: readonly SourceFile[]): Map<string, string> {
  const codes = new Map<string, string>();
  for (const file of files) {
    for (const line of codeLines(file.text)) {
      for (const match of line.matchAll(/['"`](DS\d{3})['"`]/g)) {
        if (match[1] !== undefined && !codes.has(match[1])) codes.set(match[1], file.path);
      }
      for (const match of line.matchAll(/\b(?:error|warning)\(\s*['"]([A-Z][A-Z0-9]+)['"]/g)) {
        if (match[1] !== undefined && !codes.has(match[1])) codes.set(match[1], file.path);
      }
    }
  }
  return codes;
}

/** Enhanced status codes in string literals of src/engine outside replies.ts ("2.6.0 Ok: ..."). */
function literalReplies(files: readonly SourceFile[]): Map<string, string> {
  const found = new Map<string, string>();
  for (const file of files) {
    if (!file.path.startsWith(join('src', 'engine'))) continue;
    if (file.path === join('src', 'engine', 'replies.ts')) continue;
    for (const line of codeLines(file.text)) {
      const pattern = /['`](?:[245]\d\d )?([245]\.\d{1,3}\.\d{1,3}) [A-Za-z][^'`$]*/g;
      for (const match of line.matchAll(pattern)) {
        if (match[1] !== undefined) found.set(match[0].slice(1).trim(), file.path);
      }
    }
  }
  return found;
}

/** A table row of the page whose first cell is the code (`DS001` or DS001). */
function hasCodeRow(page: string, code: string): boolean {
  return new RegExp(`^\\|\\s*\`?${code}\`?\\s*\\|`, 'm').test(page);
}

describe('docs/troubleshooting.md', () => {
  let page = '';
  let files: SourceFile[] = [];

  before(async () => {
    page = await readFile(PAGE, 'utf8');
    // The catalogue explain reads names every documented code: the codes the rules print are
    // found in the rest of src/.
    const catalogue = join('src', 'config', 'diagnostic-codes.ts');
    files = (await sourceFiles(join(root, 'src'))).filter((file) => file.path !== catalogue);
  });

  it('has a table row for every diagnostic code defined in src/', () => {
    const codes = diagnosticCodes(files);
    // The scan itself must see the codes it is meant to see, or this test would pass on nothing.
    for (const known of ['DS001', 'DS016', 'DS101', 'SCHEMA', 'YAML', 'LOAD']) {
      assert.ok(codes.has(known), `the scan of src/ did not find ${known}`);
    }
    const missing = [...codes].filter(([code]) => !hasCodeRow(page, code));
    assert.deepEqual(
      missing.map(([code, file]) => `${code} (${file})`),
      [],
      'add a row "| CODE | severity | meaning | fix |" to docs/troubleshooting.md',
    );
  });

  it('lists no DS code that src/ does not define', () => {
    const codes = diagnosticCodes(files);
    const documented = [...page.matchAll(/^\|\s*`?(DS\d{3})`?\s*\|/gm)].map((m) => m[1]);
    assert.ok(documented.length > 0, 'the page has no DS code rows');
    assert.deepEqual(
      documented.filter((code) => code !== undefined && !codes.has(code)),
      [],
      'these rows name codes that src/ no longer has',
    );
  });

  it('has a row with the code, enhanced code and text of every reply in src/engine/replies.ts', () => {
    const replies = Object.entries(REPLIES);
    assert.ok(replies.length >= 20, 'REPLIES was not read');
    const lines = page.split('\n').filter((line) => line.startsWith('|'));
    const missing = replies.filter(
      ([, reply]) =>
        !lines.some(
          (line) => line.includes(`${reply.code} ${reply.enhanced}`) && line.includes(reply.text),
        ),
    );
    assert.deepEqual(
      missing.map(([name, r]) => `${name}: ${r.code} ${r.enhanced} ${r.text}`),
      [],
      'add a row "| code enhanced | text | when | fix |" to docs/troubleshooting.md',
    );
  });

  it('documents the reply texts the engine writes outside replies.ts', () => {
    const literals = literalReplies(files);
    assert.ok(
      [...literals.keys()].some((text) => text.startsWith('2.6.0 Ok: queued as')),
      'the scan of src/engine did not find the 250 2.6.0 reply',
    );
    const missing = [...literals].filter(([text]) => !page.includes(text));
    assert.deepEqual(
      missing.map(([text, file]) => `${text} (${file})`),
      [],
      'document these replies in docs/troubleshooting.md',
    );
  });
});
