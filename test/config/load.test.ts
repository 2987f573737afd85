// Loading manifests: the examples and the starter set, defaults, file reading and paths,
// multi-document files, and input that is not a valid manifest at all (never a crash).
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { chmod, cp, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { loadConfiguration } from '../../src/config/index.js';
import type { RuntimeConfig } from '../../src/model.js';
import { createCertificateAuthority, issueCertificate } from '../../src/pki/lab.js';
import { writeLabPki } from '../../src/pki/organization.js';
import { codes, STORY } from './cases.js';

const REPOSITORY = fileURLToPath(new URL('../../', import.meta.url));
const ENVELOPE = (kind: string, name: string) =>
  `apiVersion: domsec.io/v1alpha1\nkind: ${kind}\nmetadata: {name: ${name}}\n`;

/** The smallest valid configuration: every optional field left to the schemas' defaults. */
const MINIMAL = `${ENVELOPE('Organization', 'adatum')}spec:
  hostname: mail.adatum.com
  acceptedDomains: [adatum.com]
  certificate: mail
---
${ENVELOPE('Certificate', 'mail')}spec: {certFile: pki/mail.adatum.com.crt, keyFile: pki/mail.adatum.com.key}
---
${ENVELOPE('TrustAnchor', 'trey')}spec: {pemFile: pki/treyresearch-root.crt}
---
${ENVELOPE('PartnerDomain', 'trey')}spec: {domain: treyresearch.net, domainSecure: {send: true}, trustAnchors: [trey]}
---
${ENVELOPE('SendConnector', 'out')}spec: {addressSpaces: [treyresearch.net], domainSecure: true}
---
${ENVELOPE('SendConnector', 'internet')}spec: {addressSpaces: ['*'], requireTls: true}
---
${ENVELOPE('ReceiveConnector', 'in')}spec: {bindings: ['[::1]:25'], domainSecure: true}
`;

describe('loading manifests', () => {
  let root: string;
  let pki: string; // adatum's lab pki/

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'domsec-load-'));
    await cp(join(REPOSITORY, 'examples'), join(root, 'examples'), { recursive: true });
    await writeLabPki(join(root, 'examples'), STORY);
    pki = join(root, 'examples', 'adatum', 'pki');
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  /** A directory with adatum's pki/ and the given files. */
  async function manifests(files: Record<string, string | Buffer>): Promise<string> {
    const dir = await mkdtemp(join(root, 'case-'));
    await cp(pki, join(dir, 'pki'), { recursive: true });
    for (const [name, text] of Object.entries(files)) {
      await mkdir(join(dir, name, '..'), { recursive: true });
      await writeFile(join(dir, name), text);
    }
    return dir;
  }

  for (const org of ['adatum', 'treyresearch']) {
    it(`examples/${org} loads without a diagnostic once the lab PKI is written`, async () => {
      const result = await loadConfiguration([join(root, 'examples', org)]);
      assert.deepEqual(result.diagnostics, []);
      assert.ok(result.config);
      assert.equal(result.files.length, 4);
      assert.deepEqual(
        result.files.map((f) => f.slice(join(root, 'examples', org).length + 1)),
        [
          'connectors.yaml',
          'organization.yaml',
          'partners/adatum-root.yaml',
          'partners/adatum.yaml',
        ].map((f) => (org === 'adatum' ? f.replace('adatum', 'treyresearch') : f)),
      );
    });
  }

  it('compiles examples/adatum into the RuntimeConfig the story needs', async () => {
    const { config } = await loadConfiguration([join(root, 'examples', 'adatum')]);
    assert.ok(config);
    assert.equal(config.organization.spec.admin.listen, '127.0.0.2:8025');
    assert.deepEqual(config.organization.spec.resolver.static, {
      'treyresearch.net': [{ host: '127.0.0.3', port: 2525 }],
    });
    assert.deepEqual(
      config.partners.map((p) => [p.name, p.spec.trustAnchors]),
      [['treyresearch', ['treyresearch-root']]],
    );
    assert.deepEqual(
      config.receiveConnectors.map((c) => [c.name, c.spec.bindings, c.spec.permitRelay]),
      [
        ['from-partners', ['127.0.0.2:2525'], false],
        ['internal', ['127.0.0.2:2587'], true],
      ],
    );
    const anchor = config.trustAnchors[0]?.spec;
    const treyRoot = await readFile(join(pki, 'treyresearch-root.crt'), 'utf8');
    assert.equal(anchor?.fingerprint, new X509Certificate(treyRoot).fingerprint256);
  });

  it('applies every default of the schemas and nothing else', async () => {
    const dir = await manifests({ 'all.yaml': MINIMAL });
    const { config, diagnostics } = await loadConfiguration([dir]);
    assert.deepEqual(diagnostics, []);
    assert.ok(config);
    const pems = stripPems(config);
    assert.deepEqual(pems, {
      organization: {
        name: 'adatum',
        spec: {
          hostname: 'mail.adatum.com',
          acceptedDomains: ['adatum.com'],
          certificate: 'mail',
          delivery: { maildir: 'mail' },
          queue: { retry: ['1m', '5m', '15m', '30m', '1h'], expireAfter: '2d', delayNotice: '4h' },
          resolver: { servers: [], validating: false, static: {} },
          admin: { listen: '127.0.0.1:8025' },
        },
      },
      certificates: [
        {
          name: 'mail',
          spec: {
            services: ['SMTP'],
            certPem: 'PEM',
            chainPem: [],
            keyPem: 'PEM',
            fingerprint: 'FP',
          },
        },
      ],
      trustAnchors: [{ name: 'trey', spec: { system: false, pem: 'PEM', fingerprint: 'FP' } }],
      partners: [
        {
          name: 'trey',
          spec: {
            domain: 'treyresearch.net',
            domainSecure: { send: true, receive: false },
            trustAnchors: ['trey'],
            certificateNames: [],
            certificateNameMatch: 'domain',
            clientCertificatePurpose: 'standard',
            remoteIPRanges: [],
            requireHeaderFromDomain: false,
          },
        },
      ],
      sendConnectors: [
        {
          name: 'internet',
          spec: {
            addressSpaces: ['*'],
            cost: 1,
            routing: { dnsMx: {} },
            port: 25,
            domainSecure: false,
            requireTls: true, // written
            maxMessageSize: '25MB',
            protocolLogging: 'none',
          },
        },
        {
          name: 'out',
          spec: {
            addressSpaces: ['treyresearch.net'],
            cost: 1,
            routing: { dnsMx: {} },
            port: 25,
            domainSecure: true,
            requireTls: true, // follows domainSecure
            maxMessageSize: '25MB',
            protocolLogging: 'none',
          },
        },
      ],
      receiveConnectors: [
        {
          name: 'in',
          spec: {
            bindings: ['[::1]:25'],
            remoteIPRanges: ['0.0.0.0/0', '::/0'],
            authMechanisms: ['tls'],
            permitRelay: false,
            acceptAuthoritativeDomainSenders: false,
            domainSecure: true,
            requireTls: true,
            maxMessageSize: '25MB',
            protocolLogging: 'none',
            maxInboundConnection: 5000,
            maxInboundConnectionPerSource: 100,
            connectionInactivityTimeout: '5m',
            stressInactivityTimeout: '10s',
            connectionTimeout: '10m',
            maxRecipientsPerMessage: 200,
            maxHeaderSize: '256KB',
          },
        },
      ],
      tlsPolicies: [],
      source: { description: dir },
    });
  });

  it('reads certificate files: the leaf, the chain from certFile then chainFile, the key, the fingerprint', async () => {
    const authority = createCertificateAuthority({ commonName: 'Root', pathLength: 1 });
    const intermediate = issueCertificate(authority, { commonName: 'Issuing CA', isCa: true });
    const leafCa = { ...intermediate, commonName: 'Issuing CA' };
    const leaf = issueCertificate(leafCa, {
      commonName: 'mail.adatum.com',
      dnsNames: ['mail.adatum.com', 'adatum.com'],
    });
    const dir = await manifests({
      'organization.yaml': MINIMAL.replace(
        'spec: {certFile: pki/mail.adatum.com.crt, keyFile: pki/mail.adatum.com.key}',
        'spec: {certFile: ../certs/mail.pem, keyFile: ../certs/mail.key, chainFile: ../certs/root.pem}',
      ),
      'certs/mail.pem': `${leaf.certPem}${intermediate.certPem}`,
      'certs/mail.key': leaf.keyPem,
      'certs/root.pem': authority.certPem,
    });
    // The manifest is in sub/ so that relative paths visibly resolve from the manifest's directory.
    await mkdir(join(dir, 'sub'));
    await cp(join(dir, 'organization.yaml'), join(dir, 'sub', 'organization.yaml'));
    await rm(join(dir, 'organization.yaml'));
    await cp(join(dir, 'pki'), join(dir, 'sub', 'pki'), { recursive: true });
    await chmod(join(dir, 'certs', 'mail.key'), 0o600);
    const { config, diagnostics } = await loadConfiguration([join(dir, 'sub')]);
    assert.deepEqual(diagnostics, []);
    const spec = config?.certificates[0]?.spec;
    assert.ok(spec);
    const normal = (pem: string) => pem.replace(/\r\n/g, '\n').trim();
    assert.equal(normal(spec.certPem), normal(leaf.certPem));
    assert.deepEqual(spec.chainPem.map(normal), [
      normal(intermediate.certPem),
      normal(authority.certPem),
    ]);
    assert.equal(normal(spec.keyPem), normal(leaf.keyPem));
    assert.equal(spec.fingerprint, leaf.fingerprint);
  });

  it('resolves tokenFile from the manifest and leaves engine paths as written', async () => {
    const dir = await manifests({
      'nested/all.yaml': MINIMAL.replace(
        'certificate: mail\n',
        'certificate: mail\n  delivery: {maildir: ./var/mail}\n  queue: {expireAfter: 5d}\n  admin: {tokenFile: ../secrets/admin.token}\n',
      ).replaceAll('pki/', '../pki/'),
    });
    const { config, diagnostics } = await loadConfiguration([dir]);
    assert.deepEqual(diagnostics, []);
    assert.equal(config?.organization.spec.admin.tokenFile, join(dir, 'secrets', 'admin.token'));
    assert.equal(config?.organization.spec.delivery.maildir, './var/mail');
    assert.equal(config?.organization.spec.queue.expireAfter, '5d');
    assert.deepEqual(config?.organization.spec.queue.retry, ['1m', '5m', '15m', '30m', '1h']);
  });

  it('reads every document of a multi-document file, and skips empty documents and comment-only files', async () => {
    const dir = await manifests({
      'all.yaml': `# leading comment\n---\n${MINIMAL}---\n# nothing here\n---\n`,
      'notes.yaml': '# only a comment\n',
      'empty.yml': '',
    });
    const { config, diagnostics, files } = await loadConfiguration([dir]);
    assert.deepEqual(diagnostics, []);
    assert.equal(files.length, 3);
    assert.equal(config?.sendConnectors.length, 2);
  });

  it('reports a YAML syntax error with file and line, and keeps the other documents', async () => {
    const dir = await manifests({
      'all.yaml': MINIMAL,
      'broken.yaml': `${ENVELOPE('PartnerDomain', 'contoso')}spec: {domain: [unclosed\n`,
    });
    const { config, diagnostics } = await loadConfiguration([dir]);
    assert.equal(config, undefined);
    assert.deepEqual(codes(diagnostics), ['YAML']);
    const [d] = diagnostics;
    assert.equal(resolve(d?.file ?? ''), join(dir, 'broken.yaml'));
    assert.equal(d?.line, 5);
    assert.ok((d?.col ?? 0) >= 1);
    assert.match(d?.message ?? '', /^YAML syntax: /);
  });

  it('reports a duplicate key at the second key', async () => {
    const dir = await manifests({
      'all.yaml': MINIMAL.replace(
        '  hostname: mail.adatum.com\n',
        '  hostname: mail.adatum.com\n  acceptedDomains: [adatum.org]\n',
      ),
    });
    const { diagnostics } = await loadConfiguration([dir]);
    assert.deepEqual(codes(diagnostics), ['YAML']);
    // The second `acceptedDomains` is the original one, on line 7.
    assert.deepEqual([diagnostics[0]?.line, diagnostics[0]?.col], [7, 3]);
    assert.match(diagnostics[0]?.message ?? '', /duplicate key `acceptedDomains`/);
  });

  it('does not crash on files that are not manifests: binary, a list, a scalar, an unresolved alias', async () => {
    const png = Buffer.from([
      0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0xff, 0xfe,
    ]);
    const dir = await manifests({
      'all.yaml': MINIMAL,
      'image.yaml': png,
      'list.yaml': '- a\n- b\n',
      'scalar.yml': 'just some text\n',
      'alias.yaml': 'a: *nowhere\n',
      'tabs.yaml': 'spec:\n\tdomain: x\n',
    });
    const result = await loadConfiguration([dir]);
    assert.equal(result.config, undefined);
    const byFile = new Map(result.diagnostics.map((d) => [d.file.split('/').pop(), d.code]));
    assert.equal(byFile.get('list.yaml'), 'SCHEMA');
    assert.equal(byFile.get('scalar.yml'), 'SCHEMA');
    assert.equal(byFile.get('tabs.yaml'), 'YAML');
    assert.ok(byFile.has('image.yaml'));
    assert.ok(byFile.has('alias.yaml'));
  });

  it('reads a file named directly whatever its extension, and reports a missing path', async () => {
    const dir = await manifests({ 'config.txt': MINIMAL });
    const result = await loadConfiguration([join(dir, 'config.txt'), join(dir, 'missing')]);
    assert.deepEqual(codes(result.diagnostics), ['LOAD']);
    assert.match(result.diagnostics[0]?.message ?? '', /missing: no such file or directory/);
    const alone = await loadConfiguration([join(dir, 'config.txt')]);
    assert.ok(alone.config);
  });

  it('ignores hidden files and editor temporary files, and lists files in sorted order', async () => {
    const dir = await manifests({
      'b.yaml': MINIMAL,
      'a/z.yml': '# z\n',
      'a/a.yaml': '# a\n',
      '.#b.yaml': 'broken: [',
      'b.yaml~': 'broken: [',
      '.b.yaml.swp': 'broken: [',
      'b.yaml.swp': 'broken: [',
      '#b.yaml#': 'broken: [',
      '.git/config.yaml': 'broken: [',
      'README.md': 'not a manifest',
    });
    const result = await loadConfiguration([dir]);
    assert.deepEqual(result.diagnostics, []);
    assert.deepEqual(
      result.files.map((f) => f.slice(dir.length + 1)),
      ['a/a.yaml', 'a/z.yml', 'b.yaml'],
    );
  });

  it('reports a directory without manifests and a configuration without Organization', async () => {
    const empty = await mkdtemp(join(root, 'empty-'));
    const none = await loadConfiguration([empty]);
    assert.deepEqual(codes(none.diagnostics), ['LOAD']);
    assert.match(none.diagnostics[0]?.message ?? '', /no manifest files/);
    const dir = await manifests({
      'partner.yaml': `${ENVELOPE('PartnerDomain', 'trey')}spec: {domain: treyresearch.net}\n`,
    });
    const result = await loadConfiguration([dir]);
    assert.deepEqual(codes(result.diagnostics), ['LOAD']);
    assert.match(result.diagnostics[0]?.message ?? '', /no Organization/);
  });

  it('manifests/ is valid except for the pki files it cannot ship, and valid once they exist', async () => {
    const dir = join(root, 'starter', 'example');
    await cp(join(REPOSITORY, 'manifests'), dir, { recursive: true });
    const before = await loadConfiguration([dir]);
    assert.deepEqual(codes(before.diagnostics), ['DS016', 'DS016', 'DS016']);
    assert.ok(before.diagnostics.every((d) => /does not exist/.test(d.message)));
    await writeLabPki(join(root, 'starter'), [
      { name: 'example', hostname: 'mail.example.com', domains: ['example.com'] },
      { name: 'example-net', hostname: 'mail.example.net', domains: ['example.net'] },
    ]);
    const after = await loadConfiguration([dir]);
    assert.deepEqual(after.diagnostics, []);
    assert.deepEqual(
      after.config?.sendConnectors.map((c) => [c.name, c.spec.requireTls]),
      [
        ['to-internet', false],
        ['to-partners', true],
      ],
    );
  });

  it('compiles every spelling of a domain to its canonical form, and refuses a name that does not map with a hint', async () => {
    const spelled = MINIMAL.replace(
      'acceptedDomains: [adatum.com]',
      'acceptedDomains: [ADATUM.com.]',
    )
      .replace('domain: treyresearch.net', 'domain: ＴｒｅｙＲｅｓｅａｒｃｈ。net')
      .replace('addressSpaces: [treyresearch.net]', "addressSpaces: ['TREYRESEARCH.NET.']");
    const idn = `${ENVELOPE('PartnerDomain', 'buecher')}spec: {domain: BÜCHER.example, domainSecure: {send: true}, trustAnchors: [trey], certificateNames: ['*.Bücher.example']}\n---\n${ENVELOPE('SendConnector', 'idn')}spec: {addressSpaces: [xn--bcher-kva.example], domainSecure: true}\n`;
    const loaded = await loadConfiguration([
      await manifests({ 'all.yaml': `${spelled}---\n${idn}` }),
    ]);
    assert.deepEqual(
      loaded.diagnostics.filter((d) => d.severity === 'error'),
      [],
    );
    const config = loaded.config;
    assert.ok(config !== undefined);
    assert.deepEqual(config.organization.spec.acceptedDomains, ['adatum.com']);
    assert.deepEqual(
      config.partners.map((p) => [p.spec.domain, p.spec.certificateNames]),
      [
        ['xn--bcher-kva.example', ['*.xn--bcher-kva.example']],
        ['treyresearch.net', []],
      ],
    );
    assert.deepEqual(
      config.sendConnectors.map((c) => c.spec.addressSpaces),
      [['xn--bcher-kva.example'], ['*'], ['treyresearch.net']],
    );

    for (const bad of [
      'trey_research.net',
      '%74reyresearch.net',
      'treyresearch.net/x',
      'xn--zzzz.net',
      '1.2.3.4',
    ]) {
      const refused = await loadConfiguration([
        await manifests({
          'all.yaml': MINIMAL.replace('domain: treyresearch.net', `domain: '${bad}'`),
        }),
      ]);
      assert.equal(refused.config, undefined, bad);
      const diagnostic = refused.diagnostics.find((d) => d.code === 'SCHEMA');
      assert.match(
        diagnostic?.message ?? '',
        /`spec.domain` must be a domain name such as example.com/,
        bad,
      );
      assert.match(diagnostic?.hint ?? '', /its A-label \(xn--...\) or its U-label/, bad);
    }
  });

  it('writeLabPki writes keys readable by the owner only and exchanges the roots', async () => {
    for (const file of ['adatum-root.key', 'mail.adatum.com.key']) {
      assert.equal((await stat(join(pki, file))).mode & 0o777, 0o600, file);
    }
    const treyRoot = await readFile(
      join(root, 'examples', 'treyresearch', 'pki', 'treyresearch-root.crt'),
      'utf8',
    );
    assert.equal(await readFile(join(pki, 'treyresearch-root.crt'), 'utf8'), treyRoot);
    const leaf = new X509Certificate(await readFile(join(pki, 'mail.adatum.com.crt')));
    assert.equal(leaf.subjectAltName, 'DNS:mail.adatum.com, DNS:adatum.com');
    assert.deepEqual(leaf.keyUsage, ['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']);
    const ca = new X509Certificate(await readFile(join(pki, 'adatum-root.crt')));
    assert.ok(leaf.checkIssued(ca) && ca.ca);
  });
});

/** The configuration with PEMs and fingerprints replaced by placeholders, for deepEqual. */
function stripPems(config: RuntimeConfig): unknown {
  return JSON.parse(
    JSON.stringify(config, (key, value: unknown) => {
      if (typeof value !== 'string') return value;
      if (key === 'fingerprint') return 'FP';
      return value.includes('-----BEGIN') ? 'PEM' : value;
    }),
  );
}
