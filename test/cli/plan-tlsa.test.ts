// plan against the running engine: a new key in the Organization certificate no longer matches
// the TLSA 3 1 1 record `dns records` printed for the running key, so the plan marks it as
// weakening and names the record to publish first (the one `dns records` prints for the new key);
// the gate then wants --approve-weakening. The Organization says it publishes the record
// (publishesTlsa); without it a new key is routine (test/reconcile/plan-tlsa.test.ts).
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createCertificateAuthority, issueCertificate } from '../../src/pki/lab.js';
import { domsec } from '../support/cli.js';
import { startCliLab, type CliLab } from '../support/cli-lab.js';
import { ADATUM } from '../support/manifests.js';

interface JsonPlan {
  changes: { kind: string; name: string; security: string; reasons: string[] }[];
  warnings: { code: string }[];
}

const tlsaData = async (manifests: string): Promise<string> => {
  const printed = await domsec(['dns', 'records', '-f', manifests, '-o', 'json']);
  assert.equal(printed.code, 0, printed.stderr);
  const records = JSON.parse(printed.stdout) as { tlsa: { data: string }[] };
  assert.equal(records.tlsa.length, 1);
  return records.tlsa[0]?.data ?? '';
};

describe('plan and our TLSA record', () => {
  let lab: CliLab;

  before(async () => {
    lab = await startCliLab();
    // We publish a TLSA record of our key: the plan then gates a new key.
    const organization = join(lab.manifests, 'organization.yaml');
    const text = await readFile(organization, 'utf8');
    await writeFile(
      organization,
      text.replace('  certificate: mail\n', '  certificate: mail\n  publishesTlsa: true\n'),
    );
    const applied = await domsec(
      ['apply', '-f', lab.manifests, '--auto-approve', '--approve-weakening'],
      lab.env,
    );
    assert.equal(applied.code, 0, applied.stderr);
  });

  after(() => lab.stop());

  it('a new key weakens: publish the next TLSA record first, the one dns records prints', async () => {
    const running = await tlsaData(lab.manifests);
    const unchanged = await domsec(['plan', '-f', lab.manifests, '-o', 'json'], lab.env);
    assert.deepEqual((JSON.parse(unchanged.stdout) as JsonPlan).changes, []);

    const ca = createCertificateAuthority({ commonName: 'Adatum next CA' });
    const next = issueCertificate(ca, {
      commonName: ADATUM.hostname,
      dnsNames: [ADATUM.hostname, ADATUM.domain],
    });
    const pki = join(lab.root.path, ADATUM.name, 'pki');
    await writeFile(join(pki, `${ADATUM.hostname}.crt`), next.certPem);
    await writeFile(join(pki, `${ADATUM.hostname}.key`), next.keyPem, { mode: 0o600 });
    const published = await tlsaData(lab.manifests);
    assert.notEqual(published, running);

    const json = await domsec(['plan', '-f', lab.manifests, '-o', 'json'], lab.env);
    const plan = JSON.parse(json.stdout) as JsonPlan;
    const certificate = plan.changes.find((c) => c.kind === 'Certificate' && c.name === 'mail');
    assert.equal(certificate?.security, 'weakens');
    assert.deepEqual(certificate.reasons, [
      `our key changes: the TLSA 3 1 1 record of the running key (${running}) no longer matches; publish the next TLSA record first: _25._tcp.${ADATUM.hostname}. IN TLSA 3 1 1 ${published}`,
    ]);
    assert.deepEqual(plan.warnings, []);

    const text = await domsec(['plan', '-f', lab.manifests], lab.env);
    assert.match(
      text.stdout,
      new RegExp(
        `Certificate/mail: .*publish the next TLSA record first: _25\\._tcp\\.mail\\.adatum\\.com\\. IN TLSA 3 1 1 ${published}`,
      ),
    );

    const refused = await domsec(['apply', '-f', lab.manifests, '--auto-approve'], lab.env);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr + refused.stdout, /publish the next TLSA record first/);
  });
});
