// Receive policy: on which connector a connection is placed, and whether a sender and a
// recipient are accepted. Decisions over one Generation; the listener turns them into replies.
import type { SmtpReply } from '../../model.js';
import { matchRange, type Binding } from '../addresses.js';
import type { Generation, LoadedPartner, LoadedReceiveConnector } from '../generation.js';
import type { DomainSecuredBy } from '../message-sink.js';
import { REPLIES } from '../replies.js';
import { addressDomain, type DomainName } from '../../domain-name.js';
import type { PeerVerdict } from '../tls/verify.js';
import type { TlsFacts } from './server-tls.js';

export function connectorsOnBinding(
  generation: Generation,
  binding: Binding,
): LoadedReceiveConnector[] {
  // Binding hosts are IP addresses (IPv6 hex digits in any case), never names.
  /* eslint-disable no-restricted-syntax */
  const host = binding.host.toLowerCase();
  return generation.receiveConnectors.filter((connector) =>
    connector.bindings.some((b) => b.port === binding.port && b.host.toLowerCase() === host),
  );
  /* eslint-enable no-restricted-syntax */
}

/** The connector on this binding whose remote ranges contain the client most specifically. */
export function placeConnection(
  generation: Generation,
  binding: Binding,
  remoteAddress: string,
): LoadedReceiveConnector | undefined {
  let best: { connector: LoadedReceiveConnector; prefix: number } | undefined;
  for (const connector of connectorsOnBinding(generation, binding)) {
    const range = matchRange(connector.remoteRanges, remoteAddress);
    if (range !== undefined && (best === undefined || range.prefix > best.prefix)) {
      best = { connector, prefix: range.prefix };
    }
  }
  return best?.connector;
}

/** What SIZE announces on a binding: the largest limit of its connectors (0: none announced). */
export function largestMessageSize(generation: Generation, binding: Binding): number {
  return Math.max(0, ...connectorsOnBinding(generation, binding).map((c) => c.maxMessageSize));
}

/** A receive-secure partner for a canonical sender domain; undefined for none (or no domain). */
export function receiveSecurePartner(
  generation: Generation,
  domain: DomainName | undefined,
): LoadedPartner | undefined {
  if (domain === undefined) return undefined;
  const partner = generation.partnersByDomain.get(domain);
  return partner?.spec.domainSecure.receive === true ? partner : undefined;
}

/** A refusal names the partner only when the partner's trust was the problem. */
export type SenderDecision =
  | { accepted: true; partner?: LoadedPartner; domainSecured?: DomainSecuredBy }
  | { accepted: false; reply: SmtpReply; reason: string; partner?: LoadedPartner };

export interface SenderCheck {
  generation: Generation;
  connector: LoadedReceiveConnector;
  /** The MAIL FROM address, "" for the null sender. */
  sender: string;
  /** The SIZE parameter, when the client declared one. */
  declaredSize?: number;
  remoteAddress: string;
  tls: TlsFacts | null;
  /** The partner verdict for this session's certificate (the session caches it). */
  verdict: (partner: LoadedPartner, tls: TlsFacts) => PeerVerdict;
}

/** MAIL FROM: partners must be verified; others follow the connector's rules. */
export function decideSender(check: SenderCheck): SenderDecision {
  const { connector, tls } = check;
  const domain = addressDomain(check.sender);
  const partner = receiveSecurePartner(check.generation, domain);
  let domainSecured: DomainSecuredBy | undefined;
  if (partner === undefined && claimsOurDomain(check.generation, connector, domain)) {
    // Exchange's default: only sessions that may relay (internal ones) send as our own domains.
    const reason = `sender domain ${domain ?? ''} is one of our accepted domains and the client may not relay`;
    return { accepted: false, reply: REPLIES.cannotSendAsSender, reason };
  }
  if (partner !== undefined) {
    if (tls === null) {
      return { accepted: false, reply: REPLIES.starttlsFirst, reason: 'not under TLS', partner };
    }
    const verdict = check.verdict(partner, tls);
    if (!verdict.ok) {
      return {
        accepted: false,
        reply: REPLIES.certificateValidation,
        reason: verdict.reason,
        partner,
      };
    }
    if (
      partner.remoteRanges.length > 0 &&
      matchRange(partner.remoteRanges, check.remoteAddress) === undefined
    ) {
      const ranges = partner.remoteRanges.map((r) => r.text).join(', ');
      const reason = `client ${check.remoteAddress} is outside the partner's remoteIPRanges (${ranges})`;
      return { accepted: false, reply: REPLIES.certificateValidation, reason, partner };
    }
    domainSecured = {
      partner: partner.domain,
      certificateSubject: verdict.subject,
      certificateFingerprint: verdict.fingerprint,
      certificateNotAfter: tls.chain[0]?.validTo,
      ...(partner.spec.requireHeaderFromDomain ? { requireHeaderFromDomain: true } : {}),
    };
  } else if (connector.spec.requireTls && tls === null) {
    return { accepted: false, reply: REPLIES.starttlsFirst, reason: 'the connector requires TLS' };
  }
  if (check.declaredSize !== undefined && check.declaredSize > connector.maxMessageSize) {
    const reason = `declared size ${check.declaredSize} exceeds ${connector.maxMessageSize}`;
    return { accepted: false, reply: REPLIES.messageTooBig, reason };
  }
  return partner === undefined ? { accepted: true } : { accepted: true, partner, domainSecured };
}

/**
 * Whether MAIL FROM claims one of our accepted domains on a session that may not: a connector
 * is internal when it permits relay (its remote ranges are the organization's own servers), or
 * allows it explicitly with acceptAuthoritativeDomainSenders.
 */
function claimsOurDomain(
  generation: Generation,
  connector: LoadedReceiveConnector,
  domain: DomainName | undefined,
): boolean {
  if (domain === undefined || !generation.acceptedDomains.has(domain)) return false;
  return !connector.spec.permitRelay && !connector.spec.acceptAuthoritativeDomainSenders;
}

/** RCPT TO: accepted domains only, unless the connector permits relay. */
export function decideRecipient(
  generation: Generation,
  connector: LoadedReceiveConnector,
  recipient: string,
): SmtpReply | undefined {
  const domain = addressDomain(recipient);
  if (domain !== undefined && generation.acceptedDomains.has(domain)) return undefined;
  return connector.spec.permitRelay ? undefined : REPLIES.unableToRelay;
}
