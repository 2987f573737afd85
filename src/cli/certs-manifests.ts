// domsec certs lab -f DIR: a lab PKI at the paths the manifests in DIR name, so a starter set
// (manifests/) validates before real certificates exist: a CA and the Organization's certificate
// for its hostname and accepted domains, and a stand-in root for each partner's TrustAnchor.
import { access, mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { displayPath, findManifestFiles } from '../config/manifest-files.js';
import { createCertificateAuthority, issueCertificate } from '../pki/lab.js';
import { writeSecret } from '../pki/organization.js';
import { CliError } from './errors.js';
import type { WrittenFile } from './certs.js';
import { jsonText, type Output, type OutputFormat } from './output.js';

interface ManifestEntry {
  kind?: unknown;
  metadata?: { name?: unknown };
  spec?: Record<string, unknown>;
  /** The directory of the file it came from: its relative paths start there. */
  directory: string;
}

async function readEntries(paths: string[]): Promise<ManifestEntry[]> {
  const discovery = await findManifestFiles(paths);
  const first = discovery.diagnostics[0];
  if (first !== undefined) throw new CliError(`${first.file}: ${first.message}`);
  const entries: ManifestEntry[] = [];
  for (const file of discovery.files) {
    for (const document of parseAllDocuments(await readFile(file.path, 'utf8'))) {
      const value: unknown = document.toJS();
      if (typeof value === 'object' && value !== null)
        entries.push({
          ...(value as Omit<ManifestEntry, 'directory'>),
          directory: dirname(file.path),
        });
    }
  }
  return entries;
}

const text = (value: unknown): string | undefined =>
  typeof value === 'string' ? value : undefined;

export async function certsLabForManifests(
  paths: string[],
  out: Output,
  options: { force?: boolean; output?: OutputFormat } = {},
): Promise<number> {
  const entries = await readEntries(paths);
  const organization = entries.find((entry) => entry.kind === 'Organization');
  const name = text(organization?.metadata?.name);
  const hostname = text(organization?.spec?.hostname);
  if (organization === undefined || name === undefined || hostname === undefined)
    throw new CliError(`no Organization with a name and hostname in ${paths.join(', ')}`);
  const domains = (
    Array.isArray(organization.spec?.acceptedDomains) ? organization.spec.acceptedDomains : []
  ).filter((domain): domain is string => typeof domain === 'string');
  const certificateName = text(organization.spec?.certificate);
  const certificate = entries.find(
    (entry) => entry.kind === 'Certificate' && entry.metadata?.name === certificateName,
  );
  const certFile = text(certificate?.spec?.certFile);
  const keyFile = text(certificate?.spec?.keyFile);
  if (certificate === undefined || certFile === undefined || keyFile === undefined)
    throw new CliError(
      `the Organization's certificate ${certificateName ?? '(none)'} has no Certificate with certFile and keyFile`,
    );
  const certPath = resolve(certificate.directory, certFile);
  const keyPath = resolve(certificate.directory, keyFile);
  const rootPath = join(dirname(certPath), `${name}-lab-root.crt`);
  const rootKeyPath = join(dirname(certPath), `${name}-lab-root.key`);
  const anchors = entries.flatMap((entry) => {
    const pemFile = text(entry.spec?.pemFile);
    const anchorName = text(entry.metadata?.name);
    return entry.kind === 'TrustAnchor' && pemFile !== undefined && anchorName !== undefined
      ? [{ name: anchorName, path: resolve(entry.directory, pemFile) }]
      : [];
  });

  const targets = [certPath, keyPath, rootPath, rootKeyPath, ...anchors.map((a) => a.path)];
  if (options.force !== true) {
    const existing: string[] = [];
    for (const path of targets)
      if (
        await access(path).then(
          () => true,
          () => false,
        )
      )
        existing.push(path);
    if (existing.length > 0)
      throw new CliError(
        `${existing.map((path) => displayPath(path)).join(', ')} already exist(s): not replacing a CA and its keys without --force`,
      );
  }

  const root = createCertificateAuthority({
    commonName: `${name} lab root CA`,
    organization: name,
    pathLength: 0,
  });
  const mail = issueCertificate(root, {
    commonName: hostname,
    organization: name,
    dnsNames: [...new Set([hostname, ...domains])],
    extendedKeyUsage: ['serverAuth', 'clientAuth'],
  });
  for (const path of targets) await mkdir(dirname(path), { recursive: true });
  await writeFile(rootPath, root.certPem);
  await writeSecret(rootKeyPath, root.keyPem);
  await writeFile(certPath, mail.certPem);
  await writeSecret(keyPath, mail.keyPem);
  const shown = (path: string) => displayPath(path);
  const lines: string[] = [
    `${shown(rootPath)}: a lab CA (key beside it, mode 0600), for your partner to trust\n`,
    `${shown(certPath)} and ${shown(keyPath)}: ${[...new Set([hostname, ...domains])].join(', ')}\n`,
  ];
  const written: WrittenFile[] = [
    { path: shown(rootPath), holds: 'ca-certificate' },
    { path: shown(rootKeyPath), holds: 'ca-key' },
    { path: shown(certPath), holds: 'certificate' },
    { path: shown(keyPath), holds: 'key' },
  ];
  for (const anchor of anchors) {
    // The partner's real root comes from its administrators; this one only lets validate pass.
    const stand = createCertificateAuthority({
      commonName: `${anchor.name} lab stand-in CA`,
      organization: anchor.name,
      pathLength: 0,
    });
    await writeFile(anchor.path, stand.certPem);
    lines.push(
      `${anchor.path}: a stand-in for ${anchor.name}; replace it with the partner's root\n`,
    );
    written.push({ path: anchor.path, holds: 'partner-ca-certificate' });
  }
  out.stdout(options.output === 'json' ? jsonText({ written }) : lines.join(''));
  return 0;
}
