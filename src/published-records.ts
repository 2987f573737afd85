// The DNS records our side publishes, as pure functions of the configuration's parts: the TLSA
// record (DANE-EE 3 1 1) of our certificate's key, and our MTA-STS policy file with the `id` of
// its `_mta-sts` TXT record. Shared by the CLI (`dns records`) and whatever serves the policy.
import { createHash, type X509Certificate } from 'node:crypto';

/** 3 1 1: DANE-EE, SubjectPublicKeyInfo, SHA-256 (RFC 7671 §5.1 recommends it: it survives renewal with the same key). */
export function daneEeKeyDigest(cert: X509Certificate): string {
  return createHash('sha256')
    .update(cert.publicKey.export({ type: 'spki', format: 'der' }))
    .digest('hex');
}

export interface PublishedStsPolicy {
  mode: 'enforce' | 'testing' | 'none';
  mx: readonly string[];
  maxAge: number;
}

/** The policy file (RFC 8461 §3.2): CRLF lines, the mx patterns in the order given. */
export function formatStsPolicy(policy: PublishedStsPolicy): string {
  const lines = [
    'version: STSv1',
    `mode: ${policy.mode}`,
    ...policy.mx.map((pattern) => `mx: ${pattern}`),
    `max_age: ${policy.maxAge}`,
  ];
  return lines.map((line) => `${line}\r\n`).join('');
}

/**
 * Our policy file as the Organization declares it (its `mx` patterns, or our hostname when it
 * lists none), or undefined when it declares no policy. `dns records` prints it and `serve`
 * answers it: one text, so the id printed is the hash of what is served.
 */
export function ourStsPolicyFile(organization: {
  hostname: string;
  mtaSts?: { mode: PublishedStsPolicy['mode']; mx: readonly string[]; maxAge: number };
}): string | undefined {
  const declared = organization.mtaSts;
  if (declared === undefined) return undefined;
  return formatStsPolicy({
    mode: declared.mode,
    mx: declared.mx.length > 0 ? declared.mx : [organization.hostname],
    maxAge: declared.maxAge,
  });
}

/**
 * The `id` of the `_mta-sts` TXT record: the first 32 hex digits of the policy file's SHA-256,
 * so that it changes exactly when the policy does (senders fetch again when the id changes).
 */
export function stsPolicyId(policyFile: string): string {
  return createHash('sha256').update(policyFile, 'utf8').digest('hex').slice(0, 32);
}
