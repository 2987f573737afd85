// A lab PKI for organizations: per organization a root CA and a mail certificate for its EHLO
// hostname and domains, written beside its manifests; then each organization receives the others'
// roots, as administrators exchange them before turning on domain security.
import { chmod, mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createCertificateAuthority, issueCertificate } from './lab.js';

export interface LabOrganization {
  /** The directory name under the lab directory, and the prefix of its root's files. */
  name: string;
  hostname: string;
  domains: string[];
}

/**
 * Writes, for each organization, `dir/<name>/pki/`: `<name>-root.crt` and `.key` (a CA that can
 * sign end-entity certificates only), `<hostname>.crt` and `.key` (SAN: the hostname and the
 * domains; EKU serverAuth and clientAuth), and every other organization's `<other>-root.crt`.
 * Keys are written mode 0600. Existing files are replaced.
 */
export async function writeLabPki(
  dir: string,
  orgs: LabOrganization[],
  /** Runs each organization's work; the command line shows it as progress on a terminal. */
  step: <T>(label: string, work: () => Promise<T>) => Promise<T> = (_label, work) => work(),
): Promise<void> {
  const roots = new Map<string, string>();
  for (const org of orgs) {
    await step(`${org.name}: a root CA and a certificate for ${org.hostname}`, () =>
      writeOrganization(dir, org, roots),
    );
  }
  for (const org of orgs) {
    for (const [other, certPem] of roots) {
      if (other !== org.name)
        await writeFile(join(dir, org.name, 'pki', `${other}-root.crt`), certPem);
    }
  }
}

async function writeOrganization(
  dir: string,
  org: LabOrganization,
  roots: Map<string, string>,
): Promise<void> {
  const pki = join(dir, org.name, 'pki');
  await mkdir(pki, { recursive: true });
  const root = createCertificateAuthority({
    commonName: `${org.name} lab root CA`,
    organization: org.name,
    pathLength: 0,
  });
  const mail = issueCertificate(root, {
    commonName: org.hostname,
    organization: org.name,
    dnsNames: [...new Set([org.hostname, ...org.domains])],
    extendedKeyUsage: ['serverAuth', 'clientAuth'],
  });
  await writeFile(join(pki, `${org.name}-root.crt`), root.certPem);
  await writeSecret(join(pki, `${org.name}-root.key`), root.keyPem);
  await writeFile(join(pki, `${org.hostname}.crt`), mail.certPem);
  await writeSecret(join(pki, `${org.hostname}.key`), mail.keyPem);
  roots.set(org.name, root.certPem);
}

/** A private key's file: written new, mode 0600 whatever the umask. */
export async function writeSecret(path: string, text: string): Promise<void> {
  // writeFile's mode applies only when it creates the file: never write a key into an old file
  // that others could read. The umask can only take bits away; chmod makes it exactly 0600.
  await rm(path, { force: true });
  await writeFile(path, text, { mode: 0o600, flag: 'wx' });
  await chmod(path, 0o600);
}
