// The source recorded with a generation: the Git commit of the manifests, and dirty when the
// manifests hold what that commit does not (modified, staged, deleted, untracked), as git
// describe --dirty says; ignored files and changes outside the manifest paths do not count.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { gitDirty, gitRevision } from '../../src/reconcile/source.js';
import { tempDir, type TempDir } from '../support/tmp.js';

describe('the source of a configuration', () => {
  let dir: TempDir;
  let manifests: string;
  const git = (...args: string[]) =>
    execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@example.com', ...args], {
      cwd: dir.path,
      stdio: 'pipe',
    });

  before(async () => {
    dir = await tempDir('domsec-source-');
    manifests = join(dir.path, 'manifests');
    await mkdir(manifests);
    await writeFile(join(manifests, 'a.yaml'), 'a: 1\n');
    await writeFile(join(dir.path, '.gitignore'), '*.swp\n');
    await writeFile(join(dir.path, 'README'), 'outside\n');
    git('init', '-q');
    git('add', '.');
    git('commit', '-q', '-m', 'first');
  });
  after(async () => {
    await dir.remove();
  });

  it('is clean at the commit, and with ignored files or changes outside the manifest paths', async () => {
    assert.match((await gitRevision([manifests])) ?? '', /^[0-9a-f]{40}$/);
    assert.equal(await gitDirty([manifests]), false);
    await writeFile(join(manifests, 'a.yaml.swp'), 'editor\n');
    await writeFile(join(dir.path, 'README'), 'changed outside\n');
    assert.equal(await gitDirty([manifests]), false);
    assert.equal(await gitDirty([join(manifests, 'a.yaml')]), false);
  });

  it('is dirty with an untracked, a modified, a staged or a deleted manifest', async () => {
    await writeFile(join(manifests, 'b.yaml'), 'b: 1\n');
    assert.equal(await gitDirty([manifests]), true, 'untracked');
    await rm(join(manifests, 'b.yaml'));
    await writeFile(join(manifests, 'a.yaml'), 'a: 2\n');
    assert.equal(await gitDirty([manifests]), true, 'modified');
    git('add', 'manifests/a.yaml');
    assert.equal(await gitDirty([manifests]), true, 'staged');
    git('reset', '-q', '--hard');
    assert.equal(await gitDirty([manifests]), false);
    await rm(join(manifests, 'a.yaml'));
    assert.equal(await gitDirty([manifests]), true, 'deleted');
  });

  it('names no revision outside a checkout', async () => {
    const outside = await tempDir('domsec-source-outside-');
    try {
      assert.equal(await gitRevision([outside.path]), undefined);
    } finally {
      await outside.remove();
    }
  });
});
