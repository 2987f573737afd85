// Saved plans (`plan --out FILE`, `apply FILE`): the Plan, the engine it was made against and the
// exact configuration it applies, so what was reviewed is what is applied, there only. The
// configuration holds the private key: the file is created 0600 and replaced atomically.
import { readFile } from 'node:fs/promises';
import { writeFileDurably } from '../durable-file.js';
import type { Plan, RuntimeConfig, SavedPlan } from '../model.js';

export class SavedPlanError extends Error {
  override name = 'SavedPlanError';
}

/** engineId: the identity of the engine the plan was computed against (its EngineState). */
export function savedPlan(
  plan: Plan,
  config: RuntimeConfig,
  engineId: string | undefined,
  now = new Date(),
): SavedPlan {
  return {
    formatVersion: 1,
    kind: 'SavedPlan',
    createdAt: now.toISOString(),
    ...(engineId === undefined ? {} : { engineId }),
    plan,
    config,
  };
}

export async function writeSavedPlan(file: string, saved: SavedPlan): Promise<void> {
  await writeFileDurably(file, `${JSON.stringify(saved, null, 2)}\n`);
}

export async function readSavedPlan(file: string): Promise<SavedPlan> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new SavedPlanError(
      `cannot read the saved plan ${file}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`,
    );
  }
  let parsed: Partial<SavedPlan>;
  try {
    parsed = JSON.parse(text) as Partial<SavedPlan>;
  } catch {
    throw new SavedPlanError(`${file} is not a saved plan (not JSON)`);
  }
  if (parsed.kind !== 'SavedPlan' || typeof parsed.plan !== 'object' || parsed.plan === null) {
    throw new SavedPlanError(
      `${file} is not a saved plan: make one with \`domsec plan --out ${file}\` (plan -o json output cannot be applied)`,
    );
  }
  if (parsed.formatVersion !== 1)
    throw new SavedPlanError(
      `${file}: saved plan format ${String(parsed.formatVersion)} is not supported (expected 1)`,
    );
  if (typeof parsed.config !== 'object' || parsed.config === null)
    throw new SavedPlanError(`${file}: the saved plan carries no configuration`);
  if (parsed.engineId !== undefined && typeof parsed.engineId !== 'string')
    throw new SavedPlanError(`${file}: the saved plan's engineId is not a string`);
  return parsed as SavedPlan;
}
