// One reconciliation: read the manifests, ask the engine what it runs, plan, and (when asked)
// apply. plan, apply and watch are this function with different endings.
import { loadConfiguration, type LoadResult } from '../config/index.js';
import type { ControlClient } from '../control/client.js';
import type { ApplyResult, EngineState, Plan } from '../model.js';
import { describeConfig } from '../objects.js';
import { computePlan } from './plan.js';

export interface Reconciliation {
  load: LoadResult;
  state?: EngineState;
  plan?: Plan;
}

/** Loads and plans; stops after loading when the manifests have errors. */
export async function planFromManifests(
  paths: string[],
  client: ControlClient,
): Promise<Reconciliation> {
  return planLoaded(await loadConfiguration(paths), client);
}

/** Plans manifests already loaded (a command that needed them to find its engine). */
export async function planLoaded(load: LoadResult, client: ControlClient): Promise<Reconciliation> {
  if (load.config === undefined) return { load };
  const state = await client.state();
  return { load, state, plan: computePlan(describeConfig(load.config), state) };
}

/** Applies a planned reconciliation, refused by the engine if its generation moved since the plan. */
export async function applyReconciliation(
  reconciliation: Reconciliation,
  client: ControlClient,
): Promise<ApplyResult> {
  const { load, plan } = reconciliation;
  if (load.config === undefined || plan === undefined)
    throw new Error('nothing to apply: the manifests have errors');
  return client.apply(load.config, plan.baseGeneration);
}

export function hasErrors(load: LoadResult): boolean {
  return load.diagnostics.some((d) => d.severity === 'error');
}
