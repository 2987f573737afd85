// A Generation is one applied RuntimeConfig made ready for the hot path: certificates parsed and
// matched with their keys, one SecureContext per certificate/anchor set, ranges and bindings
// parsed, lookups indexed. Building one either succeeds whole or throws: apply is atomic.
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { rootCertificates, createSecureContext, type SecureContext } from 'node:tls';
import type {
  CertificateSpec,
  Named,
  PartnerDomainSpec,
  ReceiveConnectorSpec,
  RuntimeConfig,
  SendConnectorSpec,
} from '../model.js';
import { canonicalConfig, describeDomainProblems } from '../canonical-config.js';
import type { DomainName } from '../domain-name.js';
import { requireDuration, requireSize } from '../units.js';
import { parseBinding, parseRange, type Binding, type IpRange } from './addresses.js';
import { BoundedMemo } from './bounded-memo.js';
import { MAX_CHAINS_PER_PARTNER, type ChainFacts } from './tls/chain-facts.js';
import { CrlError, readRevocationList, type RevocationList } from './tls/crl.js';
import { connectorLimits, type ConnectorLimits } from './receive/limits.js';

export interface LoadedCertificate {
  name: string;
  spec: CertificateSpec;
  leaf: X509Certificate;
  fingerprint: string;
}

export interface LoadedPartner {
  name: string;
  spec: PartnerDomainSpec;
  domain: DomainName;
  /** The partner's anchors: the only roots its certificates may chain to. */
  anchors: X509Certificate[];
  /** The anchors' SHA-256 fingerprints (X509Certificate computes one on every read). */
  anchorFingerprints: ReadonlySet<string>;
  anchorPems: string[];
  remoteRanges: IpRange[];
  /**
   * What verification decided without the clock about the chains this partner presented, by
   * role, OpenSSL's code and the chain's fingerprints: this generation's, bounded.
   */
  verifiedChains: BoundedMemo<string, ChainFacts>;
  /** Revocation lists by the SHA-256 fingerprint of the anchor that signed them (all anchors). */
  revocations: ReadonlyMap<string, RevocationList>;
  /**
   * For sending to this partner: our certificate and key, the partner's anchors as the only CAs.
   * Built once per generation and reused by every connection (session resumption stays possible).
   */
  sendContext: SecureContext;
}

export interface LoadedReceiveConnector {
  name: string;
  spec: ReceiveConnectorSpec;
  bindings: Binding[];
  remoteRanges: IpRange[];
  maxMessageSize: number;
  /** Its limits, durations and sizes parsed. */
  limits: ConnectorLimits;
}

export interface LoadedSendConnector {
  name: string;
  spec: SendConnectorSpec;
  maxMessageSize: number;
}

export interface Generation {
  readonly number: number;
  readonly appliedAt: Date;
  /** As applied, every name in canonical form (canonical-config.ts). */
  readonly config: RuntimeConfig;
  readonly hostname: DomainName;
  readonly acceptedDomains: ReadonlySet<DomainName>;
  readonly certificate: LoadedCertificate; // the organization's
  /** Server side: our certificate, and as CA list the anchors of every receive-secure partner. */
  readonly serverTls: { key: string; cert: string; ca: string[] };
  /** Client side for non-partners: our certificate, the platform CA store. */
  readonly opportunisticContext: SecureContext;
  readonly partnersByDomain: ReadonlyMap<DomainName, LoadedPartner>;
  /** The remoteIPRanges of every receive-secure partner: the only way to know one before TLS. */
  readonly partnerRanges: readonly IpRange[];
  readonly receiveConnectors: readonly LoadedReceiveConnector[];
  readonly sendConnectors: readonly LoadedSendConnector[];
  readonly retrySchedule: readonly number[]; // ms
  readonly expireAfter: number; // ms
  /** The queue's delay notice (Organization queue.delayNotice), ms. */
  readonly delayNoticeAfter: number;
  /** The CRLs this generation believes, for the next build to reuse (revocationIndex). */
  readonly revocationIndex: RevocationIndex;
}

/**
 * Every CRL a generation read and verified, keyed by the anchor that signed it and the list's
 * text: the next generation takes a list from here when both are the same (parsing a 200-entry
 * list costs about 5 ms, which for thousands of anchors made every apply take a minute).
 */
