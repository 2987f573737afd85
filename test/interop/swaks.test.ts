// Interoperability with swaks, a client domsec did not write: STARTTLS with and without a client
// certificate against a real ReceiveListener. swaks is required (CI installs it); never skipped.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import { parseBinding } from '../../src/engine/addresses.js';
import { buildGeneration } from '../../src/engine/generation.js';
import { memoryLog } from '../../src/engine/log.js';
import type { IncomingMessage, MessageSink } from '../../src/engine/message-sink.js';
import { ProtocolLog } from '../../src/engine/protocol-log.js';
import { ReceiveListener } from '../../src/engine/receive.js';
import type { IssuedCertificate } from '../../src/pki/lab.js';
import { lab } from '../support/lab.js';
import { receiveConnector, runtimeConfig } from '../support/runtime-config.js';
import { tempDir } from '../support/tmp.js';

interface SwaksRun {
  code: number;
  transcript: string;
}

function swaks(args: string[]): Promise<SwaksRun> {
  return new Promise((resolve, reject) => {
    execFile('swaks', args, { timeout: 20_000 }, (error, stdout, stderr) => {
      const failure = error as (NodeJS.ErrnoException & { code?: unknown }) | null;
      if (failure?.code === 'ENOENT') {
        reject(
          new Error('swaks is not installed: apt-get install -y swaks (the interop tests need it)'),
        );
        return;
      }
      const code = failure === null ? 0 : typeof failure.code === 'number' ? failure.code : -1;
      resolve({ code, transcript: `${stdout}${stderr}` });
    });
  });
}

async function writeIdentity(dir: string, name: string, issued: IssuedCertificate) {
  const cert = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  await writeFile(cert, issued.certPem);
  await writeFile(key, issued.keyPem, { mode: 0o600 });
  return { cert, key };
}

interface Listening {
  port: number;
  messages: IncomingMessage[];
}

async function listen(t: TestContext, requireTls = true): Promise<Listening> {
  const messages: IncomingMessage[] = [];
  const sink: MessageSink = {
    accept: (message) => {
      messages.push(message);
      return Promise.resolve([`Q${messages.length}`]);
    },
  };
  const generation = buildGeneration(
    runtimeConfig({
      receiveConnectors: [
        receiveConnector('from-partners', { requireTls, domainSecure: requireTls }),
      ],
    }),
    1,
  );
  const protocolLog = new ProtocolLog(null);
  const listener = new ReceiveListener({
    binding: parseBinding('127.0.0.1:0'),
    generation: () => generation,
    sink,
    log: memoryLog(),
    protocolLog,
    closeTimeout: 500,
  });
  await listener.listen();
  t.after(async () => {
    await listener.close();
    await protocolLog.close();
  });
  const port = listener.address()?.port;
  assert.ok(port !== undefined);
  return { port, messages };
}

let dir = '';
let adatum: { cert: string; key: string };
let stranger: { cert: string; key: string };
let treyRoot = '';

let removeDir: () => Promise<void> = () => Promise.resolve();
before(async () => {
  const temp = await tempDir('swaks');
  removeDir = temp.remove;
  dir = temp.path;
  adatum = await writeIdentity(dir, 'adatum', lab().adatumMail);
  stranger = await writeIdentity(dir, 'stranger', lab().strangerAdatum);
  treyRoot = join(dir, 'trey-root.crt');
  await writeFile(treyRoot, lab().treyRoot.certPem);
});

after(() => removeDir());

function base(port: number, from: string): string[] {
  return [
    '--server',
    '127.0.0.1',
    '--port',
    String(port),
    '--ehlo',
    'mail.adatum.com',
    '--from',
    from,
    '--to',
    'user@treyresearch.net',
    '--header',
    'Subject: from swaks',
    '--header',
    'X-Domsec-AuthAs: Partner',
    '--body',
    'Sent by swaks.',
    '--timeout',
    '10',
  ];
}

describe('swaks as a client', () => {
  it('delivers domain-secured mail with adatum’s client certificate over STARTTLS, verifying our server', async (t) => {
    const { port, messages } = await listen(t);
    const run = await swaks([
      ...base(port, 'alice@adatum.com'),
      '--tls',
      '--tls-verify',
      '--tls-ca-path',
      treyRoot,
      '--tls-cert',
      adatum.cert,
      '--tls-key',
      adatum.key,
    ]);
    assert.equal(run.code, 0, run.transcript);
    assert.match(run.transcript, /<~\s+250 2\.6\.0 Ok: queued as Q1/);
    assert.equal(messages.length, 1);
    assert.equal(messages[0]?.domainSecured?.partner, 'adatum.com');
    const header = messages[0]?.body.toString().split('\r\n\r\n')[0] ?? '';
    assert.match(header, /^X-Domsec-AuthAs: Partner\r\nX-Domsec-Partner: adatum\.com\r\n/);
    assert.equal(header.match(/X-Domsec-AuthAs/g)?.length, 1, 'the forged field is gone');
  });

  it('is refused with 454 4.7.5 at MAIL FROM for a partner without a client certificate', async (t) => {
    const { port, messages } = await listen(t);
    const run = await swaks([...base(port, 'alice@adatum.com'), '--tls']);
    assert.notEqual(run.code, 0);
    assert.match(run.transcript, /<~\*\s+454 4\.7\.5 Certificate validation failure/);
    assert.equal(messages.length, 0);
  });

  it('is refused with 454 4.7.5 for a partner certificate from an untrusted CA', async (t) => {
    const { port, messages } = await listen(t);
    const run = await swaks([
      ...base(port, 'alice@adatum.com'),
      '--tls',
      '--tls-cert',
      stranger.cert,
      '--tls-key',
      stranger.key,
    ]);
    assert.match(run.transcript, /454 4\.7\.5 Certificate validation failure/);
    assert.equal(messages.length, 0);
  });

  it('delivers a non-partner’s mail over TLS without a certificate, marked x-domsec=none', async (t) => {
    const { port, messages } = await listen(t);
    const run = await swaks([...base(port, 'someone@fabrikam.com'), '--tls']);
    assert.equal(run.code, 0, run.transcript);
    const header = messages[0]?.body.toString().split('\r\n\r\n')[0] ?? '';
    assert.match(header, /x-domsec=none/);
    assert.doesNotMatch(header, /X-Domsec-AuthAs/);
  });

  it('is told 530 5.7.0 when a partner speaks plaintext', async (t) => {
    const { port, messages } = await listen(t, false);
    const run = await swaks(base(port, 'alice@adatum.com'));
    assert.match(run.transcript, /530 5\.7\.0 Must issue a STARTTLS command first/);
    assert.equal(messages.length, 0);
  });
});
