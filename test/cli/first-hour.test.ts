// A newcomer's first hour, as README.md and docs/ tell it: each small trap a careless first run
// falls into answers with one line saying what happened and what to do, over the built CLI.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { domsec } from '../support/cli.js';
import { tempDir, type TempDir } from '../support/tmp.js';

describe('a first hour with domsec', () => {
  let dir: TempDir;
  before(async () => {
    dir = await tempDir('domsec-first-hour-');
  });
  after(async () => {
    await dir.remove();
  });

  it('certs lab refuses to replace an existing CA and its keys without --force', async () => {
    const lab = join(dir.path, 'lab');
    assert.equal((await domsec(['certs', 'lab', lab])).code, 0);
    const root = await readFile(join(lab, 'adatum', 'pki', 'adatum-root.crt'), 'utf8');
    const again = await domsec(['certs', 'lab', lab]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /adatum-root\.crt.* already exist.*--force/);
    assert.equal(again.stderr.trim().split('\n').length, 1);
    assert.equal(await readFile(join(lab, 'adatum', 'pki', 'adatum-root.crt'), 'utf8'), root);
    const forced = await domsec(['certs', 'lab', lab, '--force']);
    assert.equal(forced.code, 0, forced.stderr);
    assert.notEqual(await readFile(join(lab, 'adatum', 'pki', 'adatum-root.crt'), 'utf8'), root);
  });
});
