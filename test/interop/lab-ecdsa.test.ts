// The lab PKI's ECDSA P-256 certificates (forge builds, node:crypto signs) checked by OpenSSL's own
// `openssl verify`, RSA still the default, and a domain-secured session with ECDSA on both sides.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import { parseBinding } from '../../src/engine/addresses.js';
import { buildGeneration } from '../../src/engine/generation.js';
import { memoryLog } from '../../src/engine/log.js';
import type { IncomingMessage } from '../../src/engine/message-sink.js';
import { ProtocolLog } from '../../src/engine/protocol-log.js';
import { ReceiveListener } from '../../src/engine/receive.js';
import {
  createCertificateAuthority,
  issueCertificate,
  type CertificateAuthority,
} from '../../src/pki/lab.js';
import { certificate, runtimeConfig, trustAnchor } from '../support/runtime-config.js';
import { submit } from '../support/smtp-submit.js';
import { tempDir } from '../support/tmp.js';

let dir = '';
let removeDir: () => Promise<void> = () => Promise.resolve();
before(async () => {
  const temp = await tempDir('domsec-ecdsa-');
  dir = temp.path;
  removeDir = temp.remove;
});
after(() => removeDir());

/** `openssl verify -CAfile ca leaf`: resolves with its output, rejects with it when it fails. */
async function opensslVerify(ca: string, leaf: string): Promise<string> {
  const caFile = join(dir, `ca-${Math.random().toString(36).slice(2)}.pem`);
  const leafFile = `${caFile}.leaf`;
  await writeFile(caFile, ca);
  await writeFile(leafFile, leaf);
  return new Promise((resolve, reject) => {
    execFile('openssl', ['verify', '-CAfile', caFile, leafFile], (error, stdout, stderr) => {
      if (error !== null) reject(new Error(`openssl verify failed: ${stdout}${stderr}`));
      else resolve(stdout);
    });
  });
}

const keyType = (pem: string) => new X509Certificate(pem).publicKey.asymmetricKeyType;
const ec = (name: string): CertificateAuthority =>
  createCertificateAuthority({ commonName: name, keyType: 'ecdsa-p256', pathLength: 0 });

describe('lab PKI: ECDSA P-256', () => {
  it('keeps RSA the default, and OpenSSL verifies it', async () => {
    const root = createCertificateAuthority({ commonName: 'RSA Root', pathLength: 0 });
    const leaf = issueCertificate(root, { commonName: 'mail.adatum.com' });
    assert.equal(keyType(root.certPem), 'rsa');
    assert.equal(keyType(leaf.certPem), 'rsa');
    assert.match(await opensslVerify(root.certPem, leaf.certPem), /: OK$/m);
  });

  it('issues ECDSA roots and leaves that OpenSSL verifies, with matching key identifiers', async () => {
    const root = ec('EC Root');
    const leaf = issueCertificate(root, {
      commonName: 'mail.adatum.com',
      dnsNames: ['mail.adatum.com', 'adatum.com'],
      keyType: 'ecdsa-p256',
    });
    assert.equal(keyType(root.certPem), 'ec');
    assert.equal(keyType(leaf.certPem), 'ec');
    assert.match(await opensslVerify(root.certPem, leaf.certPem), /: OK$/m);
    const x509 = new X509Certificate(leaf.certPem);
    assert.ok(x509.verify(new X509Certificate(root.certPem).publicKey));
    assert.ok(x509.checkIssued(new X509Certificate(root.certPem)));
    assert.equal(x509.subjectAltName, 'DNS:mail.adatum.com, DNS:adatum.com');
  });

  it('mixes key types across the chain: ECDSA under RSA, RSA under ECDSA', async () => {
    const rsaRoot = createCertificateAuthority({ commonName: 'RSA Root', pathLength: 0 });
    const ecLeaf = issueCertificate(rsaRoot, { commonName: 'a.example', keyType: 'ecdsa-p256' });
    assert.match(await opensslVerify(rsaRoot.certPem, ecLeaf.certPem), /: OK$/m);
    const ecRoot = ec('EC Root');
    const rsaLeaf = issueCertificate(ecRoot, { commonName: 'b.example' });
    assert.equal(keyType(rsaLeaf.certPem), 'rsa');
    assert.match(await opensslVerify(ecRoot.certPem, rsaLeaf.certPem), /: OK$/m);
  });

  it('carries a domain-secured session with ECDSA certificates on both sides', async (t: TestContext) => {
    const adatumRoot = ec('Adatum EC Root');
    const treyRoot = ec('Trey EC Root');
    const names = (host: string, domain: string) => ({
      commonName: host,
      dnsNames: [host, domain],
      keyType: 'ecdsa-p256' as const,
    });
    const adatumMail = issueCertificate(adatumRoot, names('mail.adatum.com', 'adatum.com'));
    const treyMail = issueCertificate(treyRoot, names('mail.treyresearch.net', 'treyresearch.net'));
    const generation = buildGeneration(
      runtimeConfig({
        certificates: [certificate('mail', treyMail)],
        organization: { certificate: 'mail' },
        trustAnchors: [trustAnchor('adatum-root', adatumRoot)],
      }),
      1,
    );
    const messages: IncomingMessage[] = [];
    const protocolLog = new ProtocolLog(null);
    const listener = new ReceiveListener({
      binding: parseBinding('127.0.0.1:0'),
      generation: () => generation,
      sink: {
        accept: (message) => {
          messages.push(message);
          return Promise.resolve(['Q1']);
        },
      },
      log: memoryLog(),
      protocolLog,
      closeTimeout: 500,
    });
    await listener.listen();
    t.after(async () => {
      await listener.close();
      await protocolLog.close();
    });
    const port = listener.address()?.port ?? 0;
    const outcome = await submit(
      port,
      { from: 'alice@adatum.com', to: ['bob@treyresearch.net'] },
      { serverCa: treyRoot.certPem, certificate: adatumMail },
      'Subject: ecdsa\r\n\r\nbody\r\n',
    );
    assert.match(outcome.response, /^250 /);
    assert.equal(messages[0]?.domainSecured?.certificateFingerprint, adatumMail.fingerprint);
  });
});
