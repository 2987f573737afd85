// End to end over real sockets: a stranger's raw bytes into the receive connector, the real queue,
// then a real Maildir and a relay to a mailbox server, each read back with mailsplit. Fields hidden
// behind bare CRs never arrive as fields; a header that must be refused gets 550 5.6.0, unstored.
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { parseBinding } from '../../src/engine/addresses.js';
import { EngineDelivery } from '../../src/engine/delivery/engine-delivery.js';
import { buildGeneration } from '../../src/engine/generation.js';
import { memoryLog } from '../../src/engine/log.js';
import type { IncomingMessage, MessageSink } from '../../src/engine/message-sink.js';
import { ProtocolLog } from '../../src/engine/protocol-log.js';
import { ReceiveListener } from '../../src/engine/receive.js';
import type { RelayDelivery } from '../../src/model.js';
import { eventually } from '../support/eventually.js';
import { LineClient } from '../support/line-client.js';
import { mailsplitFields } from '../support/mailsplit.js';
import { receiveConnector, runtimeConfig } from '../support/runtime-config.js';
import { startSmtpPeer } from '../support/smtp-peer.js';
import { tempDir } from '../support/tmp.js';

/** A stranger (no certificate, plaintext) hiding our marking behind bare CRs in its Subject. */
const HIDDEN =
  'From: someone@fabrikam.com\r\n' +
  'To: user@treyresearch.net\r\n' +
  'Subject: invoice\rX-Domsec-AuthAs: Partner\rX-Domsec-Partner: adatum.com\r' +
  'Authentication-Results: mail.treyresearch.net; x-domsec=pass (mutual TLS)\r' +
  'ARC-Authentication-Results: i=1; MAIL.TREYRESEARCH.NET.; x-domsec=pass\r\n' +
  '\r\n' +
  'Pay now.\rX-Domsec-AuthAs: Partner\r\n';

/** Readers split this header section in two places: refused. */
const AMBIGUOUS = 'Subject: x\r\r\nX-Domsec-AuthAs: Partner\r\n\r\nbody\r\n';

/** A receiving listener on a plaintext connector whose messages go to a real queue and delivery. */
async function engine(t: TestContext, relay?: RelayDelivery) {
  const state = await tempDir('domsec-one-reading-');
  const generation = buildGeneration(
    runtimeConfig({
      receiveConnectors: [receiveConnector('internet', { domainSecure: false, requireTls: false })],
      ...(relay === undefined ? {} : { organization: { delivery: { relay } } }),
    }),
    1,
  );
  const delivery = await EngineDelivery.open({
    stateDir: state.path,
    log: memoryLog(),
    generation: () => generation,
    timeouts: { connectMs: 3_000, greetingMs: 3_000, socketMs: 5_000 },
  });
  delivery.afterApply(undefined, generation);
  const stored: Buffer[] = [];
  const sink: MessageSink = {
    accept: (message: IncomingMessage) => {
      stored.push(message.body);
      return delivery.queue.accept(message);
    },
  };
  const protocolLog = new ProtocolLog(null);
  const listener = new ReceiveListener({
    binding: parseBinding('127.0.0.1:0'),
    generation: () => generation,
    sink,
    log: memoryLog(),
    protocolLog,
    closeTimeout: 500,
  });
  await listener.listen();
  t.after(async () => {
    await listener.close();
    await protocolLog.close();
    await delivery.close();
    await state.remove();
  });
  const port = listener.address()?.port ?? 0;
  /** One transaction of raw bytes; the reply to the final dot. */
  const send = async (message: string): Promise<string> => {
    const client = await LineClient.open(port);
    try {
      assert.match(await client.reply(), /^220 /);
      for (const command of [
        'EHLO mail.fabrikam.com',
        'MAIL FROM:<someone@fabrikam.com>',
        'RCPT TO:<user@treyresearch.net>',
      ]) {
        client.write(command);
        assert.match(await client.reply(), /^250[ -]/);
      }
      client.write('DATA');
      assert.match(await client.reply(), /^354 /);
      client.write(`${message.replace(/\r\n$/, '')}\r\n.`);
      const reply = await client.reply();
      client.write('QUIT');
      assert.match(await client.reply(), /^221 /);
      return reply;
    } finally {
      client.close();
    }
  };
  return { state: state.path, stored, delivery, send };
}

function assertNoForgedField(fields: { key: string; line: string }[]): void {
  for (const { key, line } of fields) {
    assert.ok(!key.startsWith('x-domsec'), `a forged field arrived: ${JSON.stringify(line)}`);
    if (/authentication-results$/.test(key)) assert.fail(`forged results arrived: ${line}`);
  }
}

describe('one reading of a received message, end to end', () => {
  it('delivers to Maildir without the fields a stranger hid behind bare CRs', async (t) => {
    const { state, send } = await engine(t);
    assert.match(await send(HIDDEN), /^250 2\.6\.0 /);
    const inbox = join(state, 'mail', 'treyresearch.net', 'user', 'new');
    const file = await eventually('the Maildir copy', async () => {
      const names = await readdir(inbox).catch(() => []);
      return names[0] === undefined ? undefined : readFile(join(inbox, names[0]));
    });
    // Read as mailsplit reads it (lines end at LF), and as readers that end lines at a bare CR too.
    const crSplit = Buffer.from(file.toString('latin1').replace(/\r\n|\r|\n/g, '\r\n'), 'latin1');
    for (const bytes of [file, crSplit]) {
      const fields = await mailsplitFields(bytes);
      assert.deepEqual(
        fields.map((field) => field.key),
        ['received', 'from', 'to', 'subject'],
      );
      assertNoForgedField(fields);
    }
    assert.doesNotMatch(file.toString('latin1'), /\r(?!\n)|(?<!\r)\n/, 'every line ends in CRLF');
    assert.ok(file.toString('latin1').endsWith('\r\n\r\nPay now.\r\nX-Domsec-AuthAs: Partner\r\n'));
  });

  it('relays to the mailbox server the stored bytes unchanged, without the hidden fields', async (t) => {
    const mailbox = await startSmtpPeer({ name: 'mailbox.treyresearch.net', starttls: false });
    t.after(() => mailbox.close());
    const { stored, send } = await engine(t, {
      host: `127.0.0.1:${mailbox.port}`,
      protocol: 'smtp',
      tls: 'opportunistic',
    });
    assert.match(await send(HIDDEN), /^250 2\.6\.0 /);
    const relayed = await eventually('the relayed copy', () =>
      Promise.resolve(mailbox.messages[0]?.body),
    );
    assert.equal(stored.length, 1);
    assert.ok(relayed.equals(stored[0] ?? Buffer.alloc(0)), 'relayed byte for byte as stored');
    const fields = await mailsplitFields(relayed);
    assert.deepEqual(
      fields.map((field) => field.key),
      ['received', 'from', 'to', 'subject'],
    );
    assertNoForgedField(fields);
  });

  it('refuses a header section readers would split differently with 550 5.6.0, storing nothing', async (t) => {
    const { state, stored, delivery, send } = await engine(t);
    assert.equal(
      await send(AMBIGUOUS),
      '550 5.6.0 Message header is malformed: a bare CR ends the header section',
    );
    assert.match(
      await send('Subject: x\r\nX-Domsec-AuthAs : Partner\r\nTo : user@treyresearch.net\r\n\r\n'),
      /^550 5\.6\.0 Message header is malformed: line 3 of the header section has white space before the colon$/,
    );
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.deepEqual(stored, []);
    assert.deepEqual(delivery.queue.messages(), []);
    assert.deepEqual(await readdir(join(state, 'mail')).catch(() => []), []);
  });
});
