// The engine's Prometheus metrics, in a registry of its own (several engines in one process stay
// apart). Counters follow the engine's events (a subscriber of EngineEvents); gauges are computed
// at scrape time from what the engine holds: queues, our certificate, the partners' certificates.
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { QueuedMessageSummary } from '../model.js';
import type { Generation } from './generation.js';
import type { EngineEvent } from './events.js';
import type { PartnerHealth } from './partner-health.js';
import { PolicyOutcomes } from './tlsrpt/policy-outcomes.js';
import { chooseSendConnector, sendSecurePartner } from './send/route.js';
import { domainName } from '../domain-name.js';

/** What the gauges read at scrape time. */
export interface MetricsSource {
  generation(): Generation | undefined;
  queuedMessages(): QueuedMessageSummary[];
  /** Next-hop domains an operator suspended. */
  suspendedQueues?(): string[];
  /** Sessions open on each receive connector now. */
  receiveSessions(): { connector: string; sessions: number }[];
  /** Sessions open to next hops through each send connector now. */
  sendSessions?(): { connector: string; sessions: number }[];
  partners: PartnerHealth;
}

const DAY_MS = 86_400_000;

export class EngineMetrics {
  readonly registry = new Registry();
  private readonly received: Counter<'connector' | 'domain_secured'>;
  private readonly sent: Counter<'connector' | 'domain_secured'>;
  private readonly verificationFailures: Counter<'direction' | 'reason'>;
  private readonly reconciles: Counter<'outcome'>;
  private readonly applyDuration: Histogram<'result'>;
  private readonly reconcileDuration: Histogram<'outcome'>;
  private readonly stress: Gauge<'connector'>;
  /** TLS policy outcomes by domain (the status page reads them too). */
  readonly policyOutcomes = new PolicyOutcomes();

