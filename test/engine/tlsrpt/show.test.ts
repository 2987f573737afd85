// domsec tlsrpt show, run as the command line runs it: a day's results per policy domain from the
// state directory, text and JSON, one domain or all, --date, and the report's outcome.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { requireDomainName } from '../../../src/domain-name.js';
import { TlsResults } from '../../../src/engine/tlsrpt/results.js';
import { tempDir, type TempDir } from '../../support/tmp.js';

const MAIN = fileURLToPath(new URL('../../../src/cli/main.ts', import.meta.url));

function domsec(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], {
      env: { ...process.env, NO_COLOR: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 30_000,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

describe('domsec tlsrpt show', () => {
  let state: TempDir;
  const today = new Date().toISOString().slice(0, 10);
  before(async () => {
    state = await tempDir('domsec-tlsrpt-show-');
    const results = new TlsResults(state.path, () => new Date());
    const older = new TlsResults(state.path, () => new Date('2026-01-02T03:04:05Z'));
    const sts = {
      policyType: 'sts' as const,
      policyStrings: ['mode: enforce'],
      mxHost: ['mx.sts.example'],
    };
    await results.record({
      policyDomain: requireDomainName('sts.example'),
      ...sts,
      result: 'success',
    });
    await results.record({
      policyDomain: requireDomainName('sts.example'),
      ...sts,
      result: 'certificate-host-mismatch',
      receivingMxHostname: 'mx.sts.example',
      receivingIp: '192.0.2.7',
      sendingMtaIp: '192.0.2.1',
    });
    await results.record({
      policyDomain: requireDomainName('partner.example'),
      policyType: 'no-policy-found',
      policyStrings: [],
      mxHost: [],
      result: 'success',
    });
    await older.record({
      policyDomain: requireDomainName('old.example'),
      ...sts,
      result: 'success',
    });
    await results.flush();
    await older.flush();
  });
  after(() => state.remove());

  it("prints today's results of every domain, or one, as text and as JSON", async () => {
    const all = await domsec(['tlsrpt', 'show', '--state', state.path]);
    assert.equal(all.code, 0, all.stderr);
    assert.match(all.stdout, new RegExp(`^partner\\.example on ${today}: not reported yet$`, 'm'));
    assert.match(
      all.stdout,
      /^sts\.example on .*\n {2}policy sts: 1 successful, 1 failed\n {4}certificate-host-mismatch x1: mx mx\.sts\.example ip 192\.0\.2\.7 from 192\.0\.2\.1$/m,
    );
    assert.doesNotMatch(all.stdout, /old\.example/);

    const one = await domsec([
      'tlsrpt',
      'show',
      'STS.Example.',
      '--state',
      state.path,
      '-o',
      'json',
    ]);
    assert.equal(one.code, 0, one.stderr);
    const parsed = JSON.parse(one.stdout) as {
      formatVersion: number;
      day: string;
      domains: { results: { domain: string; policies: { success: number; failure: number }[] } }[];
    };
    assert.equal(parsed.formatVersion, 1);
    assert.equal(parsed.day, today);
    assert.deepEqual(
      parsed.domains.map((d) => [d.results.domain, d.results.policies[0]?.failure]),
      [['sts.example', 1]],
    );
  });

  it('--date reads another day; a bad date or domain is refused', async () => {
    const old = await domsec(['tlsrpt', 'show', '--state', state.path, '--date', '2026-01-02']);
    assert.equal(old.code, 0, old.stderr);
    assert.match(old.stdout, /^old\.example on 2026-01-02/m);
    const none = await domsec(['tlsrpt', 'show', 'nobody.example', '--state', state.path]);
    assert.match(none.stdout, /No TLS results on .* for nobody\.example/);
    const badDate = await domsec(['tlsrpt', 'show', '--state', state.path, '--date', '../../etc']);
    assert.equal(badDate.code, 1);
    assert.match(badDate.stderr, /not a day/);
    const badDomain = await domsec(['tlsrpt', 'show', '../x', '--state', state.path]);
    assert.equal(badDomain.code, 1);
    assert.match(badDomain.stderr, /not a domain name/);
  });
});
