// PEM text into its blocks (certificates, keys, CRLs), without judging what they hold.

export interface PemBlock {
  /** What follows BEGIN: CERTIFICATE, PRIVATE KEY, X509 CRL, ... */
  label: string;
  /** The block itself, BEGIN to END, with \n line ends and a final newline. */
  text: string;
}

const BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n[\s\S]*?-----END \1-----/g;

export function pemBlocks(text: string): PemBlock[] {
  return [...text.matchAll(BLOCK)].map((match) => ({
    label: match[1] ?? '',
    text: `${match[0].replace(/\r\n/g, '\n')}\n`,
  }));
}

export function pemBlocksLabelled(text: string, label: string): string[] {
  return pemBlocks(text)
    .filter((block) => block.label === label)
    .map((block) => block.text);
}
