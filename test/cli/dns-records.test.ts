// domsec dns records from real manifests: the TLSA 3 1 1 record is our certificate's key (our own
// DANE matcher accepts our certificate by it), each accepted domain gets the `_mta-sts` TXT record
// whose id is the policy's, and the policy file printed parses back to the declared policy.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { dnsRecordsCommand, type DnsRecords } from '../../src/cli/dns.js';
import type { Output } from '../../src/cli/output.js';
import { parseStsPolicy, parseStsRecord } from '../../src/engine/policy/mta-sts-policy.js';
import { matchChain } from '../../src/engine/policy/tlsa.js';
import { formatStsPolicy, stsPolicyId } from '../../src/published-records.js';
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

describe('dns records', () => {
  let lab: TempDir;
  let dir: string;

  before(async () => {
    lab = await tempDir('domsec-dns-records-');
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
  });
  after(() => lab.remove());

  async function run(output: 'text' | 'json') {
    const out = capture();
    const code = await dnsRecordsCommand({ file: [dir], output }, out);
    assert.equal(code, 0);
    return out.text();
  }

  it('prints the TLSA 3 1 1 record of our key at _25._tcp.<hostname>, which matches our certificate', async () => {
    const records = JSON.parse(await run('json')) as DnsRecords;
    const [tlsa] = records.tlsa;
    assert.equal(tlsa?.name, '_25._tcp.mail.adatum.com.');
    const cert = new X509Certificate(
      await readFile(join(dir, 'pki', 'mail.adatum.com.crt'), 'utf8'),
    );
    const verdict = matchChain({
      records: [
        { usage: 3, selector: 1, matchingType: 1, data: Buffer.from(tlsa?.data ?? '', 'hex') },
      ],
      chain: [cert],
      names: [],
    });
    assert.equal(verdict.ok, true);
    assert.equal(records.mtaSts, null);
    assert.match(await run('text'), /^_25\._tcp\.mail\.adatum\.com\. IN TLSA 3 1 1 [0-9a-f]{64}$/m);
  });

  it('prints the _mta-sts TXT record with the id of the policy it prints, when the Organization declares one', async () => {
    const file = join(dir, 'organization.yaml');
    const original = await readFile(file, 'utf8');
    await writeFile(
      file,
      original.replace('  certificate: mail\n', '  certificate: mail\n  mtaSts: {mode: enforce}\n'),
    );
    try {
      const records = JSON.parse(await run('json')) as DnsRecords;
      assert.ok(records.mtaSts);
      const policy = parseStsPolicy(records.mtaSts.policy);
      assert.deepEqual(policy, {
        ok: true,
        value: { mode: 'enforce', mx: ['mail.adatum.com'], maxAge: 604800 },
      });
      assert.deepEqual(records.mtaSts.records, [
        { name: '_mta-sts.adatum.com.', text: `v=STSv1; id=${records.mtaSts.id}` },
      ]);
      assert.deepEqual(parseStsRecord([records.mtaSts.records[0]?.text ?? '']), {
        ok: true,
        value: { id: records.mtaSts.id },
      });
      assert.equal(records.mtaSts.id, stsPolicyId(records.mtaSts.policy));
      const text = await run('text');
      assert.match(text, /^_mta-sts\.adatum\.com\. IN TXT "v=STSv1; id=[0-9a-f]{32}"$/m);
      assert.match(text, /^; {3}https:\/\/mta-sts\.adatum\.com\/\.well-known\/mta-sts\.txt$/m);
    } finally {
      await writeFile(file, original);
    }
  });

  it('formats any policy so that it parses back the same, and the id changes with it (property)', () => {
    const label = fc
      .stringMatching(/^[a-z][a-z0-9-]{0,8}[a-z0-9]$/)
      // "--" in the third and fourth places is IDNA's (xn--...): such labels are not plain names.
      .filter((text) => !text.includes('--'));
    const pattern = fc
      .tuple(fc.boolean(), fc.array(label, { minLength: 2, maxLength: 3 }))
      .map(([wild, parts]) => `${wild ? '*.' : ''}${parts.join('.')}`);
    const policy = fc.record({
      mode: fc.constantFrom('enforce' as const, 'testing' as const, 'none' as const),
      mx: fc.uniqueArray(pattern, { minLength: 1, maxLength: 4 }),
      maxAge: fc.integer({ min: 86400, max: 31557600 }),
    });
    fc.assert(
      fc.property(policy, policy, (a, b) => {
        assert.deepEqual(parseStsPolicy(formatStsPolicy(a)), { ok: true, value: { ...a } });
        const same = JSON.stringify(a) === JSON.stringify(b);
        assert.equal(stsPolicyId(formatStsPolicy(a)) === stsPolicyId(formatStsPolicy(b)), same);
      }),
      { numRuns: 300 },
    );
  });
});
