// domsec dns records prints the DKIM TXT record of the key that signs our mailed TLS reports
// (tlsReporting.dkim): at <selector>._domainkey.<domain>, with s=tlsrpt, the public half of the
// key file; the key itself never appears, and a key file that cannot be read fails the command
// naming the file only.
import assert from 'node:assert/strict';
import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { dnsRecordsCommand, type DnsRecords } from '../../src/cli/dns.js';
import type { Output } from '../../src/cli/output.js';
import { ADATUM, TREY, writeLab, writeManifests } from '../support/manifests.js';
import { tempDir, type TempDir } from '../support/tmp.js';

function capture(): Output & { text: () => string } {
  let stdout = '';
  return {
    stdout: (text) => (stdout += text),
    stderr: () => undefined,
    color: false,
    interactive: false,
    text: () => stdout,
  };
}

describe('dns records: the DKIM record of TLS reports', () => {
  let lab: TempDir;
  let dir: string;
  const key = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
  const pem = key.export({ format: 'pem', type: 'pkcs8' }).toString();

  before(async () => {
    lab = await tempDir('domsec-dkim-record-');
    await writeLab(lab.path);
    dir = await writeManifests({
      root: lab.path,
      org: ADATUM,
      partner: TREY,
      partnerBinding: '127.0.0.1:0',
      internalBinding: '127.0.0.1:0',
      adminListen: '127.0.0.1:0',
      partnerRoute: { host: '127.0.0.1', port: 9 },
      trust: 'root',
    });
    await writeFile(join(dir, 'pki', 'dkim.key'), pem, { mode: 0o600 });
  });
  after(() => lab.remove());

  const withReporting = async (reporting: string) => {
    const file = join(dir, 'organization.yaml');
    const original = await readFile(file, 'utf8');
    assert.ok(original.includes('  certificate: mail\n'));
    await writeFile(
      file,
      original.replace('  certificate: mail\n', `  certificate: mail\n${reporting}`),
    );
    return () => writeFile(file, original);
  };

  async function run(output: 'text' | 'json') {
    const out = capture();
    const code = await dnsRecordsCommand({ file: [dir], output }, out);
    assert.equal(code, 0);
    return out.text();
  }

  it('is absent without tlsReporting.dkim', async () => {
    assert.equal((JSON.parse(await run('json')) as DnsRecords).dkim, null);
    assert.doesNotMatch(await run('text'), /_domainkey/);
  });

  it('names the selector and the submitter domain, and holds the public half of the key file', async () => {
    const restore = await withReporting(
      '  tlsReporting: {dkim: {selector: tlsrpt2026, keyFile: pki/dkim.key}}\n',
    );
    try {
      const records = JSON.parse(await run('json')) as DnsRecords;
      assert.equal(records.dkim?.name, 'tlsrpt2026._domainkey.adatum.com.');
      const match = /^v=DKIM1; k=rsa; s=tlsrpt; p=([A-Za-z0-9+/]+=*)$/.exec(
        records.dkim?.text ?? '',
      );
      assert.ok(match, records.dkim?.text);
      const published = createPublicKey({
        key: Buffer.from(match[1] ?? '', 'base64'),
        format: 'der',
        type: 'spki',
      });
      assert.ok(published.equals(createPublicKey(key)));
      const text = await run('text');
      // A 2048-bit key's text is over 255 bytes: quoted strings a zone file can hold, joined back.
      const line = text
        .split('\n')
        .find((l) => l.startsWith('tlsrpt2026._domainkey.adatum.com. IN TXT '));
      assert.ok(line, text);
      const strings = [...line.matchAll(/"([^"]*)"/g)].map((m) => m[1] ?? '');
      assert.ok(strings.length >= 2);
      for (const part of strings) assert.ok(Buffer.byteLength(part) <= 255, part);
      assert.equal(strings.join(''), records.dkim?.text);
      const secret = pem.split('\n')[1] ?? 'unset';
      for (const shown of [text, JSON.stringify(records)]) {
        assert.doesNotMatch(shown, /PRIVATE KEY/);
        assert.ok(!shown.includes(secret));
      }
    } finally {
      await restore();
    }
  });

  it('uses the signing domain written, canonical', async () => {
    const restore = await withReporting(
      '  tlsReporting: {dkim: {selector: s1, domain: ADATUM.com., keyFile: pki/dkim.key}}\n',
    );
    try {
      const records = JSON.parse(await run('json')) as DnsRecords;
      assert.equal(records.dkim?.name, 's1._domainkey.adatum.com.');
    } finally {
      await restore();
    }
  });

  it('fails naming the key file, never its content, when it holds no usable key', async () => {
    await writeFile(join(dir, 'pki', 'bad.key'), 'not a key at all, secretsecret\n', {
      mode: 0o600,
    });
    const restore = await withReporting(
      '  tlsReporting: {dkim: {selector: s1, keyFile: pki/bad.key}}\n',
    );
    let stderr = '';
    const out = { ...capture(), stderr: (text: string) => (stderr += text) };
    try {
      await assert.rejects(
        dnsRecordsCommand({ file: [dir], output: 'text' }, out),
        (error: Error) => {
          assert.equal(error.name, 'CliError');
          assert.match(error.message, /error\(s\) in the manifests/);
          return true;
        },
      );
      assert.match(
        stderr,
        /DS016.*tlsReporting\.dkim\.keyFile pki\/bad\.key .*holds no PEM private key/,
      );
      assert.doesNotMatch(stderr, /secretsecret/);
    } finally {
      await restore();
    }
  });
});
