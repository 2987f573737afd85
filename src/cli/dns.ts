// domsec dns records: the DNS records to publish for our side, from the manifests: a TLSA record
// (DANE-EE 3 1 1) of the Organization certificate's key at our host name, and for each accepted
// domain the `_mta-sts` TXT record of the MTA-STS policy the Organization declares, with the
// policy file to serve, and the DKIM key record of our mailed TLS reports. Nothing is looked up
// or changed: the output is for the zone's owner.
import type { Command } from 'commander';
import { X509Certificate } from 'node:crypto';
import { CliError, commandAction, EXIT } from './errors.js';
import { fileOption, loadOrFail, manifestPaths } from './manifests.js';
import { formatOption, processOutput, type Output } from './output.js';
import { domainName } from '../domain-name.js';
import type { RuntimeConfig } from '../model.js';
import { daneEeKeyDigest, ourStsPolicyFile, stsPolicyId } from '../published-records.js';

export interface DnsRecords {
  formatVersion: 1;
  tlsa: { name: string; usage: number; selector: number; matchingType: number; data: string }[];
  /** Null when the Organization declares no MTA-STS policy. */
  mtaSts: { id: string; policy: string; records: { name: string; text: string }[] } | null;
  /** The key that signs our mailed TLS reports (tlsReporting.dkim); null without one. */
  dkim: { name: string; text: string } | null;
}

/**
 * The records for a configuration; pure. `dkimRecord` is the TXT text of the tlsReporting.dkim
 * key (read from its file by the caller).
 */
export function dnsRecords(config: RuntimeConfig, dkimRecord?: string): DnsRecords {
  const org = config.organization.spec;
  const signing = org.tlsReporting?.dkim;
  const dkim =
    signing === undefined || dkimRecord === undefined
      ? null
      : {
          // The reports' submitter (our first accepted domain) signs unless another is named.
          name: `${signing.selector}._domainkey.${(signing.domain === undefined ? undefined : domainName(signing.domain)) ?? [...org.acceptedDomains].sort()[0] ?? org.hostname}.`,
          text: dkimRecord,
        };
  const certificate = config.certificates.find((c) => c.name === org.certificate);
  const tlsa =
    certificate === undefined
      ? []
      : [
          {
            name: `_25._tcp.${org.hostname}.`,
            usage: 3,
            selector: 1,
            matchingType: 1,
            data: daneEeKeyDigest(new X509Certificate(certificate.spec.certPem)),
          },
        ];
  const policy = ourStsPolicyFile(org);
  if (policy === undefined) return { formatVersion: 1, tlsa, mtaSts: null, dkim };
  const id = stsPolicyId(policy);
  return {
    formatVersion: 1,
    tlsa,
    mtaSts: {
      id,
      policy,
      records: org.acceptedDomains.map((domain) => ({
        name: `_mta-sts.${domain}.`,
        text: `v=STSv1; id=${id}`,
      })),
    },
    dkim,
  };
}

export function renderDnsRecords(records: DnsRecords, acceptedDomains: readonly string[]): string {
  const lines: string[] = [];
  for (const r of records.tlsa) {
    lines.push(
      '; DANE (RFC 7672): our certificate key, in a DNSSEC-signed zone. Before changing the key,',
      '; publish the next key record beside this one and wait a TTL.',
      `${r.name} IN TLSA ${r.usage} ${r.selector} ${r.matchingType} ${r.data}`,
    );
  }
  if (records.mtaSts === null) {
    lines.push('; MTA-STS: the Organization declares no policy (spec.mtaSts)');
  } else {
    lines.push('; MTA-STS (RFC 8461): one TXT record per accepted domain');
    for (const r of records.mtaSts.records) lines.push(`${r.name} IN TXT "${r.text}"`);
    lines.push(
      `; serve this file, as text/plain over HTTPS with a publicly trusted certificate, at`,
      ...acceptedDomains.map((d) => `;   https://mta-sts.${d}/.well-known/mta-sts.txt`),
      ...records.mtaSts.policy
        .split('\r\n')
        .filter((line) => line !== '')
        .map((line) => `;   ${line}`),
    );
  }
  if (records.dkim !== null) {
    lines.push(
      '; DKIM (RFC 6376) of our mailed TLS reports (RFC 8460 §3: unsigned ones are ignored)',
      `${records.dkim.name} IN TXT ${characterStrings(records.dkim.text)}`,
    );
  }
  return `${lines.join('\n')}\n`;
}

/**
 * A TXT value as a zone file writes it: quoted strings of at most 255 bytes each (RFC 1035
 * §3.3.14), which resolvers join back into the one text (a 2048-bit DKIM key is over 400).
 */
export function characterStrings(text: string): string {
  const parts: string[] = [];
  for (let at = 0; at < text.length; at += 255) parts.push(text.slice(at, at + 255));
  return parts.map((part) => `"${part}"`).join(' ');
}

export async function dnsRecordsCommand(
  options: { file: string[]; output: 'text' | 'json' },
  out: Output,
): Promise<number> {
  const { config } = await loadOrFail(options.file, out);
  const keyFile = config.organization.spec.tlsReporting?.dkim?.keyFile;
  let dkimRecord: string | undefined;
  if (keyFile !== undefined) {
    // Loaded here: the engine's modules would slow every other command's start.
    const { dkimRecordText, readDkimKey } = await import('../engine/index.js');
    // The message names the file and why, never what it holds.
    const key = await readDkimKey(keyFile).catch((error: Error) => {
      throw new CliError(`tlsReporting.dkim: ${error.message}`);
    });
    dkimRecord = dkimRecordText(key);
  }
  const records = dnsRecords(config, dkimRecord);
  out.stdout(
    options.output === 'json'
      ? `${JSON.stringify(records, null, 2)}\n`
      : renderDnsRecords(records, config.organization.spec.acceptedDomains),
  );
  return EXIT.ok;
}

export function register(program: Command): void {
  const dns = program.command('dns').description('DNS records to publish for our side');
  dns
    .command('records')
    .description(
      'print our TLSA record, MTA-STS TXT records (and the policy file to serve) and the DKIM record of TLS reports',
    )
    .addOption(fileOption())
    .addOption(formatOption())
    .action(
      commandAction((o: { file?: string[]; output: 'text' | 'json' }) =>
        dnsRecordsCommand(
          { ...o, file: manifestPaths(o.file, { output: o.output, out: processOutput() }) },
          processOutput(),
        ),
      ),
    );
}
