// The little DER the product reads and writes itself: element boundaries and OIDs (certificate
// extensions and keys Node does not decode) and encoding (for the lab PKI's CRLs). CRLs are read
// by @peculiar/x509. Shared by engine and pki.

export interface DerElement {
  tag: number;
  /** Where the element's tag is. */
  offset: number;
  /** Where its content starts and ends. */
  start: number;
  end: number;
}

export class DerError extends Error {}

/** The DER element at `offset`, of the given tag when one is given. */
export function derElement(der: Uint8Array, offset: number, tag?: number): DerElement {
  const found = der[offset];
  if (found === undefined) throw new DerError('truncated');
  if (tag !== undefined && found !== tag) {
    throw new DerError(`tag 0x${found.toString(16)} at ${offset}, expected 0x${tag.toString(16)}`);
  }
  let length = der[offset + 1];
  let start = offset + 2;
  if (length === undefined) throw new DerError('truncated');
  if (length & 0x80) {
    const octets = length & 0x7f;
    if (octets === 0 || octets > 4) throw new DerError('bad length');
    length = 0;
    for (let i = 0; i < octets; i++) length = length * 256 + (der[start + i] ?? 0);
    start += octets;
  }
  const end = start + length;
  if (end > der.length) throw new DerError('truncated');
  return { tag: found, offset, start, end };
}

/** The elements inside a constructed element, in order. */
export function derChildren(der: Uint8Array, parent: DerElement): DerElement[] {
  const children: DerElement[] = [];
  for (let at = parent.start; at < parent.end;) {
    const child = derElement(der, at);
    children.push(child);
    at = child.end;
  }
  return children;
}

export function derOid(der: Uint8Array, { start, end }: DerElement): string {
  const bytes = der.subarray(start, end);
  const first = bytes[0] ?? 0;
  const parts = [Math.floor(first / 40), first % 40];
  let value = 0;
  for (const byte of bytes.subarray(1)) {
    value = value * 128 + (byte & 0x7f);
    if ((byte & 0x80) === 0) {
      parts.push(value);
      value = 0;
    }
  }
  return parts.join('.');
}

/** One DER element: tag, length, content. */
export function derEncode(tag: number, ...content: Uint8Array[]): Buffer {
  const body = Buffer.concat(content);
  const length = body.length;
  let header: number[];
  if (length < 0x80) header = [tag, length];
  else {
    const octets: number[] = [];
    for (let rest = length; rest > 0; rest = Math.floor(rest / 256)) octets.unshift(rest % 256);
    header = [tag, 0x80 | octets.length, ...octets];
  }
  return Buffer.concat([Buffer.from(header), body]);
}

export function derEncodeOid(oid: string): Buffer {
  const [a = 0, b = 0, ...rest] = oid.split('.').map(Number);
  const bytes = [a * 40 + b];
  for (const part of rest) {
    const groups = [part & 0x7f];
    for (let value = Math.floor(part / 128); value > 0; value = Math.floor(value / 128)) {
      groups.unshift(0x80 | (value & 0x7f));
    }
    bytes.push(...groups);
  }
  return derEncode(0x06, Buffer.from(bytes));
}

/** GeneralizedTime, as RFC 5280 wants it for years after 2049 (and accepts for all). */
export function derEncodeTime(time: Date): Buffer {
  const iso = time.toISOString(); // 2026-11-25T09:00:00.000Z
  const text = `${iso.slice(0, 4)}${iso.slice(5, 7)}${iso.slice(8, 10)}${iso.slice(11, 13)}${iso.slice(14, 16)}${iso.slice(17, 19)}Z`;
  return derEncode(0x18, Buffer.from(text, 'latin1'));
}
