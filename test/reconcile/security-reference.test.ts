// docs/plan-format.md lists the security classification of every field, generated from the
// table plans use: it must be up to date. UPDATE_DOCS=1 rewrites it instead of failing.
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { KINDS } from '../../src/model.js';
import { SECURITY_FIELDS } from '../../src/reconcile/security-fields.js';
import {
  securityReference,
  withSecurityReference,
} from '../../src/reconcile/security-reference.js';

const DOCUMENT = new URL('../../docs/plan-format.md', import.meta.url);

describe('docs/plan-format.md, security impact', () => {
  it('holds the classification generated from the table (UPDATE_DOCS=1 rewrites it)', async () => {
    const current = await readFile(DOCUMENT, 'utf8');
    const expected = withSecurityReference(current);
    if (process.env.UPDATE_DOCS === '1' && expected !== current) {
      await writeFile(DOCUMENT, expected);
      return;
    }
    assert.equal(
      current,
      expected,
      'stale: run UPDATE_DOCS=1 node test/run.mjs test/reconcile/security-reference.test.ts',
    );
  });

  it('has a row for every classified field of every kind, and for create and delete', () => {
    const reference = securityReference();
    for (const kind of KINDS) {
      const section = reference.split(`### ${kind}\n`)[1]?.split('\n### ')[0] ?? '';
      for (const rule of SECURITY_FIELDS[kind].fields)
        assert.ok(section.includes(`| \`${rule.path}\``), `${kind}.${rule.path}`);
      assert.match(section, /\| \*created\* \|/);
      assert.match(section, /\| \*deleted\* \|/);
    }
  });
});
