// A receive connector's capacity: sessions counted per connector and per client, the share kept
// for partners (known at connect only by their remoteIPRanges), and stress, Postfix's name for a
// server near its connection limit, during which the waits for clients are shorter (limits.ts).
import { matchRange } from '../addresses.js';
import type { Generation } from '../generation.js';
import { REPLIES } from '../replies.js';
import type { SmtpReply } from '../../model.js';
import type { ConnectorLimits } from './limits.js';

/**
 * Where a connector's session count puts it. Stress (Postfix's STRESS_README: smtpd_timeout
 * ${stress?10}${stress:300}s) starts at 80% of maxInboundConnection and ends at 60% or fewer, so
 * that one session more or less does not flip it. The last 10% is kept for clients inside a
 * receive-secure partner's remoteIPRanges: strangers are refused at 90%, partners at 100%.
 */
export interface ConnectorCapacity {
  /** Sessions at which strangers are refused 421 4.3.2. */
  strangers: number;
  /** Sessions at which stress starts. */
  stressStarts: number;
  /** Sessions at or under which stress ends. */
  stressEnds: number;
}

export function connectorCapacity(maxInboundConnection: number): ConnectorCapacity {
  return {
    strangers: maxInboundConnection - Math.floor(maxInboundConnection * 0.1),
    stressStarts: Math.ceil(maxInboundConnection * 0.8),
    stressEnds: Math.floor(maxInboundConnection * 0.6),
  };
}

/** A connector entering or leaving stress, with the counts an operator reads. */
export interface StressChange {
  connector: string;
  stressed: boolean;
  /** Sessions on the connector once the change happened. */
  sessions: number;
  maxInboundConnection: number;
  /** Sessions closed at its start because their shorter wait was already over (when it starts). */
  closed?: number;
  /** Connections refused on the connector while it was under stress (when it ends). */
  refused?: number;
  /** How long the stress lasted, ms (when it ends). */
  durationMs?: number;
}

/** A connection's admission: the refusal if any, and the stress change it caused if any. */
export interface Admission {
  refusal?: SmtpReply;
  stress?: StressChange;
}

/** The two limits an admission is judged by (the rest of ConnectorLimits is the session's). */
export type AdmissionLimits = Pick<
  ConnectorLimits,
  'maxInboundConnection' | 'maxInboundConnectionPerSource'
>;

/**
 * Who counts the sessions of a connector: the engine's ConnectionCounter when one process
 * receives, or the primary's, asked over IPC, when receive workers share the listeners (so that
 * a connector's limits hold for the group, not for each worker). An admission that must be asked
 * for is a promise; one that cannot be had in time is a refusal.
 */
export interface SessionCounter {
  admit(
    connector: string,
    client: string,
    limits: AdmissionLimits,
    partnerRange?: boolean,
  ): Admission | Promise<Admission>;
  /** Counts out a session that was admitted; the end of a stress it caused, when told here. */
  release(connector: string, client: string): StressChange | undefined;
  stressed(connector: string): boolean;
  watch(onChange: (change: StressChange) => number): () => void;
}

interface ConnectorCount {
  sessions: number;
  /** The limits of the last admission: an apply moves the thresholds with the next session. */
  maxInboundConnection: number;
  /** Since when (clock ms) the connector is under stress; undefined: it is not. */
  stressedSince?: number;
  refusedUnderStress: number;
}

/**
 * Counts the sessions this listener holds per connector, and per remote address on a connector
 * (Exchange counts both per connector), and which connectors are under stress. Each admission is
 * judged by the limits of the generation the session starts in, so an apply changes them for new
 * sessions only. Listeners sharing a counter watch it to shorten their sessions' waits.
 */
export class ConnectionCounter implements SessionCounter {
  private readonly perConnector = new Map<string, ConnectorCount>();
  private readonly perClient = new Map<string, number>();
  private readonly watchers = new Set<(change: StressChange) => number>();

  constructor(private readonly clock: () => number = Date.now) {}

