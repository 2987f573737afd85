// plan on a new object shows what the manifest sets, counts the defaults on one line (listed with
// --show-defaults) and writes nested values as indented blocks; the Plan marks the defaults.
// Another spelling of the same canonical domain is no change at all.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { domsec } from '../support/cli.js';
import { TREY, partnerManifest } from '../support/manifests.js';
import { startCliLab, type CliLab } from '../support/cli-lab.js';

/** The lines of one object's block in a text plan, its header line excluded. */
function block(plan: string, address: string): string[] {
  const lines = plan.split('\n');
  const start = lines.findIndex((line) => line.endsWith(` + ${address}`));
  assert.ok(start >= 0, `${address} in\n${plan}`);
  const rest = lines.slice(start + 1);
  const end = rest.findIndex((line) => !line.startsWith('      '));
  return rest.slice(0, end);
}

describe('plan on create', () => {
  let lab: CliLab;
  let manifests: string;
  let env: Record<string, string>;

  before(async () => {
    lab = await startCliLab();
    ({ manifests, env } = lab);
  });

  after(() => lab.stop());

  it('shows the fields the manifest sets and one counted line of defaults', async () => {
    const result = await domsec(['plan', '-f', manifests], env);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(block(result.stdout, 'ReceiveConnector/from-partners'), [
      '      bindings: [127.0.0.1:0]',
      '      domainSecure: true',
      '      requireTls: true',
      // authMechanisms: [tls] is written, but it is the default: counted, as the engine runs it.
      '      + 13 defaults',
    ]);
    assert.deepEqual(block(result.stdout, 'PartnerDomain/treyresearch').slice(0, 4), [
      '      domain: treyresearch.net',
      '      domainSecure:',
      '        send: true',
      '        receive: true',
    ]);
    assert.doesNotMatch(result.stdout, /[{[]"/, 'no inline JSON');
  });

  it('--show-defaults lists the defaults, each marked', async () => {
    const result = await domsec(['plan', '-f', manifests, '--show-defaults'], env);
    assert.equal(result.code, 0, result.stderr);
    const lines = block(result.stdout, 'ReceiveConnector/from-partners');
    assert.equal(lines.length, 3 + 13);
    assert.ok(lines.includes('      maxInboundConnection: 5000  # default'), lines.join('\n'));
    assert.ok(lines.includes('      remoteIPRanges: [0.0.0.0/0, ::/0]  # default'));
    assert.doesNotMatch(result.stdout, /\+ \d+ defaults?$/m);
  });

  it('the JSON plan carries which fields are defaults', async () => {
    const result = await domsec(['plan', '-f', manifests, '-o', 'json'], env);
    assert.equal(result.code, 0, result.stderr);
    const plan = JSON.parse(result.stdout) as {
      changes: { kind: string; name: string; defaults?: string[] }[];
    };
    const connector = plan.changes.find((c) => c.name === 'from-partners');
    assert.equal(connector?.defaults?.length, 13);
    assert.ok(connector.defaults.includes('maxInboundConnection'));
    assert.ok(!connector.defaults.includes('bindings'));
  });

  it('apply shows the same plan, with --show-defaults too', async () => {
    const result = await domsec(
      ['apply', '-f', manifests, '--auto-approve', '--approve-weakening', '--show-defaults'],
      env,
    );
    assert.equal(result.code, 0, result.stderr);
    const lines = block(result.stdout, 'ReceiveConnector/from-partners');
    assert.ok(lines.includes('      maxInboundConnection: 5000  # default'), lines.join('\n'));
    assert.match(result.stdout, /Apply complete/);
  });

  it('another spelling of the same domain (U-label, A-label, case, trailing dot) is "No changes"', async () => {
    const buecher = { name: 'buecher', hostname: 'mail.xn--bcher-kva.example', domain: '' };
    const write = (spelled: { trey: string; buecher: string }) =>
      Promise.all([
        writeFile(
          join(manifests, 'partners', 'treyresearch.yaml'),
          partnerManifest({ ...TREY, domain: spelled.trey }, 'root'),
        ),
        writeFile(
          join(manifests, 'partners', 'buecher.yaml'),
          partnerManifest({ ...buecher, domain: spelled.buecher }, 'system', false),
        ),
      ]);
    await write({ trey: 'treyresearch.net', buecher: 'xn--bcher-kva.example' });
    const applied = await domsec(
      ['apply', '-f', manifests, '--auto-approve', '--approve-weakening'],
      env,
    );
    assert.equal(applied.code, 0, applied.stderr);
    for (const spelled of [
      { trey: 'TreyResearch.NET', buecher: 'bücher.example' },
      { trey: 'treyresearch.net.', buecher: 'XN--BCHER-KVA.EXAMPLE.' },
      { trey: 'TREYRESEARCH.NET.', buecher: 'BÜCHER.Example' },
    ]) {
      await write(spelled);
      const result = await domsec(['plan', '-f', manifests, '--detailed-exitcode'], env);
      assert.equal(result.code, 0, `${JSON.stringify(spelled)}\n${result.stdout}${result.stderr}`);
      assert.equal(result.stdout, 'No changes. The engine matches the manifests.\n');
    }
  });
});
