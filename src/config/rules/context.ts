// What every rule sees: the loaded objects with their positions, the files they name (already
// read), and the time; a rule is a pure function of this to its diagnostics.
import type { Diagnostic } from '../../model.js';
import type { ManifestFile } from '../manifest-files.js';
import type { Material } from '../material.js';
import type {
  CertificateManifest,
  ManifestObject,
  ManifestSet,
  OrganizationManifest,
} from '../manifest-objects.js';

export interface RuleContext {
  /** Objects whose spec passed its schema, with defaults: what rules check. */
  objects: ManifestSet;
  /** Every document whose kind and name could be read, valid or not: what exists. */
  all: readonly ManifestObject[];
  /**
   * Every file parsed and every document passed its schema. Rules that conclude from an absence
   * ("no connector covers ...") only speak when this is true, since the missing object may be
   * one that failed its schema.
   */
  complete: boolean;
  material: Material;
  files: readonly ManifestFile[];
  now: Date;
}

export type Rule = (context: RuleContext) => Diagnostic[];

/** The Organization, when there is exactly one that passed its schema. */
export function theOrganization(
  context: RuleContext,
): ManifestObject<OrganizationManifest> | undefined {
  const [organization, ...others] = context.objects.organizations;
  return others.length === 0 ? organization : undefined;
}

/** The Certificate the Organization presents, when both exist. */
export function organizationCertificate(
  context: RuleContext,
): ManifestObject<CertificateManifest> | undefined {
  const organization = theOrganization(context);
  if (organization === undefined) return undefined;
  return context.objects.certificates.find((c) => c.name === organization.spec.certificate);
}
