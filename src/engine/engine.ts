// The transport engine: runs one Generation at a time. apply() is atomic (every listener bound
// and every certificate loaded, or nothing changes); state() reports what really runs. The queue
// is opened once, under the state directory's lock, and never touched by a reload.
import { readFile } from 'node:fs/promises';
import { writeFileDurably } from '../durable-file.js';
import { join } from 'node:path';
import type {
  ApplyResult,
  EngineState,
  HistoryEntry,
  ListenerState,
  QueuedMessageSummary,
  ReconcileReport,
  ReconcileStatus,
  RuntimeConfig,
} from '../model.js';
import {
  EMPTY_STATUS,
  readStatusRecord,
  recordAttempt,
  recordReport,
  viewStatus,
  type Attempt,
  type StatusRecord,
} from './state-status.js';
import { describeConfig } from '../objects.js';
import { parseBinding } from './addresses.js';
import { buildGeneration, type Generation } from './generation.js';
import { GenerationHistory } from './history.js';
import { observedLog, type EngineLog } from './log.js';
import { EngineMetrics } from './metrics.js';
import { PartnerHealth } from './partner-health.js';
import { ProtocolLog } from './protocol-log.js';
import { ReceiveListener } from './receive.js';
import { ConnectionCounter } from './receive/limits.js';
import { StorageGuard } from './queue/storage-guard.js';
import { EngineDelivery, type TlsPolicyLab } from './delivery/engine-delivery.js';
import { nextHopDomainOf } from './queue/suspended.js';
import { prepareStateDirectory } from './state-directory.js';
import { engineIdentity } from './state-identity.js';
import { StateLock, StateLockError } from './state-lock.js';
import { formatEndpoint } from '../units.js';
import { describeStalePlan, type StalePlan } from '../stale-plan.js';

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

export interface EngineOptions {
  /** Queue, mailboxes, logs and the applied configuration live here. */
  stateDir: string;
  log: EngineLog;
  /** Awaited inside the apply lock before anything is built: lets tests hold the lock. */
  applyGate?: () => Promise<void>;
  /**
   * Brings a configuration read back from the state directory or the history up to date (the
   * defaults of fields added since it was applied); serve passes the config layer's. Identity
   * by default.
   */
  upgradeConfig?: (config: RuntimeConfig) => Promise<RuntimeConfig>;
  /** Labs and tests only: extra CAs for MTA-STS (policy hosts and MX hosts) and the policy port. */
  tlsPolicyLab?: TlsPolicyLab;
}

const APPLIED_FILE = 'applied-config.json';
const STATUS_FILE = 'reconcile-status.json';

/** What close() waited for: the shutdown line reports it. */
export interface DrainSummary {
  /** Receive sessions open when the engine stopped listening. */
  sessions: number;
  /** Messages being delivered then (their outcomes were recorded before the queue closed). */
  deliveries: number;
}

export class Engine {
  private generation: Generation | undefined;
  private readonly listeners = new Map<string, ReceiveListener>();
  /** One count of sessions per connector and client across every listener (connector limits). */
  private readonly connections = new ConnectionCounter();
  /** Whether the queue can keep mail, shared by every listener (MAIL FROM refused while short). */
  private readonly storage: StorageGuard;
  private readonly failedListeners: ListenerState[] = [];
  private applying = false;
  private readonly closing: Promise<void>[] = [];
  private closed: Promise<DrainSummary> | undefined;
  /** Aborted when the engine stops on its own (its state lock was lost), with the reason. */
  private readonly halt = new AbortController();
  /** The one record of Ready and what was applied, by whom (reconcile-status.json). */
  private status: StatusRecord = EMPTY_STATUS;

