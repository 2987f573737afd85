// The engine counts its sessions for TLS reporting: a message to a domain-secure partner through
// a running engine, and at close the day's results are on disk in the state directory.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { requireDomainName } from '../../../src/domain-name.js';
import { readDomainDay, utcDay } from '../../../src/engine/tlsrpt/results.js';
import { eventually, startEngine } from '../../support/engine.js';
import { lab } from '../../support/lab.js';
import { internalConnector, runtimeConfig, sendConnector } from '../../support/runtime-config.js';
import { submit } from '../../support/smtp-submit.js';
import { startSmtpPeer, type SmtpPeer } from '../../support/smtp-peer.js';
import { tempDir, type TempDir } from '../../support/tmp.js';

const INTERNAL = '127.0.0.1:0';

describe('TLS reporting in the engine', () => {
  let state: TempDir;
  let partner: SmtpPeer;
  before(async () => {
    state = await tempDir('domsec-tlsrpt-engine-');
    partner = await startSmtpPeer({ certificate: lab().adatumMail });
  });
  after(async () => {
    await partner.close();
    await state.remove();
  });

  it("counts a partner's verified session and writes the day's results at close", async () => {
    const running = await startEngine(join(state.path, 'engine'));
    let stopped = false;
    try {
      await running.client.apply(
        runtimeConfig({
          organization: {
            resolver: {
              servers: [],
              static: { 'adatum.com': [{ host: partner.host, port: partner.port }] },
            },
          },
          sendConnectors: [sendConnector('to-partners', { addressSpaces: ['adatum.com'] })],
          receiveConnectors: [internalConnector(INTERNAL)],
        }),
      );
      const address = running.engine.listenerAddress(INTERNAL);
      assert.ok(address !== null);
      const outcome = await submit(
        address.port,
        { from: 'alice@treyresearch.net', to: ['bob@adatum.com'] },
        { plaintext: true, name: 'workstation.treyresearch.net', serverCa: lab().treyRoot.certPem },
        'Subject: counted\r\n\r\nhello\r\n',
      );
      assert.equal(outcome.code, 250, outcome.response);
      await eventually('delivered to the partner', () => partner.messages.length === 1);
      await running.stop();
      stopped = true;
      const day = await readDomainDay(
        join(state.path, 'engine'),
        utcDay(new Date()),
        requireDomainName('adatum.com'),
      );
      assert.deepEqual(
        day?.policies.map((p) => [p.policyType, p.success, p.failure]),
        [['no-policy-found', 1, 0]],
      );
    } finally {
      if (!stopped) await running.stop();
    }
  });
});
