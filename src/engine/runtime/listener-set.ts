// The engine's receive listeners, one per binding (host:port as formatEndpoint writes it). An apply
// binds what the next generation adds before anything changes (prepare); when the slot commits,
// the new listeners join, the kept ones serve the new generation and the dropped ones close.
// A bind that fails fails the apply: a committed generation never has a listener missing, and
// one that stops listening later is reported as not listening (drift). Our MTA-STS policy
// listener (Organization mtaSts.listen) is bound, kept and swapped the same way.
import type { ListenerState } from '../../model.js';
import { formatEndpoint } from '../../units.js';
import { parseBinding, type Binding } from '../addresses.js';
import type { Generation } from '../generation.js';
import type { EngineEvents } from '../events.js';
import type { EngineLog } from '../log.js';
import type { MessageSink } from '../message-sink.js';
import { PolicyListener } from '../policy/policy-listener.js';
import type { ProtocolLog } from '../protocol-log.js';
import { ReceiveListener } from '../receive.js';
import type { SessionCounter } from '../receive/capacity.js';
import type { StorageGuard } from '../queue/storage-guard.js';
import type { GenerationSource, PreparedGeneration } from './generation-slot.js';

export interface ListenerSetOptions {
  slot: GenerationSource;
  sink: MessageSink;
  log: EngineLog;
  events: EngineEvents;
  protocolLog: ProtocolLog;
  /** One count of sessions per connector and client across every listener (connector limits). */
  counter: SessionCounter;
  /** Whether the queue can keep mail, shared by every listener (MAIL FROM refused while short). */
  storage: StorageGuard;
  /** The group's session ticket secret (a receive worker's); undefined in one process. */
  ticketSecret?: () => Buffer | undefined;
}

/** A binding that could not be bound: the apply that wanted it fails with this. */
export class BindError extends Error {
  override name = 'BindError';
  constructor(
    readonly endpoint: string,
    options?: ErrorOptions,
  ) {
    super(`cannot bind ${endpoint}`, options);
  }
}

/**
 * What the lifecycle and the engine need of the receive listeners: this process's ListenerSet, or
 * the group of receive workers that share them (workers/group.ts).
 */
export interface ReceiveListeners {
  prepare(prepared: PreparedGeneration): Promise<void>;
  abort(prepared: PreparedGeneration): Promise<void>;
  readonly size: number;
  state(generation: Generation | undefined): ListenerState[];
  sessionsByConnector(
    generation: Generation | undefined,
  ): { connector: string; sessions: number }[];
  address(binding: string): { address: string; port: number } | null;
  policyAddress(): { address: string; port: number } | null;
  close(): { sessions: number; closed: Promise<void> };
}

interface Staged {
  prepared: PreparedGeneration;
  wanted: Set<string>;
  started: [string, ReceiveListener][];
}

export class ListenerSet implements ReceiveListeners {
  private readonly listeners = new Map<string, ReceiveListener>();
  private staged: Staged | undefined;
  /** Listeners replaced or dropped by a commit, still letting their sessions end. */
  private readonly closing: Promise<void>[] = [];
  private readonly policy: PolicyListener;

  constructor(private readonly options: ListenerSetOptions) {
    this.policy = new PolicyListener(options.log);
    options.slot.subscribe((next) => this.install(next));
  }

  /**
   * Binds every binding of the prepared generation that has no listener listening yet (a stopped
   * one is replaced like a new one). On a failure closes what it bound and throws BindError.
   */
  async prepare(prepared: PreparedGeneration): Promise<void> {
    const wanted = new Map<string, Binding>();
    for (const connector of prepared.generation.receiveConnectors) {
      for (const binding of connector.bindings)
        wanted.set(formatEndpoint(binding.host, binding.port), binding);
    }
    const started: [string, ReceiveListener][] = [];
    try {
      for (const [key, binding] of wanted) {
        if (this.listeners.get(key)?.address() != null) continue;
        const listener = new ReceiveListener({
          binding,
          // Until the slot commits, a new listener serves the generation being applied.
          generation: prepared.serving,
          sink: this.options.sink,
          log: this.options.log,
          events: this.options.events,
          protocolLog: this.options.protocolLog,
          counter: this.options.counter,
          storage: this.options.storage,
          ...(this.options.ticketSecret === undefined
            ? {}
            : { ticketSecret: this.options.ticketSecret }),
        });
        await listener.listen();
        started.push([key, listener]);
      }
      await this.policy.prepare(prepared.generation);
    } catch (error) {
      await Promise.all(started.map(([, listener]) => listener.close()));
      throw new BindError(describeBindFailure(error), { cause: error });
    }
    this.staged = { prepared, wanted: new Set(wanted.keys()), started };
  }

