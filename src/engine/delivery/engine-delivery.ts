// The engine's delivery side in one object: the queue (<state>/queue, opened once and never
// touched by a reload), the dispatcher, Maildir or relay delivery and remote sending, wired together.
// An apply that changes what a queue depends on retries that queue at once.
import { join } from 'node:path';
import type { ResolveOptions } from '../dns.js';
import type { Generation } from '../generation.js';
import type { EngineLog } from '../log.js';
import type { EngineEvents } from '../events.js';
import type { ProtocolLog } from '../protocol-log.js';
import { Dispatcher } from '../queue/dispatcher.js';
import { MessageQueue } from '../queue/queue.js';
import { DEFAULT_CONNECTION_CACHE_MS } from '../send/connection-cache.js';
import { createRemoteDelivery } from '../send/deliver.js';
import { chooseSendConnector } from '../send/route.js';
import { OpenSessions, type SendTimeouts } from '../send/session.js';
import type { DeliverLocal } from '../queue/dispatcher.js';
import { createLocalDelivery, maildirRoot, sweepTemporaryFiles } from './maildir.js';
import { createRelayDelivery, type RelayDeliverLocal } from './relay.js';
import { StsPolicyCache } from '../policy/mta-sts-cache.js';
import { chooseTlsPolicy } from '../policy/outbound.js';
import type { DomainName } from '../../domain-name.js';

export interface EngineDeliveryOptions {
  /** The queue lives in <stateDir>/queue; a relative Maildir root is taken from here. */
  stateDir: string;
  log: EngineLog;
  /** Where the queue and the send path tell what happened (metrics, partner health, the log). */
  events?: EngineEvents;
  protocolLog?: ProtocolLog;
  /** The generation the engine runs; undefined before the first apply (nothing is sent). */
  generation: () => Generation | undefined;
  clock?: () => number;
  timeouts?: Partial<SendTimeouts>;
  dns?: ResolveOptions;
  /** Labs and tests only: CAs trusted for MTA-STS besides the platform's, the policy host's port. */
  tlsPolicyLab?: TlsPolicyLab;
}

export interface TlsPolicyLab {
  extraCas?: string[];
  mtaStsPort?: number;
}

/**
 * Maildir copies of one batch written at once: they share the fsyncs of new/ and of the file
 * system's journal. One at a time, a copy took about 1.4 ms; a kill can repeat those in flight.
 */
export const MAILDIR_CONCURRENCY = 16;

export class EngineDelivery {
  private constructor(
    readonly queue: MessageQueue,
    private readonly dispatcher: Dispatcher,
    private readonly relaying: AbortController,
    private readonly relay: RelayDeliverLocal,
    /** Sessions open to next hops now, per send connector (status page, metrics). */
    readonly sendSessions: OpenSessions,
    private readonly stateDir: string,
    private readonly log: EngineLog,
    private readonly inFlight: InFlightCount,
  ) {}

  static async open(options: EngineDeliveryOptions): Promise<EngineDelivery> {
    const queue = await MessageQueue.open(
      join(options.stateDir, 'queue'),
      options.log,
      options.clock,
      options.events === undefined ? {} : { events: options.events },
    );
    const relaying = new AbortController();
    const relay = createRelayDelivery({
      log: options.log,
      signal: relaying.signal,
      ...(options.timeouts === undefined ? {} : { timeouts: options.timeouts }),
    });
    const sendSessions = new OpenSessions();
    const counting = new InFlightCount();
    const local = mailboxDelivery(createLocalDelivery({ stateDir: options.stateDir }), relay);
    const remote = createRemoteDelivery({
      log: options.log,
      ...(options.events === undefined ? {} : { events: options.events }),
      connectionCacheMs: DEFAULT_CONNECTION_CACHE_MS,
      openSessions: sendSessions,
      ...(options.protocolLog === undefined ? {} : { protocolLog: options.protocolLog }),
      ...(options.timeouts === undefined ? {} : { timeouts: options.timeouts }),
      ...(options.dns === undefined ? {} : { dns: options.dns }),
      // MTA-STS policies are kept in <state>/mta-sts until their max_age.
      tlsPolicy: {
        cache: new StsPolicyCache(join(options.stateDir, 'mta-sts')),
        ...options.tlsPolicyLab,
      },
    });
    const dispatcher = new Dispatcher({
      queue,
      generation: options.generation,
      deliverLocal: (message, generation) => counting.during(1, () => local(message, generation)),
      // Maildir copies go several at once; relayed ones one after another over one kept session.
      localConcurrency: (generation) => (relays(generation) ? 1 : MAILDIR_CONCURRENCY),
      deliverRemote: Object.assign(
        (...args: Parameters<typeof remote>) =>
          counting.during(args[1].length, () => remote(...args)),
        { close: remote.close, generationChanged: remote.generationChanged },
      ),
      log: options.log,
    });
    dispatcher.start();
    return new EngineDelivery(
      queue,
      dispatcher,
      relaying,
      relay,
      sendSessions,
      options.stateDir,
      options.log,
      counting,
    );
  }