  private constructor(
    private readonly options: EngineOptions,
    /** This state directory's engine identity: saved plans and applies are bound to it. */
    readonly identity: string,
    private readonly lock: StateLock,
    private readonly delivery: EngineDelivery,
    private readonly protocolLog: ProtocolLog,
    private readonly generations: GenerationHistory,
    /** The last verified certificate and refusal of each partner, per direction. */
    readonly partners: PartnerHealth,
    /** The engine's Prometheus registry (GET /metrics). */
    readonly metrics: EngineMetrics,
  ) {
    // One for every listener: a full queue disk refuses MAIL FROM on all of them (452 4.3.1).
    this.storage = new StorageGuard({
      directory: join(options.stateDir, 'queue'),
      log: options.log,
    });
  }

  /**
   * Opens the state directory: checked (or made), locked before anything in it is read, then the
   * identity, the queue and the history. A second engine on the same directory is refused here
   * (StateLockedError, naming the holder), before it can touch the queue of the first.
   */
  static async open(options: EngineOptions): Promise<Engine> {
    const stateDir = await prepareStateDirectory(options.stateDir);
    // The delivery side reads the generation the engine runs; the engine exists only after it.
    const current: { engine?: Engine; lost?: string } = {};
    const lock = await StateLock.acquire(stateDir, {
      onLost: (reason) => {
        if (current.engine === undefined) current.lost = reason;
        else current.engine.lockLost(reason);
      },
    });
    let delivery: EngineDelivery | undefined;
    try {
      const identity = await engineIdentity(stateDir, options.log);
      const protocolLog = new ProtocolLog(join(stateDir, 'logs', 'protocol'));
      const partners = new PartnerHealth();
      const metrics = new EngineMetrics({
        generation: () => current.engine?.generation,
        queuedMessages: () => current.engine?.queuedMessages() ?? [],
        suspendedQueues: () => current.engine?.suspendedQueues() ?? [],
        receiveSessions: () => current.engine?.receiveSessions() ?? [],
        sendSessions: () => current.engine?.sendSessions() ?? [],
        partners,
      });
      // Every event the engine logs also feeds the partners' health and the metrics.
      const log = observedLog(options.log, [partners, metrics]);
      delivery = await EngineDelivery.open({
        stateDir,
        log,
        protocolLog,
        generation: () => current.engine?.generation,
        ...(options.tlsPolicyLab === undefined ? {} : { tlsPolicyLab: options.tlsPolicyLab }),
      });
      const history = await GenerationHistory.open(join(stateDir, 'history'));
      if (current.lost !== undefined) throw new StateLockError(current.lost);
      current.engine = new Engine(
        { ...options, stateDir, log },
        identity,
        lock,
        delivery,
        protocolLog,
        history,
        partners,
        metrics,
      );
      await current.engine.loadStatus();
      return current.engine;
    } catch (error) {
      await delivery?.close().catch(() => undefined);
      await lock.release();
      throw error;
    }
  }

  /**
   * Aborted when the engine stopped by itself: it lost its state lock and, never running
   * unlocked, stopped accepting and closed. serve waits on it as on SIGTERM.
   */
  get halted(): AbortSignal {
    return this.halt.signal;
  }

  private lockLost(reason: string): void {
    this.options.log.log('error', 'engine.lock-lost', {
      reason,
      hint: 'another engine may take the state directory: this one stops accepting mail and closes',
    });
    this.halt.abort(new StateLockError(reason));
    void this.shutdown();
  }

