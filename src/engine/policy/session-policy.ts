// A published TLS policy as one SMTP session applies it: the session policy for a hop (DANE or
// MTA-STS on top of the connector's), the TLS context MTA-STS verifies with, and the verdict on
// the server's chain once STARTTLS is up and before MAIL FROM. Failures are replies with a code
// (454 4.7.5 DANE: ..., 454 4.7.5 MTA-STS: ...), the hop's last error.
import type { X509Certificate } from 'node:crypto';
import { createSecureContext, rootCertificates, type SecureContext } from 'node:tls';
import { coversHost, subjectAltDnsNames } from '../../certificate-names.js';
import { parseDomainName, type DomainName } from '../../domain-name.js';
import type { RuntimeConfig, SendRouting } from '../../model.js';
import type { SmtpReply } from '../../smtp-reply.js';
import { chooseTlsPolicy, daneRequiresTls, hopTls, type DestinationTls } from './outbound.js';
import type { StsPolicy } from './mta-sts-policy.js';
import type { ResultType } from '../tlsrpt/results.js';
import { describeRecord, matchChain, type TlsaRecord } from './tlsa.js';

/** What a session to a non-partner hop verifies beyond the connector's TLS. */
export type PublishedPolicy =
  | {
      kind: 'dane';
      domain: DomainName;
      host: DomainName;
      records: TlsaRecord[];
      names: DomainName[];
    }
  | {
      kind: 'mta-sts';
      domain: DomainName;
      host: DomainName;
      mode: 'enforce' | 'testing';
      /** STARTTLS mandatory: enforce, or requireTls from the connector or the TlsPolicy. */
      required: boolean;
      /** The platform's CAs and any extra lab CAs: `authorized` is PKIX against these. */
      context: SecureContext;
      /** The domain's policy as fetched (TLS reporting names it); absent: not known here. */
      published?: StsPolicy;
    };

export const POLICY_REPLIES = {
  dane: { code: 454, enhanced: '4.7.5', text: 'DANE' },
  mtaSts: { code: 454, enhanced: '4.7.5', text: 'MTA-STS' },
} as const satisfies Record<string, SmtpReply>;

export interface PolicyRefusal {
  kind: 'refused';
  reply: SmtpReply;
  detail: string;
  by: 'dane' | 'mta-sts';
  /** As TLS reporting names the failure. */
  result: ResultType;
}

/**
 * Whether a domain's published policies are looked up: mail routed by its MX records. A smart host
 * is not the domain's MX (RFC 8461 §4.1), and a static route is a lab's override of DNS.
 */
export function publishedPoliciesApply(
  config: RuntimeConfig,
  routing: SendRouting,
  domain: DomainName,
): boolean {
  return 'dnsMx' in routing && !Object.hasOwn(config.organization.spec.resolver.static, domain);
}

/**
 * A TlsPolicy that requires DANE or MTA-STS for a domain whose mail does not go by its MX (a
 * smart host, a static route): neither can be verified on that path, and `require` means the mail
 * waits rather than leave under less (fail closed). Undefined when nothing is required.
 */
export function unmetRequirement(
  config: RuntimeConfig,
  routing: SendRouting,
  domain: DomainName,
): PolicyRefusal | undefined {
  const policy = chooseTlsPolicy(config.tlsPolicies ?? [], domain);
  const by = policy.name === null ? '' : ` by TlsPolicy ${policy.name}`;
  const path =
    'smartHosts' in routing
      ? `its mail goes through the smart host ${routing.smartHosts.join(', ')}, not its MX`
      : Object.hasOwn(config.organization.spec.resolver.static, domain)
        ? 'its mail goes by a static route (resolver.static), not its MX'
        : 'its published policies are not looked up on this path';
  if (policy.dane === 'require')
    return {
      kind: 'refused',
      reply: POLICY_REPLIES.dane,
      detail: `required for ${domain}${by}, and ${path}: DANE cannot be verified there`,
      by: 'dane',
      result: 'dane-required',
    };
  if (policy.mtaSts === 'require')
    return {
      kind: 'refused',
      reply: POLICY_REPLIES.mtaSts,
      detail: `required for ${domain}${by}, and ${path}: MTA-STS cannot be verified there`,
      by: 'mta-sts',
      result: 'sts-policy-fetch-error',
    };
  return undefined;
}

/** The connector's TLS as route.ts gives it for a non-partner. */
export type ConnectorTls = { kind: 'required' } | { kind: 'opportunistic' };

