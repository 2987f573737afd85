// The transport engine as one object: opens the state directory (locked, then the identity, the
// queue, the history and the status) and puts the runtime together: the generation slot, the
// listener set, the lifecycle that applies, and delivery. What runs is always the slot's
// generation; the members below read it or hand work to the part that does it.
import { join } from 'node:path';
import type {
  ApplyResult,
  EngineState,
  HistoryEntry,
  QueuedMessageSummary,
  ReconcileReport,
  ReconcileStatus,
  RuntimeConfig,
} from '../model.js';
import type { Attempt } from './state-status.js';
import { describeConfig } from '../objects.js';
import type { Generation } from './generation.js';
import { GenerationHistory } from './history.js';
import type { EngineLog } from './log.js';
import { EngineEvents, eventLog } from './events.js';
import { TlsReporting, type TlsReportingOptions } from './tlsrpt/reporting.js';
import { EngineMetrics } from './metrics.js';
import { PartnerHealth } from './partner-health.js';
import { ProtocolLog } from './protocol-log.js';
import { ConnectionCounter } from './receive/limits.js';
import { StorageGuard } from './queue/storage-guard.js';
import { EngineDelivery, type TlsPolicyLab } from './delivery/engine-delivery.js';
import { nextHopDomainOf } from './queue/suspended.js';
import { prepareStateDirectory } from './state-directory.js';
import { engineIdentity } from './state-identity.js';
import { StateLock, StateLockError } from './state-lock.js';
import { GenerationSlot } from './runtime/generation-slot.js';
import { Lifecycle, type ApplyOptions } from './runtime/lifecycle.js';
import { ListenerSet, type ReceiveListeners } from './runtime/listener-set.js';
import { WorkerGroup, type WorkerTimeouts } from './workers/group.js';
import { StatusStore } from './runtime/status-store.js';

export {
  ApplyNotCommittedError,
  EngineBusyError,
  ForeignPlanError,
  StaleGenerationError,
  UnknownGenerationError,
  type ApplyOptions,
} from './runtime/lifecycle.js';

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
  /**
   * How many receive processes share the listeners (docs/workers.md); 1 (the default): receive
   * runs in this process, as it always did.
   */
  workers?: number;
  /** Tests only: how long a receive worker may take to answer a prepare, or be silent. */
  workerTimeouts?: WorkerTimeouts;
  /** Tests only: TLS reporting's clock and how often it writes results and sends reports. */
  tlsReporting?: Pick<TlsReportingOptions, 'now' | 'flushMs' | 'cycleMs'>;
}

/** What close() waited for: the shutdown line reports it. */
export interface DrainSummary {
  /** Receive sessions open when the engine stopped listening. */
  sessions: number;
  /** Messages being delivered then (their outcomes were recorded before the queue closed). */
  deliveries: number;
}

export class Engine {
  private closed: Promise<DrainSummary> | undefined;

  private constructor(
    private readonly log: EngineLog,
    /** This state directory's engine identity: saved plans and applies are bound to it. */
    readonly identity: string,
    private readonly lock: StateLock,
    /** Aborted when the engine stops on its own (its state lock was lost), with the reason. */
    private readonly halt: AbortController,
    private readonly slot: GenerationSlot,
    private readonly listeners: ReceiveListeners,
    private readonly lifecycle: Lifecycle,
    private readonly status: StatusStore,
    private readonly delivery: EngineDelivery,
    private readonly protocolLog: ProtocolLog,
    /** The last verified certificate and refusal of each partner, per direction. */
    readonly partners: PartnerHealth,
    /** The engine's Prometheus registry (GET /metrics). */
    readonly metrics: EngineMetrics,
    /** TLS reporting (RFC 8460): each session's result counted, a report a day per domain. */
    readonly tlsReporting: TlsReporting,
  ) {
    halt.signal.addEventListener('abort', () => this.lockLost(), { once: true });
  }

