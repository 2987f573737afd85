// Delivery of accepted-domain mail to an internal mailbox server over SMTP or LMTP (RFC 2033), on
// the send side's SmtpClientSession and ConnectionCache: the body as queued (marking included), each
// recipient's result kept (LMTP answers each one after the data): 4xx and lost sessions stay queued,
// 5xx are bounced by the queue. A session is kept open a moment after each message for the next one.
import type { RelayDelivery } from '../../model.js';
import { parseHostPort } from '../../units.js';
import type { NextHop } from '../dns.js';
import type { Generation } from '../generation.js';
import type { EngineLog } from '../log.js';
import type { DeliverLocal } from '../queue/dispatcher.js';
import { messageContent, type MessageContent } from '../queue/message-body.js';
import { failAll, type DeliveryOutcome, type OutboundMessage } from '../queue/outcome.js';
import { REPLIES } from '../replies.js';
import { smtpReplyText, withDetail, type SmtpReply } from '../../smtp-reply.js';
import { ConnectionCache, DEFAULT_CONNECTION_CACHE_MS } from '../send/connection-cache.js';
import { HopFailure } from '../send/remote-replies.js';
import {
  DEFAULT_SEND_TIMEOUTS,
  SmtpClientSession,
  type SendTimeouts,
  type SessionSettings,
  type SessionTlsPolicy,
} from '../send/session.js';

/** The ports RFC 5321 and RFC 2033 name; LMTP must not use 25. */
const DEFAULT_PORTS = { smtp: 25, lmtp: 24 } as const;

/** Idle sessions kept at most: the dispatcher delivers several accepted domains at once. */
const MAX_IDLE_SESSIONS = 4;

export interface RelayDeliveryOptions {
  log: EngineLog;
  timeouts?: Partial<SendTimeouts>;
  /** Aborting closes the sessions in flight (their messages stay queued) and the idle ones. */
  signal?: AbortSignal;
}

/** Relay delivery; close() ends the sessions kept open and resolves once they are gone. */
export type RelayDeliverLocal = DeliverLocal & { close: () => Promise<void> };

/** The relay's host and port: "host", "host:port" or "[v6]:port", the protocol's port by default. */
export function relayTarget(relay: RelayDelivery): { host: string; port: number } {
  const parsed = parseHostPort(relay.host);
  if (parsed !== undefined) return parsed;
  return { host: relay.host.replace(/^\[(.*)\]$/, '$1'), port: DEFAULT_PORTS[relay.protocol] };
}

/**
 * The relay's tls setting as a session policy. An internal hop, encrypted but not authenticated
 * (the schema says so): never a partner's verified policy, and `required` never falls back to
 * plaintext (451 4.7.3). A value this version does not know (a configuration from a newer one, a
 * hand-edited state) is `required`: it may loosen nothing. Absent is the schema's default.
 */
export function relayPolicy(relay: RelayDelivery): SessionTlsPolicy {
  switch (relay.tls as string | undefined) {
    case 'none':
      return { kind: 'none' };
    case 'opportunistic':
    case undefined:
      return { kind: 'opportunistic' };
    default:
      return { kind: 'required' };
  }
}

/** Delivery as the dispatcher calls it for accepted domains when the Organization relays them. */
export function createRelayDelivery(options: RelayDeliveryOptions): RelayDeliverLocal {
  const timeouts = { ...DEFAULT_SEND_TIMEOUTS, ...options.timeouts };
  const cache = new ConnectionCache(DEFAULT_CONNECTION_CACHE_MS, {
    perKey: MAX_IDLE_SESSIONS,
    total: MAX_IDLE_SESSIONS,
  });
  // Sessions close when this aborts (SmtpClientSession listens to it); without one, only close().
  const signal = options.signal ?? new AbortController().signal;
  signal.addEventListener('abort', () => void cache.close(), { once: true });
  const deliver = async (
    message: OutboundMessage,
    generation: Generation,
  ): Promise<DeliveryOutcome> => {
    const relay = generation.config.organization.spec.delivery.relay;
    if (relay === undefined) {
      return failAll(message, withDetail(REPLIES.localError, 'no relay configured'), false);
    }
    const { host, port } = relayTarget(relay);
    // The name is connected to as it is (nodemailer resolves it); it is also the TLS server name.
    const hop: NextHop = { host, address: host, port, preference: 0 };
    const settings: SessionSettings = {
      hop,
      hostname: generation.hostname,
      policy: relayPolicy(relay),
      lmtp: relay.protocol === 'lmtp',
      connector: `relay ${relay.host}`,
      log: options.log,
      protocolLogging: false,
      timeouts,
      signal,
    };
    const outcome = await relayMessage(message, settings, generation, cache);
    const deferred = outcome.failures.find((f) => !f.permanent);
    if (deferred !== undefined) {
      options.log.log('warn', 'delivery.relay-deferred', {
        id: message.id,
        relay: relay.host,
        reply: smtpReplyText(deferred.reply),
      });
    }
    return outcome;
  };
  return Object.assign(deliver, { close: () => cache.close() });
}

async function relayMessage(
  message: OutboundMessage,
  settings: SessionSettings,
  generation: Generation,
  cache: ConnectionCache,
): Promise<DeliveryOutcome> {
  let body: MessageContent;
  try {
    body = await messageContent(message);
  } catch (error) {
    const reply = withDetail(REPLIES.localError, `body: ${(error as Error).message}`);
    return failAll(message, reply, false);
  }
  const key = ConnectionCache.key(settings);
  let opened: { session: SmtpClientSession; reused: boolean };
  try {
    opened = await cache.open(key, generation, settings);
  } catch (error) {
    return failAll(message, failureReply(error), false);
  }
  let attempt = await sendOver(opened.session, message, body, cache, key, generation);
  if ('failure' in attempt && opened.reused) {
    // The server may have ended the kept session as we spoke: once more on a new one.
    let session: SmtpClientSession;
    try {
      session = await SmtpClientSession.open(settings);
    } catch (error) {
      return failAll(message, failureReply(error), false);
    }
    attempt = await sendOver(session, message, body, cache, key, generation);
  }
  return 'failure' in attempt ? failAll(message, attempt.failure, false) : attempt.outcome;
}

/** The message's outcome (the session kept for the next one), or why the session failed. */
async function sendOver(
  session: SmtpClientSession,
  message: OutboundMessage,
  body: MessageContent,
  cache: ConnectionCache,
  key: string,
  generation: Generation,
): Promise<{ outcome: DeliveryOutcome } | { failure: SmtpReply }> {
  try {
    const outcome = await session.send(message, body);
    if (!cache.keep(key, generation, session)) await session.close();
    return { outcome };
  } catch (error) {
    await session.close();
    return { failure: failureReply(error) };
  }
}

function failureReply(error: unknown): SmtpReply {
  return error instanceof HopFailure
    ? error.reply
    : withDetail(REPLIES.localError, (error as Error).message);
}