  /**
   * Counts one more session in, or says why not. `partnerRange`: the client is inside a
   * receive-secure partner's remoteIPRanges, and may use the capacity kept for partners.
   */
  admit(
    connector: string,
    client: string,
    limits: AdmissionLimits,
    partnerRange = false,
  ): Admission {
    const count = this.perConnector.get(connector) ?? {
      sessions: 0,
      maxInboundConnection: limits.maxInboundConnection,
      refusedUnderStress: 0,
    };
    count.maxInboundConnection = limits.maxInboundConnection;
    const capacity = connectorCapacity(limits.maxInboundConnection);
    const key = clientKey(connector, client);
    const fromClient = this.perClient.get(key) ?? 0;
    let refusal: SmtpReply | undefined;
    if (count.sessions >= (partnerRange ? limits.maxInboundConnection : capacity.strangers))
      refusal = REPLIES.tooManyConnections;
    else if (fromClient >= limits.maxInboundConnectionPerSource)
      refusal = REPLIES.tooManyFromClient;
    if (refusal !== undefined) {
      if (count.stressedSince !== undefined) count.refusedUnderStress += 1;
      return { refusal };
    }
    count.sessions += 1;
    this.perConnector.set(connector, count);
    this.perClient.set(key, fromClient + 1);
    const stress = this.judgeStress(connector, count);
    return stress === undefined ? {} : { stress };
  }

  /** Counts a session out; returns the end of a stress it caused. */
  release(connector: string, client: string): StressChange | undefined {
    decrement(this.perClient, clientKey(connector, client));
    const count = this.perConnector.get(connector);
    if (count === undefined) return undefined;
    count.sessions = Math.max(0, count.sessions - 1);
    const stress = this.judgeStress(connector, count);
    if (count.sessions === 0 && count.stressedSince === undefined)
      this.perConnector.delete(connector);
    return stress;
  }

  stressed(connector: string): boolean {
    return this.perConnector.get(connector)?.stressedSince !== undefined;
  }

  /**
   * Calls `onChange` at each start and end of a stress, which returns how many sessions it
   * closed for it; returns the call that stops watching.
   */
  watch(onChange: (change: StressChange) => number): () => void {
    this.watchers.add(onChange);
    return () => this.watchers.delete(onChange);
  }

  private judgeStress(connector: string, count: ConnectorCount): StressChange | undefined {
    const capacity = connectorCapacity(count.maxInboundConnection);
    const stressed = count.stressedSince !== undefined;
    let change: StressChange | undefined;
    const counts = {
      connector,
      sessions: count.sessions,
      maxInboundConnection: count.maxInboundConnection,
    };
    if (!stressed && count.sessions >= capacity.stressStarts) {
      count.stressedSince = this.clock();
      count.refusedUnderStress = 0;
      change = { ...counts, stressed: true };
    } else if (stressed && count.sessions <= capacity.stressEnds) {
      change = {
        ...counts,
        stressed: false,
        refused: count.refusedUnderStress,
        durationMs: this.clock() - (count.stressedSince ?? 0),
      };
      count.stressedSince = undefined;
    }
    if (change === undefined) return undefined;
    let closed = 0;
    for (const watcher of this.watchers) closed += watcher(change);
    return change.stressed ? { ...change, closed } : change;
  }
}

function clientKey(connector: string, client: string): string {
  return `${connector} ${client}`;
}

function decrement(counts: Map<string, number>, key: string): void {
  const left = (counts.get(key) ?? 0) - 1;
  if (left > 0) counts.set(key, left);
  else counts.delete(key);
}

/**
 * Whether a client is inside the remoteIPRanges of a receive-secure partner of the generation:
 * the only way to know a partner before TLS. A partner without remoteIPRanges is a stranger here.
 */
export function fromPartnerRange(generation: Generation, remoteAddress: string): boolean {
  const ranges = generation.partnerRanges;
  return ranges.length > 0 && matchRange(ranges, remoteAddress) !== undefined;
}
