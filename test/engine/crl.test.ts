// Revocation (SPEC §3.3): a trust anchor's CRL is read and its signature checked at apply, and a
// certificate it revokes is refused in both directions over real sockets, like any other failure.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { sign, X509Certificate } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import { promisify } from 'node:util';
import fc from 'fast-check';
import {
  buildGeneration,
  ConfigurationError,
  type Generation,
} from '../../src/engine/generation.js';
import { memoryLog } from '../../src/engine/log.js';
import type { OutboundMessage } from '../../src/engine/queue/outcome.js';
import { createRemoteDelivery } from '../../src/engine/send/deliver.js';
import { CrlError, normalSerial, readRevocationList } from '../../src/engine/tls/crl.js';
import { derChildren, derElement, derEncode } from '../../src/der.js';
import {
  createCertificateAuthority,
  createRevocationList,
  issueCertificate,
  type IssuedCertificate,
} from '../../src/pki/lab.js';
import { lab } from '../support/lab.js';
import { runtimeConfig, sendConnector, trustAnchor } from '../support/runtime-config.js';
import { startSmtpPeer, type SmtpPeer } from '../support/smtp-peer.js';
import { receiving } from '../support/receiving.js';
import { submit } from '../support/smtp-submit.js';
import { tempDir, type TempDir } from '../support/tmp.js';
import { requireDomainName } from '../../src/domain-name.js';
import { replyText } from '../support/replies.js';
import { startEngine } from '../support/engine.js';
import { freePort } from '../support/ports.js';

const run = promisify(execFile);
const DAY = 86_400_000;
const ADATUM = { commonName: 'mail.adatum.com', dnsNames: ['mail.adatum.com', 'adatum.com'] };
const BODY = 'From: a@adatum.com\r\nSubject: revocation\r\n\r\nbody\r\n';

let revokedMail: IssuedCertificate;
let crlPem: string;
let staleCrlPem: string;
let dir: TempDir;

before(async () => {
  const { adatumRoot, adatumMail } = lab();
  revokedMail = issueCertificate(adatumRoot, ADATUM);
  crlPem = createRevocationList(adatumRoot, { revoked: [revokedMail.certPem] });
  staleCrlPem = createRevocationList(adatumRoot, {
    revoked: [],
    thisUpdate: new Date(Date.now() - 10 * DAY),
    nextUpdate: new Date(Date.now() - DAY),
  });
  assert.notEqual(revokedMail.fingerprint, adatumMail.fingerprint);
  dir = await tempDir('domsec-crl-');
});
after(async () => {
  await dir.remove();
});

/** The DER inside a PEM CRL, and back. */
function pemBody(pem: string): Buffer {
  return Buffer.from(pem.replace(/-----[A-Z0-9 ]+-----|\s/g, ''), 'base64');
}
function pemOf(der: Buffer): string {
  return `-----BEGIN X509 CRL-----\n${der.toString('base64')}\n-----END X509 CRL-----\n`;
}

/** treyresearch with adatum's root as anchor, carrying the given CRL. */
function generationWith(
  crl: string | undefined,
  previous?: Generation,
  authority = lab().adatumRoot,
): Generation {
  const anchor = trustAnchor('adatum-root', authority);
  return buildGeneration(
    runtimeConfig({
      trustAnchors: [
        { ...anchor, spec: { ...anchor.spec, ...(crl === undefined ? {} : { crlPem: crl }) } },
      ],
    }),
    (previous?.number ?? 0) + 1,
    { previous },
  );
}

/** The revoked serials the generation's partners consult for adatum's root. */
function revokedBy(generation: Generation): ReadonlySet<string> | undefined {
  const root = new X509Certificate(lab().adatumRoot.certPem).fingerprint256;
  const partner = [...generation.partnersByDomain.values()][0];
  return partner?.revocations.get(root)?.revoked;
}

