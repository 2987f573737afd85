// The objects of a configuration as the manifests wrote them (defaults applied, references still
// names, files still paths), grouped by kind, with the document each came from for positions.
import type {
  Kind,
  OrganizationSpec,
  PartnerDomainSpec,
  ReceiveConnectorSpec,
  SendConnectorSpec,
  TlsPolicySpec,
} from '../model.js';
import type { FieldPath, ManifestDocument, SourcePosition } from './yaml-documents.js';

/** Paths (tokenFile) are as written, relative to the manifest. */
export type OrganizationManifest = OrganizationSpec;

export interface CertificateManifest {
  certFile: string;
  keyFile: string;
  chainFile?: string;
  services: string[];
}

export interface TrustAnchorManifest {
  pemFile?: string;
  pem?: string;
  system?: boolean;
  crlFile?: string;
}

export type PartnerDomainManifest = PartnerDomainSpec;

/** requireTls stays absent when not written: it follows domainSecure, and DS014 needs to know. */
export type SendConnectorManifest = Omit<SendConnectorSpec, 'requireTls'> & {
  requireTls?: boolean;
};
export type ReceiveConnectorManifest = Omit<ReceiveConnectorSpec, 'requireTls'> & {
  requireTls?: boolean;
};

export type TlsPolicyManifest = TlsPolicySpec;

export interface ManifestObject<S = unknown> {
  kind: Kind;
  name: string;
  spec: S;
  document: ManifestDocument;
}

/** `SendConnector/to-partners`, as messages name objects (a name too long to be one, shortened). */
export function label(object: { kind: Kind; name: string }): string {
  return `${object.kind}/${shorten(object.name)}`;
}

/** A value as a message may quote it: whole when short, its start and length when not. */
export function shorten(value: string, room = 80): string {
  return value.length <= room ? value : `${value.slice(0, room)}... (${value.length} characters)`;
}

/** Where a field of the object's spec is written (see ManifestDocument.at). */
export function specAt(object: ManifestObject, path: FieldPath): SourcePosition {
  return object.document.at(['spec', ...path]);
}

/** Where the value of a field of the object's spec is written. */
export function specValueAt(object: ManifestObject, path: FieldPath): SourcePosition {
  return object.document.valueAt(['spec', ...path]);
}

/** Where the object's name is written. */
export function nameAt(object: ManifestObject): SourcePosition {
  return object.document.valueAt(['metadata', 'name']);
}

export function specWritten(object: ManifestObject, path: FieldPath): boolean {
  return object.document.has(['spec', ...path]);
}

/** The schema-valid objects, by kind, in file order. */
export interface ManifestSet {
  organizations: ManifestObject<OrganizationManifest>[];
  certificates: ManifestObject<CertificateManifest>[];
  trustAnchors: ManifestObject<TrustAnchorManifest>[];
  partners: ManifestObject<PartnerDomainManifest>[];
  sendConnectors: ManifestObject<SendConnectorManifest>[];
  receiveConnectors: ManifestObject<ReceiveConnectorManifest>[];
  tlsPolicies: ManifestObject<TlsPolicyManifest>[];
}

/**
 * Groups objects whose spec passed its schema; the cast is what the schema just checked (the
 * load tests compare a compiled configuration field by field with model.ts).
 */
export function groupByKind(objects: readonly ManifestObject[]): ManifestSet {
  const of = <S>(kind: Kind) =>
    objects.filter((object) => object.kind === kind) as ManifestObject<S>[];
  return {
    organizations: of('Organization'),
    certificates: of('Certificate'),
    trustAnchors: of('TrustAnchor'),
    partners: of('PartnerDomain'),
    sendConnectors: of('SendConnector'),
    receiveConnectors: of('ReceiveConnector'),
    tlsPolicies: of('TlsPolicy'),
  };
}
