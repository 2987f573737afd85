// How a configuration becomes the running generation: apply, rollback to a kept generation, and
// resume after a restart. One apply at a time; each builds the whole generation, prepares it (the
// slot reserved, new listeners bound, the configuration saved for a restart) and only then commits:
// any failure before the commit leaves the running generation as it was. Every attempt made
// through here is recorded in the status.
import type { ApplyResult, HistoryEntry, RuntimeConfig } from '../../model.js';
import { describeStalePlan, type StalePlan } from '../../stale-plan.js';
import { buildGeneration, type Generation } from '../generation.js';
import type { GenerationHistory } from '../history.js';
import type { EngineLog } from '../log.js';
import type { Attempt } from '../state-status.js';
import type { GenerationSlot } from './generation-slot.js';
import { BindError, type ReceiveListeners } from './listener-set.js';
import type { StatusStore } from './status-store.js';

export class EngineBusyError extends Error {
  override name = 'EngineBusyError';
}

/** A plan refused as stale; `stale` says why in fields (the admin API passes them on). */
export class StaleGenerationError extends Error {
  override name = 'StaleGenerationError';
  constructor(readonly stale: StalePlan) {
    super(`${describeStalePlan(stale)}: plan again`);
  }
}

/**
 * An apply that failed before it committed: `reason` says why, in fields' stead of a sentence to
 * take apart; the message adds that the running generation is unchanged (there is none at start).
 */
export class ApplyNotCommittedError extends Error {
  override name = 'ApplyNotCommittedError';
  constructor(
    readonly reason: string,
    options?: ErrorOptions,
  ) {
    super(`${reason}; the previous configuration keeps running`, options);
  }
}

export class UnknownGenerationError extends Error {
  override name = 'UnknownGenerationError';
}

/** A plan made against another engine (another state directory): stale whatever its generation. */
export class ForeignPlanError extends StaleGenerationError {
  override name = 'ForeignPlanError';
}

/** Preconditions and provenance of one apply. */
export interface ApplyOptions {
  /** Refused unless the engine is at this generation (the plan's baseGeneration). */
  baseGeneration?: number;
  /** Refused unless this is the engine the plan was made against (EngineState.engineId). */
  engineId?: string;
  /** Who applies, as the status names it ("apply", "serve -f manifests"); "apply" by default. */
  by?: string;
}

export interface LifecycleOptions {
  slot: GenerationSlot;
  listeners: ReceiveListeners;
  status: StatusStore;
  history: GenerationHistory;
  /** This state directory's engine identity: a plan made against another is refused. */
  identity: string;
  log: EngineLog;
  /** Awaited inside the apply lock before anything is built: lets tests hold the lock. */
  applyGate?: () => Promise<void>;
  /** Brings a saved or kept configuration up to date (identity by default). */
  upgradeConfig?: (config: RuntimeConfig) => Promise<RuntimeConfig>;
}

export class Lifecycle {
  private applying = false;

  constructor(private readonly options: LifecycleOptions) {}

  /** The configuration applied before the last stop, if any (serve --state brings it back). */
  async lastApplied(): Promise<RuntimeConfig | undefined> {
    const saved = await this.options.status.readApplied();
    return saved === undefined ? undefined : this.upgrade(saved);
  }

  /**
   * Applies a configuration as the next generation (numbers keep rising across restarts). With
   * baseGeneration (and engineId), refused when the engine moved since the plan was made (or is
   * not the engine it was made against). Recorded in the status either way.
   */
  apply(config: RuntimeConfig, options: ApplyOptions = {}): Promise<ApplyResult> {
    return this.locked(options, options.by ?? 'apply', () => this.swap(config, this.nextNumber()));
  }

  /**
   * Brings back the configuration applied before the last stop under its own generation number,
   * so a plan made before the restart is still current. Undefined when nothing was applied.
   */
  async resume(): Promise<ApplyResult | undefined> {
    const config = await this.lastApplied();
    if (config === undefined) return undefined;
    // What the status said before the stop stands (a refused manifest is still refused); only a
    // state directory that never recorded an attempt learns here what it runs.
    const by =
      this.options.status.record.lastAttemptOutcome === null ? 'serve (resumed)' : undefined;
    return this.locked({}, by, () =>
      this.swap(config, Math.max(this.options.history.latest, 1), { record: false }),
    );
  }

