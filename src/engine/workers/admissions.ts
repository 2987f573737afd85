// The primary's count of the sessions its receive workers hold, per connector and per client, so
// that a connector's limits (maxInboundConnection, maxInboundConnectionPerSource, the share kept
// for partners, stress) hold for the group as for one process. Each worker asks before it greets
// (workers/worker-counter.ts) and tells when the session ends; a worker that dies is counted out.
import type { SmtpReply } from '../../model.js';
import type { EngineEvents } from '../events.js';
import { ConnectionCounter, type StressChange } from '../receive/capacity.js';
import type { WorkerMessage } from './protocol.js';

type AdmitMessage = Extract<WorkerMessage, { type: 'admit' }>;

export class GroupAdmissions {
  private readonly counter = new ConnectionCounter();
  /** What each worker holds: its sessions by connector, then by client. */
  private readonly held = new Map<string, Map<string, Map<string, number>>>();
  /** The stresses in effect, by connector: what a worker that joins now is told. */
  private readonly stresses = new Map<string, StressChange>();

  /** `broadcast`: tells every worker of a stress started or ended. */
  constructor(
    private readonly events: EngineEvents,
    broadcast: (change: StressChange) => void,
  ) {
    this.counter.watch((change) => {
      if (change.stressed) this.stresses.set(change.connector, change);
      else this.stresses.delete(change.connector);
      broadcast(change);
      return 0;
    });
  }

  /** The connectors under stress now: a worker that joins later shortens its sessions' waits too. */
  stressed(): StressChange[] {
    return [...this.stresses.values()];
  }

  /** Counts one session of `writer` in, or returns its refusal. */
  admit(writer: string, message: AdmitMessage): SmtpReply | undefined {
    const admission = this.counter.admit(
      message.connector,
      message.client,
      {
        maxInboundConnection: message.maxInboundConnection,
        maxInboundConnectionPerSource: message.maxInboundConnectionPerSource,
      },
      message.partnerRange,
    );
    if (admission.refusal === undefined) {
      const byConnector = this.held.get(writer) ?? new Map<string, Map<string, number>>();
      const byClient = byConnector.get(message.connector) ?? new Map<string, number>();
      byClient.set(message.client, (byClient.get(message.client) ?? 0) + 1);
      byConnector.set(message.connector, byClient);
      this.held.set(writer, byConnector);
    }
    if (admission.stress !== undefined) this.told(admission.stress);
    return admission.refusal;
  }

  /** A session of `writer` ended; one it was never counted for changes nothing. */
  release(writer: string, connector: string, client: string): void {
    const byClient = this.held.get(writer)?.get(connector);
    const count = byClient?.get(client) ?? 0;
    if (byClient === undefined || count === 0) return;
    if (count > 1) byClient.set(client, count - 1);
    else byClient.delete(client);
    const stress = this.counter.release(connector, client);
    if (stress !== undefined) this.told(stress);
  }

  /** The worker is gone, and with it every session it held. */
  gone(writer: string): void {
    const byConnector = this.held.get(writer);
    this.held.delete(writer);
    for (const [connector, byClient] of byConnector ?? [])
      for (const [client, count] of byClient)
        for (let n = 0; n < count; n += 1) {
          const stress = this.counter.release(connector, client);
          if (stress !== undefined) this.told(stress);
        }
  }

  /** Sessions open now on `connector`, over the group. */
  sessionsOn(connector: string): number {
    let total = 0;
    for (const byConnector of this.held.values())
      for (const count of byConnector.get(connector)?.values() ?? []) total += count;
    return total;
  }

  /** Sessions open now, over the group. */
  sessions(): number {
    let total = 0;
    for (const byConnector of this.held.values())
      for (const byClient of byConnector.values())
        for (const count of byClient.values()) total += count;
    return total;
  }

  private told(change: StressChange): void {
    const { stressed, closed: _closed, ...counts } = change;
    this.events.emit({
      type: stressed ? 'receive.stress-started' : 'receive.stress-ended',
      ...counts,
    });
  }
}
