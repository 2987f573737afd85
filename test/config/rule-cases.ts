// The rule table: for each diagnostic code, configurations it must let pass (valid) and
// configurations it must refuse or warn of (invalid), with where, what and the hint. Each case is
// fixtures/base with a fixture directory over it, files written over that and any other change
// (certificates, modes). rules.test.ts runs the table and checks that every DS code of the
// catalogue has both kinds of case.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { chmod, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { LoadResult } from '../../src/config/index.js';
import type { IssuedCertificate } from '../../src/pki/lab.js';
import { createCertificateAuthority, issueCertificate } from '../../src/pki/lab.js';
import { lab } from '../support/lab.js';
import { FIXTURES, positionIn } from './cases.js';

const DAY = 86_400_000;
const ENVELOPE = (kind: string, name: string) =>
  `apiVersion: domsec.io/v1alpha1\nkind: ${kind}\nmetadata: {name: ${name}}\n`;

/** How a case's configuration differs from fixtures/base. */
export interface Manifests {
  /** fixtures/<fixture>/ copied over the base. */
  fixture?: string;
  /** Files written over those: the text, or a change of the file as it is by then. */
  files?: Record<string, string | ((text: string) => string)>;
  /** Anything else, after the files: certificates, modes. */
  prepare?: (dir: string) => Promise<void>;
}

export type Loaded = LoadResult & { dir: string };

export interface ValidCase extends Manifests {
  /** What passes, in words. */
  name: string;
  /** Assertions beyond "no diagnostic, and a configuration". */
  check?: (result: Loaded) => void | Promise<void>;
}

/** One diagnostic expected, in the order validate reports them. */
export interface ExpectedDiagnostic {
  code: string;
  /** Its file, line and column: those of the needle (its `occurrence`-th) in the file. */
  at?: { file: string; needle: string; occurrence?: number };
  /** Its line only. */
  line?: number;
  message?: string | RegExp;
  hint?: string | RegExp;
}

export interface InvalidCase extends Manifests {
  /** What is refused (or warned of), in words. */
  name: string;
  /** Every diagnostic of the load, in order. An error refuses the configuration, a warning not. */
  diagnostics: ExpectedDiagnostic[];
  check?: (result: Loaded) => void | Promise<void>;
}

export interface RuleCases {
  code: string;
  valid: ValidCase[];
  invalid: InvalidCase[];
}

/** A change of a file: `from` replaced by `to`, which must be there. */
const replace =
  (from: string, to: string) =>
  (text: string): string => {
    assert.ok(text.includes(from), `${JSON.stringify(from)} is in the file to change`);
    return text.replace(from, to);
  };

/** An RSA key for DKIM at pki/<name> in a case directory (made once, it is slow to make). */
let dkimPem: string | undefined;
const withDkimKey =
  (name = 'dkim.key', mode = 0o600, pem?: () => string) =>
  async (dir: string) => {
    dkimPem ??= generateKeyPairSync('rsa', { modulusLength: 1024 })
      .privateKey.export({ format: 'pem', type: 'pkcs8' })
      .toString();
    await writeFile(join(dir, 'pki', name), pem?.() ?? dkimPem, { mode });
    await chmod(join(dir, 'pki', name), mode);
  };

/** Replaces adatum's mail certificate (and key) in a case directory. */
const withCertificate = (issued: () => IssuedCertificate) => async (dir: string) => {
  const { certPem, keyPem } = issued();
  await writeFile(join(dir, 'pki', 'mail.adatum.com.crt'), certPem);
  await writeFile(join(dir, 'pki', 'mail.adatum.com.key'), keyPem, { mode: 0o600 });
};

/** An adatum mail certificate from the lab CA, with both names unless told otherwise. */
const adatumCertificate = (options: Omit<Parameters<typeof issueCertificate>[1], 'commonName'>) =>
  issueCertificate(lab().adatumRoot, {
    commonName: 'mail.adatum.com',
    dnsNames: ['mail.adatum.com', 'adatum.com'],
    ...options,
  });

/** organization.yaml of the base serving its MTA-STS policy (mtaSts.listen). */
const servingMtaSts = replace(
  '  certificate: mail-adatum\n',
  "  certificate: mail-adatum\n  mtaSts: {mode: enforce, listen: '0.0.0.0:443'}\n",
);

/** The base's connectors.yaml followed by more documents. */
const baseConnectorsAnd = async (more: string): Promise<string> =>
  `${await readFile(join(FIXTURES, 'base', 'connectors.yaml'), 'utf8')}---\n${more}`;

/** connectors.yaml of the base with one more receive connector, `internal`, that relays. */
const withRelay = (spec: string) => ({
  prepare: async (dir: string) => {
    await writeFile(
      join(dir, 'connectors.yaml'),
      await baseConnectorsAnd(
        `${ENVELOPE('ReceiveConnector', 'internal')}spec: {${spec}, permitRelay: true}\n`,
      ),
    );
  },
});

/** The DS017 fixture with the relay host and the receive binding changed. */
const relayTo = (host: string, binding: string): Manifests => ({
  fixture: 'DS017',
  files: {
    'connectors.yaml': replace("'127.0.0.2:2525'", `'${binding}'`),
    'organization.yaml': replace("host: '127.0.0.2:2525'", `host: '${host}'`),
  },
});

const TREY_PARTNER = `${ENVELOPE('PartnerDomain', 'treyresearch')}spec: {domain: treyresearch.net, domainSecure: {send: true, receive: true}, remoteIPRanges: [127.0.0.0/8], trustAnchors: [treyresearch-root]}\n`;
const TREY_ANCHOR = `${ENVELOPE('TrustAnchor', 'treyresearch-root')}spec: {pemFile: pki/treyresearch-root.crt}\n`;