  /** Re-applies a kept generation's configuration as a new generation. */
  async rollback(generation: number, options: ApplyOptions = {}): Promise<ApplyResult> {
    const history = this.options.history;
    const kept = await history.config(generation);
    const config = kept === undefined ? undefined : await this.upgrade(kept);
    if (config === undefined) {
      const kept = history.entries().map((e) => e.generation);
      throw new UnknownGenerationError(
        `generation ${generation} is not kept (kept: ${kept.join(', ') || 'none'})`,
      );
    }
    return this.locked(options, options.by ?? `rollback of generation ${generation}`, () =>
      this.swap(config, this.nextNumber(), { rollbackOf: generation }),
    );
  }

  /** The kept generations, newest first. */
  history(): HistoryEntry[] {
    return this.options.history.entries();
  }

  /** An attempt recorded with the generation that runs after it. */
  recordOutcome(attempt: Omit<Attempt, 'generation'>): Promise<void> {
    return this.options.status.recordAttempt({ ...attempt, generation: this.options.slot.number });
  }

  private nextNumber(): number {
    return Math.max(this.options.slot.number, this.options.history.latest) + 1;
  }

  private upgrade(config: RuntimeConfig): Promise<RuntimeConfig> {
    return this.options.upgradeConfig?.(config) ?? Promise.resolve(config);
  }

  /**
   * One apply at a time: a second one is refused (423 'locked' on the admin API), never queued.
   * by: who applies, recorded in the status with the outcome (undefined: not recorded).
   */
  private async locked(
    preconditions: Pick<ApplyOptions, 'baseGeneration' | 'engineId'>,
    by: string | undefined,
    action: () => Promise<ApplyResult>,
  ): Promise<ApplyResult> {
    if (this.applying)
      throw new EngineBusyError('locked: another apply is in progress; try again when it ends');
    const { baseGeneration, engineId } = preconditions;
    const identity = this.options.identity;
    if (engineId !== undefined && engineId !== identity) {
      throw new ForeignPlanError({ code: 'other-engine', base: engineId, current: identity });
    }
    const current = this.options.slot.number;
    if (baseGeneration !== undefined && baseGeneration !== current) {
      throw new StaleGenerationError({ code: 'generation-moved', base: baseGeneration, current });
    }
    this.applying = true;
    let result: ApplyResult;
    try {
      await this.options.applyGate?.();
      result = await action();
    } catch (error) {
      if (by !== undefined)
        await this.recordOutcome({ outcome: 'failed', error: (error as Error).message, by });
      throw error;
    } finally {
      this.applying = false;
    }
    if (by !== undefined) await this.recordOutcome({ outcome: 'applied', error: null, by });
    return result;
  }

  private async swap(
    config: RuntimeConfig,
    number: number,
    options: { record?: boolean; rollbackOf?: number } = {},
  ): Promise<ApplyResult> {
    const { slot, listeners, status, log } = this.options;
    const next = buildGeneration(config, number, { previous: slot.current });

    // Prepare: bind every new listener and save what a restart comes back to (a state directory
    // that refuses the write refuses the apply, rather than leaving a running generation nobody
    // could restore). On any failure undo and keep the running generation.
    const prepared = slot.prepare(next);
    try {
      await listeners.prepare(prepared);
      try {
        await status.writeApplied(next.config);
      } catch (error) {
        await listeners.abort(prepared);
        const code = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
        throw new ApplyNotCommittedError(
          `cannot save the configuration in the state directory (${code})`,
          { cause: error },
        );
      }
    } catch (error) {
      slot.abort(prepared);
      if (error instanceof BindError)
        throw new ApplyNotCommittedError(error.message, { cause: error.cause });
      throw error;
    }

    // Commit: from here on nothing can fail; the slot's subscribers follow (listeners first).
    slot.commit(prepared);
    log.log('info', 'engine.applied', {
      generation: next.number,
      partners: next.partnersByDomain.size,
      listeners: listeners.size,
    });
    if (options.record !== false) await this.remember(next, options.rollbackOf);
    return { generation: next.number, appliedAt: next.appliedAt.toISOString() };
  }

  /** History is a convenience: failing to keep it is logged, and the applied generation stands. */
  private async remember(next: Generation, rollbackOf: number | undefined): Promise<void> {
    try {
      await this.options.history.record(
        {
          generation: next.number,
          appliedAt: next.appliedAt.toISOString(),
          source: next.config.source ?? null,
          ...(rollbackOf === undefined ? {} : { rollbackOf }),
        },
        next.config,
      );
    } catch (error) {
      this.options.log.log('warn', 'engine.history-failed', {
        generation: next.number,
        error: (error as Error).message,
      });
    }
  }
}
