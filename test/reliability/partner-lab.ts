// The reliability tests' world: treyresearch.net's engine (manifests and lab PKI on disk, as a user
// has them) receiving domain-secured mail from its partner adatum.com, whose certificate clients present.
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { IssuedCertificate } from '../../src/pki/lab.js';
import { ADATUM, TREY, writeLab, writeManifests } from '../support/manifests.js';
import { freePort } from '../support/ports.js';
import { submit, type SubmitOutcome } from '../support/smtp-submit.js';

export interface PartnerLab {
  manifests: string;
  /** The partner receive connector (domain security, TLS required). */
  port: number;
  /** The internal connector (relay permitted from loopback, plaintext allowed). */
  internalPort: number;
  /** The admin API's host:port. */
  admin: string;
  /** adatum's mail certificate, and the CA of treyresearch's server certificate. */
  client: { certificate: IssuedCertificate; serverCa: string };
}

/** Writes the lab under root; mail for adatum.com is routed to `partnerRoute` (default: closed port 9). */
export async function writePartnerLab(
  root: string,
  partnerRoute: { host: string; port: number } = { host: '127.0.0.1', port: 9 },
): Promise<PartnerLab> {
  await writeLab(root);
  const port = await freePort();
  const internalPort = await freePort();
  const admin = `127.0.0.1:${await freePort()}`;
  const manifests = await writeManifests({
    root,
    org: TREY,
    partner: ADATUM,
    partnerBinding: `127.0.0.1:${port}`,
    internalBinding: `127.0.0.1:${internalPort}`,
    adminListen: admin,
    partnerRoute,
    trust: 'root',
  });
  const adatumPki = join(root, ADATUM.name, 'pki');
  const certificate: IssuedCertificate = {
    certPem: await readFile(join(adatumPki, `${ADATUM.hostname}.crt`), 'utf8'),
    keyPem: await readFile(join(adatumPki, `${ADATUM.hostname}.key`), 'utf8'),
    fingerprint: '',
  };
  const serverCa = await readFile(join(adatumPki, `${TREY.name}-root.crt`), 'utf8');
  return { manifests, port, internalPort, admin, client: { certificate, serverCa } };
}

/** One message from adatum.com, marked with `X-Test-Id: <id>` so a mailbox can be checked for it. */
export function sendMarked(
  lab: PartnerLab,
  id: string,
  to: string[] = [`user@${TREY.domain}`],
): Promise<SubmitOutcome> {
  const message = [
    `From: sender@${ADATUM.domain}`,
    `To: ${to.join(', ')}`,
    `Subject: message ${id}`,
    `Message-ID: <${id}@${ADATUM.domain}>`,
    `X-Test-Id: ${id}`,
    '',
    `Body of message ${id}.`,
    '',
  ].join('\r\n');
  return submit(
    lab.port,
    { from: `sender@${ADATUM.domain}`, to },
    { ...lab.client, name: ADATUM.hostname },
    message,
  );
}

/** Every X-Test-Id found in the Maildirs under root (new/ and cur/), with how often each occurs. */
export async function deliveredIds(root: string): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  let domains: string[];
  try {
    domains = await readdir(root);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return counts;
    throw error;
  }
  for (const domain of domains) {
    for (const mailbox of await readdir(join(root, domain))) {
      for (const sub of ['new', 'cur']) {
        const dir = join(root, domain, mailbox, sub);
        for (const name of await readdir(dir).catch(() => [] as string[])) {
          const text = await readFile(join(dir, name), 'latin1');
          const id = /^X-Test-Id: (\S+)\r?$/m.exec(text)?.[1];
          if (id !== undefined) counts.set(id, (counts.get(id) ?? 0) + 1);
        }
      }
    }
  }
  return counts;
}

/** What the queue directory holds, by subdirectory (control, data, corrupt), temporary files included. */
export async function queueFiles(queueDir: string): Promise<Record<string, string[]>> {
  const listing: Record<string, string[]> = {};
  for (const sub of await readdir(queueDir)) {
    listing[sub] = await readdir(join(queueDir, sub)).catch(() => []);
  }
  return listing;
}
