// Why the engine refused a plan as stale, as fields: made by the engine, carried by the admin API
// (error.stale beside the stale-plan code) and turned into words where a person reads them.

export type StalePlan =
  /** The engine's generation moved since the plan was made. */
  | { code: 'generation-moved'; base: number; current: number }
  /** The plan was made against another engine (another state directory). */
  | { code: 'other-engine'; base: string; current: string };

/** The refusal in words, without what to do about it (each caller says that its own way). */
export function describeStalePlan(stale: StalePlan): string {
  return stale.code === 'generation-moved'
    ? `the plan was made against generation ${stale.base}, the engine is now at ${stale.current}`
    : `the plan was made against engine ${stale.base}, this is engine ${stale.current} (another state directory), even if at the same generation`;
}

/** A StalePlan read from the wire, or undefined for anything else (an older engine sends none). */
export function decodeStalePlan(value: unknown): StalePlan | undefined {
  if (value === null || typeof value !== 'object') return undefined;
  const { code, base, current } = value as Record<string, unknown>;
  if (code === 'generation-moved' && Number.isSafeInteger(base) && Number.isSafeInteger(current))
    return { code, base: base as number, current: current as number };
  if (code === 'other-engine' && typeof base === 'string' && typeof current === 'string')
    return { code, base, current };
  return undefined;
}
