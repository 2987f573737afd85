// A receive listener whose sink is the real queue, over real sockets: a large message is spooled
// into data/ while it arrives and stored byte-exact; one refused after its data (over the size
// limit, a header section over maxHeaderSize, a malformed header) leaves nothing in the queue.
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { parseBinding } from '../../src/engine/addresses.js';
import { buildGeneration } from '../../src/engine/generation.js';
import { memoryLog } from '../../src/engine/log.js';
import { ProtocolLog } from '../../src/engine/protocol-log.js';
import { MessageQueue } from '../../src/engine/queue/queue.js';
import { ReceiveListener } from '../../src/engine/receive.js';
import { lab } from '../support/lab.js';
import { receiveConnector, runtimeConfig } from '../support/runtime-config.js';
import { submit } from '../support/smtp-submit.js';
import { tempDir } from '../support/tmp.js';

const ENVELOPE = { from: 'someone@adatum.com', to: ['user@treyresearch.net'] };

async function listening(t: TestContext) {
  const work = await tempDir('domsec-receive-spool-');
  const queueDir = join(work.path, 'queue');
  const queue = await MessageQueue.open(queueDir, memoryLog());
  const generation = buildGeneration(
    runtimeConfig({
      receiveConnectors: [
        receiveConnector('partners', { maxMessageSize: '2MB', maxHeaderSize: '16KB' }),
      ],
    }),
    1,
  );
  const protocolLog = new ProtocolLog(null);
  const listener = new ReceiveListener({
    binding: parseBinding('127.0.0.1:0'),
    generation: () => generation,
    sink: queue,
    log: memoryLog(),
    protocolLog,
    closeTimeout: 500,
  });
  await listener.listen();
  t.after(async () => {
    await listener.close();
    await queue.close();
    await protocolLog.close();
    await work.remove();
  });
  const port = listener.address()?.port ?? 0;
  const send = (message: string) =>
    submit(
      port,
      ENVELOPE,
      { certificate: lab().adatumMail, serverCa: lab().treyRoot.certPem },
      message,
    );
  return { queue, queueDir, send };
}

describe('receiving large messages into the queue', () => {
  it('spools a 1.5 MB message into data/ and stores it byte-exact after the marking', async (t) => {
    const { queue, queueDir, send } = await listening(t);
    const body = `${'line of a large message, with its CRLF\r\n'.repeat(40_000)}`;
    const outcome = await send(`Subject: large\r\n\r\n${body}`);
    assert.equal(outcome.code, 250, outcome.response);
    const [message] = queue.messages();
    assert.ok(message !== undefined);
    const [stored] = await readdir(join(queueDir, 'data'));
    assert.equal(stored, `${message.id.split('.')[0]}.eml`, 'the body went straight to data/');
    const text = await readFile(join(queueDir, 'data', stored ?? ''), 'latin1');
    assert.ok(text.endsWith(`\r\nSubject: large\r\n\r\n${body}`), 'the body as sent');
    assert.match(text, /^X-Domsec-AuthAs: Partner\r\nX-Domsec-Partner: adatum\.com\r\n/);
    assert.equal(message.size, Buffer.byteLength(text, 'latin1'));
  });

  it('leaves nothing in the queue for a message refused after its data', async (t) => {
    const { queue, queueDir, send } = await listening(t);
    const large = 'x'.repeat(76) + '\r\n';
    const refused = [
      [`Subject: too big\r\n\r\n${large.repeat(40_000)}`, 552, '5.3.4 Message size'],
      [`X-Pad: ${'p'.repeat(20_000)}\r\n\r\n${large.repeat(10_000)}`, 552, '5.3.4 Header size'],
      [`Subject: x\r\nnot a field\r\n\r\n${large.repeat(10_000)}`, 550, '5.6.0'],
    ] as const;
    for (const [message, code, text] of refused) {
      const outcome = await send(message);
      assert.equal(outcome.code, code, outcome.response);
      assert.ok(outcome.response.includes(text), outcome.response);
    }
    assert.deepEqual(queue.messages(), []);
    assert.deepEqual(await readdir(join(queueDir, 'data')), []);
    assert.deepEqual(await readdir(join(queueDir, 'control')), []);
  });
});
