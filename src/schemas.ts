// Where the JSON Schemas of schemas/ live, which file holds each kind's spec, and the formats
// they name: shared by the manifest loader (src/config) and the admin API (src/control), so that
// a manifest and a configuration sent to the engine are checked by the same definitions.
import { isIP } from 'node:net';
import type { Kind } from './model.js';
import { domainName } from './domain-name.js';
import { parseHostPort } from './units.js';

/** schemas/ beside src/ and dist/: the same relative place from src/ and dist/. */
export const SCHEMA_DIRECTORY = new URL('../schemas/', import.meta.url);

export const SCHEMA_FILES: Record<Kind, string> = {
  Organization: 'organization.schema.json',
  Certificate: 'certificate.schema.json',
  TrustAnchor: 'trust-anchor.schema.json',
  PartnerDomain: 'partner-domain.schema.json',
  SendConnector: 'send-connector.schema.json',
  ReceiveConnector: 'receive-connector.schema.json',
  TlsPolicy: 'tls-policy.schema.json',
};

/** The files the kinds' schemas refer to. */
export const SHARED_SCHEMA_FILES = ['definitions.schema.json', 'manifest.schema.json'];

// Formats finish what a pattern cannot say well (IPv6 syntax, which labels are an IPv4 address);
// editors ignore them and still have the patterns.
const looksIPv4 = (text: string) => /^[0-9.]+$/.test(text);
const validHost = (host: string) =>
  host.includes(':')
    ? isIP(host) === 6
    : looksIPv4(host)
      ? isIP(host) === 4
      : domainName(host) !== undefined;
const validHostPort = (text: string) => {
  const parsed = parseHostPort(text);
  return parsed !== undefined && validHost(parsed.host);
};
const validIpPort = (text: string) => {
  const parsed = parseHostPort(text);
  return parsed !== undefined && isIP(parsed.host) !== 0;
};

/** A name or a one-label wildcard, each as domain-name.ts reads it (the engine reads the same). */
const wildcardOrName = (text: string) =>
  domainName(text.startsWith('*.') ? text.slice(2) : text) !== undefined;

/** The `format` keywords of schemas/, for ajv's `formats` option. */
export const SCHEMA_FORMATS = {
  'domain-name': (text: string) => domainName(text) !== undefined,
  'address-space': (text: string) => text === '*' || wildcardOrName(text),
  'certificate-name': wildcardOrName,
  host: validHost,
  'host-port': validHostPort,
  'host-optional-port': (text: string) =>
    text.startsWith('[') || /^[^:]*:[0-9]+$/.test(text) ? validHostPort(text) : validHost(text),
  'ip-port': validIpPort,
  'ip-optional-port': (text: string) => isIP(text) !== 0 || validIpPort(text),
  'ip-range': (text: string) => {
    const [address = '', prefix, extra] = text.split('/');
    const family = isIP(address);
    if (family === 0 || extra !== undefined) return false;
    if (prefix === undefined) return true;
    const bits = Number(prefix);
    return /^[0-9]+$/.test(prefix) && bits <= (family === 4 ? 32 : 128);
  },
};