  private async loadStatus(): Promise<void> {
    try {
      const saved = readStatusRecord(
        JSON.parse(await readFile(join(this.options.stateDir, STATUS_FILE), 'utf8')),
      );
      if (saved !== undefined) this.status = saved;
    } catch (error) {
      // None yet, or unreadable: the status starts empty, which is what it says anyway.
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') {
        this.options.log.log('warn', 'engine.status-unreadable', {
          error: (error as Error).message,
        });
      }
    }
  }

  /** The configuration applied before the last stop, if any (serve --state brings it back). */
  async lastApplied(): Promise<RuntimeConfig | undefined> {
    try {
      return await this.upgrade(
        JSON.parse(
          await readFile(join(this.options.stateDir, APPLIED_FILE), 'utf8'),
        ) as RuntimeConfig,
      );
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
  }

  private upgrade(config: RuntimeConfig): Promise<RuntimeConfig> {
    return this.options.upgradeConfig?.(config) ?? Promise.resolve(config);
  }

  get currentGeneration(): number {
    return this.generation?.number ?? 0;
  }

  /**
   * Applies a configuration as the next generation (numbers keep rising across restarts). With
   * baseGeneration (and engineId), refused when the engine moved since the plan was made (or is
   * not the engine it was made against). Recorded in the status either way.
   */
  async apply(
    config: RuntimeConfig,
    baseGeneration?: number,
    options: Omit<ApplyOptions, 'baseGeneration'> = {},
  ): Promise<ApplyResult> {
    return this.locked({ ...options, baseGeneration }, options.by ?? 'apply', () =>
      this.swap(config, Math.max(this.currentGeneration, this.generations.latest) + 1),
    );
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
    const by = this.status.lastAttemptOutcome === null ? 'serve (resumed)' : undefined;
    return this.locked({}, by, () =>
      this.swap(config, Math.max(this.generations.latest, 1), { record: false }),
    );
  }

  /** Re-applies a kept generation's configuration as a new generation. */
  async rollback(
    generation: number,
    baseGeneration?: number,
    options: Omit<ApplyOptions, 'baseGeneration'> = {},
  ): Promise<ApplyResult> {
    const kept = await this.generations.config(generation);
    const config = kept === undefined ? undefined : await this.upgrade(kept);
    if (config === undefined) {
      const kept = this.generations.entries().map((e) => e.generation);
      throw new UnknownGenerationError(
        `generation ${generation} is not kept (kept: ${kept.join(', ') || 'none'})`,
      );
    }
    return this.locked(
      { ...options, baseGeneration },
      options.by ?? `rollback of generation ${generation}`,
      () =>
        this.swap(config, Math.max(this.currentGeneration, this.generations.latest) + 1, {
          rollbackOf: generation,
        }),
    );
  }

  /** The kept generations, newest first. */
  history(): HistoryEntry[] {
    return this.generations.entries();
  }

  /** A reconciler (watch) reports each attempt; each report is also its heartbeat. */
  async reportReconcile(report: ReconcileReport): Promise<ReconcileStatus> {
    await this.saveStatus(recordReport(this.status, report, new Date()));
    return this.reconcileStatus();
  }

  /**
   * An attempt made outside the admin API, recorded as the admin API's are (serve -f at start:
   * manifests refused or invalid, the saved generation resumed).
   */
  async recordOutcome(attempt: Omit<Attempt, 'generation'>): Promise<ReconcileStatus> {
    await this.saveStatus(
      recordAttempt(this.status, { ...attempt, generation: this.currentGeneration }, new Date()),
    );
    return this.reconcileStatus();
  }

  /** Ready (or why not), computed now from the record and what runs: a stopped listener is drift. */
  reconcileStatus(): ReconcileStatus {
    const drift = this.state()
      .listeners.filter((listener) => !listener.listening)
      .map(
        (listener) =>
          `listener ${listener.binding}${listener.connectors.length === 0 ? '' : ` (${listener.connectors.join(', ')})`} is not listening`,
      );
    return viewStatus(
      this.status,
      { generation: this.currentGeneration, engineId: this.identity, drift },
      new Date(),
    );
  }

  /** Kept across restarts: `domsec status` after a restart still says what the last attempt did. */
  private async saveStatus(next: StatusRecord): Promise<void> {
    this.status = next;
    try {
      await writeFileDurably(join(this.options.stateDir, STATUS_FILE), JSON.stringify(next));
    } catch (error) {
      // The status in memory is right; only a restart would forget it.
      this.options.log.log('warn', 'engine.status-unsaved', { error: (error as Error).message });
    }
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
    if (engineId !== undefined && engineId !== this.identity) {
      throw new ForeignPlanError({ code: 'other-engine', base: engineId, current: this.identity });
    }
    if (baseGeneration !== undefined && baseGeneration !== this.currentGeneration) {
      throw new StaleGenerationError({
        code: 'generation-moved',
        base: baseGeneration,
        current: this.currentGeneration,
      });
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
    const previous = this.generation;
    const next = buildGeneration(config, number);

    // Bind every new listener before anything changes; on any failure close them and keep the old.
    const wanted = new Map<string, ReturnType<typeof parseBinding>>();
    for (const connector of next.receiveConnectors) {
      for (const binding of connector.bindings)
        wanted.set(formatEndpoint(binding.host, binding.port), binding);
    }
    const started: [string, ReceiveListener][] = [];
    try {
      for (const [key, binding] of wanted) {
        // A listener that stopped listening (drift) is replaced like a new one.
        if (this.listeners.get(key)?.address() != null) continue;
        const listener = new ReceiveListener({
          binding,
          // Until the swap commits, a new listener serves the generation being applied.
          generation: () =>
            this.generation !== undefined && this.generation.number >= next.number
              ? this.generation
              : next,
          sink: this.delivery.queue,
          log: this.options.log,
          protocolLog: this.protocolLog,
          counter: this.connections,
          storage: this.storage,
        });
        await listener.listen();
        started.push([key, listener]);
      }
    } catch (error) {
      await Promise.all(started.map(([, listener]) => listener.close()));
      throw new ApplyNotCommittedError(`cannot bind ${describeFailure(error)}`, { cause: error });
    }

    // Save what a restart comes back to before committing: a state directory that refuses the
    // write refuses the apply, rather than leaving a running generation nobody could restore.
    try {
      await this.persist(next.config);
    } catch (error) {
      await Promise.all(started.map(([, listener]) => listener.close()));
      const code = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
      throw new ApplyNotCommittedError(
        `cannot save the configuration in the state directory (${code})`,
        { cause: error },
      );
    }

    // Commit: from here on nothing can fail.
    this.generation = next;
    for (const [key, listener] of started) {
      const failed = this.listeners.get(key);
      if (failed !== undefined) this.closing.push(failed.close());
      this.listeners.set(key, listener);
    }
    this.failedListeners.length = 0;
    this.partners.retain(new Set(next.partnersByDomain.keys()));
    for (const [key, listener] of this.listeners) {
      if (wanted.has(key)) {
        listener.reload(next);
      } else {
        this.listeners.delete(key);
        this.closing.push(listener.close());
      }
    }
    this.options.log.log('info', 'engine.applied', {
      generation: next.number,
      partners: next.partnersByDomain.size,
      listeners: this.listeners.size,
    });
    if (options.record !== false) await this.remember(next, next.config, options.rollbackOf);
    this.delivery.afterApply(previous, next);
    return { generation: next.number, appliedAt: next.appliedAt.toISOString() };
  }

  /** History is a convenience: failing to keep it is logged, and the applied generation stands. */
  private async remember(
    next: Generation,
    config: RuntimeConfig,
    rollbackOf: number | undefined,
  ): Promise<void> {
    try {
      await this.generations.record(
        {
          generation: next.number,
          appliedAt: next.appliedAt.toISOString(),
          source: config.source ?? null,
          ...(rollbackOf === undefined ? {} : { rollbackOf }),
        },
        config,
      );
    } catch (error) {
      this.options.log.log('warn', 'engine.history-failed', {
        generation: next.number,
        error: (error as Error).message,
      });
    }
  }

  /** Written atomically and readable by the owner only: it holds the private key. */
  private async persist(config: RuntimeConfig): Promise<void> {
    await writeFileDurably(join(this.options.stateDir, APPLIED_FILE), JSON.stringify(config));
  }

  state(): EngineState {
    const generation = this.generation;
    const objects = generation === undefined ? [] : describeConfig(generation.config);
    // Report the certificate the engine really loaded, not the one it was sent.
    if (generation !== undefined) {
      for (const object of objects) {
        if (object.kind === 'Certificate' && object.name === generation.certificate.name) {
          object.spec.fingerprint = generation.certificate.fingerprint;
        }
      }
    }
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
    listeners.push(...this.failedListeners);
    return {
      formatVersion: 1,
      engineId: this.identity,
      generation: generation?.number ?? 0,
      appliedAt: generation?.appliedAt.toISOString() ?? null,
      source: generation?.config.source ?? null,
      hostname: generation?.hostname ?? null,
      objects,
      listeners,
      queues: this.delivery.queue.summaries(),
    };
  }

  /** Sessions open now on each receive connector, summed over its bindings. */
  receiveSessions(): { connector: string; sessions: number }[] {
    return (this.generation?.receiveConnectors ?? []).map((connector) => ({
      connector: connector.name,
      sessions: connector.bindings.reduce(
        (sum, b) => sum + (this.listeners.get(formatEndpoint(b.host, b.port))?.sessionCount ?? 0),
        0,
      ),
    }));
  }

  /** Sessions open now to next hops through each send connector, kept idle ones included. */
  sendSessions(): { connector: string; sessions: number }[] {
    return (this.generation?.sendConnectors ?? []).map((connector) => ({
      connector: connector.name,
      sessions: this.delivery.sendSessions.count(connector.name),
    }));
  }

  /** The generation running now (the status page reads its partners and connectors). */
  running(): Generation | undefined {
    return this.generation;
  }

  queuedMessages(): QueuedMessageSummary[] {
    return this.delivery.queue.messages();
  }

  retry(domain?: string): number {
    return this.delivery.retry(domain === undefined ? undefined : nextHopDomainOf(domain));
  }

  /** The next-hop domains an operator suspended (retry skips them), sorted. */
  suspendedQueues(): string[] {
    return this.delivery.queue.suspendedDomains();
  }

  /**
   * Holds delivery to a next-hop domain, like Exchange's Suspend-Queue: kept across restarts,
   * mail keeps arriving and waits (or expires). False when it already was suspended.
   */
  suspendQueue(domain: string): Promise<boolean> {
    return this.delivery.queue.suspend(domain);
  }

  /** Lifts the hold and retries the domain's mail at once; resumed is false when none was held. */
  async resumeQueue(domain: string): Promise<{ resumed: boolean; retried: number }> {
    const wanted = nextHopDomainOf(domain);
    const resumed = await this.delivery.queue.resume(wanted);
    return { resumed, retried: resumed ? this.delivery.retry(wanted) : 0 };
  }

  /** Where a listener with this binding really listens (tests bind port 0). */
  listenerAddress(binding: string): { address: string; port: number } | null {
    const parsed = parseBinding(binding);
    return this.listeners.get(formatEndpoint(parsed.host, parsed.port))?.address() ?? null;
  }

  /** Stops listening, lets sessions and deliveries in flight end, closes the queue, unlocks. */
  async close(): Promise<void> {
    await this.shutdown();
  }

  /** close(), saying what it waited for; called again, the same answer. */
  shutdown(): Promise<DrainSummary> {
    this.closed ??= this.drain();
    return this.closed;
  }

  private async drain(): Promise<DrainSummary> {
    const listeners = [...this.listeners.values()];
    const summary: DrainSummary = {
      sessions: listeners.reduce((sum, l) => sum + l.sessionCount, 0),
      deliveries: this.delivery.deliveriesInFlight,
    };
    this.listeners.clear();
    try {
      await Promise.all([...listeners.map((l) => l.close()), ...this.closing]);
      await this.delivery.close();
      await this.protocolLog.close();
    } finally {
      // Last: until the queue is closed no other engine may open it.
      await this.lock.release();
    }
    return summary;
  }
}

function describeFailure(error: unknown): string {
  const failure = error as NodeJS.ErrnoException & { address?: string; port?: number };
  if (failure.code !== undefined && failure.address !== undefined) {
    return `${formatEndpoint(failure.address, failure.port ?? '?')} (${failure.code})`;
  }
  return failure.message;
}
