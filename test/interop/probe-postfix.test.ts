// domsec probe against a real Postfix that requires and verifies client certificates
// (smtpd_tls_req_ccert) and does not trust ours: probe quotes Postfix's own 421 4.7.1.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { domsec } from '../support/cli.js';
import { ADATUM, TREY, writeLab, writeManifests } from '../support/manifests.js';
import { postfixInstalled, startPostfix, type Postfix } from '../support/postfix.js';
import { tempDir } from '../support/tmp.js';

const installed = await postfixInstalled();

describe('domsec probe against Postfix refusing our certificate', { skip: !installed }, () => {
  let lab: Awaited<ReturnType<typeof tempDir>>;
  let postfix: Postfix;
  let trey: string;

  before(async () => {
    lab = await tempDir('domsec-probe-postfix-');
    await writeLab(lab.path);
    const pki = join(lab.path, ADATUM.name, 'pki');
    const read = (file: string) => readFile(join(pki, file), 'utf8');
    postfix = await startPostfix({
      hostname: ADATUM.hostname,
      mailboxDomains: [ADATUM.domain],
      certificate: {
        certPem: await read(`${ADATUM.hostname}.crt`),
        keyPem: await read(`${ADATUM.hostname}.key`),
      },
      // Only adatum's own root signs client certificates here: treyresearch's is not trusted.
      clientCa: await read('adatum-root.crt'),
      listeners: { mutual: { tls: 'mutual' } },
      lifetimeSeconds: 120,
    });
    trey = await writeManifests({
      root: lab.path,
      org: TREY,
      partner: ADATUM,
      partnerBinding: '127.0.0.1:0',
      internalBinding: '127.0.0.1:0',
      adminListen: '127.0.0.1:1',
      partnerRoute: { host: '127.0.0.1', port: postfix.ports.mutual ?? 0 },
      trust: 'root',
    });
  });

  after(async () => {
    await postfix.stop();
    await lab.remove();
  });

  it('fails at "our certificate accepted" with Postfix’s own reply, not a dropped connection', async () => {
    const result = await domsec(['probe', 'adatum.com', '-f', trey, '--timeout', '10']);
    assert.equal(result.code, 1, result.stdout + result.stderr);
    assert.match(result.stdout, /\[pass\] partner certificate/);
    assert.match(
      result.stdout,
      /\[FAIL\] our certificate accepted: the partner answered EHLO after TLS with 421 4\.7\.1 .*not trusted/i,
    );
    assert.doesNotMatch(result.stdout, /4\.4\.2/);
  });
});