describe('revocation lists', () => {
  it('makes lab CRLs that OpenSSL verifies against the CA, and reads their revoked serials', async () => {
    const { adatumRoot } = lab();
    const ecRoot = createCertificateAuthority({ commonName: 'EC Root', keyType: 'ecdsa-p256' });
    const ecLeaf = issueCertificate(ecRoot, { ...ADATUM, keyType: 'ecdsa-p256' });
    for (const [name, ca, leaf] of [
      ['rsa', adatumRoot, revokedMail],
      ['ec', ecRoot, ecLeaf],
    ] as const) {
      const pem = createRevocationList(ca, { revoked: [leaf.certPem] });
      await writeFile(join(dir.path, `${name}.crl`), pem);
      await writeFile(join(dir.path, `${name}-ca.crt`), ca.certPem);
      const { stderr } = await run('openssl', [
        'crl',
        '-in',
        join(dir.path, `${name}.crl`),
        '-CAfile',
        join(dir.path, `${name}-ca.crt`),
        '-noout',
      ]);
      assert.match(stderr, /verify OK/, name);
      const list = readRevocationList(pem, new X509Certificate(ca.certPem));
      assert.deepEqual(
        [...list.revoked],
        [normalSerial(new X509Certificate(leaf.certPem).serialNumber)],
      );
      assert.ok(list.nextUpdate !== undefined && list.nextUpdate > Date.now());
    }
  });

  it('reuses a list the running generation verified when its text and anchor are unchanged, reads a changed one, and still refuses a bad one', () => {
    const serial = normalSerial(new X509Certificate(revokedMail.certPem).serialNumber);
    const first = generationWith(crlPem);
    assert.equal(first.revocationIndex.parsed, 1);
    const same = generationWith(crlPem, first);
    assert.equal(same.revocationIndex.parsed, 0, 'an unchanged list is not parsed again');
    assert.equal(revokedBy(same)?.has(serial), true, 'the reused list still revokes');
    // Reused from a reused list: the index carries over generation after generation.
    assert.equal(generationWith(crlPem, same).revocationIndex.parsed, 0);

    const changed = createRevocationList(lab().adatumRoot, { revoked: [] });
    const next = generationWith(changed, same);
    assert.equal(next.revocationIndex.parsed, 1, 'a changed list is read');
    assert.equal(revokedBy(next)?.has(serial), false);

    // A bad new list fails the build with a previous generation as without one.
    const other = createRevocationList(lab().strangerRoot, { revoked: [] });
    assert.throws(() => generationWith(other, next), /its CRL is not signed by/);
    // The same text under another anchor is not the list that anchor verified: read and refused.
    assert.throws(
      () => generationWith(crlPem, first, lab().strangerRoot),
      /trust anchor adatum-root: its CRL is not signed by/,
    );
    // Without a previous generation every list is read.
    assert.equal(generationWith(crlPem).revocationIndex.parsed, 1);
  });

  it('an engine applying again with the same CRL takes it from the running generation', async () => {
    const state = await tempDir('domsec-crl-engine-');
    const running = await startEngine(state.path);
    try {
      const anchor = trustAnchor('adatum-root', lab().adatumRoot);
      const port = await freePort();
      const config = (crl: string) =>
        runtimeConfig({
          receiveConnector: { bindings: [`127.0.0.1:${port}`] },
          trustAnchors: [{ ...anchor, spec: { ...anchor.spec, crlPem: crl } }],
        });
      await running.engine.apply(config(crlPem));
      assert.equal(running.engine.running()?.revocationIndex.parsed, 1);
      await running.engine.apply(config(crlPem));
      assert.equal(running.engine.currentGeneration, 2);
      assert.equal(running.engine.running()?.revocationIndex.parsed, 0, 'reused on reload');
      await running.engine.apply(config(staleCrlPem));
      assert.equal(running.engine.running()?.revocationIndex.parsed, 1, 'a new list is read');
      const other = createRevocationList(lab().strangerRoot, { revoked: [] });
      await assert.rejects(running.engine.apply(config(other)), /its CRL is not signed by/);
      assert.equal(running.engine.currentGeneration, 3, 'the running generation stays');
    } finally {
      await running.stop();
      await state.remove();
    }
  });

  it('refuses a CRL another CA signed, and one that is not a CRL, naming the anchor', () => {
    const other = createRevocationList(lab().strangerRoot, { revoked: [] });
    assert.throws(
      () => readRevocationList(other, new X509Certificate(lab().adatumRoot.certPem)),
      (error: unknown) =>
        error instanceof CrlError && /is not signed by .*Adatum Root CA/.test(error.message),
    );
    assert.throws(
      () => generationWith(other),
      (error: unknown) =>
        error instanceof ConfigurationError &&
        /trust anchor adatum-root: its CRL is not signed by/.test(error.message),
    );
    const truncated = crlPem.replace(/\n[A-Za-z0-9+/=]+\n-----END/, '\n-----END');
    assert.throws(
      () => generationWith(truncated),
      /trust anchor adatum-root: its CRL cannot be read/,
    );
  });

  it('refuses bytes after the list, a SHA-1 signature, two signature algorithms that differ, and one for another kind of key', () => {
    const root = new X509Certificate(lab().adatumRoot.certPem);
    const der = pemBody(crlPem);
    const refused = (bytes: Buffer, pattern: RegExp) =>
      assert.throws(
        () => readRevocationList(pemOf(bytes), root),
        (error: unknown) => error instanceof CrlError && pattern.test(error.message),
        String(pattern),
      );
    refused(Buffer.concat([der, Buffer.from([0x05, 0x00])]), /cannot be read: data after the list/);
    // sha256WithRSAEncryption (…01 01 0b) as sha1WithRSAEncryption (…01 01 05), in one or both
    // of the list's two AlgorithmIdentifiers.
    const sha256 = Buffer.from('2a864886f70d01010b', 'hex');
    const sha1 = Buffer.from('2a864886f70d010105', 'hex');
    const inner = der.indexOf(sha256);
    const outer = der.indexOf(sha256, inner + 1);
    assert.ok(inner > 0 && outer > inner);
    const both = Buffer.from(der);
    sha1.copy(both, inner);
    sha1.copy(both, outer);
    refused(both, /algorithm not accepted \(1\.2\.840\.113549\.1\.1\.5\)/);
    const one = Buffer.from(der);
    sha1.copy(one, inner);
    refused(one, /two signature algorithms differ/);

    // Signed by the RSA root over the signed part, and labelled ecdsa-with-SHA256: crypto.verify
    // would check the RSA signature all the same.
    const [tbs] = derChildren(der, derElement(der, 0, 0x30));
    assert.ok(tbs !== undefined);
    const fields = derChildren(der, tbs).map((field) => der.subarray(field.offset, field.end));
    const ecdsa = derEncode(0x30, derEncode(0x06, Buffer.from('2a8648ce3d040302', 'hex')));
    const relabelled = derEncode(0x30, fields[0] ?? Buffer.alloc(0), ecdsa, ...fields.slice(2));
    const signature = sign('sha256', relabelled, lab().adatumRoot.keyPem);
    refused(
      derEncode(0x30, relabelled, ecdsa, derEncode(0x03, Buffer.from([0]), signature)),
      /signed with 1\.2\.840\.10045\.4\.3\.2, an algorithm for ec keys, and the anchor's key is rsa/,
    );
  });

  it('reads a list changed in any byte as the original, or refuses it (fast-check)', () => {
    const root = new X509Certificate(lab().adatumRoot.certPem);
    const der = pemBody(crlPem);
    const original = readRevocationList(crlPem, root);
    let accepted = 0;
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: der.length - 1 }),
        fc.integer({ min: 1, max: 255 }),
        (at, flip) => {
          const changed = Buffer.from(der);
          changed[at] = (changed[at] ?? 0) ^ flip;
          let list;
          try {
            list = readRevocationList(pemOf(changed), root);
          } catch (error) {
            assert.ok(error instanceof CrlError, `byte ${at} ^ ${flip}: ${String(error)}`);
            return;
          }
          accepted++;
          assert.deepEqual(list, original, `byte ${at} ^ ${flip} read differently`);
        },
      ),
      { numRuns: 400 },
    );
    assert.ok(accepted < 40, `${accepted} changed lists accepted`);
  });
});