/** The policy of one hop: the published one, the connector's (raised by requireTls), or a refusal. */
export function hopSessionPolicy(
  connector: ConnectorTls,
  destination: DestinationTls,
  hostName: string,
  extraCas: readonly string[] = [],
): PublishedPolicy | ConnectorTls | PolicyRefusal {
  const parsed = parseDomainName(hostName);
  // An IP literal host (a smart host or static route) publishes nothing.
  if (!parsed.ok) return connector;
  const host = parsed.name;
  const verdict = hopTls(destination, host, extraCas);
  const required =
    connector.kind === 'required' ||
    destination.policy.requireTls ||
    daneRequiresTls(destination, host);
  switch (verdict.kind) {
    case 'refused':
      return {
        kind: 'refused',
        reply: verdict.by === 'dane' ? POLICY_REPLIES.dane : POLICY_REPLIES.mtaSts,
        detail: verdict.reason,
        by: verdict.by,
        result: verdict.result,
      };
    case 'dane':
      return {
        kind: 'dane',
        domain: destination.domain,
        host,
        records: verdict.records,
        names: verdict.names,
      };
    case 'mta-sts':
      return {
        kind: 'mta-sts',
        domain: destination.domain,
        host,
        mode: verdict.mode,
        required: required || verdict.mode === 'enforce',
        context: mtaStsContext(verdict.cas),
        ...(destination.sts?.policy === undefined ? {} : { published: destination.sts.policy }),
      };
    case 'connector':
      return required ? { kind: 'required' } : connector;
  }
}

const contexts = new Map<string, SecureContext>();

/** One context per set of extra CAs (none in production): built once, reused by every session. */
export function mtaStsContext(extraCas: readonly string[]): SecureContext {
  const key = extraCas.join('\n');
  let context = contexts.get(key);
  if (context === undefined) {
    context = createSecureContext({
      minVersion: 'TLSv1.2',
      ...(extraCas.length > 0 ? { ca: [...rootCertificates, ...extraCas] } : {}),
    });
    if (contexts.size > 16) contexts.clear();
    contexts.set(key, context);
  }
  return context;
}

/** Why STARTTLS is missing is a policy failure when a published policy required it. */
export function missingTlsReply(policy: PublishedPolicy): { reply: SmtpReply; detail: string } {
  return policy.kind === 'dane'
    ? {
        reply: POLICY_REPLIES.dane,
        detail: `${policy.host} publishes TLSA records and the session has no TLS (STARTTLS not offered or stripped); not sent in plaintext`,
      }
    : {
        reply: POLICY_REPLIES.mtaSts,
        detail: `the policy of ${policy.domain} is enforce and ${policy.host} gave no TLS (STARTTLS not offered or stripped); not sent in plaintext`,
      };
}

export type PolicyVerdict =
  | { ok: true; note: string; event: string; warning?: string }
  | { ok: false; note: string; event: string; reply: SmtpReply; detail: string };

/**
 * The server's chain under the hop's published policy. `authorized` and `opensslError` are what
 * OpenSSL concluded against the session's context (the MTA-STS one: PKIX to a trusted CA).
 */
export function judgePublishedPolicy(
  policy: PublishedPolicy,
  chain: readonly X509Certificate[],
  authorized: boolean,
  opensslError: string | null,
): PolicyVerdict {
  if (policy.kind === 'dane') {
    const verdict = matchChain({ records: policy.records, chain, names: policy.names });
    if (verdict.ok)
      return {
        ok: true,
        event: 'send.dane-verified',
        note: `DANE: ${verdict.how} (${describeRecord(verdict.record)})`,
      };
    return {
      ok: false,
      event: 'send.dane-refused',
      note: `DANE: refused ${policy.host}: ${verdict.reason}`,
      reply: POLICY_REPLIES.dane,
      detail: `${verdict.reason} at ${policy.host}`,
    };
  }
  const leaf = chain[0];
  let problem: string | undefined;
  if (leaf === undefined) problem = 'the server sent no certificate';
  else if (!authorized)
    problem = `the certificate of ${policy.host} does not chain to a trusted CA (${opensslError ?? 'unknown'})`;
  // A DNS-ID only (RFC 8461 §4.2 by RFC 6125, RFC 9525): a name in the subject CN alone is none.
  else if (!coversHost(subjectAltDnsNames(leaf), policy.host))
    problem = `the certificate names ${subjectAltDnsNames(leaf).join(', ') || 'nothing in its subjectAltName'}, not ${policy.host}`;
  if (problem === undefined)
    return {
      ok: true,
      event: 'send.mta-sts-verified',
      note: `MTA-STS: ${policy.host} verified for ${policy.domain} (mode ${policy.mode})`,
    };
  if (policy.mode === 'testing')
    return {
      ok: true,
      event: 'send.mta-sts-testing-failure',
      note: `MTA-STS (testing): ${problem}; delivered anyway`,
      warning: problem,
    };
  return {
    ok: false,
    event: 'send.mta-sts-refused',
    note: `MTA-STS: refused ${policy.host}: ${problem}`,
    reply: POLICY_REPLIES.mtaSts,
    detail: problem,
  };
}