  /**
   * Opens the state directory: checked (or made), locked before anything in it is read, then the
   * identity, the queue and the history. A second engine on the same directory is refused here
   * (StateLockedError, naming the holder), before it can touch the queue of the first.
   */
  static async open(options: EngineOptions): Promise<Engine> {
    const stateDir = await prepareStateDirectory(options.stateDir);
    const halt = new AbortController();
    const lock = await StateLock.acquire(stateDir, {
      onLost: (reason) => halt.abort(new StateLockError(reason)),
    });
    let delivery: EngineDelivery | undefined;
    let tlsReporting: TlsReporting | undefined;
    let group: WorkerGroup | undefined;
    try {
      const identity = await engineIdentity(stateDir, options.log);
      const protocolLog = new ProtocolLog(join(stateDir, 'logs', 'protocol'));
      const slot = new GenerationSlot();
      const log = options.log;
      // What happened, told to the event log, the partners' health and the metrics alike.
      const events = new EngineEvents((event, error) =>
        log.log('error', 'events.subscriber-failed', { event: event.type, error: error.message }),
      );
      events.subscribe(eventLog(log));
      delivery = await EngineDelivery.open({
        stateDir,
        log,
        events,
        protocolLog,
        generation: () => slot.current,
        ...(options.tlsPolicyLab === undefined ? {} : { tlsPolicyLab: options.tlsPolicyLab }),
      });
      const history = await GenerationHistory.open(join(stateDir, 'history'));
      const status = await StatusStore.open(stateDir, log);
      if (halt.signal.aborted) throw halt.signal.reason;
      const workers = options.workers ?? 1;
      if (!Number.isInteger(workers) || workers < 1)
        throw new RangeError(`workers must be a whole number from 1, not ${workers}`);
      group =
        workers === 1
          ? undefined
          : await WorkerGroup.start({
              count: workers,
              stateDir,
              slot,
              queue: delivery.queue,
              events,
              log,
              lockPipe: lock.pipe,
              ...(options.workerTimeouts === undefined ? {} : { timeouts: options.workerTimeouts }),
            });
      const listeners: ReceiveListeners =
        group ??
        new ListenerSet({
          slot,
          sink: delivery.queue,
          log,
          events,
          protocolLog,
          counter: new ConnectionCounter(),
          // One for every listener: a full queue disk refuses MAIL FROM on all of them (452 4.3.1).
          storage: new StorageGuard({ directory: join(stateDir, 'queue'), log }),
        });
      const partners = new PartnerHealth();
      const running = delivery;
      slot.subscribe((next) => partners.retain(new Set(next.partnersByDomain.keys())));
      slot.subscribe((next, previous) => running.afterApply(previous, next));
      const metrics = new EngineMetrics({
        generation: () => slot.current,
        queuedMessages: () => running.queue.messages(),
        suspendedQueues: () => running.queue.suspendedDomains(),
        receiveSessions: () => listeners.sessionsByConnector(slot.current),
        sendSessions: () => sendSessions(slot.current, running),
        partners,
      });
      events.subscribe((event) => partners.observe(event));
      events.subscribe((event) => metrics.observe(event));
      tlsReporting = new TlsReporting({
        stateDirectory: stateDir,
        events,
        sink: delivery.queue,
        generation: () => slot.current,
        log,
        ...options.tlsReporting,
        ...(options.tlsPolicyLab?.extraCas === undefined
          ? {}
          : { extraCas: options.tlsPolicyLab.extraCas }),
      });
      const lifecycle = new Lifecycle({
        slot,
        listeners,
        status,
        history,
        identity,
        log,
        ...(options.applyGate === undefined ? {} : { applyGate: options.applyGate }),
        ...(options.upgradeConfig === undefined ? {} : { upgradeConfig: options.upgradeConfig }),
      });
      return new Engine(
        log,
        identity,
        lock,
        halt,
        slot,
        listeners,
        lifecycle,
        status,
        delivery,
        protocolLog,
        partners,
        metrics,
        tlsReporting,
      );
    } catch (error) {
      await group?.close().closed.catch(() => undefined);
      await tlsReporting?.close().catch(() => undefined);
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

  private lockLost(): void {
    this.log.log('error', 'engine.lock-lost', {
      reason: (this.halt.signal.reason as Error).message,
      hint: 'another engine may take the state directory: this one stops accepting mail and closes',
    });
    void this.shutdown();
  }

  /** The configuration applied before the last stop, if any (serve --state brings it back). */
  lastApplied(): Promise<RuntimeConfig | undefined> {
    return this.lifecycle.lastApplied();
  }

  get currentGeneration(): number {
    return this.slot.number;
  }

  /**
   * Applies a configuration as the next generation (numbers keep rising across restarts). With
   * baseGeneration (and engineId), refused when the engine moved since the plan was made (or is
   * not the engine it was made against). Recorded in the status either way.
   */
  apply(
    config: RuntimeConfig,
    baseGeneration?: number,
    options: Omit<ApplyOptions, 'baseGeneration'> = {},
  ): Promise<ApplyResult> {
    return this.lifecycle.apply(config, { ...options, baseGeneration });
  }

  /**
   * Brings back the configuration applied before the last stop under its own generation number,
   * so a plan made before the restart is still current. Undefined when nothing was applied.
   */
  resume(): Promise<ApplyResult | undefined> {
    return this.lifecycle.resume();
  }

  /** Re-applies a kept generation's configuration as a new generation. */
  rollback(
    generation: number,
    baseGeneration?: number,
    options: Omit<ApplyOptions, 'baseGeneration'> = {},
  ): Promise<ApplyResult> {
    return this.lifecycle.rollback(generation, { ...options, baseGeneration });
  }

  /** The kept generations, newest first. */
  history(): HistoryEntry[] {
    return this.lifecycle.history();
  }

  /** A reconciler (watch) reports each attempt; each report is also its heartbeat. */
  async reportReconcile(report: ReconcileReport): Promise<ReconcileStatus> {
    await this.status.recordReport(report);
    return this.reconcileStatus();
  }

  /**
   * An attempt made outside the admin API, recorded as the admin API's are (serve -f at start:
   * manifests refused or invalid, the saved generation resumed).
   */
  async recordOutcome(attempt: Omit<Attempt, 'generation'>): Promise<ReconcileStatus> {
    await this.lifecycle.recordOutcome(attempt);
    return this.reconcileStatus();
  }

  /** Ready (or why not), computed now from the record and what runs: a stopped listener is drift. */
  reconcileStatus(): ReconcileStatus {
    const drift = this.listeners
      .state(this.slot.current)
      .filter((listener) => !listener.listening)
      .map(
        (listener) =>
          `listener ${listener.binding}${listener.connectors.length === 0 ? '' : ` (${listener.connectors.join(', ')})`} is not listening`,
      );
    return this.status.view({ generation: this.slot.number, engineId: this.identity, drift });
  }

  state(): EngineState {
    const generation = this.slot.current;
    const objects = generation === undefined ? [] : describeConfig(generation.config);
    // Report the certificate the engine really loaded, not the one it was sent.
    if (generation !== undefined) {
      for (const object of objects) {
        if (object.kind === 'Certificate' && object.name === generation.certificate.name) {
          object.spec.fingerprint = generation.certificate.fingerprint;
        }
      }
    }
    return {
      formatVersion: 1,
      engineId: this.identity,
      generation: generation?.number ?? 0,
      appliedAt: generation?.appliedAt.toISOString() ?? null,
      source: generation?.config.source ?? null,
      hostname: generation?.hostname ?? null,
      objects,
      listeners: this.listeners.state(generation),
      queues: this.delivery.queue.summaries(),
    };
  }

  /** Sessions open now on each receive connector, summed over its bindings. */
  receiveSessions(): { connector: string; sessions: number }[] {
    return this.listeners.sessionsByConnector(this.slot.current);
  }

  /** Sessions open now to next hops through each send connector, kept idle ones included. */
  sendSessions(): { connector: string; sessions: number }[] {
    return sendSessions(this.slot.current, this.delivery);
  }

  /** The generation running now (the status page reads its partners and connectors). */
  running(): Generation | undefined {
    return this.slot.current;
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
    return this.listeners.address(binding);
  }

  /** The receive workers' process ids by writer name; empty when receive runs here (tests). */
  workerPids(): Map<string, number> {
    return this.listeners instanceof WorkerGroup ? this.listeners.pids : new Map();
  }

  /** Where our MTA-STS policy is served over HTTPS (Organization mtaSts.listen); null: not. */
  mtaStsAddress(): { address: string; port: number } | null {
    return this.listeners.policyAddress();
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
    const listening = this.listeners.close();
    const summary: DrainSummary = {
      sessions: listening.sessions,
      deliveries: this.delivery.deliveriesInFlight,
    };
    try {
      await listening.closed;
      // Before the queue closes: a report being mailed goes into it.
      await this.tlsReporting
        .close()
        .catch((error: Error) =>
          this.log.log('error', 'tlsrpt.close-failed', { error: error.message }),
        );
      await this.delivery.close();
      await this.protocolLog.close();
    } finally {
      // Last: until the queue is closed no other engine may open it.
      await this.lock.release();
    }
    return summary;
  }
}

/** Sessions open now to next hops through each send connector of `generation`. */
function sendSessions(
  generation: Generation | undefined,
  delivery: EngineDelivery,
): { connector: string; sessions: number }[] {
  return (generation?.sendConnectors ?? []).map((connector) => ({
    connector: connector.name,
    sessions: delivery.sendSessions.count(connector.name),
  }));
}
