// watch without --prune deletes nothing (Flux's choice): an object the engine runs that the
// manifests no longer hold (a truncated file, a directory half checked out) is kept as it runs,
// and named, so that a careless save can never take a connector or a partner away by itself.
import { isDeepStrictEqual } from 'node:util';
import type {
  EngineState,
  Kind,
  Named,
  ObjectState,
  PartnerDomainSpec,
  ReceiveConnectorSpec,
  RuntimeConfig,
  SendConnectorSpec,
  TlsPolicySpec,
} from '../model.js';
import { describeConfig } from '../objects.js';

export interface Retention {
  /** The manifests' configuration with every object it dropped put back as the engine runs it. */
  config: RuntimeConfig;
  /** `Kind/name` of each object kept although the manifests no longer hold it. */
  kept: string[];
  /**
   * Dropped objects that cannot be put back: a Certificate or TrustAnchor whose key or PEM the
   * engine never reports, and that no earlier load of this watch held as the engine runs it.
   */
  unkeepable: string[];
}

/**
 * Puts back what the manifests dropped. Partners and connectors come from the engine's own state,
 * which reports their specs whole; certificates and trust anchors from `remembered`, an earlier
 * load (`memory`), only when it describes them exactly as the engine runs them.
 */
export function keepDroppedObjects(
  config: RuntimeConfig,
  actual: EngineState,
  memory: RuntimeConfig | undefined,
): Retention {
  const desired = new Set(describeConfig(config).map(key));
  const known = memory === undefined ? [] : describeConfig(memory);
  const kept: string[] = [];
  const unkeepable: string[] = [];
  const result: RuntimeConfig = {
    ...config,
    certificates: [...config.certificates],
    trustAnchors: [...config.trustAnchors],
    partners: [...config.partners],
    sendConnectors: [...config.sendConnectors],
    receiveConnectors: [...config.receiveConnectors],
    tlsPolicies: [...(config.tlsPolicies ?? [])],
  };
  for (const object of actual.objects) {
    if (desired.has(key(object))) continue;
    const name = object.name;
    switch (object.kind) {
      // One per configuration: a renamed organization replaces the one there was.
      case 'Organization':
        continue;
      case 'PartnerDomain':
        result.partners.push({ name, spec: object.spec as unknown as PartnerDomainSpec });
        break;
      case 'SendConnector':
        result.sendConnectors.push({ name, spec: object.spec as unknown as SendConnectorSpec });
        break;
      case 'ReceiveConnector':
        result.receiveConnectors.push({
          name,
          spec: object.spec as unknown as ReceiveConnectorSpec,
        });
        break;
      case 'TlsPolicy':
        result.tlsPolicies?.push({ name, spec: object.spec as unknown as TlsPolicySpec });
        break;
      case 'Certificate': {
        const remembered = rememberedAsRunning(known, object, memory?.certificates);
        if (remembered === undefined) {
          unkeepable.push(label(object));
          continue;
        }
        result.certificates.push(remembered);
        break;
      }
      case 'TrustAnchor': {
        const remembered = rememberedAsRunning(known, object, memory?.trustAnchors);
        if (remembered === undefined) {
          unkeepable.push(label(object));
          continue;
        }
        result.trustAnchors.push(remembered);
        break;
      }
    }
    kept.push(label(object));
  }
  return { config: result, kept: kept.sort(), unkeepable: unkeepable.sort() };
}

/** The remembered object of that name, secrets included, when it is the one the engine runs. */
function rememberedAsRunning<S>(
  known: ObjectState[],
  running: ObjectState,
  remembered: Named<S>[] | undefined,
): Named<S> | undefined {
  const described = known.find((object) => key(object) === key(running));
  if (described === undefined || !isDeepStrictEqual(described.spec, running.spec)) return undefined;
  return remembered?.find((object) => object.name === running.name);
}

function key(object: { kind: Kind; name: string }): string {
  return `${object.kind}/${object.name}`;
}

const label = key;
