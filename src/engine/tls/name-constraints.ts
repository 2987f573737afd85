// Name constraints of the CAs on a verified path (RFC 5280 §4.2.1.10), as OpenSSL applies them:
// dNSName subtrees are checked against the DNS names of every certificate below the CA; other
// forms of constraint are refused whenever a certificate below has a name they would judge.
import type { X509Certificate } from 'node:crypto';
import { canonicalCertificateName } from '../../certificate-names.js';
import {
  certificateExtensions,
  type GeneralNameForm,
  type NameSubtree,
} from './certificate-extensions.js';

/**
 * The first name-constraint violation on `path` (leaf first, anchor last), or undefined.
 * `labels[i]` names path[i] in the reason; `leafNames` are the leaf's DNS names as matching
 * reads them (SAN dNSName, or the subject CN without one: OpenSSL checks the CN then too).
 */
export function nameConstraintsProblem(
  path: readonly X509Certificate[],
  labels: readonly string[],
  leafNames: readonly string[],
): string | undefined {
  for (const [above, authority] of path.entries()) {
    const reading = certificateExtensions(authority);
    if (above === 0 || !('extensions' in reading)) continue;
    const constraints = reading.extensions.nameConstraints;
    if (constraints === undefined) continue;
    const label = labels[above] ?? 'issuer';
    const subtrees = [...constraints.permitted, ...constraints.excluded];
    if (subtrees.some((subtree) => subtree.bounded)) {
      return `${label} has name constraints with a minimum or maximum (RFC 5280 forbids them)`;
    }
    for (let below = above - 1; below >= 0; below -= 1) {
      const certificate = path[below];
      if (certificate === undefined) continue;
      // RFC 5280 §6.1.3 (b): self-issued intermediates are not constrained.
      if (below > 0 && certificate.subject === certificate.issuer) continue;
      const which = labels[below] ?? 'certificate';
      const names = namesByForm(certificate, below === 0 ? leafNames : undefined);
      for (const form of new Set(subtrees.map((subtree) => subtree.base.form))) {
        if (form === 'dNSName' || (names.get(form) ?? []).length === 0) continue;
        return `${label} has name constraints on ${form} names, which domsec does not check, and ${which} has such names`;
      }
      const dnsPermitted = constraints.permitted.filter((s) => s.base.form === 'dNSName');
      const dnsExcluded = constraints.excluded.filter((s) => s.base.form === 'dNSName');
      for (const written of names.get('dNSName') ?? []) {
        for (const name of dnsForms(written)) {
          const shown = name === written ? written : `${written} (${name})`;
          if (dnsPermitted.length > 0 && !dnsPermitted.some((subtree) => within(name, subtree))) {
            return `${which} name ${shown} is outside the names ${label} permits`;
          }
          if (dnsExcluded.some((subtree) => within(name, subtree))) {
            return `${which} name ${shown} is among the names ${label} excludes`;
          }
        }
      }
    }
  }
  return undefined;
}

/** The certificate's names that constraints judge, by form (its subject is a directoryName). */
function namesByForm(
  certificate: X509Certificate,
  dnsNames: readonly string[] | undefined,
): Map<GeneralNameForm, string[]> {
  const names = new Map<GeneralNameForm, string[]>();
  const add = (form: GeneralNameForm, text: string) =>
    names.set(form, [...(names.get(form) ?? []), text]);
  const reading = certificateExtensions(certificate);
  const alternatives = 'extensions' in reading ? reading.extensions.subjectAltNames : [];
  for (const name of alternatives) if (name.form !== 'dNSName') add(name.form, name.text);
  const sanDns = alternatives.filter((name) => name.form === 'dNSName').map((name) => name.text);
  for (const name of dnsNames ?? sanDns) add('dNSName', name);
  if (certificate.subject !== '') add('directoryName', certificate.subject);
  // An emailAddress in the subject is judged by rfc822Name constraints (RFC 5280 §4.2.1.10).
  for (const line of certificate.subject.split('\n')) {
    if (line.startsWith('emailAddress=')) add('rfc822Name', line.slice('emailAddress='.length));
  }
  return names;
}

/**
 * A DNS name as written, and as name matching reads it (certificate-names.ts: case, one trailing
 * dot, U-labels): "adatum.com." names adatum.com, so an exclusion of adatum.com must hold for it,
 * although OpenSSL's byte comparison does not see adatum.com in it.
 */
function dnsForms(written: string): string[] {
  const canonical = canonicalCertificateName(written);
  return canonical === '' || canonical === written ? [written] : [written, canonical];
}

/**
 * OpenSSL's reading of a dNSName subtree: an empty base is every name; otherwise the name is the
 * base or ends with it after a dot ("adatum.com" covers mail.adatum.com), and a base with a
 * leading dot (".adatum.com") covers only names below it. ASCII case does not matter.
 */
function within(name: string, { base }: NameSubtree): boolean {
  const wanted = asciiLowerCase(base.text);
  const host = asciiLowerCase(name);
  if (wanted === '') return true;
  if (host === wanted) return true;
  if (host.length <= wanted.length || !host.endsWith(wanted)) return false;
  return wanted.startsWith('.') || host[host.length - wanted.length - 1] === '.';
}

/** ASCII letters only, as OpenSSL's ia5casecmp: toLowerCase() would map e.g. U+212A to "k". */
function asciiLowerCase(text: string): string {
  return text.replace(/[A-Z]/g, (letter) => String.fromCharCode(letter.charCodeAt(0) + 32));
}
