// domsec certs: the lab PKI from the command line; an existing CA is replaced only with --force.
import { access } from 'node:fs/promises';
import { join } from 'node:path';
import { writeLabPki } from '../pki/organization.js';
import { CliError } from './errors.js';
import { jsonText, type Output, type OutputFormat } from './output.js';
import { progressStep } from './progress.js';

export const STORY_ORGANIZATIONS = [
  { name: 'adatum', hostname: 'mail.adatum.com', domains: ['adatum.com'] },
  { name: 'treyresearch', hostname: 'mail.treyresearch.net', domains: ['treyresearch.net'] },
];

/** A file certs lab wrote, as -o json lists it. */
export interface WrittenFile {
  path: string;
  holds: 'ca-certificate' | 'ca-key' | 'certificate' | 'key' | 'partner-ca-certificate';
}

export async function certsLabCommand(
  dir: string,
  out: Output,
  options: { force?: boolean; output?: OutputFormat } = {},
): Promise<number> {
  if (options.force !== true) {
    const existing = await existingLabFiles(dir);
    // A new CA silently replacing the old one breaks every partner that trusts the old root.
    if (existing.length > 0)
      throw new CliError(
        `${existing.join(', ')} already exist(s): not replacing a CA and its keys without --force`,
      );
  }
  await writeLabPki(dir, STORY_ORGANIZATIONS, progressStep());
  if (options.output === 'json') {
    const written: WrittenFile[] = STORY_ORGANIZATIONS.flatMap((org) => {
      const pki = join(dir, org.name, 'pki');
      return [
        { path: join(pki, `${org.name}-root.crt`), holds: 'ca-certificate' as const },
        { path: join(pki, `${org.name}-root.key`), holds: 'ca-key' as const },
        { path: join(pki, `${org.hostname}.crt`), holds: 'certificate' as const },
        { path: join(pki, `${org.hostname}.key`), holds: 'key' as const },
        ...STORY_ORGANIZATIONS.filter((other) => other !== org).map((other) => ({
          path: join(pki, `${other.name}-root.crt`),
          holds: 'partner-ca-certificate' as const,
        })),
      ];
    });
    out.stdout(jsonText({ written }));
    return 0;
  }
  for (const org of STORY_ORGANIZATIONS) {
    out.stdout(
      `${dir}/${org.name}/pki: ${org.name}-root.crt (CA), ${org.hostname}.crt and .key (mode 0600)\n`,
    );
  }
  return 0;
}

/** The CA and key files `certs lab` would overwrite in dir. */
async function existingLabFiles(dir: string): Promise<string[]> {
  const candidates = STORY_ORGANIZATIONS.flatMap((org) => {
    const pki = join(dir, org.name, 'pki');
    return [
      join(pki, `${org.name}-root.crt`),
      join(pki, `${org.name}-root.key`),
      join(pki, `${org.hostname}.key`),
    ];
  });
  const found: string[] = [];
  for (const path of candidates) {
    const exists = await access(path).then(
      () => true,
      () => false,
    );
    if (exists) found.push(path);
  }
  return found;
}
