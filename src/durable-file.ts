// Files that must be found whole after a crash (the engine's applied configuration, kept
// generations and reconcile status; saved plans): written under a temporary name, fsync'ed,
// renamed over. Shared by the engine and reconcile, like units.ts.
import { chmod, open, rename, writeFile } from 'node:fs/promises';

/** Replaces target atomically with text; owner-only by default, as these files may hold the key. */
export async function writeFileDurably(target: string, text: string, mode = 0o600): Promise<void> {
  const temporary = `${target}.${process.pid}.tmp`;
  await writeFile(temporary, text, { mode });
  // writeFile keeps the mode of a file that already exists; these may hold the private key.
  await chmod(temporary, mode);
  const handle = await open(temporary, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(temporary, target);
}
