// domsec certs: the lab PKI from the command line.
import { writeLabPki } from '../pki/organization.js';
import type { Output } from './output.js';
import { progressStep } from './progress.js';

export const STORY_ORGANIZATIONS = [
  { name: 'adatum', hostname: 'mail.adatum.com', domains: ['adatum.com'] },
  { name: 'treyresearch', hostname: 'mail.treyresearch.net', domains: ['treyresearch.net'] },
];

export async function certsLabCommand(dir: string, out: Output): Promise<number> {
  await writeLabPki(dir, STORY_ORGANIZATIONS, progressStep());
  for (const org of STORY_ORGANIZATIONS) {
    out.stdout(
      `${dir}/${org.name}/pki: ${org.name}-root.crt (CA), ${org.hostname}.crt and .key (mode 0600)\n`,
    );
  }
  return 0;
}