export interface RevocationIndex {
  readonly lists: ReadonlyMap<string, RevocationList>;
  /** How many lists this build parsed and verified itself rather than reused. */
  readonly parsed: number;
}

export interface BuildOptions {
  appliedAt?: Date;
  /** The running generation: what it derived from unchanged input is reused, not computed again. */
  previous?: Generation;
}

export class ConfigurationError extends Error {
  override name = 'ConfigurationError';
}

export function buildGeneration(
  given: RuntimeConfig,
  number: number,
  { appliedAt = new Date(), previous }: BuildOptions = {},
): Generation {
  // The admin API is a boundary: a configuration from anywhere gets its names made canonical, and
  // one that holds a name that is not a domain is refused whole.
  const { config, problems } = canonicalConfig(given);
  if (problems.length > 0) throw new ConfigurationError(describeDomainProblems(problems));
  const org = config.organization.spec;
  const certificates = new Map(config.certificates.map((c) => [c.name, loadCertificate(c)]));
  const certificate = certificates.get(org.certificate);
  if (certificate === undefined) {
    throw new ConfigurationError(`organization certificate ${org.certificate} is not defined`);
  }

  const anchorPems = new Map<string, string[]>();
  for (const { name, spec } of config.trustAnchors) {
    if (spec.system) anchorPems.set(name, [...rootCertificates]);
    else if (spec.pem !== undefined) anchorPems.set(name, splitPem(spec.pem));
    else throw new ConfigurationError(`trust anchor ${name} has neither pem nor system`);
  }
  anchorPems.set('system', anchorPems.get('system') ?? [...rootCertificates]);
  const revocationIndex = loadRevocations(config, anchorPems, previous?.revocationIndex);
  const revocations = revocationIndex.byAnchor;

  const key = certificate.spec.keyPem;
  const cert = [certificate.spec.certPem, ...certificate.spec.chainPem].join('\n');
  const partnersByDomain = new Map<DomainName, LoadedPartner>();
  // Partners that share anchors share the parsed anchors and the send context: building a
  // SecureContext per partner made 10,000 partners take seconds to apply (bench/reconcile.ts).
  const shared = new Map<string, SharedTrust>();
  for (const partner of config.partners) {
    const pems = partner.spec.trustAnchors.flatMap((anchor) => {
      const found = anchorPems.get(anchor);
      if (found === undefined) {
        throw new ConfigurationError(
          `partner ${partner.name} names trust anchor ${anchor}, which is not defined`,
        );
      }
      return found;
    });
    const trustKey = partner.spec.trustAnchors.join('\n');
    let trust = shared.get(trustKey);
    if (trust === undefined) {
      trust = loadTrust(partner.name, pems, key, cert);
      shared.set(trustKey, trust);
    }
    const loaded = loadPartner(partner, trust, revocations);
    if (partnersByDomain.has(loaded.domain)) {
      throw new ConfigurationError(`two partners for the domain ${loaded.domain}`);
    }
    partnersByDomain.set(loaded.domain, loaded);
  }

  const receiveCa = new Set<string>();
  for (const partner of partnersByDomain.values()) {
    if (partner.spec.domainSecure.receive) for (const pem of partner.anchorPems) receiveCa.add(pem);
  }

  return {
    number,
    appliedAt,
    config,
    hostname: org.hostname as DomainName,
    acceptedDomains: new Set(org.acceptedDomains as DomainName[]),
    certificate,
    serverTls: { key, cert, ca: [...receiveCa] },
    opportunisticContext: tryContext('our certificate', () => createSecureContext({ key, cert })),
    partnersByDomain,
    partnerRanges: [...partnersByDomain.values()]
      .filter((partner) => partner.spec.domainSecure.receive)
      .flatMap((partner) => partner.remoteRanges),
    receiveConnectors: config.receiveConnectors.map(loadReceiveConnector),
    sendConnectors: config.sendConnectors.map(({ name, spec }) => ({
      name,
      spec,
      maxMessageSize: requireSize(spec.maxMessageSize),
    })),
    retrySchedule: org.queue.retry.map(requireDuration),
    expireAfter: requireDuration(org.queue.expireAfter),
    delayNoticeAfter: requireDuration(org.queue.delayNotice),
    revocationIndex: { lists: revocationIndex.lists, parsed: revocationIndex.parsed },
  };
}

