// Fetching an MTA-STS policy (RFC 8461 §3.3): GET https://mta-sts.<domain>/.well-known/mta-sts.txt
// with PKIX verification of the policy host (the platform's CA store, plus the extra CAs a lab
// configures), no redirects, a 200 with text/plain only, bounded in size and time. The policy
// host's address comes from the policy resolver, like every other name of the look-up, and is
// refused when it is internal (the domain's DNS names it, so it could aim us at our own
// services): the connection goes to the very addresses checked, resolved once (no rebinding).
import { X509Certificate } from 'node:crypto';
import { request } from 'node:https';
import { rootCertificates, type PeerCertificate } from 'node:tls';
import type { LookupFunction } from 'node:net';
import { MAX_POLICY_BYTES, parseStsPolicy, type StsPolicy } from './mta-sts-policy.js';
import { coversHost, subjectAltDnsNames } from '../../certificate-names.js';
import { firstInternal } from './internal-addresses.js';
import type { PolicyResolver } from './resolver.js';
import type { DomainName } from '../../domain-name.js';

export interface StsFetchOptions {
  resolver: PolicyResolver;
  /** PEM CA certificates trusted besides the platform's (labs and tests only). */
  extraCas?: readonly string[];
  /** The policy host's port; 443 but in labs. */
  port?: number;
  /** The whole fetch, connect to last byte (default 20 s). */
  timeoutMs?: number;
  /**
   * Policy hosts at loopback, private, link-local or reserved addresses are fetched from (the
   * Organization's allowInternalPolicyHosts: labs and tests only). Default: refused.
   */
  allowInternalAddresses?: boolean;
}

/** What kind of failure, as TLS reporting (RFC 8460 §4.3.2.2) names it. */
export type StsFetchFailure =
  'sts-policy-fetch-error' | 'sts-policy-invalid' | 'sts-webpki-invalid';

export class StsFetchError extends Error {
  override name = 'StsFetchError';
  constructor(
    message: string,
    readonly failure: StsFetchFailure = 'sts-policy-fetch-error',
  ) {
    super(message);
  }
}

/** OpenSSL's and Node's codes for a certificate that does not verify (PKIX or the name). */
const WEBPKI_CODES = new Set([
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'CERT_UNTRUSTED',
  'CERT_REVOKED',
  'CERT_SIGNATURE_FAILURE',
  'INVALID_CA',
]);

/** Undefined when the certificate names the policy host in its subjectAltName, else why not. */
function policyHostIdentity(host: string, certificate: PeerCertificate): Error | undefined {
  let names: string[];
  try {
    names = subjectAltDnsNames(new X509Certificate(certificate.raw));
  } catch {
    names = [];
  }
  if (coversHost(names, host)) return undefined;
  const error: NodeJS.ErrnoException = new Error(
    `the certificate names ${names.join(', ') || 'nothing in its subjectAltName'}, not ${host}`,
  );
  error.code = 'ERR_TLS_CERT_ALTNAME_INVALID';
  return error;
}

/** The policy host of a domain. */
export function policyHost(domain: DomainName): string {
  return `mta-sts.${domain}`;
}

export async function fetchStsPolicy(
  domain: DomainName,
  options: StsFetchOptions,
): Promise<StsPolicy> {
  const host = policyHost(domain);
  const text = await get(host, options);
  const parsed = parseStsPolicy(text);
  if (!parsed.ok)
    throw new StsFetchError(
      `the policy of ${domain} does not parse: ${parsed.reason}`,
      'sts-policy-invalid',
    );
  return parsed.value;
}