describe('revocation: receiving', () => {
  async function receivingFrom(t: TestContext, generation: Generation) {
    const { port, messages, log } = await receiving(t, generation);
    const send = (certificate: IssuedCertificate) =>
      submit(
        port,
        { from: 'a@adatum.com', to: ['u@treyresearch.net'] },
        { serverCa: lab().treyRoot.certPem, certificate },
        BODY,
      );
    return { send, messages, log };
  }

  it('refuses a revoked partner certificate with 454 4.7.5 and accepts an unrevoked one of the same CA', async (t) => {
    const { send, messages, log } = await receivingFrom(t, generationWith(crlPem));
    const refused = await send(revokedMail);
    assert.match(refused.response, /^454 4\.7\.5 /);
    assert.equal(messages.length, 0);
    const reason = log.entries.find((e) => e.event === 'partner.refused')?.fields.reason;
    assert.match(String(reason), /certificate is revoked by the CRL of .*Adatum Root CA/);
    const accepted = await send(lab().adatumMail);
    assert.match(accepted.response, /^250 /);
    assert.equal(messages.length, 1);
  });

  it('accepts the revoked certificate when the anchor has no CRL (the test would pass without one)', async (t) => {
    const { send, messages } = await receivingFrom(t, generationWith(undefined));
    assert.match((await send(revokedMail)).response, /^250 /);
    assert.equal(messages.length, 1);
  });

  it('refuses every partner certificate of the anchor while its CRL is out of date', async (t) => {
    const { send, messages, log } = await receivingFrom(t, generationWith(staleCrlPem));
    assert.match((await send(lab().adatumMail)).response, /^454 4\.7\.5 /);
    assert.equal(messages.length, 0);
    const reason = log.entries.find((e) => e.event === 'partner.refused')?.fields.reason;
    assert.match(String(reason), /the CRL of .*Adatum Root CA.* is out of date since/);
  });
});

