// A receive worker's session counter: every admission is asked of the primary, which counts the
// sessions of the whole group (workers/admissions.ts), so that maxInboundConnection and
// maxInboundConnectionPerSource hold for the group as they do for one process. Postfix's smtpd
// asks its anvil server the same way. An admission not answered in time is a refusal.
import { REPLIES } from '../replies.js';
import type {
  Admission,
  AdmissionLimits,
  SessionCounter,
  StressChange,
} from '../receive/capacity.js';
import type { WorkerMessage } from './protocol.js';

/** How long a connection waits for the primary's count before it is refused (421 4.3.2). */
export const ADMIT_TIMEOUT_MS = 5_000;

export class WorkerCounter implements SessionCounter {
  private next = 0;
  private readonly asked = new Map<number, (admission: Admission) => void>();
  private readonly stressedConnectors = new Set<string>();
  private readonly watchers = new Set<(change: StressChange) => number>();

  constructor(
    private readonly send: (message: WorkerMessage) => boolean,
    private readonly timeoutMs = ADMIT_TIMEOUT_MS,
  ) {}

  admit(
    connector: string,
    client: string,
    limits: AdmissionLimits,
    partnerRange = false,
  ): Promise<Admission> {
    this.next += 1;
    const id = this.next;
    return new Promise((resolve) => {
      const refuse = (): void => {
        this.asked.delete(id);
        resolve({ refusal: REPLIES.tooManyConnections });
      };
      const timer = setTimeout(refuse, this.timeoutMs);
      timer.unref();
      this.asked.set(id, (admission) => {
        clearTimeout(timer);
        this.asked.delete(id);
        resolve(admission);
      });
      let sent: boolean;
      try {
        sent = this.send({
          type: 'admit',
          id,
          connector,
          client,
          maxInboundConnection: limits.maxInboundConnection,
          maxInboundConnectionPerSource: limits.maxInboundConnectionPerSource,
          partnerRange,
        });
      } catch {
        sent = false;
      }
      if (!sent) {
        clearTimeout(timer);
        refuse();
      }
    });
  }

  /** The primary's answer to an admission; one that came too late is given back at once. */
  answered(id: number, connector: string, client: string, admission: Admission): void {
    const waiting = this.asked.get(id);
    if (waiting !== undefined) {
      waiting(admission);
      return;
    }
    if (admission.refusal === undefined) this.release(connector, client);
  }

  release(connector: string, client: string): undefined {
    try {
      this.send({ type: 'release', connector, client });
    } catch {
      // The channel is gone: so is the primary's count of this worker (it counts a dead worker out).
    }
    return undefined;
  }

  stressed(connector: string): boolean {
    return this.stressedConnectors.has(connector);
  }

  /** The primary says a connector started or ended its stress: returns the sessions it closed. */
  stress(change: StressChange): number {
    if (change.stressed) this.stressedConnectors.add(change.connector);
    else this.stressedConnectors.delete(change.connector);
    let closed = 0;
    for (const watcher of this.watchers) closed += watcher(change);
    return closed;
  }

  watch(onChange: (change: StressChange) => number): () => void {
    this.watchers.add(onChange);
    return () => this.watchers.delete(onChange);
  }
}
