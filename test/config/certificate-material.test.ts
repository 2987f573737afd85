// DS015 (weak keys and signatures, read from the DER) and the CRL a TrustAnchor names: each
// case builds its certificates at test time, with the lab PKI or with openssl. The configurations
// DS015 refuses and passes are in the rule table (rule-cases.ts).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { signatureAlgorithmOid } from '../../src/certificate-strength.js';
import { weakness } from '../../src/config/rules/key-strength.js';
import { lab } from '../support/lab.js';
import { CaseLab, codes } from './cases.js';

/** An ECDSA P-256 certificate made by another tool than the lab PKI (openssl req). */
function ecdsaCertificatePem(): string {
  return execFileSync(
    'openssl',
    ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'].concat([
      '-keyout',
      '/dev/null',
      '-subj',
      '/CN=mail.example.net',
      '-days',
      '2',
    ]),
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] },
  );
}

describe('certificate material rules', () => {
  let cases: CaseLab;
  before(async () => {
    cases = await CaseLab.create();
  });
  after(async () => {
    await cases.remove();
  });

  it('DS015: accepts ECDSA and 2048-bit RSA certificates signed with SHA-256', () => {
    const ecdsa = new X509Certificate(ecdsaCertificatePem());
    assert.equal(signatureAlgorithmOid(ecdsa.raw), '1.2.840.10045.4.3.2');
    assert.equal(weakness(ecdsa), undefined);
    assert.equal(weakness(new X509Certificate(lab().adatumMail.certPem)), undefined);
  });

  it('reads a crlFile holding a PEM CRL without complaint, and refuses one that holds none', async () => {
    const crlPem = (dir: string): string => {
      const { treyRoot } = lab();
      writeFileSync(join(dir, 'ca.key'), treyRoot.keyPem, { mode: 0o600 });
      writeFileSync(join(dir, 'ca.crt'), treyRoot.certPem);
      writeFileSync(join(dir, 'index.txt'), '');
      writeFileSync(join(dir, 'crlnumber'), '01\n');
      writeFileSync(
        join(dir, 'ca.cnf'),
        `[ca]\ndefault_ca = lab\n[lab]\ndatabase = ${dir}/index.txt\ncrlnumber = ${dir}/crlnumber\ndefault_md = sha256\ndefault_crl_days = 30\n`,
      );
      const args = ['ca', '-gencrl', '-config', join(dir, 'ca.cnf')];
      return execFileSync(
        'openssl',
        [...args, '-keyfile', join(dir, 'ca.key'), '-cert', join(dir, 'ca.crt')],
        { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] },
      );
    };
    const withCrl = (text: (dir: string) => string) => async (dir: string) => {
      const partners = join(dir, 'partners.yaml');
      const yaml = await readFile(partners, 'utf8');
      await writeFile(
        partners,
        yaml.replace(
          '  pemFile: pki/treyresearch-root.crt\n',
          '  pemFile: pki/treyresearch-root.crt\n  crlFile: pki/trey.crl\n',
        ),
      );
      const work = await mkdtemp(join(dir, 'ca-'));
      await writeFile(join(dir, 'pki', 'trey.crl'), text(work));
    };
    const good = await cases.load(undefined, withCrl(crlPem));
    assert.deepEqual(good.diagnostics, []);
    assert.match(good.config?.trustAnchors[0]?.spec.crlPem ?? '', /BEGIN X509 CRL/);
    const bad = await cases.load(
      undefined,
      withCrl(() => 'not a CRL\n'),
    );
    assert.deepEqual(codes(bad.diagnostics), ['DS016']);
    assert.match(bad.diagnostics[0]?.message ?? '', /holds no PEM CRL/);
  });
});
