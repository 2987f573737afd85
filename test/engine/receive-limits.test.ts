// Receive limits over real sockets: connections per connector and per client, line length,
// commands per session and idle time, each answered with its standard reply.
import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { parseBinding } from '../../src/engine/addresses.js';
import { buildGeneration } from '../../src/engine/generation.js';
import { memoryLog } from '../../src/engine/log.js';
import type { MessageSink } from '../../src/engine/message-sink.js';
import { ProtocolLog } from '../../src/engine/protocol-log.js';
import { ReceiveListener } from '../../src/engine/receive.js';
import type { ReceiveLimits } from '../../src/engine/receive/limits.js';
import { LineClient } from '../support/line-client.js';
import { runtimeConfig, type RuntimeConfigOverrides } from '../support/runtime-config.js';

const sink: MessageSink = { accept: () => Promise.resolve(['Q1']) };

async function start(
  t: TestContext,
  limits: Partial<ReceiveLimits>,
  overrides: RuntimeConfigOverrides = {},
): Promise<number> {
  const protocolLog = new ProtocolLog(null);
  const generation = buildGeneration(runtimeConfig(overrides), 1);
  const listener = new ReceiveListener({
    binding: parseBinding('127.0.0.1:0'),
    generation: () => generation,
    sink,
    log: memoryLog(),
    protocolLog,
    closeTimeout: 500,
    limits,
  });
  await listener.listen();
  const clients: LineClient[] = [];
  t.after(async () => {
    for (const client of clients) client.close();
    await listener.close();
    await protocolLog.close();
  });
  const port = listener.address()?.port;
  assert.ok(port !== undefined);
  open = async () => {
    const client = await LineClient.open(port);
    clients.push(client);
    return client;
  };
  return port;
}

let open: () => Promise<LineClient> = () => Promise.reject(new Error('not started'));

describe('receive limits', () => {
  it('refuses a connection over the connector’s limit with 421 4.3.2 and admits one again after a close', async (t) => {
    await start(t, { connectionsPerConnector: 2, connectionsPerClient: 10 });
    const first = await open();
    const second = await open();
    assert.match(await first.reply(), /^220 /);
    assert.match(await second.reply(), /^220 /);
    const third = await open();
    assert.match(
      await third.reply(),
      /^421 4\.3\.2 The maximum number of concurrent server connections/,
    );
    await third.closedByServer();
    first.write('QUIT');
    assert.match(await first.reply(), /^221 /);
    await first.closedByServer();
    const fourth = await open();
    assert.match(await fourth.reply(), /^220 /);
  });

  it('refuses a client over its own limit with 421 4.7.0', async (t) => {
    await start(t, { connectionsPerConnector: 10, connectionsPerClient: 1 });
    const first = await open();
    assert.match(await first.reply(), /^220 /);
    const second = await open();
    assert.match(await second.reply(), /^421 4\.7\.0 Too many concurrent connections/);
    await second.closedByServer();
  });

  it('answers an over-long command line with 500 5.5.2 Line too long and closes', async (t) => {
    await start(t, { commandLineLength: 512 });
    const client = await open();
    assert.match(await client.reply(), /^220 /);
    client.write(`EHLO ${'a'.repeat(600)}`);
    assert.equal(await client.reply(), '500 5.5.2 Line too long');
    await client.closedByServer();
  });

  it('accepts a command line at the limit', async (t) => {
    await start(t, { commandLineLength: 512 });
    const client = await open();
    assert.match(await client.reply(), /^220 /);
    client.write(`NOOP ${'a'.repeat(507)}`);
    assert.match(await client.reply(), /^250 /);
  });

  it('closes a silent client with 421 4.4.2 after the idle timeout', async (t) => {
    await start(t, { idleTimeout: 300 });
    const client = await open();
    assert.match(await client.reply(), /^220 /);
    const started = Date.now();
    assert.equal(await client.reply(3_000), '421 4.4.2 Idle timeout, closing transmission channel');
    assert.ok(Date.now() - started >= 250, 'not before the timeout');
    await client.closedByServer();
  });

  it('closes a session past its count of junk commands (NOOP, RSET, EHLO...) with 421 4.7.0', async (t) => {
    await start(t, { junkCommandsPerSession: 3 });
    const client = await open();
    assert.match(await client.reply(), /^220 /);
    client.write('EHLO client.example');
    assert.match(await client.reply(), /^250[ -]/);
    client.write('NOOP');
    assert.match(await client.reply(), /^250 /);
    client.write('RSET');
    assert.match(await client.reply(), /^250 /);
    client.write('NOOP');
    assert.equal(
      await client.reply(),
      '421 4.7.0 Too many commands in one session, closing transmission channel',
    );
    await client.closedByServer();
  });

  it('never counts mail itself: many transactions pass a junk limit of 2', async (t) => {
    const plaintext = { receiveConnector: { requireTls: false, domainSecure: false } };
    await start(t, { junkCommandsPerSession: 2 }, plaintext);
    const client = await open();
    assert.match(await client.reply(), /^220 /);
    client.write('EHLO client.example');
    assert.match(await client.reply(), /^250[ -]/);
    for (let i = 0; i < 5; i += 1) {
      client.write('MAIL FROM:<someone@fabrikam.com>');
      assert.match(await client.reply(), /^250 /);
      client.write('RCPT TO:<user@treyresearch.net>');
      assert.match(await client.reply(), /^250 /);
      client.write('DATA');
      assert.match(await client.reply(), /^354 /);
      client.write('Subject: one of many\r\n\r\nbody\r\n.');
      assert.match(await client.reply(), /^250 2\.6\.0 /);
    }
  });

  it('closes after ten unrecognized commands with 421 4.7.0', async (t) => {
    await start(t, {});
    const client = await open();
    assert.match(await client.reply(), /^220 /);
    for (let i = 0; i < 9; i += 1) {
      client.write('BOGUS');
      assert.match(await client.reply(), /^500 /);
    }
    client.write('BOGUS');
    assert.match(await client.reply(), /^421 4\.7\.0 Too many errors on this connection/);
    await client.closedByServer();
  });
});
