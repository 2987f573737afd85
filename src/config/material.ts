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
  /** Where the field is in the spec when not at its top (tlsReporting.dkim.keyFile). */
  path?: readonly string[];
  written: string; // the path as the manifest wrote it
  resolved: string; // absolute
  reason: string; // "does not exist", "holds no PEM certificate", ...
}

/** The key that signs our mailed TLS reports (Organization tlsReporting.dkim.keyFile). */
export interface DkimKeyMaterial {
  object: ManifestObject;
  key: KeyObject;
  /** Permission bits of the key file (POSIX), for DS104. */
  keyFileMode: number;
}

export interface Material {
  certificates: Map<ManifestObject, CertificateMaterial>;
  anchors: Map<ManifestObject, AnchorMaterial>;
  fileProblems: FileProblem[];
  dkimKey?: DkimKeyMaterial;
}

/** Larger than any PEM a mail server needs; guards against `certFile: /dev/zero`. */
const MAX_PEM_BYTES = 1024 * 1024;

/** Files read at once: enough to keep the disk busy, few enough to stay under open-file limits. */
const CONCURRENT_READS = 64;

export async function readMaterial(objects: ManifestSet): Promise<Material> {
  const material: Material = { certificates: new Map(), anchors: new Map(), fileProblems: [] };
  const files = new FileCache();
  // Read concurrently (one file after another left the process idle on 10,000 anchors), then
  // record in the objects' order so that problems come out the same way every time.
  const certificates = await inBatches(objects.certificates, (object) =>
    readCertificate(object, files),
  );
  const anchors = await inBatches(objects.trustAnchors, (object) => readAnchor(object, files));
  for (const [index, object] of objects.certificates.entries()) {
    const read = certificates[index];
    material.fileProblems.push(...(read?.problems ?? []));
    if (read?.value !== undefined) material.certificates.set(object, read.value);
  }
  for (const [index, object] of objects.trustAnchors.entries()) {
    const read = anchors[index];
    material.fileProblems.push(...(read?.problems ?? []));
    if (read?.value !== undefined) material.anchors.set(object, read.value);
  }
  const [organization, ...others] = objects.organizations;
  const dkimFile = organization?.spec.tlsReporting?.dkim?.keyFile;
  if (organization !== undefined && others.length === 0 && dkimFile !== undefined) {
    const dkim = await readDkimKeyFile(organization, dkimFile, files);
    if ('reason' in dkim)
      material.fileProblems.push({
        object: organization,
        field: 'tlsReporting.dkim.keyFile',
        path: ['tlsReporting', 'dkim', 'keyFile'],
        written: dkimFile,
        resolved: resolve(organization.document.directory, dkimFile),
        reason: dkim.reason,
      });
    else material.dkimKey = dkim;
  }
  return material;
}

/** The DKIM key: an unencrypted RSA private key of 1024 bits or more (RFC 8301 §3.2). */
async function readDkimKeyFile(
  object: ManifestObject,
  written: string,
  files: FileCache,
): Promise<DkimKeyMaterial | { reason: string }> {
  const read = await files.read(resolve(object.document.directory, written));
  if ('reason' in read) return read;
  const parsed = files.parse(parsePrivateKey, read.text);
  if (typeof parsed === 'string') return { reason: parsed };
  if (parsed.key.asymmetricKeyType !== 'rsa')
    return { reason: 'holds no RSA key (DKIM signs our TLS reports with rsa-sha256)' };
  const bits = parsed.key.asymmetricKeyDetails?.modulusLength ?? 0;
  if (bits < 1024)
    return { reason: `holds an RSA key of ${bits} bits; DKIM needs 1024 or more (2048 advised)` };
  return { object, key: parsed.key, keyFileMode: read.mode };
}

async function inBatches<T, R>(items: readonly T[], work: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = [];
  for (let first = 0; first < items.length; first += CONCURRENT_READS) {
    results.push(...(await Promise.all(items.slice(first, first + CONCURRENT_READS).map(work))));
  }
  return results;
}

type FileRead = { text: string; mode: number } | { reason: string };

/** Each file read once per load, however many objects name it (a CA shared by partners). */
class FileCache {
  private readonly reads = new Map<string, Promise<FileRead>>();
  private readonly parsed = new Map<(text: string) => unknown, Map<string, unknown>>();

