// A checked set of manifests into the RuntimeConfig the engine runs: files read into PEMs, paths
// resolved, requireTls following domainSecure where not written, objects sorted by name.
import { resolve } from 'node:path';
import type {
  CertificateSpec,
  ConfigSource,
  Named,
  OrganizationSpec,
  PartnerDomainSpec,
  ReceiveConnectorSpec,
  RuntimeConfig,
  SendConnectorSpec,
  TlsPolicySpec,
  TrustAnchorSpec,
} from '../model.js';
import { canonicalConfig, describeDomainProblems } from '../canonical-config.js';
import type { ManifestObject, ManifestSet } from './manifest-objects.js';
import type { Material } from './material.js';

export class CompileError extends Error {
  override name = 'CompileError';
}

/** Only for a set the rules found no error in: anything missing here is a bug, and throws. */
export function compileConfiguration(
  objects: ManifestSet,
  material: Material,
  source: ConfigSource,
): RuntimeConfig {
  const [organization] = objects.organizations;
  if (organization === undefined) throw new CompileError('no Organization to compile');
  // Every name in the one form the engine keys on; the schemas' formats refused what does not map.
  const { config, problems } = canonicalConfig({
    organization: { name: organization.name, spec: compileOrganization(organization) },
    certificates: sorted(
      objects.certificates.map((object) => named(object, compileCertificate(object, material))),
    ),
    trustAnchors: sorted(
      objects.trustAnchors.map((object) => named(object, compileTrustAnchor(object, material))),
    ),
    partners: sorted(objects.partners.map((object) => named(object, compilePartner(object.spec)))),
    sendConnectors: sorted(
      objects.sendConnectors.map((object) =>
        named(object, {
          ...clone(object.spec),
          requireTls: object.spec.requireTls ?? object.spec.domainSecure,
        } satisfies SendConnectorSpec),
      ),
    ),
    receiveConnectors: sorted(
      objects.receiveConnectors.map((object) =>
        named(object, {
          ...clone(object.spec),
          requireTls: object.spec.requireTls ?? object.spec.domainSecure,
        } satisfies ReceiveConnectorSpec),
      ),
    ),
    tlsPolicies: sorted(
      objects.tlsPolicies.map((object) =>
        named(object, clone(object.spec) satisfies TlsPolicySpec),
      ),
    ),
    source,
  });
  if (problems.length > 0) throw new CompileError(describeDomainProblems(problems));
  return config;
}

function compileOrganization({
  spec,
  document,
}: ManifestObject<OrganizationSpec>): OrganizationSpec {
  const { tokenFile, ...admin } = spec.admin;
  const dkim = spec.tlsReporting?.dkim;
  return {
    ...clone(spec),
    // The token file is read by the CLI and the engine from wherever they run: make it absolute.
    admin:
      tokenFile === undefined
        ? admin
        : { ...admin, tokenFile: resolve(document.directory, tokenFile) },
    // So is the DKIM key of TLS reports (the engine reads it when it signs).
    ...(dkim === undefined
      ? {}
      : {
          tlsReporting: {
            ...clone(spec.tlsReporting),
            dkim: { ...dkim, keyFile: resolve(document.directory, dkim.keyFile) },
          },
        }),
  };
}

function compileCertificate(object: ManifestObject, material: Material): CertificateSpec {
  const loaded = material.certificates.get(object);
  if (loaded === undefined) throw new CompileError(`${object.name}: certificate files not read`);
  const { services } = object.spec as { services: string[] };
  return {
    services: [...services],
    certPem: loaded.certPem,
    chainPem: [...loaded.chainPem],
    keyPem: loaded.keyPem,
    fingerprint: loaded.leaf.fingerprint256,
  };
}

function compileTrustAnchor(
  object: ManifestObject<{ system?: boolean }>,
  material: Material,
): TrustAnchorSpec {
  const loaded = material.anchors.get(object);
  return {
    system: object.spec.system === true,
    ...(loaded?.pem === undefined ? {} : { pem: loaded.pem }),
    ...(loaded?.crlPem === undefined ? {} : { crlPem: loaded.crlPem }),
    ...(loaded?.certificate === undefined
      ? {}
      : { fingerprint: loaded.certificate.fingerprint256 }),
  };
}

function compilePartner(spec: PartnerDomainSpec): PartnerDomainSpec {
  return clone(spec);
}

function named<S>(object: ManifestObject, spec: S): Named<S> {
  return { name: object.name, spec };
}

function sorted<S>(list: Named<S>[]): Named<S>[] {
  return list.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/**
 * The engine keeps what it is given: no object shared with the loaded documents. Specs are plain
 * data (what YAML and the schemas' defaults make), copied here by hand: structuredClone was a
 * tenth of validating 50,000 partners. Anything else still goes to structuredClone.
 */
function clone<T>(value: T): T {
  if (typeof value !== 'object' || value === null) return value;
  if (Array.isArray(value)) return value.map(clone) as T;
  if (Object.getPrototypeOf(value) !== Object.prototype) return structuredClone(value);
  const copy: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) {
    // A key `__proto__` is data (YAML can write one): define it, never set the prototype.
    if (key === '__proto__') {
      Object.defineProperty(copy, key, {
        value: clone(item),
        enumerable: true,
        writable: true,
        configurable: true,
      });
    } else copy[key] = clone(item);
  }
  return copy as T;
}
