// domsec queue show ID as a user runs it against a real engine holding one message: text as
// `key: value` lines and indented blocks, -o json as one object with formatVersion.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { domsec } from '../support/cli.js';
import { startEngine, type RunningEngine } from '../support/engine.js';
import { lab } from '../support/lab.js';
import { internalConnector, runtimeConfig, sendConnector } from '../support/runtime-config.js';
import { submit } from '../support/smtp-submit.js';
import { tempDir, type TempDir } from '../support/tmp.js';

const INTERNAL = '127.0.0.1:0';

describe('domsec queue show', () => {
  let state: TempDir;
  let running: RunningEngine;
  let env: Record<string, string>;
  let id = '';

  before(async () => {
    state = await tempDir('domsec-cli-queue-show-');
    running = await startEngine(join(state.path, 'engine'));
    await running.client.apply(
      runtimeConfig({
        organization: {
          resolver: { servers: [], static: { 'adatum.com': [{ host: '127.0.0.1', port: 9 }] } },
        },
        sendConnectors: [sendConnector('to-partners', { addressSpaces: ['adatum.com'] })],
        receiveConnectors: [internalConnector(INTERNAL)],
      }),
    );
    env = { DOMSEC_TOKEN: running.token, DOMSEC_SERVER: running.control.url };
    // Held, so the message stays queued while the test reads it.
    await running.client.suspend('adatum.com');
    const address = running.engine.listenerAddress(INTERNAL);
    assert.ok(address !== null);
    const accepted = await submit(
      address.port,
      { from: 'alice@treyresearch.net', to: ['bob@adatum.com'] },
      { plaintext: true, name: 'workstation.treyresearch.net', serverCa: lab().treyRoot.certPem },
      'Subject: shown\r\n\r\nhello\r\n',
    );
    assert.equal(accepted.code, 250, accepted.response);
    const { messages } = await running.client.queues();
    id = messages[0]?.id ?? '';
    assert.notEqual(id, '');
  });

  after(async () => {
    await running.stop();
    await state.remove();
  });

  it('prints the message as key: value lines, not JSON', async () => {
    const result = await domsec(['queue', 'show', id], env);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, new RegExp(`^id: ${id}$`, 'm'));
    assert.match(result.stdout, /bob@adatum\.com/);
    assert.doesNotMatch(result.stdout, /[{}"]/);
  });

  it('-o json prints { formatVersion, message }', async () => {
    const result = await domsec(['queue', 'show', id, '-o', 'json'], env);
    assert.equal(result.code, 0, result.stderr);
    const shown = JSON.parse(result.stdout) as { formatVersion: number; message: { id: string } };
    assert.equal(shown.formatVersion, 1);
    assert.equal(shown.message.id, id);
  });
});
