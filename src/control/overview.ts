// The operator's view of a running engine (GET /v1/overview, read by the status page): the
// organization, each partner's domain security per direction, connectors, queues, TLS policy
// results by domain, last reconcile.
import { distinguishedName, type Engine, type PartnerDirection } from '../engine/index.js';
import type { OverviewResponse, PartnerDirectionView } from './protocol.js';
import { formatEndpoint } from '../units.js';

export function overview(engine: Engine, now = new Date()): OverviewResponse {
  const generation = engine.running();
  const state = engine.state();
  const sessions = new Map(engine.receiveSessions().map((s) => [s.connector, s.sessions]));
  const sending = new Map(engine.sendSessions().map((s) => [s.connector, s.sessions]));
  const listening = new Map(state.listeners.map((l) => [l.binding, l.listening]));
  const config = generation?.config;
  const certificate = generation?.certificate;

  const direction = (
    domain: string,
    which: PartnerDirection,
    configured: boolean,
  ): PartnerDirectionView => {
    const health = engine.partners.get(domain, which);
    return {
      mark: !configured ? 'not-configured' : (health?.result ?? 'no-session-yet'),
      lastVerified: health?.lastVerified ?? null,
      lastRefusal: health?.lastRefusal ?? null,
    };
  };

  return {
    formatVersion: 1,
    generatedAt: now.toISOString(),
    organization:
      config === undefined || certificate === undefined
        ? null
        : {
            name: config.organization.name,
            hostname: config.organization.spec.hostname,
            acceptedDomains: config.organization.spec.acceptedDomains,
            certificate: {
              name: certificate.name,
              subject: distinguishedName(certificate.leaf.subject),
              fingerprint: certificate.fingerprint,
              notAfter: new Date(certificate.leaf.validTo).toISOString(),
            },
          },
    partners: [...(generation?.partnersByDomain.values() ?? [])]
      .sort((a, b) => a.domain.localeCompare(b.domain))
      .map((partner) => ({
        name: partner.name,
        domain: partner.domain,
        send: direction(partner.domain, 'send', partner.spec.domainSecure.send),
        receive: direction(partner.domain, 'receive', partner.spec.domainSecure.receive),
      })),
    receiveConnectors: (generation?.receiveConnectors ?? []).map((connector) => ({
      name: connector.name,
      bindings: connector.bindings.map((b) => ({
        binding: b.text,
        // The engine names its listeners as formatEndpoint writes them.
        listening: listening.get(formatEndpoint(b.host, b.port)) ?? false,
      })),
      domainSecure: connector.spec.domainSecure,
      requireTls: connector.spec.requireTls,
      sessions: sessions.get(connector.name) ?? 0,
    })),
    sendConnectors: (generation?.sendConnectors ?? []).map((connector) => ({
      name: connector.name,
      addressSpaces: connector.spec.addressSpaces,
      routing:
        'smartHosts' in connector.spec.routing
          ? `smart hosts ${connector.spec.routing.smartHosts.join(', ')}`
          : 'DNS MX',
      domainSecure: connector.spec.domainSecure,
      requireTls: connector.spec.requireTls,
      sessions: sending.get(connector.name) ?? 0,
    })),
    queues: state.queues,
    policyResults: engine.metrics.policyOutcomes.byDomain(),
    reconcile: {
      generation: state.generation,
      appliedAt: state.appliedAt,
      source: state.source?.description ?? null,
      revision: state.source?.revision ?? null,
      status: engine.reconcileStatus(),
    },
  };
}