  read(path: string): Promise<FileRead> {
    let read = this.reads.get(path);
    if (read === undefined) {
      read = readPemFile(path);
      this.reads.set(path, read);
    }
    return read;
  }

  /** parse(text), computed once per parser and text. */
  parse<T>(parse: (text: string) => T, text: string): T {
    const byText = this.parsed.get(parse) ?? new Map<string, unknown>();
    this.parsed.set(parse, byText);
    if (!byText.has(text)) byText.set(text, parse(text));
    return byText.get(text) as T;
  }
}

async function readPemFile(path: string): Promise<FileRead> {
  try {
    const info = await stat(path);
    if (!info.isFile()) return { reason: 'is not a regular file' };
    if (info.size > MAX_PEM_BYTES)
      return { reason: 'is larger than 1 MB, too large for a PEM file' };
    return { text: await readFile(path, 'utf8'), mode: info.mode & 0o777 };
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return { reason: 'does not exist' };
    if (code === 'EACCES' || code === 'EPERM')
      return { reason: 'cannot be read (permission denied)' };
    return { reason: `cannot be read (${code ?? 'error'})` };
  }
}

interface Read<T> {
  value: T | undefined;
  problems: FileProblem[];
}

type Reader = <T>(
  field: string,
  parse: (text: string) => T | string,
) => Promise<{ value: T; mode: number } | undefined>;

/** Reads a file named by a field of the object's spec; problems go to the list. */
function fileReader(object: ManifestObject, files: FileCache, problems: FileProblem[]): Reader {
  return async (field, parse) => {
    const written = (object.spec as Record<string, unknown>)[field];
    if (typeof written !== 'string') return undefined;
    const resolved = resolve(object.document.directory, written);
    const problem = (reason: string) => {
      problems.push({ object, field, written, resolved, reason });
      return undefined;
    };
    const read = await files.read(resolved);
    if ('reason' in read) return problem(read.reason);
    const parsed = files.parse(parse, read.text);
    if (typeof parsed === 'string') return problem(parsed);
    return { value: parsed, mode: read.mode };
  };
}

async function readCertificate(
  object: ManifestObject<CertificateManifest>,
  files: FileCache,
): Promise<Read<CertificateMaterial>> {
  const problems: FileProblem[] = [];
  return { value: await readCertificateFiles(object, files, problems), problems };
}

async function readCertificateFiles(
  object: ManifestObject<CertificateManifest>,
  files: FileCache,
  problems: FileProblem[],
): Promise<CertificateMaterial | undefined> {
  const read = fileReader(object, files, problems);
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
  files: FileCache,
): Promise<Read<AnchorMaterial>> {
  const problems: FileProblem[] = [];
  const read = fileReader(object, files, problems);
  const anchor: AnchorMaterial = {};
  if (object.spec.pemFile !== undefined) {
    const certs = await read('pemFile', parseAnchorCertificate);
    const only = certs?.value[0];
    if (only !== undefined) Object.assign(anchor, { certificate: only.certificate, pem: only.pem });
  } else if (object.spec.pem !== undefined) {
    const parsed = parseCertificates(object.spec.pem);
    const first = typeof parsed === 'string' ? undefined : parsed[0];
    if (first === undefined) anchor.inlineUnparsable = true;
    else Object.assign(anchor, { certificate: first.certificate, pem: first.pem });
  }
  if (object.spec.crlFile !== undefined) {
    const crl = await read('crlFile', parseCrl);
    if (crl !== undefined) anchor.crlPem = crl.value.pem;
  }
  return { value: anchor, problems };
}

/** A parser's string result is a problem, so the CRL comes back wrapped. */
function parseCrl(text: string): { pem: string } | string {
  const blocks = pemBlocksLabelled(text, 'X509 CRL');
  return blocks.length > 0
    ? { pem: blocks.join('') }
    : 'holds no PEM CRL (-----BEGIN X509 CRL-----)';
}

function parseAnchorCertificate(text: string): ParsedCertificate[] | string {
  const parsed = parseCertificates(text);
  if (typeof parsed === 'string' || parsed.length === 1) return parsed;
  return `holds ${parsed.length} certificates; a TrustAnchor is one CA certificate (make one TrustAnchor per CA)`;
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
