// The one place the running generation lives. An apply is two-phase: prepare(next) reserves the
// slot for a generation being made ready (listeners bound, files written) while the current one
// keeps running; commit() makes it current and tells every subscriber, abort() forgets it. A
// component reads `slot.current` when it needs the generation, or subscribes to hear of a commit;
// nothing else hands a generation around. Two phases are also what a worker process needs to
// follow later: prepare everywhere, then commit everywhere.
import type { Generation } from '../generation.js';

/** Told of each commit, in the order of subscription; `previous` is undefined the first time. */
export type GenerationSubscriber = (next: Generation, previous: Generation | undefined) => void;

/** What a component needs of the slot: the generation now, and the commits to come. */
export interface GenerationSource {
  readonly current: Generation | undefined;
  subscribe(subscriber: GenerationSubscriber): () => void;
}

/** A generation between prepare and commit (or abort). */
export interface PreparedGeneration {
  readonly generation: Generation;
  /**
   * What a component made ready for it serves until then: the prepared generation, or the current
   * one once a generation at least as new is committed.
   */
  serving(): Generation;
}

export class SlotBusyError extends Error {
  override name = 'SlotBusyError';
}

export class GenerationSlot implements GenerationSource {
  private committed: Generation | undefined;
  private pending: PreparedGeneration | undefined;
  private readonly subscribers: GenerationSubscriber[] = [];

  get current(): Generation | undefined {
    return this.committed;
  }

  /** The current generation's number; 0 before the first commit. */
  get number(): number {
    return this.committed?.number ?? 0;
  }

  /** Reserves the slot for `next`; one prepared generation at a time. */
  prepare(next: Generation): PreparedGeneration {
    if (this.pending !== undefined) {
      throw new SlotBusyError(
        `generation ${this.pending.generation.number} is being prepared; generation ${next.number} must wait`,
      );
    }
    const prepared: PreparedGeneration = {
      generation: next,
      serving: () => {
        const current = this.committed;
        return current !== undefined && current.number >= next.number ? current : next;
      },
    };
    this.pending = prepared;
    return prepared;
  }

  /**
   * Makes the prepared generation current, then tells the subscribers. Every subscriber is told
   * even if one throws (the first error is rethrown after): a commit is never half announced.
   */
  commit(prepared: PreparedGeneration): void {
    this.release(prepared, 'commit');
    const previous = this.committed;
    this.committed = prepared.generation;
    let failure: { error: unknown } | undefined;
    for (const subscriber of [...this.subscribers]) {
      try {
        subscriber(prepared.generation, previous);
      } catch (error) {
        failure ??= { error };
      }
    }
    if (failure !== undefined) throw failure.error;
  }

  /** Forgets a prepared generation: the current one runs on, nobody is told. */
  abort(prepared: PreparedGeneration): void {
    this.release(prepared, 'abort');
  }

  subscribe(subscriber: GenerationSubscriber): () => void {
    this.subscribers.push(subscriber);
    return () => {
      const index = this.subscribers.indexOf(subscriber);
      if (index >= 0) this.subscribers.splice(index, 1);
    };
  }

  private release(prepared: PreparedGeneration, action: string): void {
    if (this.pending !== prepared) {
      throw new Error(
        `cannot ${action} generation ${prepared.generation.number}: it is not the one prepared`,
      );
    }
    this.pending = undefined;
  }
}