export const RULE_CASES: readonly RuleCases[] = [
  {
    code: 'DS001',
    valid: [
      {
        name: 'smart hosts on a connector without domain security, beside a domain-secure one',
        prepare: async (dir) =>
          writeFile(
            join(dir, 'connectors.yaml'),
            await baseConnectorsAnd(
              `${ENVELOPE('SendConnector', 'to-everyone')}spec: {addressSpaces: ['*'], routing: {smartHosts: [relay.adatum.com]}}\n`,
            ),
          ),
      },
    ],
    invalid: [
      {
        name: 'a domain-secure send connector routed through smart hosts, at smartHosts',
        fixture: 'DS001',
        diagnostics: [
          {
            code: 'DS001',
            at: { file: 'connectors.yaml', needle: 'smartHosts' },
            message: 'SendConnector/to-partners routes through smartHosts with domainSecure: true',
            hint: "domain security verifies the partner's own server found by MX; a smart host hides it. Use `dnsMx`, or turn domain security off on this connector",
          },
        ],
      },
    ],
  },
  {
    code: 'DS002',
    valid: [
      {
        name: 'a plaintext connector (authMechanisms: [none]) without domain security',
        prepare: async (dir) =>
          writeFile(
            join(dir, 'connectors.yaml'),
            await baseConnectorsAnd(
              `${ENVELOPE('ReceiveConnector', 'internal')}spec: {bindings: ['127.0.0.2:2587'], remoteIPRanges: [127.0.0.0/8], authMechanisms: [none]}\n`,
            ),
          ),
      },
    ],
    invalid: [
      {
        name: 'a domain-secure receive connector without tls, at authMechanisms',
        fixture: 'DS002',
        diagnostics: [
          {
            code: 'DS002',
            at: { file: 'connectors.yaml', needle: 'authMechanisms' },
            message: /ReceiveConnector\/from-partners/,
            hint: 'add `tls`',
          },
        ],
      },
    ],
  },
  {
    code: 'DS003',
    valid: [
      {
        name: 'a send-secure partner covered by a domain-secure connector for every domain',
        files: {
          'connectors.yaml': `${ENVELOPE('SendConnector', 'to-everyone')}spec: {addressSpaces: ["*"], domainSecure: true}\n---\n${ENVELOPE('ReceiveConnector', 'in')}spec: {bindings: ["127.0.0.2:25"], domainSecure: true}\n`,
        },
      },
    ],
    invalid: [
      {
        name: 'a send-secure partner that no domain-secure send connector covers',
        fixture: 'DS003',
        diagnostics: [
          {
            code: 'DS003',
            at: { file: 'partners.yaml', needle: 'send:' },
            message: /PartnerDomain\/treyresearch .*no SendConnector covers treyresearch\.net/,
            hint: /add or fix a send connector/,
          },
        ],
      },
      {
        name: 'a send-secure partner whose most specific send connector is not domain-secure',
        files: {
          'more-connectors.yaml': `${ENVELOPE('SendConnector', 'to-trey-plain')}spec: {addressSpaces: [treyresearch.net], cost: 1}\n`,
          'connectors.yaml': `${ENVELOPE('SendConnector', 'to-everyone')}spec: {addressSpaces: ["*"], domainSecure: true}\n---\n${ENVELOPE('ReceiveConnector', 'in')}spec: {bindings: ["127.0.0.2:25"], domainSecure: true}\n`,
        },
        diagnostics: [
          {
            code: 'DS003',
            message: /SendConnector\/to-trey-plain, which has no domainSecure: true/,
          },
        ],
      },
    ],
  },
  {
    code: 'DS004',
    valid: [
      {
        name: 'a partner secure for sending only, and no domain-secure receive connector',
        fixture: 'DS004',
        files: {
          'partners.yaml': replace(
            'domainSecure: { send: true, receive: true }',
            'domainSecure: { send: true, receive: false }',
          ),
        },
      },
    ],
    invalid: [
      {
        name: 'a receive-secure partner when no receive connector is domain-secure',
        fixture: 'DS004',
        diagnostics: [{ code: 'DS004', at: { file: 'partners.yaml', needle: 'receive:' } }],
      },
    ],
  },
  {
    code: 'DS005',
    valid: [
      {
        name: 'the subject CN when the certificate has no SAN; without domain-secure partners only the hostname counts',
        files: {
          'partners.yaml': `${ENVELOPE('PartnerDomain', 'treyresearch')}spec: {domain: treyresearch.net}\n`,
        },
        prepare: withCertificate(() =>
          issueCertificate(lab().adatumRoot, { commonName: 'mail.adatum.com' }),
        ),
      },
    ],
    invalid: [
      {
        name: 'an organization certificate that names neither the EHLO hostname nor adatum.com',
        prepare: withCertificate(() => lab().adatumWrongName),
        diagnostics: [
          {
            code: 'DS005',
            line: 9,
            message:
              /Organization\/adatum: hostname mail\.adatum\.com is not named by Certificate\/mail-adatum \(its names: mail\.contoso\.com\)/,
            hint: /domsec certs/,
          },
          { code: 'DS005', line: 10, message: /accepted domain adatum\.com is not named/ },
        ],
      },
      {
        name: 'a one-label wildcard covers the hostname, but the accepted domain itself is wanted',
        prepare: withCertificate(() =>
          issueCertificate(lab().adatumRoot, { commonName: 'adatum', dnsNames: ['*.adatum.com'] }),
        ),
        diagnostics: [{ code: 'DS005', at: { file: 'organization.yaml', needle: 'adatum.com]' } }],
      },
    ],
  },
  {
    code: 'DS006',
    valid: [
      {
        name: 'a certificate valid for 60 more days, with serverAuth and clientAuth',
        prepare: withCertificate(() =>
          adatumCertificate({
            extendedKeyUsage: ['serverAuth', 'clientAuth'],
            notBefore: new Date(Date.now() - DAY),
            notAfter: new Date(Date.now() + 60 * DAY),
          }),
        ),
      },
    ],
    invalid: [
      {
        name: 'an expired certificate, at certFile',
        prepare: withCertificate(() => lab().adatumExpired),
        diagnostics: [
          {
            code: 'DS006',
            at: { file: 'organization.yaml', needle: 'certFile' },
            message: /Certificate\/mail-adatum expired on/,
          },
        ],
      },
      {
        name: 'a certificate that is not yet valid',
        prepare: withCertificate(() =>
          adatumCertificate({
            notBefore: new Date(Date.now() + DAY),
            notAfter: new Date(Date.now() + 90 * DAY),
          }),
        ),
        diagnostics: [{ code: 'DS006', message: /is not valid before/ }],
      },
      {
        name: 'a key that does not match its certificate, at keyFile',
        prepare: withCertificate(() => ({ ...lab().adatumMail, keyPem: lab().treyMail.keyPem })),
        diagnostics: [
          {
            code: 'DS006',
            at: { file: 'organization.yaml', needle: 'keyFile' },
            message: /private key in keyFile does not match/,
          },
        ],
      },
      {
        name: 'an organization certificate without serverAuth',
        prepare: withCertificate(() => adatumCertificate({ extendedKeyUsage: ['clientAuth'] })),
        diagnostics: [
          {
            code: 'DS006',
            message: /Extended Key Usage lacks serverAuth/,
            hint: /^we present it as a server and as a client/,
          },
        ],
      },
    ],
  },
  {
    code: 'DS007',
    valid: [
      {
        name: 'a partner naming `system` beside its own anchor: the public CAs need no object',
        files: {
          'partners.yaml': replace(
            'trustAnchors: [treyresearch-root]',
            'trustAnchors: [treyresearch-root, system]',
          ),
        },
      },
    ],
    invalid: [
      {
        name: 'the missing trust anchor and the closest existing name, at the reference',
        fixture: 'DS007',
        diagnostics: [
          {
            code: 'DS007',
            at: { file: 'partners.yaml', needle: 'treyresearch-rot]' },
            message:
              'PartnerDomain/treyresearch names TrustAnchor/treyresearch-rot, which does not exist',
            hint: 'did you mean `treyresearch-root`?',
          },
        ],
      },
      {
        name: 'a missing certificate with no close name lists the existing ones',
        files: {
          'organization.yaml': replace('certificate: mail-adatum', 'certificate: wildcard'),
        },
        diagnostics: [
          {
            code: 'DS007',
            at: { file: 'organization.yaml', needle: 'wildcard' },
            hint: 'the Certificates are `mail-adatum`',
          },
        ],
      },
      {
        name: 'a reference to an object that fails its schema is not reported as missing',
        files: {
          'partners.yaml': `${ENVELOPE('TrustAnchor', 'treyresearch-root')}spec: {pemfile: pki/treyresearch-root.crt}\n---\n${TREY_PARTNER}`,
        },
        diagnostics: [{ code: 'SCHEMA' }, { code: 'SCHEMA' }],
        check: (result) =>
          assert.match(
            result.diagnostics.map((d) => d.hint).join('\n'),
            /did you mean `pemFile`\?/,
          ),
      },
    ],
  },
  {
    code: 'DS008',
    valid: [
      {
        name: 'objects of different kinds may share a name',
        files: {
          'partners.yaml': `${ENVELOPE('TrustAnchor', 'treyresearch')}spec: {pemFile: pki/treyresearch-root.crt}\n---\n${TREY_PARTNER.replace('trustAnchors: [treyresearch-root]', 'trustAnchors: [treyresearch]')}`,
        },
      },
    ],
    invalid: [
      {
        name: 'two objects of one kind with one name, and two partners for one domain',
        fixture: 'DS008',
        diagnostics: [
          { code: 'DS008' },
          {
            code: 'DS008',
            message:
              /PartnerDomain\/treyresearch and PartnerDomain\/treyresearch are both partners for TreyResearch\.net/,
          },
        ],
        check: async ({ diagnostics: [name, domain], dir }) => {
          const file = join(dir, 'partners.yaml');
          const first = await positionIn(file, 'name: treyresearch', 2);
          assert.match(
            name?.message ?? '',
            new RegExp(
              `two PartnerDomains are named \`treyresearch\` \\(the other is at .*partners\\.yaml:${first.line}\\)`,
            ),
          );
          assert.equal(name?.line, (await positionIn(file, 'name: treyresearch', 3)).line);
          assert.equal(domain?.line, (await positionIn(file, 'TreyResearch.net')).line);
        },
      },
      {
        name: 'a second Organization and a TrustAnchor named system',
        files: {
          'zz-more.yaml': `${ENVELOPE('Organization', 'contoso')}spec: {hostname: mail.adatum.com, acceptedDomains: [adatum.com], certificate: mail-adatum}\n---\n${ENVELOPE('TrustAnchor', 'system')}spec: {system: true}\n`,
        },
        diagnostics: [
          { code: 'DS008', message: /exactly one Organization/ },
          { code: 'DS008', message: /the name `system` is reserved/ },
          { code: 'DS102' },
        ],
      },
    ],
  },
  {
    code: 'DS009',
    valid: [
      {
        name: "the partner's CA pasted inline as pem",
        prepare: async (dir) => {
          const pem = await readFile(join(dir, 'pki', 'treyresearch-root.crt'), 'utf8');
          const indented = pem
            .trimEnd()
            .split('\n')
            .map((line) => `    ${line}`)
            .join('\n');
          await writeFile(
            join(dir, 'partners.yaml'),
            `${ENVELOPE('TrustAnchor', 'treyresearch-root')}spec:\n  pem: |\n${indented}\n---\n${TREY_PARTNER}`,
          );
        },
      },
    ],
    invalid: [
      {
        name: 'a trust anchor that is not a CA certificate, at pemFile',
        fixture: 'DS009',
        diagnostics: [
          {
            code: 'DS009',
            at: { file: 'partners.yaml', needle: 'pemFile' },
            message:
              /TrustAnchor\/treyresearch-root: the certificate in pemFile is not a CA certificate/,
          },
        ],
      },
      {
        name: 'an inline pem that cannot be parsed, at pem (no partner names it yet: DS102 as well)',
        files: {
          'zz-anchor.yaml': `${ENVELOPE('TrustAnchor', 'inline')}spec:\n  pem: |\n    -----BEGIN CERTIFICATE-----\n    AAAA\n    -----END CERTIFICATE-----\n`,
        },
        diagnostics: [
          { code: 'DS102' },
          { code: 'DS009', at: { file: 'zz-anchor.yaml', needle: 'pem:' } },
        ],
      },
    ],
  },
  {
    code: 'DS010',
    valid: [
      {
        name: 'a partner for a subdomain of an accepted domain',
        files: {
          'partners.yaml': `${TREY_ANCHOR}---\n${TREY_PARTNER}---\n${ENVELOPE('PartnerDomain', 'branch')}spec: {domain: branch.adatum.com}\n`,
        },
      },
    ],
    invalid: [
      {
        name: 'a partner for an accepted domain',
        fixture: 'DS010',
        diagnostics: [{ code: 'DS010', at: { file: 'partners.yaml', needle: 'adatum.com' } }],
      },
    ],
  },
  {
    code: 'DS011',
    valid: [
      {
        name: 'two receive connectors on one binding for different remote ranges',
        prepare: async (dir) =>
          writeFile(
            join(dir, 'connectors.yaml'),
            await baseConnectorsAnd(
              `${ENVELOPE('ReceiveConnector', 'from-lab')}spec: {bindings: ['127.0.0.2:2525'], remoteIPRanges: [192.0.2.0/24]}\n`,
            ),
          ),
      },
    ],
    invalid: [
      {
        name: 'two receive connectors on one binding with the same remote ranges',
        fixture: 'DS011',
        diagnostics: [
          {
            code: 'DS011',
            at: { file: 'connectors.yaml', needle: "'127.0.0.2:2525']", occurrence: 2 },
            message:
              /ReceiveConnector\/from-internet and ReceiveConnector\/from-partners both listen on 127\.0\.0\.2:2525/,
          },
        ],
      },
    ],
  },
  {
    code: 'DS012',
    valid: [
      {
        name: 'two send connectors with one address space at different costs',
        fixture: 'DS012',
        files: {
          'connectors.yaml': replace(
            'addressSpaces: [contoso.com, TreyResearch.net]\n',
            'addressSpaces: [contoso.com, TreyResearch.net]\n  cost: 2\n',
          ),
        },
      },
    ],
    invalid: [
      {
        name: 'two send connectors with one address space and one cost',
        fixture: 'DS012',
        diagnostics: [
          { code: 'DS012', at: { file: 'connectors.yaml', needle: 'TreyResearch.net' } },
        ],
      },
    ],
  },
  {
    code: 'DS013',
    valid: [
      {
        name: 'a domain-secure partner trusting the public CAs (`system`)',
        files: {
          'partners.yaml': TREY_PARTNER.replace(
            'trustAnchors: [treyresearch-root]',
            'trustAnchors: [system]',
          ),
        },
      },
    ],
    invalid: [
      {
        name: 'a domain-secure partner without trust anchors, hinting at `system`',
        fixture: 'DS013',
        diagnostics: [
          {
            code: 'DS013',
            at: { file: 'partners.yaml', needle: 'domainSecure' },
            hint: 'name one, or `system`',
          },
        ],
      },
    ],
  },
  {
    code: 'DS014',
    valid: [
      {
        name: 'requireTls: true written out on a domain-secure connector',
        files: {
          'connectors.yaml': replace(
            '  domainSecure: true\n---',
            '  domainSecure: true\n  requireTls: true\n---',
          ),
        },
      },
    ],
    invalid: [
      {
        name: 'requireTls: false on a domain-secure connector, at requireTls',
        fixture: 'DS014',
        diagnostics: [{ code: 'DS014', at: { file: 'connectors.yaml', needle: 'requireTls' } }],
      },
    ],
  },
  {
    code: 'DS015',
    valid: [
      {
        name: 'an ECDSA P-256 certificate signed with SHA-256',
        prepare: withCertificate(() => adatumCertificate({ keyType: 'ecdsa-p256' })),
      },
    ],
    invalid: [
      {
        name: 'an RSA key under 2048 bits at certFile, and an anchor signed with SHA-1 at pemFile',
        fixture: 'DS015',
        prepare: async (dir) => {
          await withCertificate(() => adatumCertificate({ keyBits: 1024 }))(dir);
          const weakRoot = createCertificateAuthority({ commonName: 'Weak Root CA', hash: 'sha1' });
          await writeFile(join(dir, 'pki', 'weak-root.crt'), weakRoot.certPem);
        },
        diagnostics: [
          {
            code: 'DS015',
            at: { file: 'organization.yaml', needle: 'certFile' },
            message: 'Certificate/mail-adatum: the certificate has a 1024-bit RSA key',
            hint: /2048 bits/,
          },
          {
            code: 'DS015',
            at: { file: 'partners.yaml', needle: 'pemFile' },
            message: 'TrustAnchor/weak-root: the CA certificate has a SHA-1 with RSA signature',
          },
        ],
      },
    ],
  },
  {
    code: 'DS016',
    valid: [
      {
        name: 'paths relative to the manifest that names them, in a subdirectory',
        prepare: async (dir) => {
          await mkdir(join(dir, 'org'));
          const text = await readFile(join(dir, 'organization.yaml'), 'utf8');
          await writeFile(
            join(dir, 'org', 'organization.yaml'),
            text.replaceAll('pki/', '../pki/'),
          );
          await rm(join(dir, 'organization.yaml'));
        },
      },
    ],
    invalid: [
      {
        name: 'a missing file, at the field that names it',
        fixture: 'DS016',
        diagnostics: [
          {
            code: 'DS016',
            at: { file: 'partners.yaml', needle: 'pki/treyresearch-root.pem' },
            message:
              /^TrustAnchor\/treyresearch-root: pemFile pki\/treyresearch-root\.pem \(.*\) does not exist$/,
          },
        ],
      },
      {
        name: 'a file that is not the PEM it should be, without showing its contents',
        prepare: async (dir) => {
          await writeFile(join(dir, 'pki', 'mail.adatum.com.crt'), 'TOP-SECRET-CONTENT\n');
          await writeFile(join(dir, 'pki', 'mail.adatum.com.key'), lab().adatumMail.certPem, {
            mode: 0o600,
          });
        },
        diagnostics: [
          { code: 'DS016', message: /certFile .* holds no PEM certificate/ },
          { code: 'DS016', message: /keyFile .* holds no PEM private key/ },
        ],
        check: ({ diagnostics }) => {
          assert.ok(!JSON.stringify(diagnostics).includes('TOP-SECRET-CONTENT'));
          assert.ok(!JSON.stringify(diagnostics).includes('BEGIN CERTIFICATE-----\nMI'));
        },
      },
    ],
  },
  {
    code: 'DS017',
    valid: [
      {
        name: 'a relay on another address than the binding',
        ...relayTo('127.0.0.3:2525', '127.0.0.2:2525'),
      },
      {
        name: 'a relay on localhost, another port than the wildcard binding; protocol and tls defaulted',
        ...relayTo('localhost:24', '0.0.0.0:25'),
        check: ({ config }) =>
          assert.deepEqual(config?.organization.spec.delivery, {
            relay: { host: 'localhost:24', protocol: 'smtp', tls: 'opportunistic' },
          }),
      },
    ],
    invalid: [
      {
        name: 'a delivery relay that is one of our own receive bindings, at host',
        fixture: 'DS017',
        diagnostics: [
          {
            code: 'DS017',
            at: { file: 'organization.yaml', needle: "host: '127" },
            message:
              /127\.0\.0\.2:2525, which is binding 127\.0\.0\.2:2525 of ReceiveConnector\/from-partners: mail would loop/,
            hint: /delivery\.maildir/,
          },
        ],
      },
      {
        name: 'a relay on localhost reaches a wildcard binding on its port',
        ...relayTo('localhost', '0.0.0.0:25'),
        diagnostics: [{ code: 'DS017' }],
      },
      {
        name: 'a relay on our own host name reaches a wildcard binding on its port',
        ...relayTo('mail.adatum.com:2525', '[::]:2525'),
        diagnostics: [{ code: 'DS017' }],
      },
    ],
  },
  {
    code: 'DS018',
    valid: [
      {
        name: 'requireTls on a connector that offers tls, without domain security',
        fixture: 'DS018',
        files: { 'connectors.yaml': replace('authMechanisms: [none]', 'authMechanisms: [tls]') },
      },
    ],
    invalid: [
      {
        name: 'a connector that requires TLS without offering it, at requireTls',
        fixture: 'DS018',
        diagnostics: [
          {
            code: 'DS018',
            at: { file: 'connectors.yaml', needle: 'requireTls' },
            message: /ReceiveConnector\/internal has requireTls: true .*530 5\.7\.0/,
          },
        ],
      },
    ],
  },
  {
    code: 'DS019',
    valid: [
      {
        name: 'relay from loopback only',
        ...withRelay(
          "bindings: ['0.0.0.0:587'], remoteIPRanges: [127.0.0.0/8, '::1', '::ffff:7f00:0/104']",
        ),
      },
      {
        name: 'any ranges on a loopback binding',
        ...withRelay(
          "bindings: ['127.0.0.1:587', '[::1]:587'], remoteIPRanges: [0.0.0.0/0, '::/0']",
        ),
      },
    ],
    invalid: [
      {
        name: 'relay to the Internet written as two halves, at remoteIPRanges, hinting how to narrow them',
        fixture: 'DS019',
        diagnostics: [
          {
            code: 'DS019',
            at: { file: 'connectors.yaml', needle: 'remoteIPRanges: [0.0.0.0/1' },
            message:
              'ReceiveConnector/internal permits relay to 0.0.0.0/1, 128.0.0.0/1 on 0.0.0.0:587: clients beyond loopback and private networks could send mail anywhere through us (an open relay)',
            hint: /never required.*narrow them to your own servers/,
          },
        ],
      },
      {
        name: 'the default ranges (everyone), at permitRelay',
        ...withRelay("bindings: ['0.0.0.0:587']"),
        diagnostics: [{ code: 'DS019', at: { file: 'connectors.yaml', needle: 'permitRelay' } }],
      },
      {
        name: '::ffff:0:0/96 (every IPv4 address, mapped); tls does not excuse it',
        ...withRelay(
          "bindings: ['[::]:587'], remoteIPRanges: ['::ffff:0:0/96'], authMechanisms: [tls]",
        ),
        diagnostics: [{ code: 'DS019', at: { file: 'connectors.yaml', needle: 'remoteIPRanges' } }],
      },
      {
        name: 'shared address space (100.64.0.0/10) beside a private range',
        ...withRelay("bindings: ['192.0.2.1:587'], remoteIPRanges: [10.0.0.0/8, 100.64.0.0/10]"),
        diagnostics: [{ code: 'DS019', at: { file: 'connectors.yaml', needle: 'remoteIPRanges' } }],
      },
      {
        name: 'fc00::/6, wider than the private fc00::/7',
        ...withRelay("bindings: ['[::]:587'], remoteIPRanges: ['fc00::/6']"),
        diagnostics: [{ code: 'DS019', at: { file: 'connectors.yaml', needle: 'remoteIPRanges' } }],
      },
    ],
  },
  {
    code: 'DS020',
    valid: [
      {
        name: 'dane: require with a validating resolver',
        fixture: 'DS020',
        files: {
          'organization.yaml': replace(
            '  certificate: mail-adatum\n',
            '  certificate: mail-adatum\n  resolver: { servers: [127.0.0.1], validating: true }\n',
          ),
        },
      },
    ],
    invalid: [
      {
        name: 'dane: require without a validating resolver, at dane',
        fixture: 'DS020',
        diagnostics: [{ code: 'DS020', at: { file: 'policies.yaml', needle: 'require' } }],
      },
    ],
  },
  {
    code: 'DS021',
    valid: [
      {
        name: 'two TLS policies for different address spaces',
        fixture: 'DS021',
        files: {
          'policies.yaml': replace(
            'addressSpaces: [contoso.example, Fabrikam.Example]',
            'addressSpaces: [contoso.example]',
          ),
        },
      },
    ],
    invalid: [
      {
        name: 'two TLS policies with one address space, whatever its spelling',
        fixture: 'DS021',
        diagnostics: [{ code: 'DS021', at: { file: 'policies.yaml', needle: 'Fabrikam.Example' } }],
      },
    ],
  },
  {
    code: 'DS022',
    valid: [
      {
        name: 'the policy served with a certificate that names mta-sts.adatum.com',
        files: { 'organization.yaml': servingMtaSts },
        prepare: withCertificate(() =>
          adatumCertificate({ dnsNames: ['mail.adatum.com', 'adatum.com', 'mta-sts.adatum.com'] }),
        ),
      },
      {
        name: 'a one-label wildcard covers mta-sts.adatum.com',
        files: { 'organization.yaml': servingMtaSts },
        prepare: withCertificate(() =>
          adatumCertificate({ dnsNames: ['*.adatum.com', 'adatum.com'] }),
        ),
      },
      {
        name: 'a policy declared but not served: the certificate need not name mta-sts',
        files: {
          'organization.yaml': replace(
            '  certificate: mail-adatum\n',
            '  certificate: mail-adatum\n  mtaSts: {mode: enforce}\n',
          ),
        },
      },
    ],
    invalid: [
      {
        name: 'the policy served with a certificate that lacks mta-sts.adatum.com, at the accepted domain',
        files: { 'organization.yaml': servingMtaSts },
        diagnostics: [
          {
            code: 'DS022',
            at: { file: 'organization.yaml', needle: 'adatum.com]' },
            message:
              /Organization\/adatum serves its MTA-STS policy on 0\.0\.0\.0:443, but Certificate\/mail-adatum does not name mta-sts\.adatum\.com/,
            hint: /add mta-sts\.adatum\.com/,
          },
        ],
      },
    ],
  },
  {
    code: 'DS101',
    valid: [
      {
        name: 'a certificate that expires in 40 days',
        prepare: withCertificate(() =>
          adatumCertificate({ notAfter: new Date(Date.now() + 40 * DAY) }),
        ),
      },
    ],
    invalid: [
      {
        name: 'a certificate that expires in 10 days, beside DS105 and DS104, sorted by position',
        prepare: async (dir) => {
          await withCertificate(() =>
            adatumCertificate({
              extendedKeyUsage: ['serverAuth'],
              notAfter: new Date(Date.now() + 10 * DAY),
            }),
          )(dir);
          await chmod(join(dir, 'pki', 'mail.adatum.com.key'), 0o644);
        },
        diagnostics: [
          // As plan and apply count it (one function): 10 days less the test's run is 10 days.
          { code: 'DS101', message: /expires in 10 day\(s\)/ },
          { code: 'DS105' },
          { code: 'DS104' },
        ],
      },
    ],
  },
  {
    code: 'DS102',
    valid: [
      {
        name: 'an anchor named by a partner that is not domain-secure',
        files: {
          'partners.yaml': `${TREY_ANCHOR}---\n${TREY_PARTNER}---\n${ENVELOPE('TrustAnchor', 'contoso-root')}spec: {pemFile: pki/treyresearch-root.crt}\n---\n${ENVELOPE('PartnerDomain', 'contoso')}spec: {domain: contoso.com, trustAnchors: [contoso-root]}\n`,
        },
      },
    ],
    invalid: [
      {
        name: 'an unused trust anchor, at its name; the configuration keeps it',
        fixture: 'DS102',
        diagnostics: [{ code: 'DS102', at: { file: 'partners.yaml', needle: 'public-cas' } }],
        check: ({ config }) =>
          assert.deepEqual(config?.trustAnchors.find((a) => a.name === 'public-cas')?.spec, {
            system: true,
          }),
      },
    ],
  },
  {
    code: 'DS103',
    valid: [
      {
        name: 'a partner secure for sending only, without remoteIPRanges',
        files: {
          'partners.yaml': `${TREY_ANCHOR}---\n${ENVELOPE('PartnerDomain', 'treyresearch')}spec: {domain: treyresearch.net, domainSecure: {send: true}, trustAnchors: [treyresearch-root]}\n`,
        },
      },
    ],
    invalid: [
      {
        name: 'a receive-secure partner without remoteIPRanges, at receive',
        fixture: 'DS103',
        diagnostics: [
          {
            code: 'DS103',
            at: { file: 'partners.yaml', needle: 'receive:' },
            message: /PartnerDomain\/treyresearch is receive-secure .*no remoteIPRanges/,
          },
        ],
      },
    ],
  },
  {
    code: 'DS104',
    valid: [
      {
        name: 'a key file readable by its owner only, read-only',
        prepare: async (dir) => chmod(join(dir, 'pki', 'mail.adatum.com.key'), 0o400),
      },
    ],
    invalid: [
      {
        name: 'a key file readable by group and others, at keyFile',
        prepare: async (dir) => chmod(join(dir, 'pki', 'mail.adatum.com.key'), 0o644),
        diagnostics: [
          { code: 'DS104', at: { file: 'organization.yaml', needle: 'pki/mail.adatum.com.key' } },
        ],
      },
    ],
  },
  {
    code: 'DS105',
    valid: [
      {
        name: 'an organization certificate without Extended Key Usage (any purpose)',
        prepare: withCertificate(() => adatumCertificate({ extendedKeyUsage: null })),
      },
    ],
    invalid: [
      {
        name: 'an organization certificate for serverAuth only, at certFile',
        prepare: withCertificate(() => adatumCertificate({ extendedKeyUsage: ['serverAuth'] })),
        diagnostics: [{ code: 'DS105', at: { file: 'organization.yaml', needle: 'certFile' } }],
      },
    ],
  },
  {
    code: 'DS106',
    valid: [
      {
        name: 'certificateNameMatch: domain written out',
        files: {
          'partners.yaml': replace(
            'trustAnchors: [treyresearch-root]',
            'trustAnchors: [treyresearch-root]\n  certificateNameMatch: domain',
          ),
        },
      },
    ],
    invalid: [
      {
        name: 'a loose name match, at certificateNameMatch',
        fixture: 'DS106',
        diagnostics: [
          { code: 'DS106', at: { file: 'partners.yaml', needle: 'certificateNameMatch' } },
        ],
      },
    ],
  },
  {
    code: 'DS107',
    valid: [
      {
        name: 'relay to private networks on a loopback binding only',
        ...withRelay("bindings: ['127.0.0.1:587'], remoteIPRanges: [10.0.0.0/8, 'fd00::/8']"),
      },
    ],
    invalid: [
      {
        name: 'relay to private networks, at remoteIPRanges, naming them',
        fixture: 'DS107',
        diagnostics: [
          {
            code: 'DS107',
            at: { file: 'connectors.yaml', needle: 'remoteIPRanges: [127' },
            message: /private networks 10\.0\.0\.0\/8, fd00::\/8 on 0\.0\.0\.0:587/,
          },
        ],
      },
    ],
  },
  {
    code: 'DS108',
    valid: ['localhost:8025', '127.0.0.2:8025', '[::1]:8025'].map((listen) => ({
      name: `an admin API on ${listen}`,
      fixture: 'DS108',
      files: { 'organization.yaml': replace('0.0.0.0:8025', `'${listen}'`) },
    })),
    invalid: [
      {
        name: 'an admin API beyond loopback, at admin.listen',
        fixture: 'DS108',
        diagnostics: [
          {
            code: 'DS108',
            at: { file: 'organization.yaml', needle: '0.0.0.0:8025' },
            message: /Organization\/adatum has admin\.listen 0\.0\.0\.0:8025, beyond loopback/,
          },
        ],
      },
    ],
  },
  {
    code: 'DS109',
    valid: [
      ...['[127.0.0.1]', '[127.0.0.53, "::1"]', "['127.0.0.1:5353']"].map((servers) => ({
        name: `a validating resolver on loopback, ${servers}`,
        fixture: 'DS109',
        files: { 'organization.yaml': replace('servers: [192.0.2.53]', `servers: ${servers}`) },
      })),
      {
        name: 'a remote resolver that is not named validating',
        fixture: 'DS109',
        files: {
          'organization.yaml': replace('validating: true', 'validating: false'),
        },
      },
    ],
    invalid: [
      {
        name: 'a validating resolver across the network, at resolver.validating',
        fixture: 'DS109',
        diagnostics: [
          {
            code: 'DS109',
            at: { file: 'organization.yaml', needle: 'true' },
            message: /believes the DNSSEC AD bit from 192\.0\.2\.53, beyond loopback/,
          },
        ],
      },
      {
        name: "the system's resolvers named validating",
        fixture: 'DS109',
        files: { 'organization.yaml': replace('servers: [192.0.2.53]', 'servers: []') },
        diagnostics: [
          {
            code: 'DS109',
            message: /from the system's resolvers \(resolver\.servers is empty\)/,
          },
        ],
      },
      {
        name: 'one loopback and one remote server',
        fixture: 'DS109',
        files: {
          'organization.yaml': replace(
            'servers: [192.0.2.53]',
            'servers: [127.0.0.1, "[2001:db8::53]:53"]',
          ),
        },
        diagnostics: [{ code: 'DS109', message: /from \[2001:db8::53\]:53, beyond loopback/ }],
      },
    ],
  },
  {
    code: 'DS023',
    valid: [
      ...['adatum.com', 'ADATUM.COM.'].map((domain) => ({
        name: `mailed TLS reports signed by an accepted domain, ${domain}`,
        prepare: withDkimKey(),
        files: {
          'organization.yaml': replace(
            'certificate: mail-adatum',
            `certificate: mail-adatum\n  tlsReporting: {dkim: {selector: tlsrpt, domain: '${domain}', keyFile: pki/dkim.key}}`,
          ),
        },
      })),
      {
        name: 'mailed TLS reports signed by the submitter domain by default',
        prepare: withDkimKey(),
        files: {
          'organization.yaml': replace(
            'certificate: mail-adatum',
            'certificate: mail-adatum\n  tlsReporting: {dkim: {selector: tlsrpt, keyFile: pki/dkim.key}}',
          ),
        },
      },
    ],
    invalid: [
      ...['fabrikam.example', 'com', 'mail.adatum.com'].map((domain) => ({
        name: `mailed TLS reports signed by a domain not ours, ${domain}, at dkim.domain`,
        prepare: withDkimKey(),
        files: {
          'organization.yaml': replace(
            'certificate: mail-adatum',
            `certificate: mail-adatum\n  tlsReporting: {dkim: {selector: tlsrpt, domain: ${domain}, keyFile: pki/dkim.key}}`,
          ),
        },
        diagnostics: [
          {
            code: 'DS023',
            at: { file: 'organization.yaml', needle: `${domain}, keyFile` },
            message: new RegExp(
              `tlsReporting\\.dkim\\.domain ${domain.replace(/\./g, '\\.')} is neither an accepted domain nor a parent of one`,
            ),
          },
        ],
      })),
    ],
  },
  {
    code: 'DS024',
    valid: [
      {
        name: 'mtaSts: require for a domain routed by MX',
        files: {
          'policies.yaml': `${ENVELOPE('TlsPolicy', 'bank')}spec:\n  addressSpaces: [bank.example]\n  mtaSts: require\n`,
          'internet.yaml': `${ENVELOPE('SendConnector', 'internet')}spec:\n  addressSpaces: ['*']\n  routing: { dnsMx: {} }\n`,
        },
      },
      {
        name: 'mtaSts: optional for a domain through a smart host',
        files: {
          'policies.yaml': `${ENVELOPE('TlsPolicy', 'bank')}spec:\n  addressSpaces: [bank.example]\n  mtaSts: optional\n`,
          'internet.yaml': `${ENVELOPE('SendConnector', 'internet')}spec:\n  addressSpaces: ['*']\n  routing: { smartHosts: [relay.example.net] }\n`,
        },
      },
    ],
    invalid: [
      {
        name: 'mtaSts: require for a domain whose mail goes through a smart host, at mtaSts',
        files: {
          'policies.yaml': `${ENVELOPE('TlsPolicy', 'bank')}spec:\n  addressSpaces: [bank.example]\n  mtaSts: require\n`,
          'internet.yaml': `${ENVELOPE('SendConnector', 'internet')}spec:\n  addressSpaces: ['*']\n  routing: { smartHosts: [relay.example.net] }\n`,
        },
        diagnostics: [
          {
            code: 'DS024',
            at: { file: 'policies.yaml', needle: 'require' },
            message:
              /TlsPolicy\/bank requires MTA-STS for bank\.example, but its mail goes through the smart host relay\.example\.net of SendConnector\/internet, not its MX/,
            hint: /route the domain by MX/,
          },
        ],
      },
      {
        name: 'mtaSts: require for a domain with a static route',
        files: {
          'policies.yaml': `${ENVELOPE('TlsPolicy', 'bank')}spec:\n  addressSpaces: ['*.example']\n  mtaSts: require\n`,
          'internet.yaml': `${ENVELOPE('SendConnector', 'internet')}spec:\n  addressSpaces: ['*']\n  routing: { dnsMx: {} }\n`,
          'organization.yaml': replace(
            '  certificate: mail-adatum\n',
            "  certificate: mail-adatum\n  resolver: { static: { 'Bank.Example': [{ host: 127.0.0.1 }] } }\n",
          ),
        },
        diagnostics: [
          {
            code: 'DS024',
            at: { file: 'policies.yaml', needle: 'require' },
            message: /requires MTA-STS for bank\.example, but its mail goes by a static route/,
          },
        ],
      },
    ],
  },
  {
    code: 'DS110',
    valid: [
      {
        name: 'TLS reporting with a DKIM key for mailed reports',
        prepare: withDkimKey(),
        files: {
          'organization.yaml': replace(
            'certificate: mail-adatum',
            'certificate: mail-adatum\n  tlsReporting: {dkim: {selector: tlsrpt, keyFile: pki/dkim.key}}',
          ),
        },
      },
    ],
    invalid: [
      {
        name: 'a DKIM key file that holds no RSA key',
        prepare: async (dir) => {
          await withDkimKey('ec.key', 0o600, () =>
            generateKeyPairSync('ec', { namedCurve: 'P-256' })
              .privateKey.export({ format: 'pem', type: 'pkcs8' })
              .toString(),
          )(dir);
        },
        files: {
          'organization.yaml': replace(
            'certificate: mail-adatum',
            'certificate: mail-adatum\n  tlsReporting: {dkim: {selector: tlsrpt, keyFile: pki/ec.key}}',
          ),
        },
        diagnostics: [
          {
            code: 'DS016',
            at: { file: 'organization.yaml', needle: 'pki/ec.key' },
            message: /tlsReporting\.dkim\.keyFile pki\/ec\.key .*holds no RSA key/,
          },
        ],
      },
      {
        name: 'a DKIM key of 512 bits',
        prepare: withDkimKey('short.key', 0o600, () =>
          generateKeyPairSync('rsa', { modulusLength: 512 })
            .privateKey.export({ format: 'pem', type: 'pkcs8' })
            .toString(),
        ),
        files: {
          'organization.yaml': replace(
            'certificate: mail-adatum',
            'certificate: mail-adatum\n  tlsReporting: {dkim: {selector: tlsrpt, keyFile: pki/short.key}}',
          ),
        },
        diagnostics: [
          {
            code: 'DS016',
            at: { file: 'organization.yaml', needle: 'pki/short.key' },
            message: /holds an RSA key of 512 bits; DKIM needs 1024 or more/,
          },
        ],
      },
      {
        name: 'a DKIM key file that does not exist',
        files: {
          'organization.yaml': replace(
            'certificate: mail-adatum',
            'certificate: mail-adatum\n  tlsReporting: {dkim: {selector: tlsrpt, keyFile: pki/absent.key}}',
          ),
        },
        diagnostics: [
          {
            code: 'DS016',
            at: { file: 'organization.yaml', needle: 'pki/absent.key' },
            message: /tlsReporting\.dkim\.keyFile pki\/absent\.key .*does not exist/,
          },
        ],
      },
      {
        name: 'a DKIM key file readable by others',
        prepare: withDkimKey('open.key', 0o644),
        files: {
          'organization.yaml': replace(
            'certificate: mail-adatum',
            'certificate: mail-adatum\n  tlsReporting: {dkim: {selector: tlsrpt, keyFile: pki/open.key}}',
          ),
        },
        diagnostics: [
          {
            code: 'DS104',
            at: { file: 'organization.yaml', needle: 'pki/open.key' },
            message: /tlsReporting\.dkim\.keyFile is readable by group or others \(mode 0644\)/,
          },
        ],
      },
      {
        name: 'TLS reporting declared without a DKIM key, at tlsReporting',
        files: {
          'organization.yaml': replace(
            'certificate: mail-adatum',
            'certificate: mail-adatum\n  tlsReporting: {}',
          ),
        },
        diagnostics: [
          {
            code: 'DS110',
            at: { file: 'organization.yaml', needle: 'tlsReporting' },
            message: /no tlsReporting\.dkim: TLS reports to mailto: addresses are not sent/,
            hint: /publish the TXT record `domsec dns records` prints/,
          },
        ],
      },
    ],
  },
  {
    code: 'DS111',
    valid: [
      {
        name: 'MTA-STS policy hosts at internal addresses refused, said outright',
        files: {
          'organization.yaml': replace(
            'certificate: mail-adatum',
            'certificate: mail-adatum\n  allowInternalPolicyHosts: false',
          ),
        },
      },
    ],
    invalid: [
      {
        name: 'MTA-STS policy hosts at internal addresses allowed, at allowInternalPolicyHosts',
        files: {
          'organization.yaml': replace(
            'certificate: mail-adatum',
            'certificate: mail-adatum\n  allowInternalPolicyHosts: true',
          ),
        },
        diagnostics: [
          {
            code: 'DS111',
            at: { file: 'organization.yaml', needle: 'true' },
            message:
              /fetches MTA-STS policies from hosts at loopback, private and other internal addresses/,
            hint: /outside a lab/,
          },
        ],
      },
    ],
  },
  {
    code: 'SCHEMA',
    valid: [],
    invalid: [
      {
        name: 'an unknown field suggests the closest valid name; rules that need it stay quiet',
        fixture: 'SCHEMA',
        diagnostics: [{ code: 'SCHEMA' }, { code: 'SCHEMA' }, { code: 'SCHEMA' }],
        check: async (result) => {
          const unknown = result.diagnostics.find((d) => d.message.includes('unknown field'));
          assert.equal(
            unknown?.message,
            'SendConnector/to-partners: unknown field `adressSpaces` in `spec`',
          );
          assert.equal(unknown?.hint, 'did you mean `addressSpaces`?');
          assert.ok(unknown);
          assert.equal(resolve(unknown.file), join(result.dir, 'connectors.yaml'));
          const expected = await positionIn(join(result.dir, 'connectors.yaml'), 'adressSpaces');
          assert.deepEqual({ line: unknown.line, col: unknown.col }, expected);
          const required = result.diagnostics.find((d) => d.message.includes('is required'));
          assert.equal(
            required?.message,
            'SendConnector/to-partners: `spec.addressSpaces` is required',
          );
          const level = result.diagnostics.find((d) => d.message.includes('protocolLogging'));
          assert.equal(level?.hint, 'did you mean `verbose`?');
        },
      },
    ],
  },
];
