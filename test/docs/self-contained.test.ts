// The product carries its own documentation: nothing in src/, schemas/, docs/ or README.md points
// at notes a user does not have (a "SPEC §n" section, a DESIGN document, a ../shared path).
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));
const OUTSIDE = /SPEC §|SPEC-domain-security|DESIGN\.md|\.\.\/shared\//;

async function files(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  const nested = await Promise.all(
    entries.map((entry) => {
      const path = join(dir, entry.name);
      return entry.isDirectory() ? files(path) : Promise.resolve([path]);
    }),
  );
  return nested.flat();
}

describe('documentation that stands alone', () => {
  it('has no reference to notes outside the repository in src, schemas, docs or the README', async () => {
    const paths = [
      ...(await files(join(root, 'src'))),
      ...(await files(join(root, 'schemas'))),
      ...(await files(join(root, 'docs'))),
      join(root, 'README.md'),
    ];
    const found: string[] = [];
    for (const path of paths) {
      const lines = (await readFile(path, 'utf8')).split('\n');
      lines.forEach((line, index) => {
        if (OUTSIDE.test(line)) found.push(`${relative(root, path)}:${index + 1}: ${line.trim()}`);
      });
    }
    assert.deepEqual(found, []);
  });
});
