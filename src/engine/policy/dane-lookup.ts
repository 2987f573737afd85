// Which MX hosts of a domain DANE applies to (RFC 7672 §2.2): only through a DNSSEC-secure MX
// answer (or, without MX, the domain's own secure address records), only for hosts whose own
// address records are secure, and then the TLSA records at `_port._tcp.host` — first at the name
// a secure CNAME chain of the host's addresses ends at, then at the host's own name (§2.2.3). A
// TLSA look-up that fails for such a host makes the host unusable (§2.2: fail closed), never a
// host without DANE; secure TLSA records none of which is usable leave TLS mandatory, without
// authentication (§2.2), never plaintext.
import { parseDomainName, type DomainName } from '../../domain-name.js';
import { DnsLookupError, type PolicyResolver } from './resolver.js';
import { describeRecord, unusableReason, usableRecords, type TlsaRecord } from './tlsa.js';

export type HostDane =
  /** DANE does not apply: TLS as the other policies say. */
  | { kind: 'none'; why: string }
  /** Usable TLSA records: TLS required and the chain must match one (names for DANE-TA). */
  | { kind: 'tlsa'; records: TlsaRecord[]; names: DomainName[] }
  /** Secure TLSA records, none usable: TLS is still mandatory, the certificate not checked. */
  | { kind: 'encrypt'; why: string }
  /** The host may not be used now (its secure TLSA look-up failed). */
  | { kind: 'defer'; reason: string };

export interface DomainDane {
  /** Whether the MX answer (or the implicit MX's address answer) was secure. */
  secure: boolean;
  /** By MX host name (canonical); hosts not listed have no DANE. */
  hosts: Map<DomainName, HostDane>;
  steps: string[];
  /**
   * The DNSSEC look-up of the MX records failed (SERVFAIL, as a validating resolver answers a
   * bogus signature, or no answer): no host of the domain is used until it succeeds.
   */
  failure?: string;
}

/**
 * DANE for each MX host of the domain. A failed MX look-up is a failure, never "not secure"
 * (RFC 7672 §2.1.1): next-hop routing makes its own look-up without the DO bit, which an attacker
 * who drops or breaks only the DNSSEC query would let through.
 */
export async function daneForDomain(
  resolver: PolicyResolver,
  domain: DomainName,
  port: number,
): Promise<DomainDane> {
  const steps: string[] = [];
  const hosts = new Map<DomainName, HostDane>();
  let mx;
  try {
    mx = await resolver.mx(domain);
  } catch (error) {
    if (!(error instanceof DnsLookupError)) throw error;
    steps.push(`MX ${domain}: ${error.problem}: no host is used (DANE fails closed)`);
    return {
      secure: false,
      hosts,
      steps,
      failure: `the DNSSEC look-up of the MX records of ${domain} failed (${error.problem}): no host is used`,
    };
  }
  const exchanges = mx.records.filter(
    (record) => record.exchange !== '' && record.exchange !== '.',
  );
  if (mx.status !== 'answer') {
    // No MX: the domain is its own host (RFC 5321 §5.1), DANE by its own address records.
    steps.push(
      `MX ${domain}: ${mx.status}${mx.secure ? ' (secure)' : ''}; the domain is its own host`,
    );
    hosts.set(domain, await daneForHost(resolver, domain, domain, port, steps, mx.secure));
    return { secure: mx.secure, hosts, steps };
  }
  if (!mx.secure) {
    steps.push(
      `MX ${domain}: not DNSSEC-validated (no AD from a validating resolver): DANE does not apply`,
    );
    return { secure: false, hosts, steps };
  }
  steps.push(
    `MX ${domain}: ${exchanges.map((r) => `${r.preference} ${r.exchange}`).join(', ')} (secure)`,
  );
  for (const record of exchanges) {
    const parsed = parseDomainName(record.exchange);
    if (!parsed.ok || hosts.has(parsed.name)) continue;
    hosts.set(parsed.name, await daneForHost(resolver, parsed.name, domain, port, steps, true));
  }
  return { secure: true, hosts, steps };
}

