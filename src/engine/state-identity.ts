// The engine identity of a state directory: a random id made once, under the state lock, and kept
// in <state>/engine-id. Saved plans and applies carry it, so a plan made against one engine is
// refused by another even when both happen to be at the same generation number.
import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileDurably } from '../durable-file.js';
import type { EngineLog } from './log.js';

export const IDENTITY_FILE = 'engine-id';

const WELL_FORMED = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Reads the identity, or makes it the first time; call only while holding the state lock. */
export async function engineIdentity(stateDir: string, log: EngineLog): Promise<string> {
  const file = join(stateDir, IDENTITY_FILE);
  try {
    const text = (await readFile(file, 'utf8')).trim();
    if (WELL_FORMED.test(text)) return text;
    // A new identity only makes plans made earlier stale: nothing else depends on it.
    log.log('warn', 'engine.identity-unreadable', { file, hint: 'a new engine identity is made' });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const made = randomUUID();
  await writeFileDurably(file, `${made}\n`, 0o644);
  return made;
}