function loadCertificate({ name, spec }: Named<CertificateSpec>): LoadedCertificate {
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(spec.certPem);
  } catch (error) {
    throw new ConfigurationError(`certificate ${name}: cannot parse: ${(error as Error).message}`);
  }
  let matches: boolean;
  try {
    matches = leaf.checkPrivateKey(createPrivateKey(spec.keyPem));
  } catch {
    throw new ConfigurationError(`certificate ${name}: the private key cannot be read`);
  }
  if (!matches)
    throw new ConfigurationError(
      `certificate ${name}: the private key does not match the certificate`,
    );
  return { name, spec, leaf, fingerprint: leaf.fingerprint256 };
}

/** What partners with the same trust anchors have in common; built once per anchor set. */
interface SharedTrust {
  anchors: X509Certificate[];
  anchorFingerprints: ReadonlySet<string>;
  anchorPems: string[];
  sendContext: SecureContext;
}

function loadTrust(partner: string, anchorPems: string[], key: string, cert: string): SharedTrust {
  const anchors = anchorPems.map((pem) => new X509Certificate(pem));
  return {
    anchors,
    anchorFingerprints: new Set(anchors.map((anchor) => anchor.fingerprint256)),
    anchorPems,
    sendContext: tryContext(`partner ${partner}`, () =>
      createSecureContext({ key, cert, ca: anchorPems }),
    ),
  };
}

/**
 * Each anchor's CRL, read and checked against the anchor's own key: a list that cannot be read or
 * that another key signed fails the apply rather than being believed or ignored. A list the
 * previous generation verified with the same anchor is taken from it; a failure is never kept,
 * so a bad list is read (and refused) on every build.
 */
function loadRevocations(
  config: RuntimeConfig,
  anchorPems: ReadonlyMap<string, string[]>,
  previous: RevocationIndex | undefined,
): { byAnchor: Map<string, RevocationList>; lists: Map<string, RevocationList>; parsed: number } {
  const byAnchor = new Map<string, RevocationList>();
  const lists = new Map<string, RevocationList>();
  let parsed = 0;
  for (const { name, spec } of config.trustAnchors) {
    const crlPem = spec.crlPem;
    if (crlPem === undefined) continue;
    const candidates = (anchorPems.get(name) ?? []).map((pem) => new X509Certificate(pem));
    const problems: string[] = [];
    const found = candidates.find((anchor) => {
      const key = `${anchor.fingerprint256}\n${crlPem}`;
      let list = lists.get(key) ?? previous?.lists.get(key);
      if (list === undefined) {
        try {
          parsed += 1;
          list = readRevocationList(crlPem, anchor);
        } catch (error) {
          if (!(error instanceof CrlError)) throw error;
          problems.push(error.message);
          return false;
        }
      }
      lists.set(key, list);
      byAnchor.set(anchor.fingerprint256, list);
      return true;
    });
    if (found === undefined) {
      throw new ConfigurationError(`trust anchor ${name}: its CRL ${problems.join('; ')}`);
    }
  }
  return { byAnchor, lists, parsed };
}

function loadPartner(
  { name, spec }: Named<PartnerDomainSpec>,
  trust: SharedTrust,
  revocations: ReadonlyMap<string, RevocationList>,
): LoadedPartner {
  return {
    name,
    spec,
    domain: spec.domain as DomainName, // canonical: buildGeneration made it so
    anchors: trust.anchors,
    anchorFingerprints: trust.anchorFingerprints,
    anchorPems: trust.anchorPems,
    verifiedChains: new BoundedMemo(MAX_CHAINS_PER_PARTNER),
    revocations,
    remoteRanges: spec.remoteIPRanges.map(parseRange),
    sendContext: trust.sendContext,
  };
}

function loadReceiveConnector({ name, spec }: Named<ReceiveConnectorSpec>): LoadedReceiveConnector {
  return {
    name,
    spec,
    bindings: spec.bindings.map(parseBinding),
    remoteRanges: spec.remoteIPRanges.map(parseRange),
    maxMessageSize: requireSize(spec.maxMessageSize),
    limits: connectorLimits(spec),
  };
}

function tryContext(what: string, build: () => SecureContext): SecureContext {
  try {
    return build();
  } catch (error) {
    throw new ConfigurationError(`${what}: TLS context: ${(error as Error).message}`);
  }
}

/** The certificates of a PEM bundle, one PEM each. */
export function splitPem(bundle: string): string[] {
  return bundle.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
}
