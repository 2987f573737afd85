// serve --watch on a pod's volumes exactly as the kubelet lays them out (kubelet-volume.ts): the
// shared manifests and the node's in two ConfigMaps, the certificate and key in a Secret, each a
// `..data` link swapped atomically on update. A new partner in the shared ConfigMap goes live (its
// domain security enforced on the wire), a rotated certificate and key in the Secret are what new
// sessions get (as `openssl s_client` sees it), a mismatched pair in the Secret or a broken
// manifest leaves the engine running what it ran but not ready, and /readyz follows each step. The built CLI, as the container runs it.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes, X509Certificate } from 'node:crypto';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { EngineState } from '../../src/model.js';
import {
  createCertificateAuthority,
  issueCertificate,
  type CertificateAuthority,
  type IssuedCertificate,
} from '../../src/pki/lab.js';
import { ControlClient } from '../../src/control/client.js';
import { RunningCli } from '../support/cli.js';
import { recordToken } from '../support/engine.js';
import { eventually } from '../support/eventually.js';
import { lab } from '../support/lab.js';
import { freePort } from '../support/ports.js';
import { submit } from '../support/smtp-submit.js';
import { tempDir, type TempDir } from '../support/tmp.js';
import { KubeletVolume } from './kubelet-volume.js';

// The node is treyresearch.net's (smtp-submit.ts checks the server as mail.treyresearch.net).
const HOSTNAME = 'mail.treyresearch.net';

function nodeManifest(admin: string, smtp: string): string {
  return `apiVersion: domsec.io/v1alpha1
kind: Organization
metadata: {name: treyresearch}
spec:
  hostname: ${HOSTNAME}
  acceptedDomains: [treyresearch.net]
  certificate: mail
  queue: {retry: [1m]}
  resolver:
    static:
      adatum.com: [{host: 127.0.0.1, port: 9}]
  admin: {listen: "${admin}"}
---
apiVersion: domsec.io/v1alpha1
kind: Certificate
metadata: {name: mail}
spec: {certFile: ../keys/tls.crt, keyFile: ../keys/tls.key}
---
apiVersion: domsec.io/v1alpha1
kind: SendConnector
metadata: {name: to-partners}
spec:
  addressSpaces: [adatum.com]
  routing: {dnsMx: {}}
  domainSecure: true
---
apiVersion: domsec.io/v1alpha1
kind: ReceiveConnector
metadata: {name: from-partners}
spec:
  bindings: ["${smtp}"]
  authMechanisms: [tls]
  domainSecure: true
`;
}

function partnerManifest(name: string, domain: string): string {
  return `apiVersion: domsec.io/v1alpha1
kind: PartnerDomain
metadata: {name: ${name}}
spec:
  domain: ${domain}
  domainSecure: {send: false, receive: true}
  trustAnchors: [${name}-root]
  remoteIPRanges: [127.0.0.0/8]
---
apiVersion: domsec.io/v1alpha1
kind: TrustAnchor
metadata: {name: ${name}-root}
spec: {pemFile: ${name}-root.crt}
`;
}

/** The certificate a new STARTTLS session gets, as `openssl s_client` shows it: its SHA-256. */
function presented(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      'openssl',
      ['s_client', '-connect', `127.0.0.1:${port}`, '-starttls', 'smtp', '-servername', HOSTNAME],
      { stdio: ['pipe', 'pipe', 'pipe'], timeout: 15_000 },
    );
    let stdout = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stdin.end('QUIT\r\n');
    child.once('error', reject);
    child.once('close', () => {
      const pem = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(stdout)?.[0];
      if (pem === undefined)
        reject(new Error(`openssl s_client showed no certificate:\n${stdout}`));
      else resolve(new X509Certificate(pem).fingerprint256);
    });
  });
}

