// The observable form of a configuration: one {kind, name, spec} per object, secrets replaced by
// fingerprints. The engine reports what it runs in this form and reconcile describes the desired
// configuration in it, so a plan compares like with like.
import { createHash } from 'node:crypto';
import type { JsonObject, ObjectState, RuntimeConfig } from './model.js';

export function describeConfig(config: RuntimeConfig): ObjectState[] {
  const objects: ObjectState[] = [];
  const add = (kind: ObjectState['kind'], name: string, spec: object) =>
    objects.push({ kind, name, spec: JSON.parse(JSON.stringify(spec)) as JsonObject });

  add('Organization', config.organization.name, config.organization.spec);
  for (const { name, spec } of config.certificates) {
    add('Certificate', name, {
      services: spec.services,
      fingerprint: spec.fingerprint,
      chainLength: spec.chainPem.length,
    });
  }
  for (const { name, spec } of config.trustAnchors) {
    const { pem: _pem, crlPem, ...rest } = spec;
    add('TrustAnchor', name, { ...rest, crl: crlPem === undefined ? null : digestLabel(crlPem) });
  }
  for (const { name, spec } of config.partners) add('PartnerDomain', name, spec);
  for (const { name, spec } of config.sendConnectors) add('SendConnector', name, spec);
  for (const { name, spec } of config.receiveConnectors) add('ReceiveConnector', name, spec);
  return objects;
}

/** A stable label for a blob that must be compared but not shown. */
function digestLabel(text: string): string {
  return `sha256:${createHash('sha256').update(text).digest('hex')}`;
}