async function daneForHost(
  resolver: PolicyResolver,
  host: DomainName,
  domain: DomainName,
  port: number,
  steps: string[],
  /** The MX answer (or the implicit MX's denial) naming the host was secure. */
  parentSecure: boolean,
): Promise<HostDane> {
  // §2.2.2: the host's address records must be secure, or its TLSA records are not looked up.
  // allSettled never rejects: a failed family is simply not secure.
  const answers = await Promise.allSettled([
    resolver.addresses(host, 'A'),
    resolver.addresses(host, 'AAAA'),
  ]);
  const secureAddress = answers.some(
    (answer) =>
      answer.status === 'fulfilled' && answer.value.status === 'answer' && answer.value.secure,
  );
  const failed = answers.find((answer) => answer.status === 'rejected');
  if (!secureAddress && parentSecure && failed !== undefined) {
    // A family that could not be looked up may be the secure one: not "no DANE".
    const problem =
      failed.reason instanceof DnsLookupError ? failed.reason.problem : String(failed.reason);
    steps.push(
      `${host}: address look-up failed (${problem}): the host is not used (DANE fails closed)`,
    );
    return {
      kind: 'defer',
      reason: `the DNSSEC look-up of the addresses of ${host} failed (${problem}): the host is not used`,
    };
  }
  if (!secureAddress) {
    steps.push(`${host}: address records not secure: no DANE`);
    return { kind: 'none', why: `the address records of ${host} are not DNSSEC-validated` };
  }
  // §2.2.3: a secure CNAME chain's end is the TLSA base domain tried first.
  const expanded = answers
    .map((answer) =>
      answer.status === 'fulfilled' && answer.value.secure ? answer.value.canonical : undefined,
    )
    .find((canonical) => canonical !== undefined);
  const target = expanded === undefined ? undefined : parseDomainName(expanded);
  const names = [...new Set([...(target?.ok === true ? [target.name] : []), host, domain])];
  if (target?.ok === true && target.name !== host) {
    steps.push(`${host}: a secure CNAME chain ends at ${target.name}`);
    const atTarget = await tlsaAt(resolver, target.name, port, names, steps);
    if (atTarget !== undefined) return atTarget;
  }
  return (
    (await tlsaAt(resolver, host, port, names, steps)) ?? {
      kind: 'none',
      why: `${host} publishes no TLSA record`,
    }
  );
}

/**
 * DANE by the TLSA records at `_port._tcp.base`; undefined when the base securely has none (or
 * none that is secure), so that the next base is tried.
 */
async function tlsaAt(
  resolver: PolicyResolver,
  base: DomainName,
  port: number,
  names: DomainName[],
  steps: string[],
): Promise<HostDane | undefined> {
  const name = `_${port}._tcp.${base}`;
  let answer;
  try {
    answer = await resolver.tlsa(base, port);
  } catch (error) {
    if (!(error instanceof DnsLookupError)) throw error;
    steps.push(`TLSA ${name}: ${error.problem}: the host is not used (DANE fails closed)`);
    return {
      kind: 'defer',
      reason: `TLSA look-up for ${name} failed (${error.problem}): the host is not used`,
    };
  }
  if (!answer.secure) {
    steps.push(`TLSA ${name}: ${answer.status}, not secure: no DANE`);
    return undefined;
  }
  if (answer.status !== 'answer') {
    steps.push(`TLSA ${name}: ${answer.status} (secure): no DANE`);
    return undefined;
  }
  for (const record of answer.records) {
    const why = unusableReason(record);
    if (why !== undefined) steps.push(`TLSA ${name}: ${describeRecord(record)} unusable: ${why}`);
  }
  const records = usableRecords(answer.records);
  if (records.length === 0) {
    // RFC 7672 §2.2: published but none usable, the records still say the server offers TLS.
    steps.push(`TLSA ${name}: no usable record: TLS required, the certificate not checked`);
    return { kind: 'encrypt', why: `no usable TLSA record at ${name}` };
  }
  steps.push(
    `TLSA ${name}: ${records.map(describeRecord).join(', ')} (secure): TLS required, no plaintext`,
  );
  return { kind: 'tlsa', records, names };
}
