// DKIM for mailed TLS reports. RFC 8460 §3: a report sent by mail must carry a valid DKIM
// signature by the reporting domain (a recipient ignores one without), and the signature must not
// use `l=`. Relaxed/relaxed, rsa-sha256, no `l=`: nodemailer's DKIM parts parse the message,
// hash the body and canonicalize the fields; the field list is ours, because nodemailer signs
// each field present once and absent ones not at all, and a field added above them (a second
// TLS-Report-Domain, a From) would pass. Each signed field is listed once more than it occurs
// (RFC 6376 §8.15), so that any field added on the way breaks the signature. The key file is read
// when a report is signed, so a key replaced on disk is used from the next report on.
import { createPrivateKey, createPublicKey, sign, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { PassThrough } from 'node:stream';
import { finished } from 'node:stream/promises';
import MessageParser, { type MessageParserHeaderLine } from 'nodemailer/lib/dkim/message-parser.js';
import RelaxedBody from 'nodemailer/lib/dkim/relaxed-body.js';
import dkimSign from 'nodemailer/lib/dkim/sign.js';
import { foldLines } from 'nodemailer/lib/mime-funcs/index.js';

/** Our DKIM signing identity for reports: `d=`, `s=` and where the private key is. */
export interface ReportDkim {
  domain: string;
  selector: string;
  /** An absolute path; the key is a secret and never leaves this module. */
  keyFile: string;
}

/**
 * The header fields signed: those RFC 6376 §5.4.1 recommends, and the two that say which domain
 * a report is about and who sent it, so that neither can be changed or added on the way.
 */
const SIGNED_FIELDS = [
  'from',
  'sender',
  'reply-to',
  'subject',
  'date',
  'message-id',
  'to',
  'cc',
  'mime-version',
  'content-type',
  'content-transfer-encoding',
  'tls-report-domain',
  'tls-report-submitter',
];

export class DkimKeyError extends Error {
  override name = 'DkimKeyError';
}

/** The RSA private key of a key file; the reason names the file, never what is in it. */
export async function readDkimKey(keyFile: string): Promise<KeyObject> {
  let text: string;
  try {
    text = await readFile(keyFile, 'utf8');
  } catch (error) {
    throw new DkimKeyError(
      `the DKIM key file ${keyFile} cannot be read (${(error as NodeJS.ErrnoException).code ?? 'error'})`,
    );
  }
  let key: KeyObject;
  try {
    key = createPrivateKey(text);
  } catch {
    // The parser's message could quote the file: a generic reason on purpose.
    throw new DkimKeyError(`the DKIM key file ${keyFile} holds no private key that can be read`);
  }
  if (key.asymmetricKeyType !== 'rsa')
    throw new DkimKeyError(`the DKIM key file ${keyFile} holds no RSA key (rsa-sha256 signs)`);
  const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
  // RFC 8301 §3.2: verifiers may refuse keys under 1024 bits; signers should use 2048.
  if (bits < 1024)
    throw new DkimKeyError(`the DKIM key in ${keyFile} has ${bits} bits; at least 1024 are needed`);
  return key;
}

/** The message with a DKIM-Signature field added on top. */
export async function signReportMessage(message: Buffer, dkim: ReportDkim): Promise<Buffer> {
  const key = await readDkimKey(dkim.keyFile);
  const { headers, bodyHash } = await parseMessage(message);
  // RFC 6376 §5.4.2: the i-th listing of a name takes its i-th instance from the bottom, and a
  // listing with no instance left signs nothing, so one listing more than there are instances
  // makes any added instance change what is signed.
  const names: string[] = [];
  const signedLines: string[] = [];
  for (const name of SIGNED_FIELDS) {
    const instances = headers.filter((header) => header.key === name).reverse();
    for (const instance of instances) signedLines.push(canonicalField(instance));
    for (let listed = 0; listed <= instances.length; listed += 1) names.push(name);
  }
  const tags = [
    'v=1',
    'a=rsa-sha256',
    'c=relaxed/relaxed',
    `d=${dkim.domain}`,
    'q=dns/txt',
    `s=${dkim.selector}`,
    `bh=${bodyHash}`,
    `h=${names.join(':')}`,
  ];
  // A tag value is printable ASCII without ';' (RFC 6376 §3.2): nothing may open a tag of its own.
  if (tags.some((tag) => /[^!-:<-~]/.test(tag.slice(tag.indexOf('=') + 1))))
    throw new DkimKeyError('the DKIM domain or selector holds a character a tag cannot');
  const field = `${foldLines(`DKIM-Signature: ${tags.join('; ')}`, 76)};\r\n b=`;
  // The signature field itself is signed last, its b= empty and without its CRLF (§3.7).
  const data = [...signedLines, canonicalField({ key: 'dkim-signature', line: field })].join(
    '\r\n',
  );
  const signature = sign('sha256', Buffer.from(data, 'latin1'), key).toString('base64');
  const folded = signature.replace(/(^.{73}|.{75}(?!\r?\n|\r))/g, '$&\r\n ').trim();
  return Buffer.concat([Buffer.from(`${field}${folded}\r\n`, 'latin1'), message]);
}

/** The header fields (nodemailer's parser: lower-case keys, raw lines) and the body hash. */
async function parseMessage(
  message: Buffer,
): Promise<{ headers: MessageParserHeaderLine[]; bodyHash: string }> {
  const parser = new MessageParser();
  const body = new RelaxedBody({ hashAlgo: 'sha256' });
  let headers: MessageParserHeaderLine[] | undefined;
  let bodyHash: string | undefined;
  parser.on('headers', (parsed: MessageParserHeaderLine[]) => (headers = parsed));
  body.on('hash', (hash: string) => (bodyHash = hash));
  const sink = new PassThrough();
  sink.resume();
  parser.pipe(body).pipe(sink);
  parser.end(message);
  await finished(sink);
  if (headers === undefined || bodyHash === undefined)
    throw new DkimKeyError('the report message could not be read for signing');
  return { headers, bodyHash };
}

/** One field in relaxed canonical form (RFC 6376 §3.4.2), as nodemailer's signer makes it. */
function canonicalField(header: MessageParserHeaderLine): string {
  return dkimSign.relaxedHeaders([header], header.key).headers.replace(/\r\n$/, '');
}

/**
 * The TXT record to publish at `<selector>._domainkey.<domain>` for a key: RFC 6376 §3.6.1, with
 * the service type `s=tlsrpt` RFC 8460 §3 asks for (the key signs TLS reports and nothing else).
 */
export function dkimRecordText(key: KeyObject): string {
  const spki = createPublicKey(key).export({ format: 'der', type: 'spki' });
  return `v=DKIM1; k=rsa; s=tlsrpt; p=${spki.toString('base64')}`;
}
