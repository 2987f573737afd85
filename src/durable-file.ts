// Files that must be found whole after a crash (the engine's applied configuration, kept
// generations and reconcile status; saved plans): written under a temporary name, fsync'ed,
// renamed over, and the directory fsync'ed so that the rename itself survives a power loss.
// Shared by the engine and reconcile, like units.ts.
import { chmod, open, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';

/** Replaces target atomically with text; owner-only by default, as these files may hold the key. */
export async function writeFileDurably(target: string, text: string, mode = 0o600): Promise<void> {
  const temporary = `${target}.${process.pid}.tmp`;
  await writeFile(temporary, text, { mode });
  // writeFile keeps the mode of a file that already exists; these may hold the private key.
  await chmod(temporary, mode);
  await syncPath(temporary);
  await rename(temporary, target);
  // The rename lives in the directory: until that is synced a power loss may bring the old file
  // back (or none). POSIX; Windows cannot open a directory.
  if (process.platform !== 'win32') await syncPath(dirname(target));
}

/** fsync of a file or a directory, opened read-only. */
async function syncPath(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
