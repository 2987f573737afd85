// The rules of SPEC §2: each refuses its broken configuration with its code, at the offending
// field, naming the objects, with its hint; the valid base configuration passes all of them.
import assert from 'node:assert/strict';
import { chmod, cp, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { issueCertificate } from '../../src/pki/lab.js';
import { lab } from '../support/lab.js';
import { assertAt, CaseLab, codes, FIXTURES, positionIn } from './cases.js';

const DAY = 86_400_000;

describe('configuration rules', () => {
  let cases: CaseLab;
  before(async () => {
    cases = await CaseLab.create();
  });
  after(async () => {
    await cases.remove();
  });

  /** Replaces adatum's mail certificate (and key) in a case directory. */
  const withCertificate =
    (certPem: string, keyPem: string) =>
    async (dir: string): Promise<void> => {
      await writeFile(join(dir, 'pki', 'mail.adatum.com.crt'), certPem);
      await writeFile(join(dir, 'pki', 'mail.adatum.com.key'), keyPem, { mode: 0o600 });
    };

  it('accepts the base configuration without any diagnostic', async () => {
    const result = await cases.load();
    assert.deepEqual(result.diagnostics, []);
    assert.ok(result.config);
  });

  it('DS001: refuses a domain-secure send connector routed through smart hosts, at smartHosts', async () => {
    const result = await cases.load('DS001');
    assert.deepEqual(codes(result.diagnostics), ['DS001']);
    assert.equal(result.config, undefined);
    const d = await assertAt(
      result.diagnostics,
      'DS001',
      result.dir,
      'connectors.yaml',
      'smartHosts',
    );
    assert.equal(
      d.message,
      'SendConnector/to-partners routes through smartHosts with domainSecure: true',
    );
    assert.equal(
      d.hint,
      "domain security verifies the partner's own server found by MX; a smart host hides it. Use `dnsMx`, or turn domain security off on this connector",
    );
  });

  it('DS002: refuses a domain-secure receive connector without tls, at authMechanisms', async () => {
    const result = await cases.load('DS002');
    assert.deepEqual(codes(result.diagnostics), ['DS002']);
    const d = await assertAt(
      result.diagnostics,
      'DS002',
      result.dir,
      'connectors.yaml',
      'authMechanisms',
    );
    assert.match(d.message, /ReceiveConnector\/from-partners/);
    assert.equal(d.hint, 'add `tls`');
  });

  it('DS018: refuses a connector that requires TLS without offering it, at requireTls', async () => {
    const result = await cases.load('DS018');
    assert.deepEqual(codes(result.diagnostics), ['DS018']);
    const d = await assertAt(
      result.diagnostics,
      'DS018',
      result.dir,
      'connectors.yaml',
      'requireTls',
    );
    assert.match(d.message, /ReceiveConnector\/internal has requireTls: true .*530 5\.7\.0/);
  });

  /** connectors.yaml of the base with one more receive connector, `internal`, that relays. */
  const withRelay =
    (spec: string) =>
    async (dir: string): Promise<void> => {
      const base = await readFile(join(FIXTURES, 'base', 'connectors.yaml'), 'utf8');
      await writeFile(
        join(dir, 'connectors.yaml'),
        `${base}---\napiVersion: domsec.io/v1alpha1\nkind: ReceiveConnector\nmetadata: {name: internal}\nspec: {${spec}, permitRelay: true}\n`,
      );
    };

  it('DS019: refuses relay to the Internet written as two halves, at remoteIPRanges, hinting how to narrow them', async () => {
    const result = await cases.load('DS019');
    assert.deepEqual(codes(result.diagnostics), ['DS019']);
    assert.equal(result.config, undefined);
    const d = await assertAt(
      result.diagnostics,
      'DS019',
      result.dir,
      'connectors.yaml',
      'remoteIPRanges: [0.0.0.0/1',
    );
    assert.equal(
      d.message,
      'ReceiveConnector/internal permits relay to 0.0.0.0/1, 128.0.0.0/1 on 0.0.0.0:587: clients beyond loopback and private networks could send mail anywhere through us (an open relay)',
    );
    assert.match(d.hint ?? '', /never required.*narrow them to your own servers/);
  });

  it('DS019: the default ranges (everyone), ::ffff:0:0/96 and shared address space are beyond private; tls does not excuse it', async () => {
    for (const [spec, needle] of [
      ["bindings: ['0.0.0.0:587']", 'permitRelay'],
      [
        "bindings: ['[::]:587'], remoteIPRanges: ['::ffff:0:0/96'], authMechanisms: [tls]",
        'remoteIPRanges',
      ],
      [
        "bindings: ['192.0.2.1:587'], remoteIPRanges: [10.0.0.0/8, 100.64.0.0/10]",
        'remoteIPRanges',
      ],
      ["bindings: ['[::]:587'], remoteIPRanges: ['fc00::/6']", 'remoteIPRanges'],
    ] as const) {
      const result = await cases.load(undefined, withRelay(spec));
      assert.deepEqual(codes(result.diagnostics), ['DS019'], spec);
      await assertAt(result.diagnostics, 'DS019', result.dir, 'connectors.yaml', needle);
    }
  });

  it('DS019 stays quiet for relay from loopback, and for any ranges on a loopback binding', async () => {
    for (const spec of [
      "bindings: ['0.0.0.0:587'], remoteIPRanges: [127.0.0.0/8, '::1', '::ffff:7f00:0/104']",
      "bindings: ['127.0.0.1:587', '[::1]:587'], remoteIPRanges: [0.0.0.0/0, '::/0']",
    ]) {
      const result = await cases.load(undefined, withRelay(spec));
      assert.deepEqual(result.diagnostics, [], spec);
    }
  });

  it('DS107 warns of relay to private networks, at remoteIPRanges, naming them', async () => {
    const result = await cases.load('DS107');
    assert.deepEqual(codes(result.diagnostics), ['DS107']);
    assert.ok(result.config, 'a warning does not refuse the configuration');
    const d = await assertAt(
      result.diagnostics,
      'DS107',
      result.dir,
      'connectors.yaml',
      'remoteIPRanges: [127',
    );
    assert.equal(d.severity, 'warning');
    assert.match(d.message, /private networks 10\.0\.0\.0\/8, fd00::\/8 on 0\.0\.0\.0:587/);
  });

  it('DS108 warns of an admin API beyond loopback, at admin.listen; localhost and 127.0.0.2 are quiet', async () => {
    const result = await cases.load('DS108');
    assert.deepEqual(codes(result.diagnostics), ['DS108']);
    assert.ok(result.config);
    const d = await assertAt(
      result.diagnostics,
      'DS108',
      result.dir,
      'organization.yaml',
      '0.0.0.0:8025',
    );
    assert.match(
      d.message,
      /Organization\/adatum has admin\.listen 0\.0\.0\.0:8025, beyond loopback/,
    );
    for (const listen of ['localhost:8025', '127.0.0.2:8025', '[::1]:8025']) {
      const quiet = await cases.load('DS108', async (dir) => {
        const path = join(dir, 'organization.yaml');
        await writeFile(
          path,
          (await readFile(path, 'utf8')).replace('0.0.0.0:8025', `'${listen}'`),
        );
      });
      assert.deepEqual(quiet.diagnostics, [], listen);
    }
  });

  it('DS003: refuses a send-secure partner that no domain-secure send connector covers', async () => {
    const result = await cases.load('DS003');
    assert.deepEqual(codes(result.diagnostics), ['DS003']);
    const d = await assertAt(result.diagnostics, 'DS003', result.dir, 'partners.yaml', 'send:');
    assert.match(
      d.message,
      /PartnerDomain\/treyresearch .*no SendConnector covers treyresearch\.net/,
    );
    assert.match(d.hint ?? '', /add or fix a send connector/);
  });

  it('DS003: refuses a send-secure partner whose most specific send connector is not domain-secure', async () => {
    const result = await cases.load(undefined, async (dir) => {
      await writeFile(
        join(dir, 'more-connectors.yaml'),
        'apiVersion: domsec.io/v1alpha1\nkind: SendConnector\nmetadata: {name: to-trey-plain}\nspec: {addressSpaces: [treyresearch.net], cost: 1}\n',
      );
      await writeFile(
        join(dir, 'connectors.yaml'),
        'apiVersion: domsec.io/v1alpha1\nkind: SendConnector\nmetadata: {name: to-everyone}\nspec: {addressSpaces: ["*"], domainSecure: true}\n---\napiVersion: domsec.io/v1alpha1\nkind: ReceiveConnector\nmetadata: {name: in}\nspec: {bindings: ["127.0.0.2:25"], domainSecure: true}\n',
      );
    });
    assert.deepEqual(codes(result.diagnostics), ['DS003']);
    assert.match(
      result.diagnostics[0]?.message ?? '',
      /SendConnector\/to-trey-plain, which has no domainSecure: true/,
    );
  });

  it('DS004: refuses a receive-secure partner when no receive connector is domain-secure', async () => {
    const result = await cases.load('DS004');
    assert.deepEqual(codes(result.diagnostics), ['DS004']);
    await assertAt(result.diagnostics, 'DS004', result.dir, 'partners.yaml', 'receive:');
  });

  it('DS005: refuses an organization certificate that does not name the EHLO hostname', async () => {
    const { adatumWrongName } = lab();
    const result = await cases.load(
      undefined,
      withCertificate(adatumWrongName.certPem, adatumWrongName.keyPem),
    );
    // mail.contoso.com names neither the hostname nor adatum.com.
    assert.deepEqual(codes(result.diagnostics), ['DS005', 'DS005']);
    const [host, domain] = result.diagnostics;
    assert.match(
      host?.message ?? '',
      /Organization\/adatum: hostname mail\.adatum\.com is not named by Certificate\/mail-adatum \(its names: mail\.contoso\.com\)/,
    );
    assert.match(host?.hint ?? '', /domsec certs/);
    assert.match(domain?.message ?? '', /accepted domain adatum\.com is not named/);
    assert.equal(host?.line, 9);
    assert.equal(domain?.line, 10);
  });

  it('DS005: accepts a one-label wildcard for the hostname, but wants the accepted domain itself', async () => {
    const ca = lab().adatumRoot;
    const wildcard = issueCertificate(ca, { commonName: 'adatum', dnsNames: ['*.adatum.com'] });
    const result = await cases.load(undefined, withCertificate(wildcard.certPem, wildcard.keyPem));
    assert.deepEqual(codes(result.diagnostics), ['DS005']);
    await assertAt(result.diagnostics, 'DS005', result.dir, 'organization.yaml', 'adatum.com]');
  });

  it('DS005: reads the subject CN when the certificate has no SAN', async () => {
    const cnOnly = issueCertificate(lab().adatumRoot, { commonName: 'mail.adatum.com' });
    const result = await cases.load(undefined, async (dir) => {
      await withCertificate(cnOnly.certPem, cnOnly.keyPem)(dir);
      // Without domain-secure partners only the hostname must be covered.
      await writeFile(
        join(dir, 'partners.yaml'),
        'apiVersion: domsec.io/v1alpha1\nkind: PartnerDomain\nmetadata: {name: treyresearch}\nspec: {domain: treyresearch.net}\n',
      );
    });
    assert.deepEqual(codes(result.diagnostics), []);
  });

  it('DS006: refuses an expired certificate, at certFile', async () => {
    const { adatumExpired } = lab();
    const result = await cases.load(
      undefined,
      withCertificate(adatumExpired.certPem, adatumExpired.keyPem),
    );
    assert.deepEqual(codes(result.diagnostics), ['DS006']);
    const d = await assertAt(
      result.diagnostics,
      'DS006',
      result.dir,
      'organization.yaml',
      'certFile',
    );
    assert.match(d.message, /Certificate\/mail-adatum expired on/);
  });

  it('DS006: refuses a certificate that is not yet valid', async () => {
    const future = issueCertificate(lab().adatumRoot, {
      commonName: 'mail.adatum.com',
      dnsNames: ['mail.adatum.com', 'adatum.com'],
      notBefore: new Date(Date.now() + DAY),
      notAfter: new Date(Date.now() + 90 * DAY),
    });
    const result = await cases.load(undefined, withCertificate(future.certPem, future.keyPem));
    assert.deepEqual(codes(result.diagnostics), ['DS006']);
    assert.match(result.diagnostics[0]?.message ?? '', /is not valid before/);
  });

  it('DS006: refuses a key that does not match its certificate, at keyFile', async () => {
    const { adatumMail, treyMail } = lab();
    const result = await cases.load(
      undefined,
      withCertificate(adatumMail.certPem, treyMail.keyPem),
    );
    assert.deepEqual(codes(result.diagnostics), ['DS006']);
    const d = await assertAt(
      result.diagnostics,
      'DS006',
      result.dir,
      'organization.yaml',
      'keyFile',
    );
    assert.match(d.message, /private key in keyFile does not match/);
  });

  it('DS006: refuses an organization certificate without serverAuth', async () => {
    const clientOnly = issueCertificate(lab().adatumRoot, {
      commonName: 'mail.adatum.com',
      dnsNames: ['mail.adatum.com', 'adatum.com'],
      extendedKeyUsage: ['clientAuth'],
    });
    const result = await cases.load(
      undefined,
      withCertificate(clientOnly.certPem, clientOnly.keyPem),
    );
    assert.deepEqual(codes(result.diagnostics), ['DS006']);
    assert.match(result.diagnostics[0]?.message ?? '', /Extended Key Usage lacks serverAuth/);
    assert.equal(
      result.diagnostics[0]?.hint?.startsWith('we present it as a server and as a client'),
      true,
    );
  });

  it('DS007: names the missing trust anchor and the closest existing name, at the reference', async () => {
    const result = await cases.load('DS007');
    assert.deepEqual(codes(result.diagnostics), ['DS007']);
    const d = await assertAt(
      result.diagnostics,
      'DS007',
      result.dir,
      'partners.yaml',
      'treyresearch-rot]',
    );
    assert.equal(
      d.message,
      'PartnerDomain/treyresearch names TrustAnchor/treyresearch-rot, which does not exist',
    );
    assert.equal(d.hint, 'did you mean `treyresearch-root`?');
  });

  it('DS007: a missing certificate with no close name lists the existing ones', async () => {
    const result = await cases.load(undefined, async (dir) => {
      const path = join(dir, 'organization.yaml');
      await writeFile(
        path,
        (await readFile(path, 'utf8')).replace('certificate: mail-adatum', 'certificate: wildcard'),
      );
    });
    assert.deepEqual(codes(result.diagnostics), ['DS007']);
    await assertAt(result.diagnostics, 'DS007', result.dir, 'organization.yaml', 'wildcard');
    assert.equal(result.diagnostics[0]?.hint, 'the Certificates are `mail-adatum`');
  });

  it('DS007: a reference to an object that fails its schema is not reported as missing', async () => {
    const result = await cases.load(undefined, async (dir) => {
      await writeFile(
        join(dir, 'partners.yaml'),
        'apiVersion: domsec.io/v1alpha1\nkind: TrustAnchor\nmetadata: {name: treyresearch-root}\nspec: {pemfile: pki/treyresearch-root.crt}\n---\napiVersion: domsec.io/v1alpha1\nkind: PartnerDomain\nmetadata: {name: treyresearch}\nspec: {domain: treyresearch.net, domainSecure: {send: true, receive: true}, trustAnchors: [treyresearch-root], remoteIPRanges: [127.0.0.0/8]}\n',
      );
    });
    assert.deepEqual(codes(result.diagnostics), ['SCHEMA', 'SCHEMA']);
    assert.match(result.diagnostics.map((d) => d.hint).join('\n'), /did you mean `pemFile`\?/);
  });

  it('DS008: refuses two objects of one kind with one name, and two partners for one domain', async () => {
    const result = await cases.load('DS008');
    assert.deepEqual(codes(result.diagnostics), ['DS008', 'DS008']);
    const [name, domain] = result.diagnostics;
    const file = join(result.dir, 'partners.yaml');
    const first = await positionIn(file, 'name: treyresearch', 2);
    assert.match(
      name?.message ?? '',
      new RegExp(
        `two PartnerDomains are named \`treyresearch\` \\(the other is at .*partners\\.yaml:${first.line}\\)`,
      ),
    );
    assert.equal(name?.line, (await positionIn(file, 'name: treyresearch', 3)).line);
    assert.match(
      domain?.message ?? '',
      /PartnerDomain\/treyresearch and PartnerDomain\/treyresearch are both partners for TreyResearch\.net/,
    );
    assert.equal(domain?.line, (await positionIn(file, 'TreyResearch.net')).line);
  });

  it('DS008: refuses a second Organization and a TrustAnchor named system', async () => {
    const result = await cases.load(undefined, async (dir) => {
      await writeFile(
        join(dir, 'zz-more.yaml'),
        'apiVersion: domsec.io/v1alpha1\nkind: Organization\nmetadata: {name: contoso}\nspec: {hostname: mail.adatum.com, acceptedDomains: [adatum.com], certificate: mail-adatum}\n---\napiVersion: domsec.io/v1alpha1\nkind: TrustAnchor\nmetadata: {name: system}\nspec: {system: true}\n',
      );
    });
    assert.deepEqual(codes(result.diagnostics), ['DS008', 'DS008', 'DS102']);
    assert.match(result.diagnostics[0]?.message ?? '', /exactly one Organization/);
    assert.match(result.diagnostics[1]?.message ?? '', /the name `system` is reserved/);
  });

  it('DS009: refuses a trust anchor that is not a CA certificate, at pemFile', async () => {
    const result = await cases.load('DS009');
    assert.deepEqual(codes(result.diagnostics), ['DS009']);
    const d = await assertAt(result.diagnostics, 'DS009', result.dir, 'partners.yaml', 'pemFile');
    assert.match(
      d.message,
      /TrustAnchor\/treyresearch-root: the certificate in pemFile is not a CA certificate/,
    );
  });

  it('DS009: refuses an inline pem that cannot be parsed, at pem', async () => {
    const result = await cases.load(undefined, async (dir) => {
      await writeFile(
        join(dir, 'zz-anchor.yaml'),
        'apiVersion: domsec.io/v1alpha1\nkind: TrustAnchor\nmetadata: {name: inline}\nspec:\n  pem: |\n    -----BEGIN CERTIFICATE-----\n    AAAA\n    -----END CERTIFICATE-----\n',
      );
    });
    // No partner names it yet: DS102 warns as well.
    assert.deepEqual(codes(result.diagnostics), ['DS102', 'DS009']);
    await assertAt(result.diagnostics, 'DS009', result.dir, 'zz-anchor.yaml', 'pem:');
  });

  it('DS010: refuses a partner for an accepted domain', async () => {
    const result = await cases.load('DS010');
    assert.deepEqual(codes(result.diagnostics), ['DS010']);
    await assertAt(result.diagnostics, 'DS010', result.dir, 'partners.yaml', 'adatum.com');
  });

  it('DS011: refuses two receive connectors on one binding with the same remote ranges', async () => {
    const result = await cases.load('DS011');
    assert.deepEqual(codes(result.diagnostics), ['DS011']);
    const d = await assertAt(
      result.diagnostics,
      'DS011',
      result.dir,
      'connectors.yaml',
      "'127.0.0.2:2525']",
      2,
    );
    assert.match(
      d.message,
      /ReceiveConnector\/from-internet and ReceiveConnector\/from-partners both listen on 127\.0\.0\.2:2525/,
    );
  });

  it('DS012: refuses two send connectors with one address space and one cost', async () => {
    const result = await cases.load('DS012');
    assert.deepEqual(codes(result.diagnostics), ['DS012']);
    await assertAt(result.diagnostics, 'DS012', result.dir, 'connectors.yaml', 'TreyResearch.net');
  });

  it('DS020: refuses dane: require without a validating resolver, at dane', async () => {
    const result = await cases.load('DS020');
    assert.deepEqual(codes(result.diagnostics), ['DS020']);
    await assertAt(result.diagnostics, 'DS020', result.dir, 'policies.yaml', 'require');
    const validating = await cases.load('DS020', async (dir) => {
      const file = join(dir, 'organization.yaml');
      const text = await readFile(file, 'utf8');
      const validated = text.replace(
        '  certificate: mail-adatum\n',
        '  certificate: mail-adatum\n  resolver: { servers: [127.0.0.1], validating: true }\n',
      );
      assert.notEqual(validated, text);
      await writeFile(file, validated);
    });
    assert.deepEqual(codes(validating.diagnostics), []);
  });

  it('DS021: refuses two TLS policies with one address space, whatever its spelling', async () => {
    const result = await cases.load('DS021');
    assert.deepEqual(codes(result.diagnostics), ['DS021']);
    await assertAt(result.diagnostics, 'DS021', result.dir, 'policies.yaml', 'Fabrikam.Example');
  });

  it('DS013: refuses a domain-secure partner without trust anchors, hinting at `system`', async () => {
    const result = await cases.load('DS013');
    assert.deepEqual(codes(result.diagnostics), ['DS013']);
    const d = await assertAt(
      result.diagnostics,
      'DS013',
      result.dir,
      'partners.yaml',
      'domainSecure',
    );
    assert.equal(d.hint, 'name one, or `system`');
  });

  it('DS014: refuses requireTls: false on a domain-secure connector, at requireTls', async () => {
    const result = await cases.load('DS014');
    assert.deepEqual(codes(result.diagnostics), ['DS014']);
    await assertAt(result.diagnostics, 'DS014', result.dir, 'connectors.yaml', 'requireTls');
  });

  it('DS016: names a missing file, at the field that names it', async () => {
    const result = await cases.load('DS016');
    assert.deepEqual(codes(result.diagnostics), ['DS016']);
    const d = await assertAt(
      result.diagnostics,
      'DS016',
      result.dir,
      'partners.yaml',
      'pki/treyresearch-root.pem',
    );
    assert.match(
      d.message,
      /^TrustAnchor\/treyresearch-root: pemFile pki\/treyresearch-root\.pem \(.*\) does not exist$/,
    );
  });

  it('DS016: refuses a file that is not the PEM it should be, without showing its contents', async () => {
    const secret = 'TOP-SECRET-CONTENT';
    const result = await cases.load(undefined, async (dir) => {
      await writeFile(join(dir, 'pki', 'mail.adatum.com.crt'), `${secret}\n`);
      await writeFile(join(dir, 'pki', 'mail.adatum.com.key'), lab().adatumMail.certPem, {
        mode: 0o600,
      });
    });
    assert.deepEqual(codes(result.diagnostics), ['DS016', 'DS016']);
    assert.match(result.diagnostics[0]?.message ?? '', /certFile .* holds no PEM certificate/);
    assert.match(result.diagnostics[1]?.message ?? '', /keyFile .* holds no PEM private key/);
    assert.ok(!JSON.stringify(result.diagnostics).includes(secret));
    assert.ok(!JSON.stringify(result.diagnostics).includes('BEGIN CERTIFICATE-----\nMI'));
  });

  it('DS017: refuses a delivery relay that is one of our own receive bindings, at host', async () => {
    const result = await cases.load('DS017');
    assert.deepEqual(codes(result.diagnostics), ['DS017']);
    assert.equal(result.config, undefined);
    const d = await assertAt(
      result.diagnostics,
      'DS017',
      result.dir,
      'organization.yaml',
      "host: '127",
    );
    assert.match(
      d.message,
      /127\.0\.0\.2:2525, which is binding 127\.0\.0\.2:2525 of ReceiveConnector\/from-partners: mail would loop/,
    );
    assert.match(d.hint ?? '', /delivery\.maildir/);
  });

  it('DS017: a relay on localhost reaches a wildcard binding on its port; another address or port passes', async () => {
    const relayTo = (host: string, binding: string) => async (dir: string) => {
      const connectors = join(dir, 'connectors.yaml');
      const text = await readFile(connectors, 'utf8');
      await writeFile(connectors, text.replace("'127.0.0.2:2525'", `'${binding}'`));
      const organization = join(dir, 'organization.yaml');
      const org = await readFile(organization, 'utf8');
      await writeFile(organization, org.replace("host: '127.0.0.2:2525'", `host: '${host}'`));
    };
    const wildcard = await cases.load('DS017', relayTo('localhost', '0.0.0.0:25'));
    assert.deepEqual(codes(wildcard.diagnostics), ['DS017']);
    const ownName = await cases.load('DS017', relayTo('mail.adatum.com:2525', '[::]:2525'));
    assert.deepEqual(codes(ownName.diagnostics), ['DS017']);
    const elsewhere = await cases.load('DS017', relayTo('127.0.0.3:2525', '127.0.0.2:2525'));
    assert.deepEqual(elsewhere.diagnostics, []);
    const otherPort = await cases.load('DS017', relayTo('localhost:24', '0.0.0.0:25'));
    assert.deepEqual(otherPort.diagnostics, []);
    assert.deepEqual(otherPort.config?.organization.spec.delivery, {
      relay: { host: 'localhost:24', protocol: 'smtp', tls: 'opportunistic' },
    });
  });

  it('DS101, DS105, DS104 warn without refusing the configuration', async () => {
    const soon = issueCertificate(lab().adatumRoot, {
      commonName: 'mail.adatum.com',
      dnsNames: ['mail.adatum.com', 'adatum.com'],
      extendedKeyUsage: ['serverAuth'],
      notAfter: new Date(Date.now() + 10 * DAY),
    });
    const result = await cases.load(undefined, async (dir) => {
      await withCertificate(soon.certPem, soon.keyPem)(dir);
      await chmod(join(dir, 'pki', 'mail.adatum.com.key'), 0o644);
    });
    // Sorted by position: DS101 and DS105 at certFile, DS104 at keyFile.
    assert.deepEqual(codes(result.diagnostics), ['DS101', 'DS105', 'DS104']);
    assert.ok(result.diagnostics.every((d) => d.severity === 'warning'));
    assert.ok(result.config, 'warnings do not refuse');
    // As plan and apply count it (one function): 10 days less the test's run is 10 days.
    assert.match(result.diagnostics[0]?.message ?? '', /expires in 10 day\(s\)/);
  });

  it('DS102 and DS106 warn of an unused trust anchor and a loose name match', async () => {
    const unused = await cases.load('DS102');
    assert.deepEqual(codes(unused.diagnostics), ['DS102']);
    await assertAt(unused.diagnostics, 'DS102', unused.dir, 'partners.yaml', 'public-cas');
    assert.deepEqual(unused.config?.trustAnchors.find((a) => a.name === 'public-cas')?.spec, {
      system: true,
    });
    const loose = await cases.load('DS106');
    assert.deepEqual(codes(loose.diagnostics), ['DS106']);
    await assertAt(loose.diagnostics, 'DS106', loose.dir, 'partners.yaml', 'certificateNameMatch');
  });

  it('DS103 warns of a receive-secure partner without remoteIPRanges, at receive', async () => {
    const result = await cases.load('DS103');
    assert.deepEqual(codes(result.diagnostics), ['DS103']);
    const d = await assertAt(result.diagnostics, 'DS103', result.dir, 'partners.yaml', 'receive:');
    assert.equal(d.severity, 'warning');
    assert.match(d.message, /PartnerDomain\/treyresearch is receive-secure .*no remoteIPRanges/);
    assert.ok(result.config, 'a warning does not refuse');
  });

  it('SCHEMA: an unknown field suggests the closest valid name; rules that need it stay quiet', async () => {
    const result = await cases.load('SCHEMA');
    assert.deepEqual(codes(result.diagnostics), ['SCHEMA', 'SCHEMA', 'SCHEMA']);
    const unknown = result.diagnostics.find((d) => d.message.includes('unknown field'));
    assert.equal(
      unknown?.message,
      'SendConnector/to-partners: unknown field `adressSpaces` in `spec`',
    );
    assert.equal(unknown?.hint, 'did you mean `addressSpaces`?');
    assert.ok(unknown);
    await assertAt([unknown], 'SCHEMA', result.dir, 'connectors.yaml', 'adressSpaces');
    const required = result.diagnostics.find((d) => d.message.includes('is required'));
    assert.equal(required?.message, 'SendConnector/to-partners: `spec.addressSpaces` is required');
    const level = result.diagnostics.find((d) => d.message.includes('protocolLogging'));
    assert.equal(level?.hint, 'did you mean `verbose`?');
  });

  it('reports every problem at once, across files', async () => {
    const result = await cases.load('DS001', async (dir) => {
      await cp(join(FIXTURES, 'DS007', 'partners.yaml'), join(dir, 'partners.yaml'));
    });
    assert.deepEqual(codes(result.diagnostics), ['DS001', 'DS007']);
  });
});
