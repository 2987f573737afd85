// domsec queue suspend / resume as an operator types them against a real engine and a real
// partner: the hold shows in `queue list`, `queue retry` says the queue is suspended instead of
// delivering, resume delivers at once, and a missing or wrong token is refused.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { register as registerQueue } from '../../src/cli/queue.js';
import { domsecInProcess } from '../support/cli.js';
import { eventually, startEngine, type RunningEngine } from '../support/engine.js';
import { lab } from '../support/lab.js';
import { internalConnector, runtimeConfig, sendConnector } from '../support/runtime-config.js';
import { startSmtpPeer, type SmtpPeer } from '../support/smtp-peer.js';
import { submit } from '../support/smtp-submit.js';
import { tempDir, type TempDir } from '../support/tmp.js';

const INTERNAL = '127.0.0.1:0';

describe('domsec queue suspend and resume', () => {
  let state: TempDir;
  let partner: SmtpPeer;
  let running: RunningEngine;
  let target: string[];
  const cli = (...args: string[]) =>
    domsecInProcess([registerQueue], ['queue', ...args, ...target]);

  before(async () => {
    state = await tempDir('domsec-cli-suspend-');
    partner = await startSmtpPeer({ certificate: lab().adatumMail });
    running = await startEngine(join(state.path, 'engine'));
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
    target = ['--server', running.control.url];
    process.env.DOMSEC_TOKEN = running.token;
  });

  after(async () => {
    delete process.env.DOMSEC_TOKEN;
    await running.stop();
    await partner.close();
    await state.remove();
  });

  it('suspends, lists the queue as suspended, refuses to retry it, and resume delivers at once', async () => {
    const suspended = await cli('suspend', 'adatum.com');
    assert.equal(suspended.code, 0, suspended.stderr);
    assert.match(suspended.stdout, /^Suspended the queue for adatum\.com \(0 message\(s\) held/);
    const again = await cli('suspend', 'adatum.com');
    assert.match(again.stdout, /already suspended/);

    const address = running.engine.listenerAddress(INTERNAL);
    assert.ok(address !== null);
    const accepted = await submit(
      address.port,
      { from: 'alice@treyresearch.net', to: ['bob@adatum.com'] },
      { plaintext: true, name: 'workstation.treyresearch.net', serverCa: lab().treyRoot.certPem },
      'Subject: held by the operator\r\n\r\nhello\r\n',
    );
    assert.equal(accepted.code, 250, accepted.response);

    const listed = await cli('list');
    assert.equal(listed.code, 0, listed.stderr);
    assert.match(listed.stdout, /^adatum\.com {2}messages=1 {2}status=suspended {2}next-retry=-$/m);
    const json = JSON.parse((await cli('list', '-o', 'json')).stdout) as {
      queues: { nextHopDomain: string; status: string }[];
    };
    assert.deepEqual(
      json.queues.map((q) => [q.nextHopDomain, q.status]),
      [['adatum.com', 'suspended']],
    );

    const retried = await cli('retry', 'adatum.com');
    assert.equal(retried.code, 0, retried.stderr);
    assert.match(retried.stdout, /adatum\.com is suspended: nothing retried.*domsec queue resume/);
    const retriedAll = await cli('retry');
    assert.match(
      retriedAll.stdout,
      /Retrying 0 message\(s\) now\.\nSuspended, not retried: adatum\.com/,
    );
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.equal(partner.connections, 0, 'retry did not deliver a suspended queue');

    const resumed = await cli('resume', 'adatum.com');
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.equal(
      resumed.stdout,
      'Resumed the queue for adatum.com: delivering 1 message(s) now.\n',
    );
    await eventually('delivery after resume', () => partner.messages.length === 1 || undefined);
    assert.match(partner.messages[0]?.body.toString() ?? '', /held by the operator/);

    const noop = await cli('resume', 'adatum.com');
    assert.equal(noop.code, 0);
    assert.equal(noop.stdout, 'The queue for adatum.com is not suspended: nothing to resume.\n');
    await eventually('the queue emptied', async () =>
      /No queued messages/.test((await cli('list')).stdout) ? true : undefined,
    );
  });

  it('fails with exit 1 on a wrong token or a name that is not a domain, and changes nothing', async () => {
    process.env.DOMSEC_TOKEN = `${running.token}x`;
    try {
      const refused = await cli('suspend', 'adatum.com');
      assert.equal(refused.code, 1);
      assert.match(refused.stderr, /bearer token is required/);
      assert.doesNotMatch(refused.stderr + refused.stdout, new RegExp(running.token));
    } finally {
      process.env.DOMSEC_TOKEN = running.token;
    }
    const bad = await cli('suspend', 'not a domain');
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /not a domain name/);
    assert.deepEqual(running.engine.suspendedQueues(), []);
  });
});
