// The configurations of kept generations, read from the engine's history directory for GET
// /v1/history/GEN (rollback plans from one before it is made), brought up to date as the engine
// brings one up to date when it rolls back to it.
import { join, resolve } from 'node:path';
import { GenerationHistory } from '../engine/index.js';
import type { RuntimeConfig } from '../model.js';

export type KeptConfigReader = (generation: number) => Promise<RuntimeConfig | undefined>;

export function keptConfigReader(
  stateDir: string,
  upgrade: (config: RuntimeConfig) => Promise<RuntimeConfig> = (config) => Promise.resolve(config),
): KeptConfigReader {
  return async (generation) => {
    // Opened for each read: the engine records new generations while this one runs.
    const history = await GenerationHistory.open(join(resolve(stateDir), 'history'));
    const config = await history.config(generation);
    return config === undefined ? undefined : upgrade(config);
  };
}