describe('revocation: sending', () => {
  const peers: SmtpPeer[] = [];
  after(async () => {
    await Promise.all(peers.map((peer) => peer.close()));
  });

  it('refuses a partner server presenting a revoked certificate before MAIL FROM, retrying later', async () => {
    const peer = await startSmtpPeer({ certificate: revokedMail });
    peers.push(peer);
    const base = generationWith(crlPem).config;
    const generation = buildGeneration(
      {
        ...base,
        sendConnectors: [sendConnector('to-partners', { addressSpaces: ['adatum.com'] })],
        organization: {
          ...base.organization,
          spec: {
            ...base.organization.spec,
            resolver: {
              servers: [],
              static: { 'adatum.com': [{ host: peer.host, port: peer.port }] },
            },
          },
        },
      },
      1,
    );
    const deliver = createRemoteDelivery({
      log: memoryLog(),
      timeouts: { connectMs: 3_000, greetingMs: 3_000, socketMs: 5_000 },
    });
    const body = Buffer.from(BODY);
    const message: OutboundMessage = {
      id: 'R1.1',
      from: 'alice@treyresearch.net',
      recipients: ['bob@adatum.com'],
      size: body.length,
      receivedAt: new Date(),
      body: () => Promise.resolve(body),
    };
    const [outcome] = await deliver(
      requireDomainName('adatum.com'),
      [message],
      generation,
      new AbortController().signal,
    );
    assert.equal(outcome?.failures[0]?.permanent, false);
    assert.match(
      replyText(outcome?.failures[0]?.reply),
      /454 4\.7\.5 Certificate validation failure: certificate is revoked by the CRL of/,
    );
    assert.deepEqual(peer.mailCommands, []);
  });
});
