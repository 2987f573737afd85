// Every diagnostic code validate prints, what it means and how to fix it: the one source of
// `domsec explain DS001` and of docs/troubleshooting.md's table (test/config/diagnostic-codes.test.ts
// keeps the page equal to it). Text is Markdown: `code` spans read as they are on a terminal.

export interface DiagnosticCodeEntry {
  code: string;
  severity: 'error' | 'warning' | 'error or warning';
  meaning: string;
  fix: string;
}

export const DIAGNOSTIC_CODES: readonly DiagnosticCodeEntry[] = [
  {
    code: 'DS001',
    severity: 'error',
    meaning:
      "A SendConnector with `domainSecure: true` routes through `smartHosts`. Domain security verifies the partner's own server found by MX; a smart host's certificate is not the partner's. Exchange greys out the check box in the same case.",
    fix: 'Use `routing: { dnsMx: {} }` (with `resolver.static` in a lab), or turn `domainSecure` off on this connector and send partner mail through another one.',
  },
  {
    code: 'DS002',
    severity: 'error',
    meaning:
      'A ReceiveConnector with `domainSecure: true` lacks `tls` in `authMechanisms`: no partner could present its certificate.',
    fix: 'Add `tls` to `authMechanisms` (Exchange: `Set-ReceiveConnector -AuthMechanism Tls`).',
  },
  {
    code: 'DS003',
    severity: 'error',
    meaning:
      'A PartnerDomain has `domainSecure.send`, but no SendConnector covers its domain, or the connector that would carry its mail (longest address space, lowest cost) has no `domainSecure: true`.',
    fix: 'Add the domain to the `addressSpaces` of a connector with `domainSecure: true`, or turn `domainSecure` on for the connector named in the message.',
  },
  {
    code: 'DS004',
    severity: 'error',
    meaning:
      'A PartnerDomain has `domainSecure.receive`, but no ReceiveConnector has `domainSecure: true`.',
    fix: 'Add a ReceiveConnector with `domainSecure: true` and `authMechanisms: [tls]` on the address partners connect to.',
  },
  {
    code: 'DS005',
    severity: 'error',
    meaning:
      'The organization certificate does not name our `hostname` (SAN dNSName, or subject CN without SAN), or, once any partner is domain-secure, does not name an accepted domain: partners check the certificate against the domain of MAIL FROM.',
    fix: 'Issue the certificate with SAN = the EHLO hostname and every accepted domain (`domsec certs lab` does so for a lab). The message lists the names the certificate has.',
  },
  {
    code: 'DS006',
    severity: 'error',
    meaning:
      "A certificate is expired or not yet valid, its key in `keyFile` does not match `certFile`, or the organization certificate's Extended Key Usage lacks serverAuth.",
    fix: 'Renew it and point `certFile`/`keyFile` at the new pair; use the key the certificate was issued for; issue the organization certificate with serverAuth and clientAuth.',
  },
  {
    code: 'DS007',
    severity: 'error',
    meaning:
      "A reference names an object that does not exist: the Organization's `certificate`, a partner's `trustAnchors` entry.",
    fix: 'Fix the name: the hint offers the closest existing one (or `system`).',
  },
  {
    code: 'DS008',
    severity: 'error',
    meaning:
      'Two objects of one kind share a name, two PartnerDomains share a domain, more than one Organization, or a TrustAnchor named `system` (reserved).',
    fix: 'Rename or remove one; merge the partners; keep one Organization per directory (one directory or overlay per node); give the anchor another name.',
  },
  {
    code: 'DS009',
    severity: 'error',
    meaning:
      'A TrustAnchor is not a CA certificate (basicConstraints CA:false), or its inline `pem` cannot be parsed.',
    fix: "Name the partner's root or issuing CA, not its server certificate; paste the whole PEM, BEGIN to END line.",
  },
  {
    code: 'DS010',
    severity: 'error',
    meaning: "A partner's domain is also one of our `acceptedDomains`.",
    fix: "A domain is ours or a partner's: remove it from one of them.",
  },
  {
    code: 'DS011',
    severity: 'error',
    meaning:
      'Two ReceiveConnectors listen on the same binding with identical `remoteIPRanges`: a connection could not be placed.',
    fix: 'Narrow `remoteIPRanges` on one of them, or bind them to different addresses or ports.',
  },
  {
    code: 'DS012',
    severity: 'error',
    meaning: 'Two SendConnectors serve the same address space at the same `cost`.',
    fix: 'Give one a lower `cost`, or remove the address space from one.',
  },
  {
    code: 'DS013',
    severity: 'error',
    meaning: 'A domain-secure PartnerDomain has no trust anchor to verify its certificate.',
    fix: 'Name its CA in `trustAnchors` (a TrustAnchor object), or `system` for the public CAs.',
  },
  {
    code: 'DS014',
    severity: 'error',
    meaning: '`requireTls: false` on a connector with `domainSecure: true`.',
    fix: 'Remove `requireTls` (it follows `domainSecure`) or set it to `true`.',
  },
  {
    code: 'DS015',
    severity: 'error',
    meaning:
      'An RSA key under 2048 bits, or a certificate, chain certificate or trust anchor signed with SHA-1 or MD5.',
    fix: "Issue it again: RSA 2048 or more, or ECDSA P-256, signed with SHA-256. For a partner's weak root, ask the partner.",
  },
  {
    code: 'DS016',
    severity: 'error',
    meaning:
      'A file a manifest names (`certFile`, `keyFile`, `pemFile`, `crlFile`) does not exist, cannot be read, or is not the PEM it should be. The message names the file, never its content.',
    fix: 'Paths are relative to the manifest file. Check the path and permissions of the user the engine runs as; for a lab, `domsec certs lab -f DIR` writes the files the manifests in DIR name (`domsec certs lab examples` for examples/).',
  },
  {
    code: 'DS017',
    severity: 'error',
    meaning:
      "The Organization's `delivery.relay.host` is one of our own receive bindings (the same address, or a wildcard binding reached by loopback, `localhost` or our host name): accepted mail would loop.",
    fix: 'Point `delivery.relay.host` at the internal mailbox server (Exchange Mailbox role, Dovecot LMTP...), or deliver here with `delivery.maildir`.',
  },
  {
    code: 'DS018',
    severity: 'error',
    meaning:
      'A ReceiveConnector with `requireTls: true` (and no domain security, which is DS002) lacks `tls` in `authMechanisms`: STARTTLS is not offered there, so every MAIL FROM would get `530 5.7.0`.',
    fix: 'Add `tls` to `authMechanisms`, or remove `requireTls`.',
  },
  {
    code: 'DS019',
    severity: 'error',
    meaning:
      "A ReceiveConnector with `permitRelay: true` on a binding beyond loopback, whose `remoteIPRanges` cover an address outside loopback and private networks (RFC 1918, `fc00::/7`, link-local): an open relay. Judged by the addresses covered, not the spelling: `0.0.0.0/1` with `128.0.0.0/1`, `::ffff:0:0/96` (every IPv4 address, mapped) and `100.64.0.0/10` (shared by a carrier's customers) count. Relay asks no authentication (`tls` requests a client certificate, never requires one), so the ranges are the only limit.",
    fix: 'Narrow `remoteIPRanges` to the servers that submit mail (`10.0.0.5/32`, `127.0.0.1/32`), or turn `permitRelay` off. A connector bound only to loopback is never an open relay.',
  },
  {
    code: 'DS020',
    severity: 'error',
    meaning:
      "A TlsPolicy has `dane: require`, but the Organization's `resolver.validating` is not true: without a validating resolver no DNS answer counts as DNSSEC-secure, so DANE never applies and every message to the policy's domains would wait.",
    fix: 'Run a validating resolver (Unbound, or a resolver that sets the AD bit only for validated answers) on a trusted path, list it in `resolver.servers` and set `resolver.validating: true` (Postfix: `smtp_dns_support_level = dnssec`); or use `dane: optional`.',
  },
  {
    code: 'DS021',
    severity: 'error',
    meaning:
      'Two TlsPolicies list the same address space: which one decides how TLS to those domains is verified would be left to their names.',
    fix: 'Keep the address space in one policy; use `*.example.com` or a single domain in another to make it more specific.',
  },
  {
    code: 'DS022',
    severity: 'error',
    meaning:
      "The Organization serves its MTA-STS policy (`mtaSts.listen`), but its certificate does not name `mta-sts.<domain>` for an accepted domain: senders fetch the policy from that name with PKIX verification, so that domain's policy could never be fetched.",
    fix: 'Issue the certificate with `mta-sts.<domain>` (or `*.<domain>`) for each accepted domain, from a CA that senders trust; or remove `mtaSts.listen` and serve the policy file `domsec dns records` prints from another web server.',
  },
  {
    code: 'DS023',
    severity: 'error',
    meaning:
      "The Organization's `tlsReporting.dkim.domain` is neither one of its accepted domains nor a parent of one: RFC 8460 §3 asks for mailed TLS reports to be signed by the reporting domain, and a signature by another domain says nothing about who sent them.",
    fix: "Sign with an accepted domain (or a parent domain of one), or leave `domain` out: the first accepted domain, the reports' submitter, signs.",
  },
  {
    code: 'DS024',
    severity: 'error',
    meaning:
      'A TlsPolicy requires DANE or MTA-STS (`dane: require`, `mtaSts: require`) for a domain whose mail goes through a smart host or a static route (`resolver.static`), not its MX hosts: neither policy can be verified on that path, so the engine holds every message to the domain (`454 4.7.5`) until it expires.',
    fix: 'Route the domain by MX (a SendConnector with `routing: { dnsMx: {} }` and no static route for it), or use `optional` for it in a more specific TlsPolicy.',
  },
  {
    code: 'DS101',
    severity: 'warning',
    meaning: 'A certificate expires within 30 days.',
    fix: 'Renew it and apply before partners refuse it ([operations.md](operations.md#rotating-certificates-with-zero-downtime)).',
  },
  {
    code: 'DS102',
    severity: 'warning',
    meaning: 'A TrustAnchor that no PartnerDomain names.',
    fix: "Add it to the partner's `trustAnchors` (a partner that forgot it is the usual case), or remove it.",
  },
  {
    code: 'DS103',
    severity: 'warning',
    meaning:
      'A receive-secure partner without `remoteIPRanges`: its certificate is accepted from any address.',
    fix: "List the ranges the partner's servers connect from, so that a stolen certificate alone is not enough (Exchange: the remote network settings of the partner connector). Without them the partner is a stranger at connect, before TLS, and gets no share of the connections kept for partners during a flood ([operations.md](operations.md#connection-floods)).",
  },
  {
    code: 'DS104',
    severity: 'warning',
    meaning: 'A private key file is readable by group or others.',
    fix: '`chmod 600` the key file (owned by the user the engine runs as).',
  },
  {
    code: 'DS105',
    severity: 'warning',
    meaning:
      "The organization certificate has an Extended Key Usage without clientAuth: partners that verify client certificates with OpenSSL's defaults (Postfix, Node, domsec with `clientCertificatePurpose: strict`) refuse it when we send.",
    fix: 'Public CAs stopped issuing clientAuth in 2026: get the certificate from a private CA your partners trust, with serverAuth and clientAuth.',
  },
  {
    code: 'DS106',
    severity: 'warning',
    meaning:
      'A partner has `certificateNameMatch: subdomain`: any host one label below its domain names it (what Exchange accepts).',
    fix: "Prefer the default `domain`, and list the partner's exact server names in `certificateNames`.",
  },
  {
    code: 'DS107',
    severity: 'warning',
    meaning:
      'A ReceiveConnector permits relay to private networks (RFC 1918, `fc00::/7`, link-local) on a binding beyond loopback: any host there may send mail anywhere through us.',
    fix: 'List each server that submits mail (a `/32` or `/128`) instead of the network, so that one compromised host is not a relay.',
  },
  {
    code: 'DS108',
    severity: 'warning',
    meaning:
      "The Organization's `admin.listen` is beyond loopback (`0.0.0.0`, a routable address or a host name): the admin API, which can apply and roll back, is reachable from the network with its token as the only guard. Plans mark the move as weakening.",
    fix: 'Listen on `127.0.0.1` (the default) and reach it over SSH; if it must be remote, firewall the port to the hosts that run `plan` and `apply`.',
  },
  {
    code: 'DS109',
    severity: 'warning',
    meaning:
      "The Organization's resolver is named validating (`resolver.validating: true`, so its DNSSEC AD bit decides where DANE applies) but is not on this host: empty `servers` (the system's resolvers) or a server beyond loopback. The AD bit travels unsigned from the resolver, so anyone on that path can forge it, or strip it and turn DANE off.",
    fix: 'Run a validating resolver (Unbound, BIND) on this host and list it as `resolver.servers: [127.0.0.1]`, as Postfix advises for DANE.',
  },
  {
    code: 'DS110',
    severity: 'warning',
    meaning:
      'The Organization declares `tlsReporting` without `dkim`: TLS reports to domains whose `_smtp._tls` record names a `mailto:` address are not sent, since RFC 8460 §3 requires mailed reports to carry a DKIM signature by the reporting domain and recipients ignore those without. Reports to `https:` collectors still go.',
    fix: 'Add `tlsReporting.dkim` with a `selector` and an RSA `keyFile` (2048 bits advised), and publish the TXT record `domsec dns records` prints at `<selector>._domainkey.<domain>`.',
  },
  {
    code: 'DS111',
    severity: 'warning',
    meaning:
      "The Organization sets `allowInternalPolicyHosts: true`: MTA-STS policies are fetched from `mta-sts.<domain>` hosts that resolve to loopback, private, link-local or reserved addresses. The recipient domain's DNS names that host, so any domain mail goes to can aim our HTTPS requests at services on this machine or our own networks. Plans mark turning it on as weakening.",
    fix: 'Remove `allowInternalPolicyHosts` outside a lab whose policy hosts run on this machine; a domain whose policy host is internal is then treated as if its policy could not be fetched.',
  },
  {
    code: 'SCHEMA',
    severity: 'error',
    meaning:
      'A document does not match its JSON Schema: unknown or missing field, wrong type or format, not a manifest at all. The message names the field and what is expected.',
    fix: 'Fix the field; `domsec explain KIND.FIELD` documents it, and the `# yaml-language-server: $schema=` modeline lets an editor check as you type. [manifests.md](manifests.md) lists every field.',
  },
  {
    code: 'YAML',
    severity: 'error or warning',
    meaning:
      'The file is not valid YAML (syntax error, unclosed bracket, a document that cannot be read), or the YAML parser warned.',
    fix: 'Fix the syntax at the position shown; the hint says what the parser expected.',
  },
  {
    code: 'LOAD',
    severity: 'error',
    meaning:
      'The manifests could not be read: a path that does not exist or cannot be read, a directory without `*.yaml`/`*.yml`, a file over 4 MB or not UTF-8, no Organization at all, or an internal error in a rule (a bug: please report it).',
    fix: 'Check the `-f` paths and the files; convert the file to UTF-8; add an Organization.',
  },
];

/** The entry of a code as a user types it (`ds001` too), or undefined. */
export function findDiagnosticCode(code: string): DiagnosticCodeEntry | undefined {
  // A diagnostic code, not a domain: the canonical domain form does not apply.
  const wanted = code.trim().toUpperCase();
  return DIAGNOSTIC_CODES.find((entry) => entry.code === wanted);
}

/** Whether text has the shape of a diagnostic code (DS001, SCHEMA, ...) rather than a kind. */
export function looksLikeDiagnosticCode(text: string): boolean {
  return /^ds\d{3}$/i.test(text.trim()) || findDiagnosticCode(text) !== undefined;
}
