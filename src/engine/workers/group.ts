// The primary's side of the receive workers (docs/workers.md): N processes forked with node:cluster
// share every receive listener (the primary holds the sockets and hands each connection to one
// worker in turn). To the lifecycle and the engine the group is the listener set: a generation is
// prepared in every worker before it is committed in any, and applied nowhere when one fails; the
// state, sessions and addresses it reports are every worker's, summed. What a worker accepted is
// adopted by the queue here; a worker that dies has its journal segments read again and is
// replaced.
import cluster, { type Worker } from 'node:cluster';
import { randomBytes } from 'node:crypto';
import { extname } from 'node:path';
import type { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import type { ListenerState } from '../../model.js';
import { formatEndpoint } from '../../units.js';
import { parseBinding } from '../addresses.js';
import type { EngineEvents } from '../events.js';
import type { Generation } from '../generation.js';
import type { EngineLog } from '../log.js';
import type { MessageQueue } from '../queue/queue.js';
import type { GenerationSource, PreparedGeneration } from '../runtime/generation-slot.js';
import { ApplyNotCommittedError } from '../runtime/lifecycle.js';
import type { ReceiveListeners } from '../runtime/listener-set.js';
import type { StressChange } from '../receive/capacity.js';
import type { PrimaryMessage, WorkerListener, WorkerMessage, WorkerReport } from './protocol.js';
import { WORKER_ENV } from './protocol.js';
import { GroupAdmissions } from './admissions.js';

/** A worker that has not said it is ready by then is stopped (and the start fails). */
const READY_TIMEOUT_MS = 20_000;
/** A worker that has not answered a prepare by then fails it. */
const PREPARE_TIMEOUT_MS = 30_000;
/** A dead worker is replaced after this long (a worker that dies at once does not spin). */
const RESPAWN_DELAY_MS = 500;
/**
 * Workers that die before they are ready, one after another (a broken installation, a state
 * directory they cannot open), are replaced ever more slowly: the delay doubles up to this.
 */
const MAX_RESPAWN_DELAY_MS = 30_000;
/** Workers still running this long after a stop are killed. */
const STOP_TIMEOUT_MS = 60_000;
/**
 * A worker heard nothing from for this long (it reports every second) is hung: the primary
 * would keep handing it connections nobody answers, so it is killed and replaced.
 */
const SILENCE_MS = 10_000;
const WATCH_MS = 1_000;

export interface WorkerGroupOptions {
  /** How many receive workers (2 or more: one is the engine's own listener set). */
  count: number;
  stateDir: string;
  slot: GenerationSource;
  queue: MessageQueue;
  events: EngineEvents;
  log: EngineLog;
  /** The state lock's pipe: every worker inherits it, so the lock covers the group. */
  lockPipe?: Writable;
  /** Tests shorten them. */
  timeouts?: WorkerTimeouts;
}

export interface WorkerTimeouts {
  /** How long a worker may take to answer a prepare. */
  prepareMs?: number;
  /** How long a running worker may say nothing before it is taken for hung. */
  silenceMs?: number;
}

interface Member {
  writer: string;
  worker: Worker;
  ready: Promise<void>;
  running: boolean;
  /** It said it was ready once (a death before that counts towards the slower respawns). */
  wasReady: boolean;
  report: WorkerReport | undefined;
  /** When the worker was last heard from (any message). */
  heardAt: number;
  /** Answers to prepares in flight, by generation number. */
  answers: Map<
    number,
    (answer: { ok: true; listeners: WorkerListener[] } | { ok: false; reason: string }) => void
  >;
  exited: Promise<void>;
}

interface Staged {
  prepared: PreparedGeneration;
  members: Member[];
  listeners: Map<Member, WorkerListener[]>;
  /** Lets the next generation change in (called by the commit or the abort). */
  release: () => void;
}

/** What a worker is told of a connector's stress, counted over the group. */
function stressMessage(change: StressChange): PrimaryMessage {
  return {
    type: 'stress',
    connector: change.connector,
    stressed: change.stressed,
    sessions: change.sessions,
    maxInboundConnection: change.maxInboundConnection,
  };
}

/** The file a worker runs: worker-main next to this one (.ts under tsx, .js when built). */
function workerEntry(): string {
  const here = fileURLToPath(import.meta.url);
  return fileURLToPath(new URL(`./worker-main${extname(here)}`, import.meta.url));
}

export class WorkerGroup implements ReceiveListeners {
  private readonly members = new Map<string, Member>();
  private staged: Staged | undefined;
  private forked = 0;
  /** Workers in a row that died before they were ready (0 once one is). */
  private failedStarts = 0;
  private closing = false;

  private readonly watch: NodeJS.Timeout;
  /** The group's sessions, counted against each connector's limits. */
  private readonly admissions: GroupAdmissions;
  /**
   * What every worker derives its session ticket keys from, so that a session one worker began
   * resumes in another (round robin hands a client's connections to each in turn), as Postfix's
   * tlsmgr shares its ticket keys among the smtpd processes. Random, in memory, per group.
   */
  private readonly ticketSecret = randomBytes(32);
  /** The end of the last generation change queued: an apply, or a worker brought up. */
  private gate: Promise<void> = Promise.resolve();

  private constructor(private readonly options: WorkerGroupOptions) {
    options.slot.subscribe((next) => this.install(next));
    this.admissions = new GroupAdmissions(options.events, (change) => {
      for (const member of this.members.values()) this.tell(member, stressMessage(change));
    });
    this.watch = setInterval(() => this.killSilent(), WATCH_MS);
    this.watch.unref();
  }

  /**
   * One generation change at a time across the group: an apply (from prepare to its commit or
   * abort) and a worker brought up to the running generation wait for each other, so that no
   * worker is asked to prepare two generations at once.
   */
  private exclusive(): Promise<() => void> {
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const turn = this.gate.then(() => release);
    this.gate = this.gate.then(() => held);
    return turn;
  }

  /**
   * A running worker that has said nothing for SILENCE_MS is killed (and so replaced). Not while
   * it builds a generation it was asked to prepare: that blocks its event loop for as long as the
   * generation takes to build (a large one, a loaded machine), and has a bound of its own (the
   * prepare's); it is judged by its silence again once it answered or that bound passed.
   */
  private killSilent(): void {
    if (this.closing) return;
    const now = Date.now();
    const silence = this.options.timeouts?.silenceMs ?? SILENCE_MS;
    for (const member of this.members.values()) {
      if (!member.running || member.answers.size > 0 || now - member.heardAt < silence) continue;
      member.running = false;
      this.options.log.log('error', 'workers.worker-unresponsive', {
        worker: member.writer,
        pid: member.worker.process.pid,
        silentMs: now - member.heardAt,
      });
      member.worker.process.kill('SIGKILL');
    }
  }

  /** Forks the workers and waits until every one is ready; on a failure stops them and throws. */
  static async start(options: WorkerGroupOptions): Promise<WorkerGroup> {
    if (!cluster.isPrimary) throw new Error('receive workers are started by the primary only');
    const group = new WorkerGroup(options);
    try {
      const members = Array.from({ length: options.count }, () => group.fork());
      await Promise.all(members.map((member) => member.ready));
    } catch (error) {
      await group.close().closed;
      throw error;
    }
    return group;
  }

  /** The workers' process ids, by writer name (tests kill one). */
  get pids(): Map<string, number> {
    const pids = new Map<string, number>();
    for (const member of this.members.values())
      if (member.worker.process.pid !== undefined)
        pids.set(member.writer, member.worker.process.pid);
    return pids;
  }

  private fork(): Member {
    this.forked += 1;
    const writer = `w${this.forked}`;
    // cluster's settings are the process's: set before each fork, so that a replacement worker
    // gets this group's lock pipe even after another group was started in the same process.
    cluster.setupPrimary({
      exec: workerEntry(),
      args: [],
      serialization: 'advanced',
      // The lock's pipe at LOCK_FD (4).
      stdio: ['ignore', 'inherit', 'inherit', 'ipc', this.options.lockPipe ?? 'ignore'],
    });
    const worker = cluster.fork({
      [WORKER_ENV.writer]: writer,
      [WORKER_ENV.stateDir]: this.options.stateDir,
      // A worker serves no admin API: the token stays the primary's (undefined: not passed on).
      DOMSEC_TOKEN: undefined,
    });
    let ready!: () => void;
    let failed!: (error: Error) => void;
    const member: Member = {
      writer,
      worker,
      ready: new Promise<void>((resolve, reject) => {
        ready = resolve;
        failed = reject;
      }),
      running: false,
      wasReady: false,
      report: undefined,
      heardAt: Date.now(),
      answers: new Map(),
      exited: new Promise<void>((resolve) => worker.once('exit', () => resolve())),
    };
    member.ready.catch(() => undefined);
    const timer = setTimeout(() => {
      failed(new Error(`receive worker ${writer} was not ready within ${READY_TIMEOUT_MS} ms`));
      worker.process.kill('SIGKILL');
    }, READY_TIMEOUT_MS);
    timer.unref();
    worker.on('message', (message: WorkerMessage) => {
      member.heardAt = Date.now();
      if (message.type === 'ready') {
        clearTimeout(timer);
        // A stress that started before this worker listened holds for its sessions too (told
        // now: what was sent before it listened for messages may be lost, and later changes follow).
        for (const change of this.admissions.stressed()) this.tell(member, stressMessage(change));
        member.running = true;
        member.wasReady = true;
        this.failedStarts = 0;
        ready();
        return;
      }
      this.heard(member, message);
    });
    // A message sent as the worker dies fails with EPIPE, reported as an 'error' event: without a
    // listener that would be an uncaught exception in the primary. The exit that follows replaces it.
    worker.on('error', (error: Error) => {
      this.options.log.log('debug', 'workers.channel-error', {
        worker: writer,
        error: error.message,
      });
    });
    worker.once('exit', (code, signal) => {
      clearTimeout(timer);
      failed(new Error(`receive worker ${writer} exited (${signal ?? `exit ${code}`})`));
      void this.exited(member, code, signal);
    });
    this.members.set(writer, member);
    return member;
  }

  private heard(member: Member, message: WorkerMessage): void {
    const { queue, events, log } = this.options;
    switch (message.type) {
      case 'admit': {
        // A worker already counted out (exited) holds no session: nothing to count, no one to tell.
        if (this.members.get(member.writer) !== member) return;
        const refusal = this.admissions.admit(member.writer, message);
        const { id, connector, client } = message;
        // A worker that cannot be told holds no session: it is dying, and counted out when gone.
        if (!this.tell(member, { type: 'admitted', id, connector, client, refusal }))
          this.admissions.release(member.writer, connector, client);
        return;
      }
      case 'release':
        this.admissions.release(member.writer, message.connector, message.client);
        return;
      case 'stress-closed':
        log.log('info', 'receive.stress-closed', {
          connector: message.connector,
          closed: message.closed,
          worker: member.writer,
        });
        return;
      case 'accepted':
        queue.adopt(message.message, message.records, message.location);
        return;
      case 'stored':
        queue.adoptStored(message.message, message.records);
        return;
      case 'sealed':
        queue.seal(message.segment, message.messages);
        return;
      case 'event':
        events.emit(message.event);
        return;
      case 'log':
        log.log(message.level, message.event, { ...message.fields, worker: member.writer });
        return;
      case 'report': {
        const { type: _type, ...report } = message;
        member.report = report;
        return;
      }
      case 'prepared':
        member.answers.get(message.number)?.({ ok: true, listeners: message.listeners });
        return;
      case 'prepare-failed':
        member.answers.get(message.number)?.({ ok: false, reason: message.reason });
        return;
      case 'ready':
      case 'stopped':
        return;
    }
  }

  /**
   * A worker ended. Its journal segments are read again, so that what it made durable and did
   * not get to tell joins the queue; unless the group is stopping, another takes its place.
   */
  private async exited(member: Member, code: number | null, signal: string | null): Promise<void> {
    this.members.delete(member.writer);
    member.running = false;
    this.admissions.gone(member.writer);
    for (const answer of member.answers.values())
      answer({ ok: false, reason: `receive worker ${member.writer} exited` });
    member.answers.clear();
    if (!this.closing)
      this.options.log.log('error', 'workers.worker-exited', {
        worker: member.writer,
        pid: member.worker.process.pid,
        ...(signal === null ? { code } : { signal }),
      });
    try {
      const found = await this.options.queue.writerGone(member.writer);
      if (found > 0)
        this.options.log.log('info', 'workers.journal-recovered', {
          worker: member.writer,
          messages: found,
        });
    } catch (error) {
      this.options.log.log('error', 'workers.journal-recovery-failed', {
        worker: member.writer,
        error: (error as Error).message,
      });
    }
    if (this.closing) return;
    const delay = Math.min(RESPAWN_DELAY_MS * 2 ** this.failedStarts, MAX_RESPAWN_DELAY_MS);
    if (!member.wasReady) this.failedStarts = Math.min(this.failedStarts + 1, 16);
    await new Promise((resolve) => setTimeout(resolve, delay));
    if (this.closing) return;
    const replacement = this.fork();
    try {
      await replacement.ready;
      if (this.closing) return; // told to stop at its ready (close)
      await this.bringUp(replacement);
      this.options.log.log('info', 'workers.worker-replaced', {
        worker: replacement.writer,
        replaces: member.writer,
        pid: replacement.worker.process.pid,
      });
    } catch (error) {
      this.options.log.log('error', 'workers.worker-start-failed', {
        worker: replacement.writer,
        error: (error as Error).message,
      });
      replacement.worker.process.kill('SIGKILL');
    }
  }

  /**
   * A worker that joined later runs the current generation: prepared, then committed; again if an
   * apply committed another meanwhile (it was not among the workers that apply prepared).
   */
  private async bringUp(member: Member): Promise<void> {
    const release = await this.exclusive();
    try {
      await this.bringUpNow(member);
    } finally {
      release();
    }
  }

  private async bringUpNow(member: Member): Promise<void> {
    for (let attempt = 0; attempt < 3; attempt += 1) {
      const current = this.options.slot.current;
      if (current === undefined || member.report?.generation === current.number) return;
      const answer = await this.ask(member, current);
      if (!answer.ok) throw new Error(answer.reason);
      this.tell(member, { type: 'commit', number: current.number });
      member.report = this.reportOf(current.number, answer.listeners, member.report);
    }
    if (member.report?.generation !== this.options.slot.current?.number)
      throw new Error('the generation kept changing while the worker joined');
  }

  private ask(
    member: Member,
    generation: Generation,
  ): Promise<{ ok: true; listeners: WorkerListener[] } | { ok: false; reason: string }> {
    const { number } = generation;
    return new Promise((resolve) => {
      // Answered once: by the worker, by the bound, or by its channel gone; then no longer waited
      // for (which lets its silence count again).
      const answer = (result: Parameters<typeof resolve>[0]): void => {
        clearTimeout(timer);
        if (member.answers.get(number) === answer) member.answers.delete(number);
        resolve(result);
      };
      const timer = setTimeout(
        () => answer({ ok: false, reason: `receive worker ${member.writer} did not answer` }),
        this.options.timeouts?.prepareMs ?? PREPARE_TIMEOUT_MS,
      );
      timer.unref();
      member.answers.set(number, answer);
      if (
        !this.tell(member, {
          type: 'prepare',
          number,
          config: generation.config,
          appliedAt: generation.appliedAt,
          ticketSecret: this.ticketSecret,
        })
      )
        answer({ ok: false, reason: `receive worker ${member.writer} is gone` });
    });
  }

  /**
   * Sends a message to the worker; false only when its channel is gone. Node's own false from
   * send() means a backlog (or a message queued behind a connection handed over and not yet
   * acknowledged, which cluster's round robin does all the time): that message still goes, so
   * taking it for lost would count out a session the worker greets, or fail an apply.
   */
  private tell(member: Member, message: PrimaryMessage): boolean {
    try {
      if (!member.worker.isConnected()) return false;
      member.worker.send(message);
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Prepares the generation in every worker; the first that fails (or exits, or does not answer)
   * fails the apply, and every worker undoes what it bound: applied nowhere.
   */
  async prepare(prepared: PreparedGeneration): Promise<void> {
    const release = await this.exclusive();
    try {
      await this.prepareNow(prepared, release);
    } catch (error) {
      release();
      throw error;
    }
  }

  private async prepareNow(prepared: PreparedGeneration, release: () => void): Promise<void> {
    const members = [...this.members.values()];
    await Promise.all(members.map((member) => member.ready.catch(() => undefined)));
    const running = members.filter((member) => member.running);
    if (running.length === 0) throw new ApplyNotCommittedError('no receive worker is running');
    const answers = await Promise.all(
      running.map((member) => this.ask(member, prepared.generation)),
    );
    const failure = answers.findIndex((answer) => !answer.ok);
    if (failure >= 0) {
      for (const member of running)
        this.tell(member, { type: 'abort', number: prepared.generation.number });
      const answer = answers[failure];
      const reason = answer !== undefined && !answer.ok ? answer.reason : 'failed';
      // The configuration is the same in every worker, and so is its failure (a binding taken,
      // a key unreadable): told as one process tells it. A worker that exited or did not answer
      // is named in its reason.
      throw new ApplyNotCommittedError(reason);
    }
    const listeners = new Map<Member, WorkerListener[]>();
    running.forEach((member, n) => {
      const answer = answers[n];
      if (answer?.ok === true) listeners.set(member, answer.listeners);
    });
    this.staged = { prepared, members: running, listeners, release };
  }

  async abort(prepared: PreparedGeneration): Promise<void> {
    const staged = this.staged;
    if (staged?.prepared !== prepared) return;
    this.staged = undefined;
    for (const member of staged.members)
      this.tell(member, { type: 'abort', number: prepared.generation.number });
    staged.release();
  }

  /** The slot committed: every worker that prepared it commits too. */
  private install(next: Generation): void {
    const staged = this.staged;
    if (staged?.prepared.generation !== next) return;
    this.staged = undefined;
    for (const member of staged.members) {
      this.tell(member, { type: 'commit', number: next.number });
      member.report = this.reportOf(next.number, staged.listeners.get(member) ?? [], member.report);
    }
    staged.release();
  }

  /** What a worker runs right after a commit, until its own report arrives. */
  private reportOf(
    generation: number,
    listeners: WorkerListener[],
    previous: WorkerReport | undefined,
  ): WorkerReport {
    return {
      generation,
      listeners,
      policy: previous?.policy ?? null,
    };
  }

  private reports(): WorkerReport[] {
    return [...this.members.values()]
      .filter((member) => member.running && member.report !== undefined)
      .map((member) => member.report as WorkerReport);
  }

  get size(): number {
    return new Set(this.reports().flatMap((report) => report.listeners.map((l) => l.binding))).size;
  }

  /** Every binding some worker has; listening only when every running worker listens on it. */
  state(generation: Generation | undefined): ListenerState[] {
    const reports = this.reports();
    const bindings = new Map<string, WorkerListener[]>();
    for (const report of reports)
      for (const listener of report.listeners)
        bindings.set(listener.binding, [...(bindings.get(listener.binding) ?? []), listener]);
    return [...bindings].map(([binding, seen]) => {
      const listening = seen.length === reports.length && seen.every((l) => l.listening);
      const first = seen.find((l) => l.address !== null);
      return {
        binding,
        connectors:
          generation?.receiveConnectors
            .filter((c) => c.bindings.some((b) => formatEndpoint(b.host, b.port) === binding))
            .map((c) => c.name) ?? [],
        address: first?.address ?? null,
        port: first?.port ?? null,
        listening,
      };
    });
  }

  /**
   * Sessions open now on each receive connector, over every worker: the primary's own count (a
   * worker asks before it greets and tells when a session ends), not the workers' last reports.
   */
  sessionsByConnector(
    generation: Generation | undefined,
  ): { connector: string; sessions: number }[] {
    return (generation?.receiveConnectors ?? []).map((connector) => ({
      connector: connector.name,
      sessions: this.admissions.sessionsOn(connector.name),
    }));
  }

  address(binding: string): { address: string; port: number } | null {
    const parsed = parseBinding(binding);
    const key = formatEndpoint(parsed.host, parsed.port);
    for (const report of this.reports()) {
      const listener = report.listeners.find((l) => l.binding === key);
      if (listener?.address != null && listener.port !== null)
        return { address: listener.address, port: listener.port };
    }
    return null;
  }

  policyAddress(): { address: string; port: number } | null {
    return this.reports().find((report) => report.policy !== null)?.policy ?? null;
  }

  /**
   * Stops every worker: each stops accepting, lets its sessions end and closes its journal; once
   * one has exited its segments are read again (nothing it accepted is left behind).
   */
  close(): { sessions: number; closed: Promise<void> } {
    this.closing = true;
    clearInterval(this.watch);
    const members = [...this.members.values()];
    const sessions = this.admissions.sessions();
    // A message reaches a worker only once it listens for them (one sent earlier is dropped, not
    // queued): a worker still starting is told to stop when it says it is ready.
    for (const member of members)
      member.ready.then(
        () => this.tell(member, { type: 'stop' }),
        () => undefined,
      );
    const closed = Promise.all(
      members.map(async (member) => {
        const timer = setTimeout(() => member.worker.process.kill('SIGKILL'), STOP_TIMEOUT_MS);
        timer.unref();
        await member.exited;
        clearTimeout(timer);
        // Its exit handler reads its segments again; wait for that too.
        await this.options.queue.writerGone(member.writer).catch(() => 0);
      }),
    ).then(() => undefined);
    return { sessions, closed };
  }
}
