// docs/manifests.md carries the reference generated from schemas/: it must be up to date, and
// cover every field of every kind. UPDATE_DOCS=1 rewrites it instead of failing.
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { manifestReference, withReference } from '../../src/config/reference-doc.js';
import { kindSchemas } from '../../src/config/schema-documents.js';
import { KINDS } from '../../src/model.js';

const DOCUMENT = new URL('../../docs/manifests.md', import.meta.url);

describe('docs/manifests.md', () => {
  it('holds the reference generated from schemas/ (UPDATE_DOCS=1 rewrites it)', async () => {
    const current = await readFile(DOCUMENT, 'utf8');
    const expected = withReference(current);
    if (process.env.UPDATE_DOCS === '1' && expected !== current) {
      await writeFile(DOCUMENT, expected);
      return;
    }
    assert.equal(
      current,
      expected,
      'stale: run UPDATE_DOCS=1 node test/run.mjs test/config/reference-doc.test.ts',
    );
  });

  it('has a section per kind listing every spec field with its default', () => {
    const reference = manifestReference();
    const { specs } = kindSchemas();
    for (const kind of KINDS) {
      assert.match(reference, new RegExp(`^## ${kind}$`, 'm'));
      const section = reference.split(`## ${kind}\n`)[1]?.split('\n## ')[0] ?? '';
      for (const [name, field] of Object.entries(specs[kind].properties ?? {})) {
        const row = section.split('\n').find((line) => line.startsWith(`| \`${name}\` |`));
        assert.ok(row, `${kind}.${name}`);
        if (field.default !== undefined) assert.ok(row.includes(JSON.stringify(field.default)));
      }
    }
  });

  it('maps the Exchange cmdlets of domain security to domsec fields', async () => {
    const text = await readFile(DOCUMENT, 'utf8');
    for (const cmdlet of [
      'Set-TransportConfig -TLSSendDomainSecureList',
      'Set-TransportConfig -TLSReceiveDomainSecureList',
      'Set-SendConnector -DomainSecureEnabled',
      'Set-ReceiveConnector -AuthMechanism Tls',
      'Set-ReceiveConnector -DomainSecureEnabled',
    ]) {
      assert.ok(text.includes(cmdlet), cmdlet);
    }
  });
});
