// A RuntimeConfig for engine tests: the organization treyresearch.net, receiving from (and
// sending to) its partner adatum.com, with the lab's certificates. Override any part of it.
import type {
  CertificateSpec,
  Named,
  OrganizationSpec,
  PartnerDomainSpec,
  ReceiveConnectorSpec,
  RuntimeConfig,
  SendConnectorSpec,
  TrustAnchorSpec,
} from '../../src/model.js';
import type { IssuedCertificate } from '../../src/pki/lab.js';
import { lab } from './lab.js';

export interface RuntimeConfigOverrides {
  organization?: Partial<OrganizationSpec>;
  /** Merged into the adatum PartnerDomain (ignored when `partners` is given). */
  adatum?: Partial<PartnerDomainSpec>;
  /** Merged into the default ReceiveConnector (ignored when `receiveConnectors` is given). */
  receiveConnector?: Partial<ReceiveConnectorSpec>;
  /** Merged into the default SendConnector (ignored when `sendConnectors` is given). */
  sendConnector?: Partial<SendConnectorSpec>;
  /** Each list, when given, replaces the default one whole. */
  certificates?: Named<CertificateSpec>[];
  trustAnchors?: Named<TrustAnchorSpec>[];
  partners?: Named<PartnerDomainSpec>[];
  receiveConnectors?: Named<ReceiveConnectorSpec>[];
  sendConnectors?: Named<SendConnectorSpec>[];
}

export const ORGANIZATION_CERTIFICATE = 'mail-treyresearch';

/**
 * treyresearch.net: hostname mail.treyresearch.net, certificate mail-treyresearch (the lab's
 * treyMail), trust anchor adatum-root, partner adatum (adatum.com, send and receive), send
 * connector to-partners, receive connector from-partners on 127.0.0.1:0 for 0.0.0.0/0 with
 * domain security (and so requireTls).
 */
export function runtimeConfig(overrides: RuntimeConfigOverrides = {}): RuntimeConfig {
  const { treyMail, adatumRoot } = lab();
  return {
    organization: {
      name: 'treyresearch',
      spec: {
        hostname: 'mail.treyresearch.net',
        acceptedDomains: ['treyresearch.net'],
        certificate: ORGANIZATION_CERTIFICATE,
        delivery: { maildir: 'mail' },
        queue: { retry: ['1m', '5m', '15m', '30m', '1h'], expireAfter: '2d', delayNotice: '4h' },
        resolver: { servers: ['127.0.0.1'], static: {} },
        admin: { listen: '127.0.0.1:0' },
        ...overrides.organization,
      },
    },
    certificates: overrides.certificates ?? [certificate(ORGANIZATION_CERTIFICATE, treyMail)],
    trustAnchors: overrides.trustAnchors ?? [trustAnchor('adatum-root', adatumRoot)],
    partners: overrides.partners ?? [
      partnerDomain('adatum', { domain: 'adatum.com', ...overrides.adatum }),
    ],
    sendConnectors: overrides.sendConnectors ?? [
      sendConnector('to-partners', { addressSpaces: ['adatum.com'], ...overrides.sendConnector }),
    ],
    receiveConnectors: overrides.receiveConnectors ?? [
      receiveConnector('from-partners', overrides.receiveConnector),
    ],
  };
}

export function certificate(name: string, issued: IssuedCertificate): Named<CertificateSpec> {
  return {
    name,
    spec: {
      services: ['SMTP'],
      certPem: issued.certPem,
      chainPem: [],
      keyPem: issued.keyPem,
      fingerprint: issued.fingerprint,
    },
  };
}

export function trustAnchor(name: string, authority: IssuedCertificate): Named<TrustAnchorSpec> {
  return {
    name,
    spec: { system: false, pem: authority.certPem, fingerprint: authority.fingerprint },
  };
}

/** A domain-secure partner (send and receive) trusting adatum-root unless told otherwise. */
export function partnerDomain(
  name: string,
  spec: Partial<PartnerDomainSpec> & { domain: string },
): Named<PartnerDomainSpec> {
  return {
    name,
    spec: {
      domainSecure: { send: true, receive: true },
      trustAnchors: ['adatum-root'],
      certificateNames: [],
      certificateNameMatch: 'domain',
      clientCertificatePurpose: 'standard',
      remoteIPRanges: [],
      requireHeaderFromDomain: false,
      ...spec,
    },
  };
}

/** A domain-secure receive connector on 127.0.0.1:0 (an ephemeral port) for every IPv4 client. */
export function receiveConnector(
  name: string,
  spec: Partial<ReceiveConnectorSpec> = {},
): Named<ReceiveConnectorSpec> {
  return {
    name,
    spec: {
      bindings: ['127.0.0.1:0'],
      remoteIPRanges: ['0.0.0.0/0'],
      authMechanisms: ['tls'],
      permitRelay: false,
      acceptAuthoritativeDomainSenders: false,
      domainSecure: true,
      requireTls: true,
      maxMessageSize: '10MB',
      protocolLogging: 'none',
      maxInboundConnection: 5000,
      maxInboundConnectionPerSource: 100,
      connectionInactivityTimeout: '5m',
      stressInactivityTimeout: '10s',
      connectionTimeout: '10m',
      maxRecipientsPerMessage: 200,
      maxHeaderSize: '256KB',
      ...spec,
    },
  };
}

/**
 * The organization's own servers submitting over plaintext from 127.0.0.1 (Exchange's internal
 * relay connector): no STARTTLS, no domain security, relay permitted.
 */
export function internalConnector(binding: string): Named<ReceiveConnectorSpec> {
  return receiveConnector('internal', {
    bindings: [binding],
    remoteIPRanges: ['127.0.0.1/32'],
    authMechanisms: ['none'],
    domainSecure: false,
    requireTls: false,
    permitRelay: true,
  });
}

export function sendConnector(
  name: string,
  spec: Partial<SendConnectorSpec> = {},
): Named<SendConnectorSpec> {
  return {
    name,
    spec: {
      addressSpaces: ['*'],
      cost: 1,
      routing: { dnsMx: {} },
      port: 25,
      domainSecure: true,
      requireTls: true,
      maxMessageSize: '10MB',
      protocolLogging: 'none',
      ...spec,
    },
  };
}
