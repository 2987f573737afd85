// The diagnostic code catalogue is the one source of `domsec explain DS001` and of the table in
// docs/troubleshooting.md: the page's rows must say exactly what the catalogue says, code by code.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { DIAGNOSTIC_CODES, findDiagnosticCode } from '../../src/config/diagnostic-codes.js';

const PAGE = new URL('../../docs/troubleshooting.md', import.meta.url);

/** The diagnostic code rows of the page: code, severity, meaning, fix (cells trimmed). */
function pageRows(page: string): string[][] {
  return page
    .split('\n')
    .map((line) => /^\|\s*`(DS\d{3}|SCHEMA|YAML|LOAD)`\s*\|(.*)\|\s*$/.exec(line))
    .filter((match) => match !== null)
    .map((match) => [match[1] ?? '', ...(match[2] ?? '').split('|').map((cell) => cell.trim())]);
}

describe('the diagnostic code catalogue', () => {
  it("is the table of docs/troubleshooting.md, row by row and in the page's order", async () => {
    const rows = pageRows(await readFile(PAGE, 'utf8'));
    assert.deepEqual(
      rows,
      DIAGNOSTIC_CODES.map((entry) => [entry.code, entry.severity, entry.meaning, entry.fix]),
      'change src/config/diagnostic-codes.ts and the page together',
    );
  });

  it('finds a code however it is typed, and nothing for an unknown one', () => {
    assert.equal(findDiagnosticCode('ds001')?.code, 'DS001');
    assert.equal(findDiagnosticCode(' DS101 ')?.severity, 'warning');
    assert.equal(findDiagnosticCode('DS999'), undefined);
  });
});
