// The engine's typed events: what happened, as data, told to every subscriber. The event log
// (one line per event, eventLog below), the metrics and the partners' health each subscribe; none
// of them reads another's output. Event names are dot-separated kebab case: `area.what-happened`.
// Add an event here when a second reader needs it; anything only worth a log line stays a log line.
import type { EngineLog, LogLevel } from './log.js';
import type { DomainSecuredBy } from './message-sink.js';
import type { StressChange } from './receive/capacity.js';
import type { DomainName } from '../domain-name.js';
import type { PolicyType, ResultType } from './tlsrpt/results.js';

export type EngineEvent =
  /** A message durably queued (received, or a report the queue wrote itself: connector 'queue'). */
  | {
      type: 'queue.accepted';
      message: string;
      entries: string[];
      from: string;
      nextHops: string[];
      size: number | undefined;
      /** The verified partner that sent it, with its certificate; null when none did. */
      domainSecured: DomainSecuredBy | null;
      connector: string;
      /** Set when the body was kept in a data file rather than the journal. */
      stored?: 'data';
    }
  /** Recipients of one queue entry delivered. */
  | { type: 'queue.delivered'; id: string; recipients: string[]; nextHopDomain: string }
  /** A partner's session refused on receive: its certificate did not verify, or no TLS. */
  | {
      type: 'partner.refused';
      partner: string;
      reason: string;
      reply: string;
      remote: string;
      connector: string;
      session: string;
      ehlo?: string | undefined;
    }
  /** A receive connector came near its connection limit, or left that state. */
  | ({ type: 'receive.stress-started' | 'receive.stress-ended' } & Omit<StressChange, 'stressed'>)
  /** The partner's server certificate verified on send. */
  | {
      type: 'send.partner-verified';
      partner: string;
      host: string;
      address: string;
      subject: string;
      fingerprint: string;
      /** As X509Certificate.validTo; null when unknown. */
      notAfter: string | null;
      connector: string;
    }
  /** The partner's server certificate refused on send. */
  | {
      type: 'send.partner-refused';
      partner: string;
      host: string;
      address: string;
      reason: string;
      subject: string | null;
      names: string[];
      fingerprint: string | null;
    }
  /** One session's outcome under its domain's TLS policy, for TLS reporting (RFC 8460). */
  | {
      type: 'send.tls-result';
      domain: DomainName;
      policyType: PolicyType;
      policyStrings: string[];
      mxHost: string[];
      result: 'success' | ResultType;
      host: string;
      address: string;
      /** Our end of the connection; null when it never connected. */
      localAddress: string | null;
      reason?: string;
    };

export type EngineEventType = EngineEvent['type'];
export type EventOf<T extends EngineEventType> = Extract<EngineEvent, { type: T }>;
export type EventSubscriber = (event: EngineEvent) => void;

/** Tells each event to every subscriber, in order of subscription. */
export class EngineEvents {
  private readonly subscribers: EventSubscriber[] = [];

  /** `onFailure` hears of a subscriber that threw (the others are still told). */
  constructor(private readonly onFailure?: (event: EngineEvent, error: Error) => void) {}

  subscribe(subscriber: EventSubscriber): () => void {
    this.subscribers.push(subscriber);
    return () => {
      const index = this.subscribers.indexOf(subscriber);
      if (index >= 0) this.subscribers.splice(index, 1);
    };
  }

  emit(event: EngineEvent): void {
    for (const subscriber of this.subscribers) {
      try {
        subscriber(event);
      } catch (error) {
        // Counting must never break the path that emitted the event.
        this.onFailure?.(event, error as Error);
      }
    }
  }
}

const LEVELS: Record<EngineEventType, LogLevel> = {
  'queue.accepted': 'info',
  'queue.delivered': 'info',
  'partner.refused': 'warn',
  'receive.stress-started': 'warn',
  'receive.stress-ended': 'info',
  'send.partner-verified': 'info',
  'send.partner-refused': 'warn',
  // The verified and refused lines of DANE and MTA-STS say it already.
  'send.tls-result': 'debug',
};

/** The event log's subscriber: each event as one line, named by its type. */
export function eventLog(log: EngineLog): EventSubscriber {
  return (event) => {
    const { type, ...fields } = event;
    if (event.type === 'queue.accepted') {
      // The line names the partner; its certificate is for the partners' health.
      (fields as Record<string, unknown>).domainSecured = event.domainSecured?.partner ?? null;
      if (event.stored === undefined) delete (fields as Record<string, unknown>).stored;
    }
    log.log(LEVELS[type], type, fields);
  };
}

/** Events for a part used without an engine (tests, probe): written to its log, nothing else. */
export function loggedEvents(log: EngineLog): EngineEvents {
  const events = new EngineEvents((event, error) =>
    log.log('error', 'events.subscriber-failed', { event: event.type, error: error.message }),
  );
  events.subscribe(eventLog(log));
  return events;
}
