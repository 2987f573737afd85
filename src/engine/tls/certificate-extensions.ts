// The X.509 v3 extensions of a certificate as peer verification reads them (RFC 5280 §4.2): each
// one's OID and criticality, and the values of those that decide purpose and naming. Read from
// the DER with der.ts, once per parsed certificate; what cannot be read is a value, not a throw.
import type { X509Certificate } from 'node:crypto';
import { derChildren, derElement, DerError, derOid, type DerElement } from '../../der.js';

export const EXTENSION = {
  basicConstraints: '2.5.29.19',
  keyUsage: '2.5.29.15',
  extendedKeyUsage: '2.5.29.37',
  subjectAltName: '2.5.29.17',
  nameConstraints: '2.5.29.30',
  netscapeCertType: '2.16.840.1.113730.1.1',
} as const;

/** RFC 5280 §4.2.1.3, in bit order. */
const KEY_USAGE_BITS = [
  'digitalSignature',
  'nonRepudiation',
  'keyEncipherment',
  'dataEncipherment',
  'keyAgreement',
  'keyCertSign',
  'cRLSign',
  'encipherOnly',
  'decipherOnly',
] as const;
export type KeyUsageBit = (typeof KEY_USAGE_BITS)[number];

/** GeneralName forms (RFC 5280 §4.2.1.6) by their context tag number. */
const GENERAL_NAME_FORMS = [
  'otherName',
  'rfc822Name',
  'dNSName',
  'x400Address',
  'directoryName',
  'ediPartyName',
  'uniformResourceIdentifier',
  'iPAddress',
  'registeredID',
] as const;
export type GeneralNameForm = (typeof GENERAL_NAME_FORMS)[number];

export interface GeneralName {
  form: GeneralNameForm;
  /** The text of an rfc822Name, dNSName or URI; '' for the other forms. */
  text: string;
}

export interface NameSubtree {
  base: GeneralName;
  /** minimum other than 0 or any maximum: RFC 5280 §4.2.1.10 forbids both. */
  bounded: boolean;
}

export interface CertificateExtensions {
  /** Every extension, in order, by OID. */
  present: readonly { oid: string; critical: boolean }[];
  basicConstraints?: { ca: boolean; pathLength: number | undefined };
  keyUsage?: ReadonlySet<KeyUsageBit>;
  /** Extended Key Usage OIDs. */
  extendedKeyUsage?: ReadonlySet<string>;
  /** The Netscape Cert Type bits TLS cares about. */
  netscapeCertType?: { sslClient: boolean; sslServer: boolean };
  subjectAltNames: readonly GeneralName[];
  nameConstraints?: { permitted: readonly NameSubtree[]; excluded: readonly NameSubtree[] };
}

/** The extensions, or why they cannot be read (a certificate that is refused). */
export type ExtensionReading = { extensions: CertificateExtensions } | { problem: string };

const SEQUENCE = 0x30;
const BOOLEAN = 0x01;
const INTEGER = 0x02;
const BIT_STRING = 0x03;
const OCTET_STRING = 0x04;
const OID = 0x06;
const EXTENSIONS_TAG = 0xa3; // [3] EXPLICIT in TBSCertificate

const readings = new WeakMap<X509Certificate, ExtensionReading>();

/**
 * A certificate's reading, computed once. Keyed by the certificate object, a pure function of its
 * bytes: an entry lives exactly as long as its certificate (peer certificates are kept in a bounded
 * memo by fingerprint, anchors with their generation), so this holds nothing they do not.
 */
export function certificateExtensions(certificate: X509Certificate): ExtensionReading {
  let reading = readings.get(certificate);
  if (reading === undefined) {
    reading = readExtensions(certificate.raw);
    readings.set(certificate, reading);
  }
  return reading;
}

function readExtensions(der: Uint8Array): ExtensionReading {
  try {
    const tbs = derElement(der, derElement(der, 0, SEQUENCE).start, SEQUENCE);
    const holder = derChildren(der, tbs).find((field) => field.tag === EXTENSIONS_TAG);
    const extensions: CertificateExtensions = { present: [], subjectAltNames: [] };
    if (holder === undefined) return { extensions };
    const present: { oid: string; critical: boolean }[] = [];
    for (const extension of derChildren(der, derElement(der, holder.start, SEQUENCE))) {
      const [id, second, third] = derChildren(der, extension);
      if (id?.tag !== OID) throw new DerError('extension without an OID');
      const critical = second?.tag === BOOLEAN && der[second.start] !== 0;
      const value = second?.tag === BOOLEAN ? third : second;
      if (value?.tag !== OCTET_STRING) throw new DerError('extension without a value');
      const oid = derOid(der, id);
      // RFC 5280 §4.2: "A certificate MUST NOT include more than one instance of an extension."
      if (present.some((seen) => seen.oid === oid))
        return { problem: `has extension ${oid} twice` };
      present.push({ oid, critical });
      readValue(der, oid, derElement(der, value.start), extensions);
    }
    return { extensions: { ...extensions, present } };
  } catch (error) {
    if (error instanceof DerError) return { problem: `has extensions that cannot be read` };
    throw error;
  }
}

