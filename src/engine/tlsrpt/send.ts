// Sends one gzip'ed report to one rua. https: a POST of application/tlsrpt+gzip (RFC 8460 §5.2)
// verified by PKIX against the platform's CAs (and a lab's extra CAs), no redirect followed, time
// and the answer's size bounded; 2xx is delivered, anything else fails and is tried next cycle.
// mailto: the report message handed to our own queue, which delivers it like any other mail.
import { request } from 'node:https';
import { rootCertificates } from 'node:tls';
import type { ReportUri } from './record.js';

export interface HttpsReportOptions {
  timeoutMs?: number;
  /** Extra CAs (labs and tests only). */
  extraCas?: readonly string[];
}

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