describe("serve --watch on the kubelet's volumes", () => {
  let dir: TempDir;
  let serve: RunningCli;
  let client: ControlClient;
  let admin: string;
  let smtpPort: number;
  let shared: KubeletVolume;
  let node: KubeletVolume;
  let keys: KubeletVolume;
  let contosoRoot: CertificateAuthority;
  const story = lab();
  const sharedFiles: Record<string, string> = {
    'adatum.yaml': partnerManifest('adatum', 'adatum.com'),
    'adatum-root.crt': story.adatumRoot.certPem,
  };

  const fingerprint = (issued: IssuedCertificate) =>
    new X509Certificate(issued.certPem).fingerprint256;

  async function readyz(): Promise<number> {
    const answer = await fetch(`http://${admin}/readyz`, { signal: AbortSignal.timeout(5_000) });
    await answer.text();
    return answer.status;
  }

  /** Waits (bounded) for the engine to run a state the probe accepts. */
  function until(what: string, probe: (state: EngineState) => boolean): Promise<EngineState> {
    return eventually(
      what,
      async () => {
        const state = await client.state();
        return probe(state) ? state : undefined;
      },
      { timeoutMs: 20_000, explain: () => `${serve.stdout}\n${serve.stderr.slice(-3000)}` },
    );
  }

  /** Waits for /readyz to answer this status. */
  function readyzSays(status: number): Promise<number> {
    return eventually(`/readyz ${status}`, readyz, {
      until: (code) => code === status,
      timeoutMs: 20_000,
      explain: () => serve.stdout,
    });
  }

  /** A message from contoso.com over STARTTLS, with or without contoso's client certificate. */
  function fromContoso(certificate?: IssuedCertificate) {
    return submit(
      smtpPort,
      { from: 'carol@contoso.com', to: ['bob@treyresearch.net'] },
      {
        serverCa: story.treyRoot.certPem,
        name: 'mail.contoso.com',
        ...(certificate === undefined ? {} : { certificate }),
      },
      'Subject: hello\r\n\r\nhello\r\n',
    );
  }

  before(async () => {
    dir = await tempDir('domsec-kubelet-');
    admin = `127.0.0.1:${await freePort()}`;
    smtpPort = await freePort();
    const etc = join(dir.path, 'etc', 'domsec');
    shared = await KubeletVolume.create(join(etc, 'shared'), sharedFiles);
    node = await KubeletVolume.create(join(etc, 'node'), {
      'node.yaml': nodeManifest(admin, `127.0.0.1:${smtpPort}`),
    });
    keys = await KubeletVolume.create(
      join(etc, 'keys'),
      { 'tls.crt': story.treyMail.certPem, 'tls.key': story.treyMail.keyPem },
      0o440,
    );
    contosoRoot = createCertificateAuthority({ commonName: 'Contoso Root CA', pathLength: 0 });
    const token = randomBytes(24).toString('base64url');
    recordToken(token);
    client = new ControlClient(`http://${admin}`, token);
    serve = new RunningCli(
      [
        'serve',
        '--watch',
        '--settle',
        '300ms',
        '-f',
        join(etc, 'shared'),
        '-f',
        join(etc, 'node'),
        '--state',
        join(dir.path, 'state'),
        '--log-format',
        'json',
      ],
      { DOMSEC_TOKEN: token },
    );
    await serve.waitForOutput(/domsec engine ready: generation 1/, 20_000);
  });
  after(async () => {
    const code = await serve?.stop();
    await dir?.remove();
    assert.equal(code, 0, `serve exited ${code}:\n${serve.stderr.slice(-2000)}`);
  });

  it('is ready on the manifests it started from, presenting the Secret certificate', async () => {
    assert.equal(await readyzSays(200), 200);
    assert.equal(await presented(smtpPort), fingerprint(story.treyMail));
    // Not a partner yet: mail from contoso.com needs no certificate.
    const before = await fromContoso();
    assert.equal(before.code, 250, before.response);
  });

  it('takes a new partner from a swapped ConfigMap version and enforces it on the wire', async () => {
    const previous = await shared.current();
    await shared.update({
      ...sharedFiles,
      'contoso.yaml': partnerManifest('contoso', 'contoso.com'),
      'contoso-root.crt': contosoRoot.certPem,
    });
    assert.notEqual(await shared.current(), previous);
    const state = await until('PartnerDomain/contoso', (s) =>
      s.objects.some((o) => o.kind === 'PartnerDomain' && o.name === 'contoso'),
    );
    assert.equal(state.generation, 2);
    assert.equal(await readyzSays(200), 200);
    const refused = await fromContoso();
    assert.match(
      `${refused.code}`,
      /^4/,
      `now a partner, contoso needs its certificate: ${refused.response}`,
    );
    const issued = issueCertificate(contosoRoot, {
      commonName: 'mail.contoso.com',
      dnsNames: ['mail.contoso.com', 'contoso.com'],
    });
    const accepted = await fromContoso(issued);
    assert.equal(accepted.code, 250, accepted.response);
  });

  it('gives new sessions the certificate and key rotated through the Secret, each time', async () => {
    let last = story.treyMail;
    // Twice: after the first swap the files the watch followed lead into a removed directory.
    for (let rotation = 1; rotation <= 2; rotation++) {
      const renewed = issueCertificate(story.treyRoot, {
        commonName: HOSTNAME,
        dnsNames: [HOSTNAME, 'treyresearch.net'],
      });
      assert.notEqual(fingerprint(renewed), fingerprint(last));
      const generation = (await client.state()).generation;
      await keys.update({ 'tls.crt': renewed.certPem, 'tls.key': renewed.keyPem });
      const state = await until(
        `rotation ${rotation}`,
        (s) =>
          s.objects.find((o) => o.kind === 'Certificate')?.spec.fingerprint ===
          fingerprint(renewed),
      );
      assert.equal(state.generation, generation + 1, 'one generation for the pair');
      assert.equal(await presented(smtpPort), fingerprint(renewed));
      assert.equal(await readyzSays(200), 200);
      last = renewed;
    }
  });

  it('keeps presenting the running certificate when the Secret gets a mismatched pair, 503 until it is fixed', async () => {
    const running = await presented(smtpPort);
    const generation = (await client.state()).generation;
    const one = issueCertificate(story.treyRoot, {
      commonName: HOSTNAME,
      dnsNames: [HOSTNAME, 'treyresearch.net'],
    });
    const other = issueCertificate(story.treyRoot, {
      commonName: HOSTNAME,
      dnsNames: [HOSTNAME, 'treyresearch.net'],
    });
    // A certificate with the key of another: refused whole, the running pair stays.
    await keys.update({ 'tls.crt': one.certPem, 'tls.key': other.keyPem });
    assert.equal(await readyzSays(503), 503);
    assert.equal((await client.status()).ready, false);
    assert.equal((await client.state()).generation, generation, 'nothing applied');
    assert.equal(await presented(smtpPort), running);
    await keys.update({ 'tls.crt': one.certPem, 'tls.key': one.keyPem });
    await until('the matching pair', (s) =>
      s.objects.some((o) => o.kind === 'Certificate' && o.spec.fingerprint === fingerprint(one)),
    );
    assert.equal(await readyzSays(200), 200);
    assert.equal(await presented(smtpPort), fingerprint(one));
  });

  it('answers /readyz 503 on a broken manifest, keeps serving, and 200 once it is fixed', async () => {
    const generation = (await client.state()).generation;
    const good = nodeManifest(admin, `127.0.0.1:${smtpPort}`);
    await node.update({
      'node.yaml': good.replace('domainSecure: true\n', 'domainSecure: maybe\n'),
    });
    assert.equal(await readyzSays(503), 503);
    const status = await client.status();
    assert.equal(status.ready, false);
    assert.equal(status.lastAttemptOutcome, 'invalid');
    assert.equal((await client.state()).generation, generation, 'nothing applied');
    const meanwhile = await fromContoso();
    assert.match(`${meanwhile.code}`, /^4/, 'the running generation still enforces contoso');
    await node.update({ 'node.yaml': good });
    assert.equal(await readyzSays(200), 200);
    assert.equal((await client.status()).ready, true);
  });
});