/** Fills in the extension's field when it is one that verification interprets. */
function readValue(der: Uint8Array, oid: string, value: DerElement, into: CertificateExtensions) {
  switch (oid) {
    case EXTENSION.basicConstraints: {
      const fields = derChildren(der, expect(value, SEQUENCE));
      const flag = fields[0]?.tag === BOOLEAN ? fields.shift() : undefined;
      const length = fields[0];
      into.basicConstraints = {
        ca: flag !== undefined && der[flag.start] !== 0,
        pathLength: length === undefined ? undefined : unsigned(der, expect(length, INTEGER)),
      };
      return;
    }
    case EXTENSION.keyUsage:
      into.keyUsage = new Set(KEY_USAGE_BITS.filter((_, bit) => bitSet(der, value, bit)));
      return;
    case EXTENSION.extendedKeyUsage:
      into.extendedKeyUsage = new Set(
        derChildren(der, expect(value, SEQUENCE)).map((usage) => derOid(der, expect(usage, OID))),
      );
      return;
    case EXTENSION.netscapeCertType:
      expect(value, BIT_STRING);
      into.netscapeCertType = {
        sslClient: bitSet(der, value, 0),
        sslServer: bitSet(der, value, 1),
      };
      return;
    case EXTENSION.subjectAltName:
      into.subjectAltNames = derChildren(der, expect(value, SEQUENCE)).map((name) =>
        generalName(der, name),
      );
      return;
    case EXTENSION.nameConstraints: {
      const subtrees = { permitted: [] as NameSubtree[], excluded: [] as NameSubtree[] };
      for (const part of derChildren(der, expect(value, SEQUENCE))) {
        const list =
          part.tag === 0xa0
            ? subtrees.permitted
            : part.tag === 0xa1
              ? subtrees.excluded
              : undefined;
        if (list === undefined) throw new DerError('name constraints of an unknown kind');
        for (const subtree of derChildren(der, part)) {
          const [base, ...bounds] = derChildren(der, expect(subtree, SEQUENCE));
          if (base === undefined) throw new DerError('a subtree without a base');
          const bounded = bounds.some((bound) => bound.tag !== 0x80 || unsigned(der, bound) !== 0);
          list.push({ base: generalName(der, base), bounded });
        }
      }
      into.nameConstraints = subtrees;
      return;
    }
    default:
      return;
  }
}

function expect(element: DerElement, tag: number): DerElement {
  if (element.tag !== tag) throw new DerError(`tag 0x${element.tag.toString(16)}`);
  return element;
}

/** Bit `bit` of a BIT STRING (its first content octet counts the unused bits). */
function bitSet(der: Uint8Array, value: DerElement, bit: number): boolean {
  expect(value, BIT_STRING);
  const octet = value.start + 1 + Math.floor(bit / 8);
  return octet < value.end && ((der[octet] ?? 0) & (0x80 >> (bit % 8))) !== 0;
}

/** A non-negative INTEGER; anything above 2^32 is as good as unbounded for a path length. */
function unsigned(der: Uint8Array, { start, end }: DerElement): number {
  if (end === start || (der[start] ?? 0) & 0x80) throw new DerError('a negative integer');
  let value = 0;
  for (let at = start; at < end; at += 1) value = Math.min(value * 256 + (der[at] ?? 0), 2 ** 32);
  return value;
}

function generalName(der: Uint8Array, element: DerElement): GeneralName {
  const form = (element.tag & 0xc0) === 0x80 ? GENERAL_NAME_FORMS[element.tag & 0x1f] : undefined;
  if (form === undefined) throw new DerError('not a GeneralName');
  const textual =
    form === 'rfc822Name' || form === 'dNSName' || form === 'uniformResourceIdentifier';
  const text = textual
    ? Buffer.from(der.subarray(element.start, element.end)).toString('latin1')
    : '';
  return { form, text };
}
