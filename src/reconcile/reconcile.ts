// One reconciliation: read the manifests, ask the engine what it runs, plan, and (when asked)
// apply. plan, apply and watch are this function with different endings.
import { loadConfiguration, type LoadResult } from '../config/index.js';
import type { ControlClient } from '../control/client.js';
import type { ApplyResult, EngineState, Plan, RuntimeConfig } from '../model.js';
import { describeConfig } from '../objects.js';
import { computePlan } from './plan.js';
import { withRevision } from './source.js';

export interface Reconciliation {
  load: LoadResult;
  state?: EngineState;
  plan?: Plan;
  /** What apply sends: the loaded configuration with its source's Git revision. */
  config?: RuntimeConfig;
}

/** Loads and plans; stops after loading when the manifests have errors. */
export async function planFromManifests(
  paths: string[],
  client: ControlClient,
): Promise<Reconciliation> {
  return planLoaded(await loadConfiguration(paths), client, paths);
}

/** Plans manifests already loaded (a command that needed them to find its engine). */
export async function planLoaded(
  load: LoadResult,
  client: ControlClient,
  paths: string[] = [],
  /** The engine's state, when it was asked for while the manifests loaded. */
  fetched?: Promise<EngineState>,
): Promise<Reconciliation> {
  if (load.config === undefined) return { load };
  const [config, state] = await Promise.all([
    withRevision(load.config, paths),
    fetched ?? client.state(),
  ]);
  return { load, state, config, plan: computePlan(describeConfig(config), state) };
}

/**
 * Applies a planned reconciliation, refused by the engine if its generation moved since the plan
 * or if it is not the engine the plan was made against.
 */
export async function applyReconciliation(
  reconciliation: Reconciliation,
  client: ControlClient,
): Promise<ApplyResult> {
  const { config, plan } = reconciliation;
  if (config === undefined || plan === undefined)
    throw new Error('nothing to apply: the manifests have errors');
  return client.apply(config, plan.baseGeneration, reconciliation.state?.engineId);
}

export function hasErrors(load: LoadResult): boolean {
  return load.diagnostics.some((d) => d.severity === 'error');
}
