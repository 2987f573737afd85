// The files manifests name (certificates, keys, chains, trust anchors, CRLs), read once per load
// and parsed, so that rules and compile work on contents and stay pure. A file that is missing,
// unreadable or not the PEM it should be becomes a FileProblem (DS016), which names the file and
// never shows what is in it.
import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import type {
  CertificateManifest,
  ManifestObject,
  ManifestSet,
  TrustAnchorManifest,
} from './manifest-objects.js';
import { pemBlocks, pemBlocksLabelled } from './pem.js';

export interface CertificateMaterial {
  certPem: string; // the leaf
  chainPem: string[]; // the rest of certFile, then chainFile
  keyPem: string;
  leaf: X509Certificate;
  key: KeyObject;
  /** Permission bits of the key file (POSIX), for DS104. */
  keyFileMode: number;
}

export interface AnchorMaterial {
  certificate?: X509Certificate;
  pem?: string;
  crlPem?: string;
  /** The inline `pem` holds no certificate that can be parsed (DS009). */
  inlineUnparsable?: boolean;
}

export interface FileProblem {
  object: ManifestObject;
  field: string; // certFile, keyFile, chainFile, pemFile, crlFile
  written: string; // the path as the manifest wrote it
  resolved: string; // absolute
  reason: string; // "does not exist", "holds no PEM certificate", ...
}

export interface Material {
  certificates: Map<ManifestObject, CertificateMaterial>;
  anchors: Map<ManifestObject, AnchorMaterial>;
  fileProblems: FileProblem[];
}

/** Larger than any PEM a mail server needs; guards against `certFile: /dev/zero`. */
const MAX_PEM_BYTES = 1024 * 1024;

export async function readMaterial(objects: ManifestSet): Promise<Material> {
  const material: Material = { certificates: new Map(), anchors: new Map(), fileProblems: [] };
  for (const object of objects.certificates) {
    const read = await readCertificate(object, material.fileProblems);
    if (read !== undefined) material.certificates.set(object, read);
  }
  for (const object of objects.trustAnchors) {
    material.anchors.set(object, await readAnchor(object, material.fileProblems));
  }
  return material;
}

type Reader = <T>(
  field: string,
  parse: (text: string) => T | string,
) => Promise<{ value: T; mode: number } | undefined>;

/** Reads a file named by a field of the object's spec; problems go to the list. */
function fileReader(object: ManifestObject, problems: FileProblem[]): Reader {
  return async (field, parse) => {
    const written = (object.spec as Record<string, unknown>)[field];
    if (typeof written !== 'string') return undefined;
    const resolved = resolve(object.document.directory, written);
    const problem = (reason: string) => {
      problems.push({ object, field, written, resolved, reason });
      return undefined;
    };
    let text: string;
    let mode: number;
    try {
      const info = await stat(resolved);
      if (!info.isFile()) return problem('is not a regular file');
      if (info.size > MAX_PEM_BYTES)
        return problem('is larger than 1 MB, too large for a PEM file');
      mode = info.mode & 0o777;
      text = await readFile(resolved, 'utf8');
    } catch (cause) {
      const code = (cause as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return problem('does not exist');
      if (code === 'EACCES' || code === 'EPERM')
        return problem('cannot be read (permission denied)');
      return problem(`cannot be read (${code ?? 'error'})`);
    }
    const parsed = parse(text);
    if (typeof parsed === 'string') return problem(parsed);
    return { value: parsed, mode };
  };
}

async function readCertificate(
  object: ManifestObject<CertificateManifest>,
  problems: FileProblem[],
): Promise<CertificateMaterial | undefined> {
  const read = fileReader(object, problems);
  const certs = await read('certFile', parseCertificates);
  const key = await read('keyFile', parsePrivateKey);
  const chain =
    object.spec.chainFile === undefined ? undefined : await read('chainFile', parseCertificates);
  if (certs === undefined || key === undefined) return undefined;
  if (object.spec.chainFile !== undefined && chain === undefined) return undefined;
  const [leaf, ...rest] = certs.value;
  if (leaf === undefined) return undefined;
  return {
    certPem: leaf.pem,
    chainPem: [...rest, ...(chain?.value ?? [])].map((c) => c.pem),
    keyPem: key.value.pem,
    leaf: leaf.certificate,
    key: key.value.key,
    keyFileMode: key.mode,
  };
}

async function readAnchor(
  object: ManifestObject<TrustAnchorManifest>,
  problems: FileProblem[],
): Promise<AnchorMaterial> {
  const read = fileReader(object, problems);
  const anchor: AnchorMaterial = {};
  if (object.spec.pemFile !== undefined) {
    const certs = await read('pemFile', (text) => {
      const parsed = parseCertificates(text);
      if (typeof parsed === 'string' || parsed.length === 1) return parsed;
      return `holds ${parsed.length} certificates; a TrustAnchor is one CA certificate (make one TrustAnchor per CA)`;
    });
    const only = certs?.value[0];
    if (only !== undefined) Object.assign(anchor, { certificate: only.certificate, pem: only.pem });
  } else if (object.spec.pem !== undefined) {
    const parsed = parseCertificates(object.spec.pem);
    const first = typeof parsed === 'string' ? undefined : parsed[0];
    if (first === undefined) anchor.inlineUnparsable = true;
    else Object.assign(anchor, { certificate: first.certificate, pem: first.pem });
  }
  if (object.spec.crlFile !== undefined) {
    const crl = await read('crlFile', (text) => {
      const blocks = pemBlocksLabelled(text, 'X509 CRL');
      return blocks.length > 0 ? blocks.join('') : 'holds no PEM CRL (-----BEGIN X509 CRL-----)';
    });
    if (crl !== undefined) anchor.crlPem = crl.value;
  }
  return anchor;
}

interface ParsedCertificate {
  pem: string;
  certificate: X509Certificate;
}

function parseCertificates(text: string): ParsedCertificate[] | string {
  const blocks = pemBlocksLabelled(text, 'CERTIFICATE');
  if (blocks.length === 0) return 'holds no PEM certificate (-----BEGIN CERTIFICATE-----)';
  const parsed: ParsedCertificate[] = [];
  for (const [index, pem] of blocks.entries()) {
    try {
      parsed.push({ pem, certificate: new X509Certificate(pem) });
    } catch {
      return `holds a certificate that cannot be parsed (number ${index + 1} in the file)`;
    }
  }
  return parsed;
}

function parsePrivateKey(text: string): { pem: string; key: KeyObject } | string {
  const blocks = pemBlocks(text).filter((block) => block.label.endsWith('PRIVATE KEY'));
  const first = blocks[0];
  if (first === undefined) return 'holds no PEM private key (-----BEGIN PRIVATE KEY-----)';
  if (first.label === 'ENCRYPTED PRIVATE KEY' || /^Proc-Type: 4,ENCRYPTED/m.test(first.text)) {
    return 'holds an encrypted private key; domsec needs it unencrypted and readable only by itself';
  }
  try {
    return { pem: first.text, key: createPrivateKey(first.text) };
  } catch {
    // The error could quote key material; the reason stays generic on purpose.
    return 'holds a private key that cannot be read';
  }
}
