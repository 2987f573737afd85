// domsec probe run as a user runs it, against a real partner that refuses our certificate once
// TLS is up: the checklist quotes the partner's own reply and the command it answered.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { domsec } from '../support/cli.js';
import { ADATUM, TREY, writeLab, writeManifests } from '../support/manifests.js';
import { startSmtpPeer, type SmtpPeer } from '../support/smtp-peer.js';
import { tempDir } from '../support/tmp.js';

describe('domsec probe shows the partner’s answer', () => {
  let lab: Awaited<ReturnType<typeof tempDir>>;
  let peer: SmtpPeer;
  let trey: string;

  before(async () => {
    lab = await tempDir('domsec-probe-answer-');
    await writeLab(lab.path);
    const pki = join(lab.path, ADATUM.name, 'pki');
    peer = await startSmtpPeer({
      certificate: {
        certPem: await readFile(join(pki, `${ADATUM.hostname}.crt`), 'utf8'),
        keyPem: await readFile(join(pki, `${ADATUM.hostname}.key`), 'utf8'),
      },
      // What Exchange answers a partner whose certificate it does not trust.
      secure: { code: 421, message: '4.7.1 Client certificate not trusted' },
    });
    trey = await writeManifests({
      root: lab.path,
      org: TREY,
      partner: ADATUM,
      partnerBinding: '127.0.0.1:0',
      internalBinding: '127.0.0.1:0',
      adminListen: '127.0.0.1:1',
      partnerRoute: { host: peer.host, port: peer.port },
      trust: 'root',
    });
  });

  after(async () => {
    await peer.close();
    await lab.remove();
  });

  it('quotes the partner’s 421 4.7.1 at "our certificate accepted", not a dropped connection', async () => {
    const result = await domsec(['probe', 'adatum.com', '-f', trey, '--timeout', '5']);
    assert.equal(result.code, 1, result.stdout + result.stderr);
    assert.match(result.stdout, /\[pass\] partner certificate/);
    assert.match(
      result.stdout,
      /\[FAIL\] our certificate accepted: the partner answered EHLO after TLS with 421 4\.7\.1 Client certificate not trusted\n/,
    );
    assert.doesNotMatch(result.stdout, /4\.4\.2|Connection dropped/);
    assert.equal(peer.clientCertificates.length, 1, 'the peer saw our certificate');
  });

  it('-o json carries the reply and the command it answered', async () => {
    const result = await domsec(['probe', 'adatum.com', '-f', trey, '-o', 'json']);
    assert.equal(result.code, 1, result.stderr);
    const report = JSON.parse(result.stdout) as {
      formatVersion: number;
      steps: { step: string; ok: boolean; reply?: string; answered?: string }[];
    };
    assert.equal(report.formatVersion, 1);
    const failed = report.steps.filter((s) => !s.ok);
    assert.deepEqual(
      failed.map(({ step, reply, answered }) => ({ step, reply, answered })),
      [
        {
          step: 'our certificate accepted',
          reply: '421 4.7.1 Client certificate not trusted',
          answered: 'EHLO',
        },
      ],
    );
  });

  for (const timeout of ['abc', '0', '-1', '1e9', 'Infinity', '5s']) {
    it(`refuses --timeout ${timeout} in one line, before any network step`, async () => {
      const result = await domsec(['probe', 'adatum.com', '-f', trey, '--timeout', timeout]);
      assert.equal(result.code, 1);
      assert.equal(result.stdout, '');
      assert.equal(
        result.stderr,
        `domsec: --timeout ${timeout} is not a number of seconds from 0.1 to 600\n`,
      );
    });
  }
});
