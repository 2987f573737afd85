// The aggregate report of one policy domain and UTC day (RFC 8460 §4.4), its gzip'ed form and
// file name (§5.1), and the message that carries it to a mailto: rua (§5.3): multipart/report;
// report-type="tlsrpt" with a short text part and the report as application/tlsrpt+gzip, with the
// TLS-Report-Domain and TLS-Report-Submitter header fields.
import { randomBytes } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import MailComposer from 'nodemailer/lib/mail-composer/index.js';
import type { DomainName } from '../../domain-name.js';
import type { ReportDkim } from './dkim.js';
import type { DomainDay } from './results.js';

export interface Submitter {
  /** organization-name. */
  organizationName: string;
  /** contact-info: an address or URI of ours. */
  contactInfo: string;
  /** The submitter's domain (TLS-Report-Submitter, the file name's sender). */
  domain: DomainName;
  /** The envelope and From address of mailed reports. */
  from: string;
  /** Signs mailed reports; without it none is mailed (RFC 8460 §3). */
  dkim?: ReportDkim;
}

export interface TlsReport {
  'organization-name': string;
  'date-range': { 'start-datetime': string; 'end-datetime': string };
  'contact-info': string;
  'report-id': string;
  policies: {
    policy: {
      'policy-type': string;
      'policy-string'?: string[];
      'policy-domain': string;
      'mx-host'?: string[];
    };
    summary: { 'total-successful-session-count': number; 'total-failure-session-count': number };
    'failure-details'?: {
      'result-type': string;
      'sending-mta-ip'?: string;
      'receiving-mx-hostname'?: string;
      'receiving-ip'?: string;
      'failed-session-count': number;
      'failure-reason-code'?: string;
    }[];
  }[];
}

/** A report id: the day, the domain and random bytes (unique per report, RFC 8460 §4.4). */
export function newReportId(results: DomainDay): string {
  return `${results.day}T00:00:00Z_${results.domain}_${randomBytes(6).toString('hex')}`;
}

export function dayRange(day: string): { start: Date; end: Date } {
  const start = new Date(`${day}T00:00:00Z`);
  return { start, end: new Date(start.getTime() + 86_400_000) };
}

const stamp = (date: Date) => date.toISOString().replace(/\.\d{3}Z$/, 'Z');

export function buildReport(results: DomainDay, submitter: Submitter, reportId: string): TlsReport {
  const { start, end } = dayRange(results.day);
  return {
    'organization-name': submitter.organizationName,
    'date-range': {
      'start-datetime': stamp(start),
      'end-datetime': stamp(new Date(end.getTime() - 1000)),
    },
    'contact-info': submitter.contactInfo,
    'report-id': reportId,
    policies: results.policies.map((policy) => ({
      policy: {
        'policy-type': policy.policyType,
        ...(policy.policyStrings.length === 0 ? {} : { 'policy-string': policy.policyStrings }),
        'policy-domain': results.domain,
        ...(policy.mxHost.length === 0 ? {} : { 'mx-host': policy.mxHost }),
      },
      summary: {
        'total-successful-session-count': policy.success,
        'total-failure-session-count': policy.failure,
      },
      ...(policy.failures.length === 0
        ? {}
        : {
            'failure-details': policy.failures.map((failure) => ({
              'result-type': failure.resultType,
              ...(failure.sendingMtaIp === undefined
                ? {}
                : { 'sending-mta-ip': failure.sendingMtaIp }),
              ...(failure.receivingMxHostname === undefined
                ? {}
                : { 'receiving-mx-hostname': failure.receivingMxHostname }),
              ...(failure.receivingIp === undefined ? {} : { 'receiving-ip': failure.receivingIp }),
              'failed-session-count': failure.count,
              ...(failure.failureReasonCode === undefined
                ? {}
                : { 'failure-reason-code': failure.failureReasonCode }),
            })),
          }),
    })),
  };
}

export function gzipReport(report: TlsReport): Buffer {
  return gzipSync(Buffer.from(JSON.stringify(report), 'utf8'));
}

/** RFC 8460 §5.1: sender!policy-domain!begin-timestamp!end-timestamp!unique-id.json.gz */
export function reportFileName(submitter: Submitter, results: DomainDay, reportId: string): string {
  const { start, end } = dayRange(results.day);
  const unique = reportId.slice(reportId.lastIndexOf('_') + 1);
  return `${submitter.domain}!${results.domain}!${start.getTime() / 1000}!${end.getTime() / 1000 - 1}!${unique}.json.gz`;
}

/** The message to a mailto: rua, as bytes for the queue. */
export async function reportMessage(input: {
  submitter: Submitter;
  results: DomainDay;
  reportId: string;
  gzipped: Buffer;
  to: string;
  now: Date;
}): Promise<Buffer> {
  const { submitter, results, reportId, gzipped, to, now } = input;
  const composer = new MailComposer({
    from: submitter.from,
    to,
    date: now,
    subject: `Report Domain: ${results.domain} Submitter: ${submitter.domain} Report-ID: <${reportId}>`,
    headers: {
      'TLS-Report-Domain': results.domain,
      'TLS-Report-Submitter': submitter.domain,
    },
    text: `This is an aggregate TLS report from ${submitter.organizationName} for ${results.domain} on ${results.day} (RFC 8460).\r\n`,
    attachments: [
      {
        filename: reportFileName(submitter, results, reportId),
        content: gzipped,
        contentType: 'application/tlsrpt+gzip',
        contentTransferEncoding: 'base64',
      },
    ],
  });
  const node = composer.compile();
  // RFC 8460 §5.3: the top level is multipart/report with report-type="tlsrpt".
  node.setHeader('Content-Type', 'multipart/report; report-type="tlsrpt"');
  const message = await new Promise<Buffer>((resolve, reject) => {
    node.build((error, built) => (error ? reject(error) : resolve(built)));
  });
  // nodemailer writes header names as "Tls-Report-Domain"; the RFC's spelling, in the head only.
  const end = message.indexOf('\r\n\r\n');
  const head = message
    .subarray(0, end)
    .toString('latin1')
    .replace(/^Tls-Report-(Domain|Submitter):/gm, 'TLS-Report-$1:');
  return Buffer.concat([Buffer.from(head, 'latin1'), message.subarray(end)]);
}
