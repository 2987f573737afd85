// Where a configuration came from: the manifest paths and, when they are in a Git checkout, the
// commit (`git rev-parse HEAD`), kept by the engine with each generation (`domsec history`).
import { execFile } from 'node:child_process';
import { stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import type { RuntimeConfig } from '../model.js';

/** The Git commit checked out where the first path lives, or undefined (no Git, no checkout). */
export async function gitRevision(paths: string[]): Promise<string | undefined> {
  const [first] = paths;
  if (first === undefined) return undefined;
  let directory = resolve(first);
  try {
    if (!(await stat(directory)).isDirectory()) directory = dirname(directory);
  } catch {
    return undefined;
  }
  return new Promise((done) => {
    execFile('git', ['rev-parse', 'HEAD'], { cwd: directory, timeout: 5_000 }, (error, stdout) => {
      const revision = stdout.trim();
      done(error === null && /^[0-9a-f]{40,64}$/.test(revision) ? revision : undefined);
    });
  });
}

/** The configuration with its source's revision filled in when the manifests are a checkout. */
export async function withRevision(config: RuntimeConfig, paths: string[]): Promise<RuntimeConfig> {
  const revision = await gitRevision(paths);
  const source = config.source ?? { description: paths.join(', ') };
  return { ...config, source: revision === undefined ? source : { ...source, revision } };
}