  constructor(
    private readonly source: MetricsSource,
    private readonly clock: () => number = Date.now,
  ) {
    const registers = [this.registry];
    this.received = new Counter({
      name: 'domsec_messages_received_total',
      help: 'Messages accepted from SMTP clients, by receive connector and whether a verified partner sent them.',
      labelNames: ['connector', 'domain_secured'],
      registers,
    });
    this.sent = new Counter({
      name: 'domsec_messages_sent_total',
      help: 'Queue entries delivered, by send connector ("local" for accepted domains) and whether domain security applied.',
      labelNames: ['connector', 'domain_secured'],
      registers,
    });
    this.verificationFailures = new Counter({
      name: 'domsec_tls_verification_failures_total',
      help: 'Partners refused because domain security could not be verified, by direction and reason.',
      labelNames: ['direction', 'reason'],
      registers,
    });
    this.reconciles = new Counter({
      name: 'domsec_reconcile_total',
      help: 'Reconcile attempts reported by a reconciler, by outcome.',
      labelNames: ['outcome'],
      registers,
    });
    this.reconcileDuration = new Histogram({
      name: 'domsec_reconcile_duration_seconds',
      help: 'Time a reconciler took for one attempt (read, validate, plan, apply), by outcome.',
      labelNames: ['outcome'],
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
    this.applyDuration = new Histogram({
      name: 'domsec_apply_duration_seconds',
      help: 'Time to apply a configuration to the engine (apply or rollback), by result.',
      labelNames: ['result'],
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
    this.stress = new Gauge({
      name: 'domsec_receive_stress',
      help: 'Receive connectors under stress (1: near maxInboundConnection, the shorter waits of stressInactivityTimeout apply), by connector.',
      labelNames: ['connector'],
      registers,
    });
    this.defineGauges(registers);
  }

  /** The EngineEvents subscriber. */
  observe(event: EngineEvent): void {
    this.policyOutcomes.observe(event);
    switch (event.type) {
      case 'queue.accepted': {
        // Reports the queue writes itself (DSNs) are not received mail.
        if (event.connector === 'queue') return;
        const secured = event.domainSecured !== null;
        this.received.inc({ connector: event.connector, domain_secured: String(secured) });
        return;
      }
      case 'queue.delivered': {
        const route = this.route(event.nextHopDomain);
        this.sent.inc({ connector: route.connector, domain_secured: String(route.domainSecured) });
        return;
      }
      case 'partner.refused':
        this.verificationFailures.inc({
          direction: 'receive',
          reason: refusalReason(event.reason),
        });
        return;
      case 'receive.stress-started':
      case 'receive.stress-ended':
        this.stress.set(
          { connector: event.connector },
          event.type === 'receive.stress-started' ? 1 : 0,
        );
        return;
      case 'send.partner-refused':
        this.verificationFailures.inc({
          direction: 'send',
          reason: refusalReason(event.reason),
        });
        return;
      default:
        return;
    }
  }

  /** One reconcile report (POST /v1/status). */
  reconciled(outcome: string, durationMs?: number): void {
    this.reconciles.inc({ outcome });
    if (durationMs !== undefined && Number.isFinite(durationMs) && durationMs >= 0)
      this.reconcileDuration.observe({ outcome }, durationMs / 1000);
  }

  /** Times one apply; the result label says how it ended. */
  async timeApply<T>(apply: () => Promise<T>): Promise<T> {
    const end = this.applyDuration.startTimer();
    try {
      const result = await apply();
      end({ result: 'applied' });
      return result;
    } catch (error) {
      end({ result: (error as Error).name === 'EngineBusyError' ? 'locked' : 'failed' });
      throw error;
    }
  }

  /** The Prometheus text exposition. */
  async text(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }

  private route(spelled: string): { connector: string; domainSecured: boolean } {
    const generation = this.source.generation();
    const domain = domainName(spelled);
    if (generation === undefined || domain === undefined)
      return { connector: 'none', domainSecured: false };
    if (generation.acceptedDomains.has(domain)) return { connector: 'local', domainSecured: false };
    const connector = chooseSendConnector(generation.sendConnectors, domain);
    return {
      connector: connector?.name ?? 'none',
      domainSecured: sendSecurePartner(generation, domain) !== undefined,
    };
  }

  private defineGauges(registers: Registry[]): void {
    const source = this.source;
    const clock = this.clock;
    const outcomes = this.policyOutcomes;
    new Counter({
      name: 'domsec_tls_policy_sessions_total',
      help: 'Send sessions by TLS policy domain (the first 100 domains seen, then "other"), policy type (tlsa, sts, no-policy-found) and result (success or the RFC 8460 result type).',
      labelNames: ['policy_domain', 'policy_type', 'result'],
      registers,
      collect() {
        this.reset();
        for (const { domain, policyType, result, sessions } of outcomes.outcomes())
          this.inc({ policy_domain: domain, policy_type: policyType, result }, sessions);
      },
    });
    new Gauge({
      name: 'domsec_generation',
      help: 'The configuration generation the engine runs (0 before the first apply).',
      registers,
      collect() {
        this.set(source.generation()?.number ?? 0);
      },
    });
    new Gauge({
      name: 'domsec_queue_depth',
      help: 'Queue entries waiting for delivery, by next-hop domain.',
      labelNames: ['next_hop_domain'],
      registers,
      collect() {
        this.reset();
        for (const [domain, queue] of queuesByDomain(source.queuedMessages(), clock())) {
          this.set({ next_hop_domain: domain }, queue.count);
        }
      },
    });
    new Gauge({
      name: 'domsec_queue_oldest_message_age_seconds',
      help: 'Age of the oldest queued message, by next-hop domain.',
      labelNames: ['next_hop_domain'],
      registers,
      collect() {
        this.reset();
        for (const [domain, queue] of queuesByDomain(source.queuedMessages(), clock())) {
          this.set({ next_hop_domain: domain }, queue.oldestAgeSeconds);
        }
      },
    });
    new Gauge({
      name: 'domsec_queue_suspended',
      help: '1 when an operator suspended the queue of this next-hop domain, 0 for a queue delivering.',
      labelNames: ['next_hop_domain'],
      registers,
      collect() {
        this.reset();
        for (const message of source.queuedMessages())
          this.set({ next_hop_domain: message.nextHopDomain }, 0);
        for (const domain of source.suspendedQueues?.() ?? [])
          this.set({ next_hop_domain: domain }, 1);
      },
    });
    new Gauge({
      name: 'domsec_receive_sessions',
      help: 'SMTP sessions open now, by receive connector.',
      labelNames: ['connector'],
      registers,
      collect() {
        this.reset();
        for (const { connector, sessions } of source.receiveSessions())
          this.set({ connector }, sessions);
      },
    });
    new Gauge({
      name: 'domsec_send_sessions',
      help: 'SMTP sessions open now to next hops (in use or kept for reuse), by send connector.',
      labelNames: ['connector'],
      registers,
      collect() {
        this.reset();
        for (const { connector, sessions } of source.sendSessions?.() ?? [])
          this.set({ connector }, sessions);
      },
    });
    new Gauge({
      name: 'domsec_certificate_expiry_days',
      help: 'Days until our organization certificate expires (negative once expired).',
      labelNames: ['certificate'],
      registers,
      collect() {
        this.reset();
        const certificate = source.generation()?.certificate;
        if (certificate === undefined) return;
        this.set(
          { certificate: certificate.name },
          daysUntil(Date.parse(certificate.leaf.validTo), clock()),
        );
      },
    });
    new Gauge({
      name: 'domsec_partner_certificate_expiry_days',
      help: 'Days until the last verified certificate of each partner expires, by direction.',
      labelNames: ['partner', 'direction'],
      registers,
      collect() {
        this.reset();
        for (const { partner, direction, health } of source.partners.entries()) {
          const notAfter = health.lastVerified?.notAfter;
          if (notAfter === null || notAfter === undefined) continue;
          this.set({ partner, direction }, daysUntil(Date.parse(notAfter), clock()));
        }
      },
    });
    new Gauge({
      name: 'domsec_partner_domain_secured',
      help: "1 when the partner's last session was domain-secured, 0 when it was refused; by direction.",
      labelNames: ['partner', 'direction'],
      registers,
      collect() {
        this.reset();
        for (const { partner, direction, health } of source.partners.entries())
          this.set({ partner, direction }, health.result === 'secured' ? 1 : 0);
      },
    });
  }
}

/** A refusal's reason text as a label with few values (the text names hosts, dates, domains). */
export function refusalReason(reason: string): string {
  const rules: [RegExp, string][] = [
    [/not under TLS|requires TLS|STARTTLS/i, 'no-tls'],
    [/^no (client|server) certificate/, 'no-certificate'],
    [/not issued by a trust anchor/, 'untrusted-issuer'],
    [/revoked|CRL/i, 'revoked'],
    [/expired|not valid before|validity period/, 'validity'],
    [/Extended Key Usage|clientAuth|serverAuth|purpose/i, 'purpose'],
    [/^certificate names /, 'name-mismatch'],
    [/remoteIPRanges/, 'remote-address'],
    [/^TLS verification failed/, 'tls-verification'],
  ];
  return rules.find(([pattern]) => pattern.test(reason))?.[1] ?? 'other';
}

function queuesByDomain(
  messages: QueuedMessageSummary[],
  now: number,
): Map<string, { count: number; oldestAgeSeconds: number }> {
  const queues = new Map<string, { count: number; oldestAgeSeconds: number }>();
  for (const message of messages) {
    const age = Math.max(0, (now - Date.parse(message.receivedAt)) / 1000);
    const queue = queues.get(message.nextHopDomain);
    if (queue === undefined) queues.set(message.nextHopDomain, { count: 1, oldestAgeSeconds: age });
    else {
      queue.count += 1;
      queue.oldestAgeSeconds = Math.max(queue.oldestAgeSeconds, age);
    }
  }
  return queues;
}

function daysUntil(time: number, now: number): number {
  return Math.round(((time - now) / DAY_MS) * 100) / 100;
}
