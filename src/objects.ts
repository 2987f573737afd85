// The observable form of a configuration: one {kind, name, spec} per object, secrets replaced by
// fingerprints. The engine reports what it runs in this form and reconcile describes the desired
// configuration in it, so a plan compares like with like.
import { createHash, X509Certificate } from 'node:crypto';
import type { JsonObject, JsonValue, ObjectState, RuntimeConfig } from './model.js';
import { daneEeKeyDigest } from './published-records.js';

/** How a secret is written wherever the observable form would hold it. */
export const SENSITIVE = '(sensitive)';

export function describeConfig(config: RuntimeConfig): ObjectState[] {
  const objects: ObjectState[] = [];
  const add = (kind: ObjectState['kind'], name: string, spec: object) =>
    objects.push({ kind, name, spec: toJson(spec) as JsonObject });

  add('Organization', config.organization.name, config.organization.spec);
  for (const { name, spec } of config.certificates) {
    add('Certificate', name, {
      services: spec.services,
      fingerprint: spec.fingerprint,
      notAfter: notAfter(spec.certPem),
      chainLength: spec.chainPem.length,
      // The data of a TLSA 3 1 1 record of its key: a plan compares it with the running one's.
      spkiSha256: spkiSha256(spec.certPem),
      // Always loaded with the certificate and matched against it; never shown.
      privateKey: SENSITIVE,
    });
  }
  for (const { name, spec } of config.trustAnchors) {
    const { pem: _pem, crlPem, ...rest } = spec;
    add('TrustAnchor', name, { ...rest, crl: crlPem === undefined ? null : digestLabel(crlPem) });
  }
  for (const { name, spec } of config.partners) add('PartnerDomain', name, spec);
  for (const { name, spec } of config.sendConnectors) add('SendConnector', name, spec);
  for (const { name, spec } of config.receiveConnectors) add('ReceiveConnector', name, spec);
  for (const { name, spec } of config.tlsPolicies ?? []) add('TlsPolicy', name, spec);
  return objects;
}

/**
 * A copy of plain data as a JSON round trip would give it (absent for undefined fields, null for
 * undefined items), without the text in between: this runs once per object of every plan.
 */
function toJson(value: unknown): JsonValue {
  if (value === null || typeof value !== 'object') {
    return typeof value === 'number' && !Number.isFinite(value) ? null : (value as JsonValue);
  }
  if (Array.isArray(value)) {
    return value.map((item: unknown) => (item === undefined ? null : toJson(item)));
  }
  const copy: JsonObject = {};
  for (const [key, item] of Object.entries(value)) {
    if (item !== undefined && typeof item !== 'function') copy[key] = toJson(item);
  }
  return copy;
}

/** The leaf's expiry as an ISO time, or null when it cannot be parsed (apply will refuse it). */
function notAfter(certPem: string): string | null {
  try {
    return new Date(new X509Certificate(certPem).validTo).toISOString();
  } catch {
    return null;
  }
}

/** SHA-256 of the leaf's SubjectPublicKeyInfo, or null when it cannot be parsed. */
function spkiSha256(certPem: string): string | null {
  try {
    return daneEeKeyDigest(new X509Certificate(certPem));
  } catch {
    return null;
  }
}

/** A stable label for a blob that must be compared but not shown. */
function digestLabel(text: string): string {
  return `sha256:${createHash('sha256').update(text).digest('hex')}`;
}
