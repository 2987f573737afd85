// What one SMTP session tells TLS reporting: its policy domain, the policy type (tlsa for DANE,
// sts for MTA-STS, no-policy-found for a domain-secure partner or no policy), and its outcome as an RFC 8460
// result type (§4.3.2); no-policy-found also for a domain that publishes neither DANE nor MTA-STS.
// The send session emits it as the event `send.tls-result`; TlsResults counts it.
import type { DomainName } from '../../domain-name.js';
import type { EventOf } from '../events.js';
import type { StsFetchFailure } from '../policy/mta-sts-fetch.js';
import type { StsPolicy } from '../policy/mta-sts-policy.js';
import type { PolicyRefusal, PublishedPolicy } from '../policy/session-policy.js';
import type { ResultType, SessionResult } from './results.js';

export type TlsResultEvent = EventOf<'send.tls-result'>;

interface Hop {
  host: string;
  address: string;
  localAddress: string | undefined;
}

/** The chain did not verify under the policy: which result type OpenSSL's code and the check name. */
function chainResultType(
  authorized: boolean,
  opensslError: string | null,
  nameMatches: boolean,
): ResultType {
  if (opensslError === 'CERT_HAS_EXPIRED') return 'certificate-expired';
  if (!authorized) return 'certificate-not-trusted';
  if (!nameMatches) return 'certificate-host-mismatch';
  return 'validation-failure';
}

/** A DANE or MTA-STS session: `outcome` null when it succeeded. */
export function publishedPolicyResult(
  policy: PublishedPolicy,
  hop: Hop,
  outcome:
    | null
    | { kind: 'no-tls' }
    | {
        kind: 'chain';
        authorized: boolean;
        opensslError: string | null;
        nameMatches: boolean;
        reason: string;
      },
): TlsResultEvent {
  const base = {
    type: 'send.tls-result' as const,
    domain: policy.domain,
    host: hop.host,
    address: hop.address,
    localAddress: hop.localAddress ?? null,
  };
  const policyFields =
    policy.kind === 'dane'
      ? {
          policyType: 'tlsa' as const,
          policyStrings: policy.records.map(
            (r) => `${r.usage} ${r.selector} ${r.matchingType} ${r.data.toString('hex')}`,
          ),
          mxHost: [],
        }
      : { policyType: 'sts' as const, ...stsStrings(policy.published) };
  if (outcome === null) return { ...base, ...policyFields, result: 'success' };
  if (outcome.kind === 'no-tls')
    return { ...base, ...policyFields, result: 'starttls-not-supported' };
  const result: ResultType =
    policy.kind === 'dane'
      ? 'tlsa-invalid'
      : chainResultType(outcome.authorized, outcome.opensslError, outcome.nameMatches);
  return { ...base, ...policyFields, result, reason: outcome.reason };
}

/** A hop not tried at all because the domain's published policy forbids it (no connection). */
export function refusedHopResult(
  domain: DomainName,
  refusal: PolicyRefusal,
  host: string,
  address: string,
  published: StsPolicy | undefined,
): TlsResultEvent {
  return {
    type: 'send.tls-result',
    domain,
    host,
    address,
    localAddress: null,
    ...(refusal.by === 'dane'
      ? { policyType: 'tlsa' as const, policyStrings: [], mxHost: [] }
      : { policyType: 'sts' as const, ...stsStrings(published) }),
    result: refusal.result,
    reason: refusal.detail,
  };
}

/** A session to a domain whose MTA-STS policy could not be fetched or read (none cached). */
export function stsFetchResult(
  domain: DomainName,
  failure: StsFetchFailure,
  host: string,
  address: string,
): TlsResultEvent {
  return {
    type: 'send.tls-result',
    domain,
    host,
    address,
    localAddress: null,
    policyType: 'sts',
    policyStrings: [],
    mxHost: [],
    result: failure,
  };
}

function stsStrings(published: StsPolicy | undefined): {
  policyStrings: string[];
  mxHost: string[];
} {
  if (published === undefined) return { policyStrings: [], mxHost: [] };
  // The policy's lines (RFC 8460 §4.4), in RFC 8461's order, from the policy as parsed.
  return {
    policyStrings: [
      'version: STSv1',
      `mode: ${published.mode}`,
      ...published.mx.map((mx) => `mx: ${mx}`),
      `max_age: ${published.maxAge}`,
    ],
    mxHost: [...published.mx],
  };
}

/** A domain-secure partner's session (reported when the partner publishes `_smtp._tls`). */
export function partnerResult(
  partner: DomainName,
  hop: Hop,
  outcome:
    null | { kind: 'no-tls' } | { kind: 'refused'; opensslError: string | null; reason: string },
): TlsResultEvent {
  const base = {
    type: 'send.tls-result' as const,
    domain: partner,
    host: hop.host,
    address: hop.address,
    localAddress: hop.localAddress ?? null,
    policyType: 'no-policy-found' as const,
    policyStrings: [],
    mxHost: [],
  };
  if (outcome === null) return { ...base, result: 'success' };
  if (outcome.kind === 'no-tls') return { ...base, result: 'starttls-not-supported' };
  return {
    ...base,
    result:
      outcome.opensslError === 'CERT_HAS_EXPIRED' ? 'certificate-expired' : 'validation-failure',
    reason: outcome.reason,
  };
}

/**
 * A session to a domain that publishes no DANE or MTA-STS policy (mail by MX, TLS as the
 * connector says): RFC 8460 §4.4's no-policy-found, a success when TLS was negotiated.
 */
export function noPolicyResult(
  domain: DomainName,
  hop: Hop,
  outcome: null | { kind: 'no-tls' },
): TlsResultEvent {
  return partnerResult(domain, hop, outcome);
}

/** The event as TlsResults counts it. */
export function sessionResultOf(event: TlsResultEvent): SessionResult {
  return {
    policyDomain: event.domain,
    policyType: event.policyType,
    policyStrings: event.policyStrings,
    mxHost: event.mxHost,
    result: event.result,
    ...(event.result === 'success'
      ? {}
      : {
          receivingMxHostname: event.host,
          receivingIp: event.address,
          ...(event.localAddress === null ? {} : { sendingMtaIp: event.localAddress }),
          ...(event.reason === undefined ? {} : { reason: event.reason }),
        }),
  };
}
