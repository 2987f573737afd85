// Small state files the engine must find whole after a crash (the applied configuration, kept
// generations, the reconcile status): written under a temporary name, fsync'ed, renamed over.
import { open, rename, writeFile } from 'node:fs/promises';

/** Replaces target atomically with text; owner-only by default, as these files may hold the key. */
export async function writeFileDurably(target: string, text: string, mode = 0o600): Promise<void> {
  const temporary = `${target}.tmp`;
  await writeFile(temporary, text, { mode });
  const handle = await open(temporary, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(temporary, target);
}
