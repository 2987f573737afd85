// Manifest directories for tests: one organization of the story, on addresses the test chose,
// with its lab PKI written beside it (so file references resolve like a user's checkout).
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeLabPki } from '../../src/pki/organization.js';

export interface Organization {
  name: string;
  hostname: string;
  domain: string;
}

export const ADATUM: Organization = {
  name: 'adatum',
  hostname: 'mail.adatum.com',
  domain: 'adatum.com',
};
export const TREY: Organization = {
  name: 'treyresearch',
  hostname: 'mail.treyresearch.net',
  domain: 'treyresearch.net',
};

export interface ManifestOptions {
  root: string; // the lab: root/<org.name>/ holds manifests and pki/
  org: Organization;
  partner: Organization;
  partnerBinding: string; // e.g. "127.0.0.1:0"
  internalBinding: string;
  adminListen: string;
  /** Where mail for the partner goes (the partner's partner binding). */
  partnerRoute: { host: string; port: number };
  /** "root" trusts the partner's lab CA; "system" only public CAs (the demo's "before"). */
  trust: 'root' | 'system';
}

/** Writes both organizations' lab PKI under root (roots exchanged), once per lab. */
export async function writeLab(root: string): Promise<void> {
  await writeLabPki(
    root,
    [ADATUM, TREY].map((o) => ({ name: o.name, hostname: o.hostname, domains: [o.domain] })),
  );
}

export async function writeManifests(options: ManifestOptions): Promise<string> {
  const { org, partner } = options;
  const dir = join(options.root, org.name);
  await mkdir(join(dir, 'partners'), { recursive: true });
  await writeFile(
    join(dir, 'organization.yaml'),
    `apiVersion: domsec.io/v1alpha1
kind: Organization
metadata: {name: ${org.name}}
spec:
  hostname: ${org.hostname}
  acceptedDomains: [${org.domain}]
  certificate: mail
  queue: {retry: [1m]}
  resolver:
    static:
      ${partner.domain}: [{host: ${options.partnerRoute.host}, port: ${options.partnerRoute.port}}]
  admin: {listen: "${options.adminListen}"}
---
apiVersion: domsec.io/v1alpha1
kind: Certificate
metadata: {name: mail}
spec: {certFile: pki/${org.hostname}.crt, keyFile: pki/${org.hostname}.key}
`,
  );
  await writeFile(
    join(dir, 'partners', `${partner.name}.yaml`),
    partnerManifest(partner, options.trust),
  );
  await writeFile(
    join(dir, 'connectors.yaml'),
    `apiVersion: domsec.io/v1alpha1
kind: SendConnector
metadata: {name: to-partners}
spec:
  addressSpaces: [${partner.domain}]
  routing: {dnsMx: {}}
  domainSecure: true
---
apiVersion: domsec.io/v1alpha1
kind: ReceiveConnector
metadata: {name: from-partners}
spec:
  bindings: ["${options.partnerBinding}"]
  authMechanisms: [tls]
  domainSecure: true
---
apiVersion: domsec.io/v1alpha1
kind: ReceiveConnector
metadata: {name: internal}
spec:
  bindings: ["${options.internalBinding}"]
  remoteIPRanges: [127.0.0.0/8]
  permitRelay: true
`,
  );
  return dir;
}

export function partnerManifest(
  partner: Organization,
  trust: 'root' | 'system',
  send = true,
): string {
  const anchor =
    trust === 'root'
      ? `---
apiVersion: domsec.io/v1alpha1
kind: TrustAnchor
metadata: {name: ${partner.name}-root}
spec: {pemFile: ../pki/${partner.name}-root.crt}
`
      : '';
  return `apiVersion: domsec.io/v1alpha1
kind: PartnerDomain
metadata: {name: ${partner.name}}
spec:
  domain: ${partner.domain}
  domainSecure: {send: ${send}, receive: true}
  trustAnchors: [${trust === 'root' ? `${partner.name}-root` : 'system'}]
  remoteIPRanges: [127.0.0.0/8]
${anchor}`;
}
