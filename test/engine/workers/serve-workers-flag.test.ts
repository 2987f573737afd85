// serve --workers: a count that is no whole number from 1 to 256 is refused before anything
// starts (no state directory is made, nothing is locked).
import assert from 'node:assert/strict';
import { access } from 'node:fs/promises';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { domsec } from '../../support/cli.js';
import { tempDir, type TempDir } from '../../support/tmp.js';

describe('serve --workers', () => {
  const dirs: TempDir[] = [];
  after(() => Promise.all(dirs.map((dir) => dir.remove())));

  for (const given of ['0', '-1', '1.5', 'two', '257', '2e1', ' 2', '0x2', ''])
    it(`refuses --workers ${JSON.stringify(given)} and starts nothing`, async () => {
      const dir = await tempDir('domsec-workers-flag-');
      dirs.push(dir);
      const state = join(dir.path, 'state');
      const result = await domsec([
        'serve',
        '--state',
        state,
        '--workers',
        given,
        '--admin',
        '127.0.0.1:0',
      ]);
      assert.equal(result.code, 1, result.stderr);
      assert.match(result.stderr, /--workers .*: expected a whole number from 1 to 256/);
      await assert.rejects(access(state), 'no state directory was made');
    });
});
