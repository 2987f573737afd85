// The receive connector's TLS configuration, as a scanner sees it through STARTTLS: TLS 1.2 at
// least, forward-secret AEAD suites only (probed suite by suite), and testssl.sh (the Debian
// package) finding nothing of HIGH or CRITICAL severity in protocols, ciphers or vulnerabilities.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, getCiphers } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { parseBinding } from '../../src/engine/addresses.js';
import { buildGeneration } from '../../src/engine/generation.js';
import { memoryLog } from '../../src/engine/log.js';
import { ProtocolLog } from '../../src/engine/protocol-log.js';
import { ReceiveListener } from '../../src/engine/receive.js';
import { runtimeConfig } from '../support/runtime-config.js';
import { tempDir } from '../support/tmp.js';

/** The Debian package installs testssl; upstream names it testssl.sh. */
function findTestssl(): string | undefined {
  const dirs = (process.env.PATH ?? '').split(':').filter((dir) => dir !== '');
  for (const name of ['testssl', 'testssl.sh']) {
    for (const dir of dirs) if (existsSync(join(dir, name))) return join(dir, name);
  }
  return undefined;
}

type Version = 'TLSv1' | 'TLSv1.1' | 'TLSv1.2' | 'TLSv1.3';

/** A plain connection taken through EHLO and STARTTLS, ready for the TLS handshake. */
async function starttls(port: number): Promise<Socket> {
  const socket = netConnect({ host: '127.0.0.1', port });
  socket.on('error', () => undefined);
  let buffer = '';
  const reply = () =>
    new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no reply; read ${buffer}`)), 5_000);
      const onData = (chunk: Buffer) => {
        buffer += chunk.toString('latin1');
        const match = /^(?:\d{3}-[^\n]*\n)*\d{3} [^\n]*\n/.exec(buffer);
        if (match === null) return;
        buffer = buffer.slice(match[0].length);
        clearTimeout(timer);
        socket.off('data', onData);
        resolve(match[0]);
      };
      socket.on('data', onData);
    });
  await reply();
  socket.write('EHLO probe.example\r\n');
  await reply();
  socket.write('STARTTLS\r\n');
  assert.match(await reply(), /^220 /);
  return socket;
}

/** A handshake after STARTTLS offering exactly `cipher` (or OpenSSL's list) at `version`. */
async function handshake(
  port: number,
  version: Version,
  cipher?: string,
): Promise<{ ok: true; cipher: string; protocol: string } | { ok: false; error: string }> {
  const socket = await starttls(port);
  try {
    return await new Promise((resolve) => {
      const secure = tlsConnect({
        socket,
        servername: 'mail.treyresearch.net',
        rejectUnauthorized: false,
        minVersion: version,
        maxVersion: version,
        // SECLEVEL=0: the probe offers what OpenSSL's defaults would not even ask for.
        ciphers: `${cipher ?? 'ALL'}:@SECLEVEL=0`,
      });
      const timer = setTimeout(() => {
        secure.destroy();
        resolve({ ok: false, error: 'timeout' });
      }, 5_000);
      secure.once('secureConnect', () => {
        clearTimeout(timer);
        resolve({
          ok: true,
          cipher: secure.getCipher().name,
          protocol: secure.getProtocol() ?? '?',
        });
        secure.destroy();
      });
      secure.once('error', (error) => {
        clearTimeout(timer);
        resolve({ ok: false, error: error.message });
      });
    });
  } finally {
    socket.destroy();
  }
}

describe('TLS configuration of a receive connector', () => {
  let port: number;
  let listener: ReceiveListener;
  let protocolLog: ProtocolLog;
  let work: Awaited<ReturnType<typeof tempDir>>;

  before(async () => {
    work = await tempDir();
    const generation = buildGeneration(runtimeConfig(), 1);
    protocolLog = new ProtocolLog(null);
    listener = new ReceiveListener({
      binding: parseBinding('127.0.0.1:0'),
      generation: () => generation,
      sink: { accept: () => Promise.resolve(['Q1']) },
      log: memoryLog(),
      protocolLog,
      closeTimeout: 500,
    });
    await listener.listen();
    const bound = listener.address()?.port;
    assert.ok(bound !== undefined);
    port = bound;
  });
  after(async () => {
    await listener.close();
    await protocolLog.close();
    await work.remove();
  });

  it('refuses TLS 1.0 and 1.1 and negotiates TLS 1.3 by default', async () => {
    for (const version of ['TLSv1', 'TLSv1.1'] as const) {
      const result = await handshake(port, version);
      assert.equal(result.ok, false, `${version} was accepted`);
    }
    const modern = await handshake(port, 'TLSv1.3');
    assert.ok(modern.ok && modern.protocol === 'TLSv1.3', JSON.stringify(modern));
  });

  it('accepts in TLS 1.2 only suites with forward secrecy and authenticated encryption', async () => {
    const suites = getCiphers()
      .map((name) => name.toUpperCase())
      .filter((name) => !name.startsWith('TLS_'));
    const accepted: string[] = [];
    for (const suite of suites) {
      const result = await handshake(port, 'TLSv1.2', suite);
      if (result.ok) accepted.push(result.cipher);
    }
    assert.ok(accepted.includes('ECDHE-RSA-AES128-GCM-SHA256'), accepted.join(' '));
    const weak = accepted.filter(
      (name) => !/^(ECDHE|DHE)-.*-(GCM-SHA\d+|CHACHA20-POLY1305)$/.test(name),
    );
    assert.deepEqual(weak, [], `weak suites accepted: ${weak.join(' ')}`);
    console.log(
      `# TLS 1.2: ${suites.length} suites offered one by one, ${accepted.length} accepted: ${accepted.join(' ')}`,
    );
  });

  it(
    'passes testssl.sh through STARTTLS without a HIGH or CRITICAL finding',
    { timeout: 300_000 },
    async () => {
      const testssl = findTestssl();
      assert.ok(
        testssl !== undefined,
        'testssl is not installed: apt-get install testssl.sh (Debian)',
      );
      const jsonFile = join(work.path, 'testssl.json');
      const started = Date.now();
      // Protocols, cipher categories, forward secrecy, server preferences and vulnerabilities; the
      // certificate checks (-S) judge the lab PKI's names and revocation URLs, not the configuration.
      const args = [
        '--quiet',
        '--warnings',
        'batch',
        '--nodns',
        'none',
        '--color',
        '0',
        '--connect-timeout',
        '10',
        '--openssl-timeout',
        '10',
        '--starttls',
        'smtp',
        '-p',
        '-s',
        '-f',
        '-P',
        '-U',
        '--jsonfile',
        jsonFile,
        `127.0.0.1:${port}`,
      ];
      const output = await new Promise<string>((resolve) => {
        execFile(
          testssl,
          args,
          { timeout: 280_000, maxBuffer: 16 * 1024 * 1024 },
          (error, stdout, stderr) =>
            resolve(`${stdout}${stderr}${error === null ? '' : `\n(exit ${String(error.code)})`}`),
        );
      });
      const seconds = ((Date.now() - started) / 1000).toFixed(0);
      const findings = JSON.parse(await readFile(jsonFile, 'utf8')) as {
        id: string;
        severity: string;
        finding: string;
      }[];
      const bySeverity = new Map<string, number>();
      for (const f of findings) bySeverity.set(f.severity, (bySeverity.get(f.severity) ?? 0) + 1);
      const severe = findings.filter((f) => f.severity === 'HIGH' || f.severity === 'CRITICAL');
      assert.deepEqual(
        severe.map((f) => `${f.severity} ${f.id}: ${f.finding}`),
        [],
        output,
      );
      // It did test the connector through STARTTLS, not a refused connection.
      const find = (id: string) => findings.find((f) => f.id === id)?.finding ?? '(missing)';
      assert.match(find('TLS1'), /not offered/);
      assert.match(find('TLS1_1'), /not offered/);
      assert.match(find('TLS1_2'), /^offered/);
      assert.match(find('TLS1_3'), /^offered/);
      assert.match(find('heartbleed'), /not vulnerable/);
      // Modern suites only: neither CBC (LUCKY13) nor the "average" cipher list is flagged.
      const flagged = findings
        .filter((f) => ['LUCKY13', 'cipherlist_AVERAGE', 'cipherlist_3DES_IDEA'].includes(f.id))
        .filter((f) => f.severity !== 'OK' && f.severity !== 'INFO');
      assert.deepEqual(
        flagged.map((f) => `${f.id}: ${f.finding}`),
        [],
      );
      console.log(
        `# testssl: ${findings.length} findings in ${seconds} s: ${[...bySeverity].map(([s, n]) => `${s} ${n}`).join(', ')}`,
      );
    },
  );
});
