// Where a configuration came from: the manifest paths and, when they are in a Git checkout, the
// commit (`git rev-parse HEAD`) and whether the manifests differ from it (as `git describe
// --dirty` says), kept by the engine with each generation (`domsec history`).
import { execFile } from 'node:child_process';
import { stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import type { RuntimeConfig } from '../model.js';

/** The directory Git runs in for the first path, or undefined when there is none. */
async function checkoutDirectory(paths: string[]): Promise<string | undefined> {
  const [first] = paths;
  if (first === undefined) return undefined;
  const directory = resolve(first);
  try {
    return (await stat(directory)).isDirectory() ? directory : dirname(directory);
  } catch {
    return undefined;
  }
}

/** git's standard output, or undefined when it failed (no Git, not a checkout, too slow). */
function git(directory: string, args: string[]): Promise<string | undefined> {
  return new Promise((done) => {
    execFile('git', args, { cwd: directory, timeout: 5_000 }, (error, stdout) => {
      done(error === null ? stdout : undefined);
    });
  });
}

/** The Git commit checked out where the first path lives, or undefined (no Git, no checkout). */
export async function gitRevision(paths: string[]): Promise<string | undefined> {
  const directory = await checkoutDirectory(paths);
  if (directory === undefined) return undefined;
  const revision = (await git(directory, ['rev-parse', 'HEAD']))?.trim() ?? '';
  return /^[0-9a-f]{40,64}$/.test(revision) ? revision : undefined;
}

/**
 * Whether any manifest path holds a change the commit does not: modified, staged, deleted or
 * untracked (ignored files are not read as manifests' content in Git's sense, and not counted).
 * A failing `git status` counts as dirty: the revision alone would then claim too much.
 */
export async function gitDirty(paths: string[]): Promise<boolean> {
  const directory = await checkoutDirectory(paths);
  if (directory === undefined) return true;
  const pathspecs = paths.map((path) => resolve(path));
  const status = await git(directory, [
    'status',
    '--porcelain',
    '--untracked-files=all',
    '--',
    ...pathspecs,
  ]);
  return status === undefined || status.trim() !== '';
}

/**
 * The configuration with its source's revision filled in when the manifests are a checkout,
 * and `dirty: true` when they differ from that revision.
 */
export async function withRevision(config: RuntimeConfig, paths: string[]): Promise<RuntimeConfig> {
  const revision = await gitRevision(paths);
  const source = config.source ?? { description: paths.join(', ') };
  if (revision === undefined) return { ...config, source };
  const dirty = await gitDirty(paths);
  return { ...config, source: { ...source, revision, ...(dirty ? { dirty } : {}) } };
}