  /** Messages being delivered now (locally or to a next hop). */
  get deliveriesInFlight(): number {
    return this.inFlight.messages;
  }

  /** Retries now every queued entry, or those of one next-hop domain; returns how many. */
  retry(domain?: DomainName): number {
    return this.dispatcher.retry(domain);
  }

  /** Call after a generation is committed: the first one starts delivery, later ones retry what they affect. */
  afterApply(previous: Generation | undefined, next: Generation): void {
    this.sweepOnce(next);
    if (previous === undefined) {
      this.dispatcher.kick();
      return;
    }
    for (const { nextHopDomain } of this.queue.summaries()) {
      if (dependencies(previous, nextHopDomain) !== dependencies(next, nextHopDomain)) {
        this.dispatcher.retry(nextHopDomain);
      }
    }
  }

  /** Maildir roots whose leftovers from earlier processes were swept (once per root). */
  private readonly swept = new Set<string>();

  private sweepOnce(generation: Generation): void {
    const configured = generation.config.organization.spec.delivery.maildir;
    if (configured === undefined) return;
    const root = maildirRoot(configured, this.stateDir);
    if (this.swept.has(root)) return;
    this.swept.add(root);
    void sweepTemporaryFiles(root).then(
      (removed) => {
        if (removed > 0) this.log.log('info', 'delivery.maildir-swept', { root, removed });
      },
      (error: Error) =>
        this.log.log('warn', 'delivery.maildir-sweep-failed', { root, error: error.message }),
    );
  }

  /** Stops dispatching (connections in flight are closed, their outcomes recorded), then the queue. */
  async close(): Promise<void> {
    this.relaying.abort();
    await this.dispatcher.close();
    await this.relay.close();
    await this.queue.close();
  }
}

/** Messages inside a delivery call now (the shutdown line reports what it waited for). */
class InFlightCount {
  messages = 0;

  async during<T>(count: number, delivery: () => Promise<T>): Promise<T> {
    this.messages += count;
    try {
      return await delivery();
    } finally {
      this.messages -= count;
    }
  }
}

/** Maildir or relay, as the generation of each attempt says (an apply redirects queued mail). */
function mailboxDelivery(maildir: DeliverLocal, relay: DeliverLocal): DeliverLocal {
  return (message, generation) =>
    relays(generation) ? relay(message, generation) : maildir(message, generation);
}

/** Whether local mail goes to an internal mailbox server (delivery.relay) rather than Maildirs. */
function relays(generation: Generation): boolean {
  return generation.config.organization.spec.delivery.relay !== undefined;
}

/** What delivery to a domain depends on in a generation, as one comparable string. */
function dependencies(generation: Generation, domain: DomainName): string {
  const connector = chooseSendConnector(generation.sendConnectors, domain);
  const partner = generation.partnersByDomain.get(domain);
  const org = generation.config.organization.spec;
  return JSON.stringify({
    local: generation.acceptedDomains.has(domain),
    delivery: org.delivery,
    connector: connector === undefined ? null : { name: connector.name, spec: connector.spec },
    partner:
      partner === undefined
        ? null
        : { spec: partner.spec, anchors: partner.anchors.map((anchor) => anchor.fingerprint256) },
    certificate: generation.certificate.fingerprint,
    hostname: generation.hostname,
    resolver: org.resolver,
    // Which TlsPolicy covers the domain, and what it says: a looser one may let waiting mail go.
    tlsPolicy: chooseTlsPolicy(generation.config.tlsPolicies ?? [], domain),
  });
}