  /** Closes what prepare bound for a generation that will not be committed. */
  async abort(prepared: PreparedGeneration): Promise<void> {
    const staged = this.staged;
    if (staged?.prepared !== prepared) return;
    this.staged = undefined;
    await Promise.all([
      ...staged.started.map(([, listener]) => listener.close()),
      this.policy.abort(prepared.generation),
    ]);
  }

  /** The slot committed `next`: the staged listeners join, the others follow or close. */
  private install(next: Generation): void {
    const staged = this.staged;
    if (staged?.prepared.generation !== next) return;
    this.staged = undefined;
    for (const [key, listener] of staged.started) {
      const stopped = this.listeners.get(key);
      if (stopped !== undefined) this.closing.push(stopped.close());
      this.listeners.set(key, listener);
    }
    for (const [key, listener] of this.listeners) {
      if (staged.wanted.has(key)) {
        listener.reload(next);
      } else {
        this.listeners.delete(key);
        this.closing.push(listener.close());
      }
    }
    this.policy.install(next);
  }

  /**
   * The listeners the prepared generation has once it is committed, each with where it listens
   * (a receive worker tells its primary before the commit).
   */
  preparedListeners(): { binding: string; address: string | null; port: number | null }[] {
    const staged = this.staged;
    if (staged === undefined) return [];
    const started = new Map(staged.started);
    return [...staged.wanted].map((binding) => {
      const address = (started.get(binding) ?? this.listeners.get(binding))?.address() ?? null;
      return { binding, address: address?.address ?? null, port: address?.port ?? null };
    });
  }

  /** Where our MTA-STS policy is served; null when it is not. */
  policyAddress(): { address: string; port: number } | null {
    return this.policy.address();
  }

  get size(): number {
    return this.listeners.size;
  }

  /** Every listener, with the connectors of `generation` bound to it. */
  state(generation: Generation | undefined): ListenerState[] {
    const listeners: ListenerState[] = [];
    for (const [key, listener] of this.listeners) {
      const address = listener.address();
      listeners.push({
        binding: key,
        connectors:
          generation?.receiveConnectors
            .filter((c) => c.bindings.some((b) => formatEndpoint(b.host, b.port) === key))
            .map((c) => c.name) ?? [],
        address: address?.address ?? null,
        port: address?.port ?? null,
        listening: address !== null,
      });
    }
    return listeners;
  }

  /** Sessions open now on each receive connector of `generation`, summed over its bindings. */
  sessionsByConnector(
    generation: Generation | undefined,
  ): { connector: string; sessions: number }[] {
    return (generation?.receiveConnectors ?? []).map((connector) => ({
      connector: connector.name,
      sessions: connector.bindings.reduce(
        (sum, b) => sum + (this.listeners.get(formatEndpoint(b.host, b.port))?.sessionCount ?? 0),
        0,
      ),
    }));
  }

  /** Where the listener of a binding ("127.0.0.1:0") really listens; null when it does not. */
  address(binding: string): { address: string; port: number } | null {
    const parsed = parseBinding(binding);
    return this.listeners.get(formatEndpoint(parsed.host, parsed.port))?.address() ?? null;
  }

  /**
   * Stops every listener: `sessions` were open when it stopped accepting, `closed` resolves once
   * they (and those of listeners replaced earlier) ended.
   */
  close(): { sessions: number; closed: Promise<void> } {
    const listeners = [...this.listeners.values()];
    this.listeners.clear();
    return {
      sessions: listeners.reduce((sum, l) => sum + l.sessionCount, 0),
      closed: Promise.all([
        ...listeners.map((l) => l.close()),
        ...this.closing,
        this.policy.close(),
      ]).then(() => undefined),
    };
  }
}

function describeBindFailure(error: unknown): string {
  const failure = error as NodeJS.ErrnoException & { address?: string; port?: number };
  if (failure.code !== undefined && failure.address !== undefined) {
    return `${formatEndpoint(failure.address, failure.port ?? '?')} (${failure.code})`;
  }
  return failure.message;
}
