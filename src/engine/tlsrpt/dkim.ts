// DKIM for mailed TLS reports. RFC 8460 §3: a report sent by mail must carry a valid DKIM
// signature by the reporting domain (a recipient ignores one without), and the signature must not
// use `l=`. The signing is nodemailer's (relaxed/relaxed, rsa-sha256, no `l=`); the key file is
// read when a report is signed, so a key replaced on disk is used from the next report on.
import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import DKIM from 'nodemailer/lib/dkim/index.js';

/** Our DKIM signing identity for reports: `d=`, `s=` and where the private key is. */
export interface ReportDkim {
  domain: string;
  selector: string;
  /** An absolute path; the key is a secret and never leaves this module. */
  keyFile: string;
}

/**
 * The header fields signed: those RFC 6376 §5.4.1 recommends, and the two that say which domain
 * a report is about and who sent it, so that neither can be changed on the way.
 */
const SIGNED_FIELDS = [
  'From',
  'Sender',
  'Reply-To',
  'Subject',
  'Date',
  'Message-ID',
  'To',
  'Cc',
  'MIME-Version',
  'Content-Type',
  'Content-Transfer-Encoding',
  'TLS-Report-Domain',
  'TLS-Report-Submitter',
].join(':');

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
  const signer = new DKIM({
    domainName: dkim.domain,
    keySelector: dkim.selector,
    privateKey: key,
    headerFieldNames: SIGNED_FIELDS,
  });
  const stream = signer.sign(message);
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  const signed = Buffer.concat(chunks);
  if (!signed.subarray(0, 16).toString('latin1').startsWith('DKIM-Signature:'))
    throw new DkimKeyError('the report message could not be signed');
  return signed;
}

/**
 * The TXT record to publish at `<selector>._domainkey.<domain>` for a key: RFC 6376 §3.6.1, with
 * the service type `s=tlsrpt` RFC 8460 §3 asks for (the key signs TLS reports and nothing else).
 */
export function dkimRecordText(key: KeyObject): string {
  const spki = createPublicKey(key).export({ format: 'der', type: 'spki' });
  return `v=DKIM1; k=rsa; s=tlsrpt; p=${spki.toString('base64')}`;
}
