// Remote delivery of one next-hop domain's batch: pick the send connector, find the
// hops, send every message over one session per hop (failing over to the next hop with what is
// left; a session kept from an earlier round is reused), and when every hop failed give the queue
// Exchange's last error.
import { NextHopError, type ResolveOptions } from '../dns.js';
import type { Generation } from '../generation.js';
import type { EngineLog } from '../log.js';
import type { EngineEvents } from '../events.js';
import type { ProtocolLog } from '../protocol-log.js';
import type { DeliverRemote } from '../queue/dispatcher.js';
import {
  failAll,
  failAllWith,
  type DeliveryOutcome,
  type OutboundMessage,
} from '../queue/outcome.js';
import { messageContent, type MessageContent } from '../queue/message-body.js';
import { REPLIES } from '../replies.js';
import { smtpReplyText, withDetail, type SmtpReply } from '../../smtp-reply.js';
import { formatEndpoint } from '../../units.js';
import { chooseSendConnector, nextHopsFor, sendSecurePartner, tlsPolicyFor } from './route.js';
import { HopFailure } from './remote-replies.js';
import { ConnectionCache } from './connection-cache.js';
import {
  chooseTlsPolicy,
  destinationTls,
  type OutboundPolicyServices,
} from '../policy/outbound.js';
import {
  hopSessionPolicy,
  publishedPoliciesApply,
  unmetRequirement,
} from '../policy/session-policy.js';
import { refusedHopResult, stsFetchResult } from '../tlsrpt/session-result.js';
import {
  DEFAULT_SEND_TIMEOUTS,
  type OpenSessions,
  type SendTimeouts,
  type SessionSettings,
  type SmtpClientSession,
} from './session.js';
import type { DomainName } from '../../domain-name.js';

export interface RemoteDeliveryOptions {
  log: EngineLog;
  protocolLog?: ProtocolLog;
  /** Where partner verifications and refusals are told; the log only when not given. */
  events?: EngineEvents;
  timeouts?: Partial<SendTimeouts>;
  dns?: ResolveOptions;
  /**
   * How long a session stays open after its batch for the next round to the same hop (ms; the
   * engine uses DEFAULT_CONNECTION_CACHE_MS). 0, the default, closes each session after its batch.
   */
  connectionCacheMs?: number;
  /** Counts the sessions open now per send connector, kept idle ones included. */
  openSessions?: OpenSessions;
  /**
   * DANE and MTA-STS for non-partner domains (the engine always gives it); without it such
   * domains get the connector's TLS only.
   */
  tlsPolicy?: OutboundPolicyServices;
}

/** Exchange's form for a batch no hop took (the demo and admins look for these words). */
export function allHopsFailed(firstHopReply: SmtpReply): SmtpReply {
  const first = smtpReplyText(firstHopReply);
  const quoted = /[.!?]$/.test(first) ? first : `${first}.`;
  return withDetail(
    REPLIES.unreachable,
    `"${quoted}" Attempted failover to alternate host, but that did not succeed.`,
  );
}

/**
 * The delivery function the dispatcher calls; close() ends the sessions kept for reuse, and
 * generationChanged() those kept under an older generation.
 */
export function createRemoteDelivery(options: RemoteDeliveryOptions): DeliverRemote {
  const timeouts = { ...DEFAULT_SEND_TIMEOUTS, ...options.timeouts };
  const cache = new ConnectionCache(options.connectionCacheMs ?? 0);
  const deliver: DeliverRemote = (domain, messages, generation, signal) =>
    deliverRemote(domain, messages, generation, signal, { ...options, timeouts, cache });
  deliver.close = () => cache.close();
  deliver.generationChanged = (generation) => cache.dropOtherGenerations(generation);
  return deliver;
}

