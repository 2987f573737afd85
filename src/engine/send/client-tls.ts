// The client side of TLS towards a next hop: one builder of the options tls.connect gets, used by
// the send session (through nodemailer's STARTTLS) and by probe (its own STARTTLS), so that probe
// tests exactly the handshake a delivery makes.
import { isIP } from 'node:net';
import { createSecureContext, type ConnectionOptions, type SecureContext } from 'node:tls';
import type { TlsPolicy } from './route.js';

/**
 * A send connector's policy (route.ts), or none: an internal relay configured without TLS, where a
 * STARTTLS the server offers is ignored. An internal relay's `required` and `opportunistic` are the
 * connector's: encrypted, without a client certificate, the server's certificate not judged.
 */
export type SessionTlsPolicy = TlsPolicy | { kind: 'none' };

/** Whether the policy refuses to send without STARTTLS (never a plaintext fallback). */
export function tlsMandatory(policy: SessionTlsPolicy): boolean {
  switch (policy.kind) {
    case 'domain-secure':
    case 'required':
    case 'dane': // RFC 7672 §2.2: usable TLSA records, no plaintext
      return true;
    case 'mta-sts':
      return policy.required;
    case 'opportunistic':
    case 'none':
      return false;
  }
}

/**
 * The server name to send in SNI for the host we connect for: the name itself, without a trailing
 * dot, or none for an IP literal (RFC 6066 §3 allows only host names; Node warns and sends it
 * anyway). Every IPv4 and IPv6 spelling net.isIP accepts is a literal; so is a bracketed one.
 */
export function sniServerName(host: string): string | undefined {
  const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  if (bare === '' || isIP(bare) !== 0) return undefined;
  const name = bare.endsWith('.') ? bare.slice(0, -1) : bare;
  return name === '' ? undefined : name;
}

/** Without our certificate: a client certificate is for partners only. Built once. */
let anonymousContext: SecureContext | undefined;

/**
 * The tls.connect options for a session to `host` under `policy`: for domain security our
 * certificate and the partner's anchors (its sendContext); otherwise no client certificate.
 * OpenSSL never rejects here: the partner's chain and names are judged by verifyPeer after the
 * handshake, not by the MX host name (Node's hostname check would fail every MX named otherwise
 * than the partner domain); a published policy (DANE, MTA-STS) is judged the same way, after the
 * handshake; any other non-partner's certificate is not judged at all.
 */
export function clientTlsOptions(policy: SessionTlsPolicy, host: string): ConnectionOptions {
  const servername = sniServerName(host);
  return {
    secureContext:
      policy.kind === 'domain-secure'
        ? policy.partner.sendContext
        : policy.kind === 'mta-sts'
          ? policy.context // PKIX against the platform's CAs: authorized says whether it chains
          : (anonymousContext ??= createSecureContext({ minVersion: 'TLSv1.2' })),
    rejectUnauthorized: false,
    checkServerIdentity: () => undefined,
    minVersion: 'TLSv1.2',
    ...(servername === undefined ? {} : { servername }),
  };
}