function get(host: string, options: StsFetchOptions): Promise<string> {
  const timeoutMs = options.timeoutMs ?? 20_000;
  const extra = options.extraCas ?? [];
  return new Promise<string>((resolve, reject) => {
    let settled = false;
    const finish = (error: Error | undefined, text?: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      req.destroy();
      if (error === undefined && text !== undefined) resolve(text);
      else reject(error ?? new StsFetchError(`https://${host}: no answer`));
    };
    const req = request({
      host,
      port: options.port ?? 443,
      path: '/.well-known/mta-sts.txt',
      method: 'GET',
      servername: host,
      // PKIX against the platform's store; the name only from a DNS-ID of the subjectAltName
      // (RFC 9525: no CN-ID), where Node's own check falls back to the subject CN without SANs.
      rejectUnauthorized: true,
      checkServerIdentity: (_name, certificate) => policyHostIdentity(host, certificate),
      ...(extra.length > 0 ? { ca: [...rootCertificates, ...extra] } : {}),
      minVersion: 'TLSv1.2',
      agent: false,
      lookup: policyLookup(options.resolver, options.allowInternalAddresses === true),
      headers: { accept: 'text/plain', 'user-agent': 'domsec' },
      maxHeaderSize: 16_384,
    });
    const timer = setTimeout(
      () => finish(new StsFetchError(`https://${host}: no policy within ${timeoutMs} ms`)),
      timeoutMs,
    );
    req.on('error', (error: NodeJS.ErrnoException) =>
      finish(
        new StsFetchError(
          `https://${host}: ${error.message}`,
          WEBPKI_CODES.has(error.code ?? '') ? 'sts-webpki-invalid' : 'sts-policy-fetch-error',
        ),
      ),
    );
    req.on('response', (response) => {
      const status = response.statusCode ?? 0;
      // §3.3: redirects are not followed; anything but 200 is no policy.
      if (status !== 200)
        return finish(new StsFetchError(`https://${host}: HTTP ${status}, not 200`));
      const type = response.headers['content-type'] ?? '';
      if (!/^text\/plain(\s*;|$)/i.test(type))
        return finish(
          new StsFetchError(
            `https://${host}: content type ${JSON.stringify(type)}, not text/plain`,
          ),
        );
      const chunks: Buffer[] = [];
      let size = 0;
      response.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_POLICY_BYTES)
          return finish(
            new StsFetchError(
              `https://${host}: the policy is larger than ${MAX_POLICY_BYTES} bytes`,
            ),
          );
        chunks.push(chunk);
      });
      response.on('end', () => finish(undefined, Buffer.concat(chunks).toString('utf8')));
      response.on('error', (error) =>
        finish(new StsFetchError(`https://${host}: ${error.message}`)),
      );
    });
    req.end();
  });
}

/**
 * net's lookup hook answered by the policy resolver (A first, then AAAA), refused whole when an
 * address of it is internal and that is not allowed. Node connects to what this returns and
 * resolves nothing itself, so the address connected to is one checked here.
 */
export function policyLookup(resolver: PolicyResolver, allowInternal: boolean): LookupFunction {
  return (hostname, options, callback) => {
    void (async () => {
      const found: { address: string; family: number }[] = [];
      for (const [type, family] of [
        ['A', 4],
        ['AAAA', 6],
      ] as const) {
        if (options.family !== undefined && options.family !== 0 && options.family !== family)
          continue;
        try {
          const answer = await resolver.addresses(hostname, type);
          for (const address of answer.records) found.push({ address, family });
        } catch {
          // The other family may still answer; none at all is the error below.
        }
      }
      const first = found[0];
      if (first === undefined) {
        const error: NodeJS.ErrnoException = new Error(`no address for ${hostname}`);
        error.code = 'ENOTFOUND';
        return callback(error, '', 0);
      }
      const internal = allowInternal ? undefined : firstInternal(found);
      if (internal !== undefined) {
        const error: NodeJS.ErrnoException = new Error(
          `${hostname} is at ${internal.address}, an internal address: not fetched`,
        );
        error.code = 'EADDRNOTAVAIL';
        return callback(error, '', 0);
      }
      if (options.all === true)
        return (callback as unknown as (e: null, a: typeof found) => void)(null, found);
      callback(null, first.address, first.family);
    })();
  };
}
