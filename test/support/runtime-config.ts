// A RuntimeConfig for engine tests: the organization treyresearch.net, receiving from (and
// sending to) its partner adatum.com, with the lab's certificates. Override any part of it.
// Only what a test needs is written here; every other field gets its default from the runtime
// config schema (schema-defaults.ts), so the tests run on the product's defaults.
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
import { withRuntimeDefaults, withSpecDefaults } from './schema-defaults.js';

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
 * domain security (and so requireTls); a resolver on 127.0.0.1 and the admin API on 127.0.0.1:0.
 * The rest is the schema's defaults, filled in after the overrides, as an apply fills them.
 */
export function runtimeConfig(overrides: RuntimeConfigOverrides = {}): RuntimeConfig {
  const { treyMail, adatumRoot } = lab();
  return withRuntimeDefaults({
    organization: {
      name: 'treyresearch',
      spec: withSpecDefaults('Organization', {
        hostname: 'mail.treyresearch.net',
        acceptedDomains: ['treyresearch.net'],
        certificate: ORGANIZATION_CERTIFICATE,
        resolver: { servers: ['127.0.0.1'] },
        admin: { listen: '127.0.0.1:0' },
        ...overrides.organization,
      }),
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
  });
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
    spec: withSpecDefaults('PartnerDomain', {
      domainSecure: { send: true, receive: true },
      trustAnchors: ['adatum-root'],
      ...spec,
    }),
  };
}

/**
 * A domain-secure receive connector on 127.0.0.1:0 (an ephemeral port) for every IPv4 client,
 * taking messages up to 10MB.
 */
export function receiveConnector(
  name: string,
  spec: Partial<ReceiveConnectorSpec> = {},
): Named<ReceiveConnectorSpec> {
  return {
    name,
    spec: withSpecDefaults('ReceiveConnector', {
      bindings: ['127.0.0.1:0'],
      remoteIPRanges: ['0.0.0.0/0'],
      domainSecure: true,
      requireTls: true,
      maxMessageSize: '10MB',
      ...spec,
    }),
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

/** A domain-secure send connector for every domain (MX routing), taking messages up to 10MB. */
export function sendConnector(
  name: string,
  spec: Partial<SendConnectorSpec> = {},
): Named<SendConnectorSpec> {
  return {
    name,
    spec: withSpecDefaults('SendConnector', {
      addressSpaces: ['*'],
      domainSecure: true,
      requireTls: true,
      maxMessageSize: '10MB',
      ...spec,
    }),
  };
}
