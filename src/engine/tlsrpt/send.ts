// Sends one gzip'ed report to one rua. https: a POST of application/tlsrpt+gzip (RFC 8460 §5.2)
// verified by PKIX against the platform's CAs (and a lab's extra CAs), no redirect followed, time
// and the answer's size bounded; 2xx is delivered, anything else fails and is tried next cycle.
// mailto: the report message handed to our own queue, which delivers it like any other mail.
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { request } from 'node:https';
import type { LookupFunction } from 'node:net';
import { rootCertificates } from 'node:tls';
import { firstInternal } from '../policy/internal-addresses.js';
import type { ReportUri } from './record.js';

export interface HttpsReportOptions {
  timeoutMs?: number;
  /** Extra CAs (labs and tests only). */
  extraCas?: readonly string[];
  /** Collectors at loopback, private or link-local addresses are posted to (labs and tests only). */
  allowInternalAddresses?: boolean;
}

/** The system resolver's answer, refused whole when any address of it is internal. */
const publicOnlyLookup: LookupFunction = (hostname, options, callback) => {
  // One label (intranet, localhost) is completed with our own search domains: a host of our network.
  if (!hostname.replace(/\.$/, '').includes('.')) {
    const refused: NodeJS.ErrnoException = new Error(
      `${hostname} is a single label: not posted to`,
    );
    refused.code = 'EADDRNOTAVAIL';
    return callback(refused, '', 0);
  }
  dnsLookup(hostname, { ...options, all: true }, (error, addresses: LookupAddress[]) => {
    if (error !== null) return callback(error, '', 0);
    // The rua is the recipient domain's to write: a name of it may not aim our POST at our own
    // services. The addresses checked are those connected to (net resolves nothing itself).
    const internal = firstInternal(addresses);
    const first = addresses[0];
    if (internal !== undefined || first === undefined) {
      const refused: NodeJS.ErrnoException = new Error(
        internal === undefined
          ? `no address for ${hostname}`
          : `${hostname} is at ${internal.address}, an internal address: not posted to`,
      );
      refused.code = internal === undefined ? 'ENOTFOUND' : 'EADDRNOTAVAIL';
      return callback(refused, '', 0);
    }
    if (options.all === true)
      return (callback as unknown as (e: null, a: LookupAddress[]) => void)(null, addresses);
    callback(null, first.address, first.family);
  });
};

/** The collector's answer is read to this many bytes, no more. */
const MAX_ANSWER = 16_384;

export function postReport(
  url: URL,
  gzipped: Buffer,
  options: HttpsReportOptions = {},
): Promise<void> {
  const timeoutMs = options.timeoutMs ?? 30_000;
  return new Promise((resolve, reject) => {
    let settled = false;
    const finish = (error?: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (error === undefined) resolve();
      else reject(error);
    };
    const req = request(url, {
      method: 'POST',
      headers: { 'content-type': 'application/tlsrpt+gzip', 'content-length': gzipped.length },
      rejectUnauthorized: true,
      minVersion: 'TLSv1.2',
      ...(options.extraCas !== undefined && options.extraCas.length > 0
        ? { ca: [...rootCertificates, ...options.extraCas] }
        : {}),
      agent: false,
      ...(options.allowInternalAddresses === true ? {} : { lookup: publicOnlyLookup }),
    });
    const timer = setTimeout(() => {
      req.destroy();
      finish(new Error(`no answer from ${url.origin} within ${timeoutMs} ms`));
    }, timeoutMs);
    req.on('error', (error) => finish(new Error(`POST ${url.origin}: ${error.message}`)));
    req.on('response', (response) => {
      let received = 0;
      response.on('data', (chunk: Buffer) => {
        received += chunk.length;
        if (received > MAX_ANSWER) response.destroy();
      });
      response.on('error', () => undefined);
      response.on('close', () => req.destroy());
      const status = response.statusCode ?? 0;
      // A redirect is not followed: the report goes where the record says, or not at all.
      if (status >= 200 && status < 300) finish();
      else finish(new Error(`POST ${url.origin}${url.pathname}: HTTP ${status}`));
      response.resume();
    });
    req.end(gzipped);
  });
}

export type ReportTransport = (
  uri: ReportUri,
  report: { gzipped: Buffer; message: () => Promise<Buffer> },
) => Promise<void>;