async function deliverRemote(
  domain: DomainName,
  messages: OutboundMessage[],
  generation: Generation,
  signal: AbortSignal,
  options: RemoteDeliveryOptions & { timeouts: SendTimeouts; cache: ConnectionCache },
): Promise<DeliveryOutcome[]> {
  const { log } = options;
  const results = new Map<OutboundMessage, DeliveryOutcome>();
  const finish = () => messages.map((m) => results.get(m) ?? failAllWith(m, REPLIES.localError));

  const connector = chooseSendConnector(generation.sendConnectors, domain);
  if (connector === undefined) {
    log.log('warn', 'send.no-connector', { domain });
    for (const m of messages) results.set(m, failAllWith(m, REPLIES.noRoute, domain));
    return finish();
  }
  let pending = messages.filter((m) => {
    if (m.size <= connector.maxMessageSize) return true;
    results.set(m, failAllWith(m, REPLIES.messageTooBig, `send connector ${connector.name}`));
    return false;
  });
  if (pending.length === 0) return finish();

  const partner = sendSecurePartner(generation, domain);
  const policy = tlsPolicyFor(connector, partner, domain);
  if (policy.kind === 'refused') {
    log.log('warn', 'send.no-partner', {
      domain,
      connector: connector.name,
      reason: policy.reason,
    });
    for (const m of pending) results.set(m, failAllWith(m, REPLIES.noSecurePartner, policy.reason));
    return finish();
  }
  if (partner !== undefined && !connector.spec.domainSecure) {
    // validate (DS003) refuses this connector; the partner is still sent only over verified MTLS.
    log.log('warn', 'send.partner-on-connector-without-domain-security', {
      domain,
      connector: connector.name,
    });
  }

  let hops;
  try {
    hops = await nextHopsFor(connector, domain, generation, options.dns);
  } catch (error) {
    if (!(error instanceof NextHopError)) throw error;
    log.log('warn', 'send.no-hops', {
      domain,
      reply: smtpReplyText(error.reply),
      permanent: error.permanent,
    });
    for (const m of pending) results.set(m, failAll(m, error.reply, error.permanent));
    return finish();
  }

  // What a non-partner publishes (DANE, MTA-STS), looked up once for the batch.
  const services = options.tlsPolicy;
  const connectorTls =
    policy.kind === 'required' || policy.kind === 'opportunistic' ? policy : undefined;
  const destination =
    services !== undefined &&
    connectorTls !== undefined &&
    publishedPoliciesApply(generation.config, connector.spec.routing, domain)
      ? await destinationTls(domain, generation.config, connector.spec.port, services)
      : undefined;
  if (destination !== undefined)
    log.log('debug', 'send.tls-policy', { domain, steps: destination.steps });
  // dane: require or mtaSts: require where neither is looked up (a smart host, a static route):
  // the mail waits, as for an MX host without the required policy; it never leaves under less.
  const unmet =
    connectorTls !== undefined && destination === undefined
      ? unmetRequirement(generation.config, connector.spec.routing, domain)
      : undefined;
  if (unmet !== undefined) {
    log.log('warn', 'send.tls-policy-unmet', {
      domain,
      connector: connector.name,
      reason: unmet.detail,
    });
    for (const m of pending) results.set(m, failAllWith(m, unmet.reply, unmet.detail));
    return finish();
  }

  // Where published policies are not looked up (a smart host, a static route), a TlsPolicy's
  // requireTls still holds: STARTTLS mandatory for its domains, whatever the connector says.
  const unpublished =
    connectorTls?.kind === 'opportunistic' &&
    destination === undefined &&
    chooseTlsPolicy(generation.config.tlsPolicies ?? [], domain).requireTls
      ? ({ kind: 'required' } as const)
      : policy;

  const hopReplies: SmtpReply[] = [];
  for (const hop of hops) {
    if (pending.length === 0 || signal.aborted) break;
    let session: SmtpClientSession | undefined;
    const hopPolicy =
      destination === undefined || connectorTls === undefined
        ? unpublished
        : hopSessionPolicy(connectorTls, destination, hop.host, services?.extraCas);
    if (hopPolicy.kind === 'refused') {
      // The hop is not tried at all: nothing is sent where the published policy forbids it.
      const reply = withDetail(hopPolicy.reply, hopPolicy.detail);
      hopReplies.push(reply);
      options.events?.emit(
        refusedHopResult(domain, hopPolicy, hop.host, hop.address, destination?.sts?.policy),
      );
      log.log('warn', 'send.hop-refused-by-policy', {
        domain,
        connector: connector.name,
        host: hop.host,
        address: formatEndpoint(hop.address, hop.port),
        reply: smtpReplyText(reply),
      });
      continue;
    }
    const stsFailure =
      destination?.sts?.policy === undefined ? destination?.sts?.failure : undefined;
    if (stsFailure !== undefined && destination !== undefined)
      // The domain publishes a policy we could not fetch or read: sent as without one, and reported.
      options.events?.emit(stsFetchResult(destination.domain, stsFailure, hop.host, hop.address));
    const settings: SessionSettings = {
      hop,
      hostname: generation.hostname,
      policy: hopPolicy,
      connector: connector.name,
      log,
      events: options.events,
      protocolLog: options.protocolLog,
      protocolLogging: connector.spec.protocolLogging === 'verbose',
      timeouts: options.timeouts,
      signal,
      openSessions: options.openSessions,
      // Looked up and found no policy for this hop (and none that failed to fetch, counted above).
      noPolicyDomain:
        destination !== undefined &&
        stsFailure === undefined &&
        (hopPolicy.kind === 'opportunistic' || hopPolicy.kind === 'required')
          ? destination.domain
          : undefined,
    };
    const key = ConnectionCache.key(settings);
    let keep = false;
    try {
      // A session kept by an earlier round for this hop (verified under this generation), or a new one.
      ({ session } = await options.cache.open(key, generation, settings));
      for (const [index, message] of [...pending].entries()) {
        if (index > 0) await session.reset();
        let body: MessageContent;
        try {
          body = await messageContent(message);
        } catch (error) {
          results.set(
            message,
            failAllWith(message, REPLIES.localError, `body: ${(error as Error).message}`),
          );
          pending = pending.filter((m) => m !== message);
          continue;
        }
        results.set(message, await session.send(message, body));
        pending = pending.filter((m) => m !== message);
      }
      keep = !signal.aborted;
    } catch (error) {
      if (!(error instanceof HopFailure)) throw error;
      hopReplies.push(error.reply);
      log.log('warn', 'send.hop-failed', {
        domain,
        connector: connector.name,
        host: hop.host,
        address: formatEndpoint(hop.address, hop.port),
        reply: smtpReplyText(error.reply),
      });
    } finally {
      if (session !== undefined) {
        if (!keep || !options.cache.keep(key, generation, session)) await session.close();
      }
    }
  }

  const first = hopReplies[0];
  const lastError =
    first === undefined
      ? withDetail(REPLIES.localError, 'delivery interrupted by shutdown')
      : allHopsFailed(first);
  for (const m of pending) results.set(m, failAll(m, lastError, false));
  return finish();
}
