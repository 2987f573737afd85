// Receive limits over real sockets: each ReceiveConnector limit (connections per connector and per
// client, inactivity, session time, recipients per message) and the listener's line and command
// limits, answered with its standard reply; an apply changes the limits for new sessions only.
import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { parseBinding } from '../../src/engine/addresses.js';
import { buildGeneration } from '../../src/engine/generation.js';
import { memoryLog } from '../../src/engine/log.js';
import type { MessageSink } from '../../src/engine/message-sink.js';
import { ProtocolLog } from '../../src/engine/protocol-log.js';
import { ReceiveListener } from '../../src/engine/receive.js';
import { headerExceeds, type ReceiveLimits } from '../../src/engine/receive/limits.js';
import type { ReceiveConnectorSpec } from '../../src/model.js';
import { startEngine } from '../support/engine.js';
import { LineClient } from '../support/line-client.js';
import { runtimeConfig, type RuntimeConfigOverrides } from '../support/runtime-config.js';
import { tempDir } from '../support/tmp.js';

const sink: MessageSink = { accept: () => Promise.resolve(['Q1']) };

/** A listener whose single connector has these fields; `limits` are the listener's own. */
async function start(
  t: TestContext,
  connector: Partial<ReceiveConnectorSpec>,
  limits: Partial<ReceiveLimits> = {},
  overrides: RuntimeConfigOverrides = {},
): Promise<number> {
  const protocolLog = new ProtocolLog(null);
  const generation = buildGeneration(
    runtimeConfig({ ...overrides, receiveConnector: connector }),
    1,
  );
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

const PLAINTEXT = { requireTls: false, domainSecure: false };

describe('receive limits', () => {
  it('refuses a connection over maxInboundConnection with 421 4.3.2 and admits one again after a close', async (t) => {
    await start(t, { maxInboundConnection: 2, maxInboundConnectionPerSource: 10 });
    const first = await open();
    const second = await open();
    assert.match(await first.reply(), /^220 /);
    assert.match(await second.reply(), /^220 /);
    const third = await open();
    assert.equal(
      await third.reply(),
      '421 4.3.2 The maximum number of concurrent server connections has exceeded a limit, closing transmission channel',
    );
    await third.closedByServer();
    first.write('QUIT');
    assert.match(await first.reply(), /^221 /);
    await first.closedByServer();
    const fourth = await open();
    assert.match(await fourth.reply(), /^220 /);
  });

  it('refuses a client over maxInboundConnectionPerSource with 421 4.7.0', async (t) => {
    await start(t, { maxInboundConnection: 10, maxInboundConnectionPerSource: 1 });
    const first = await open();
    assert.match(await first.reply(), /^220 /);
    const second = await open();
    assert.equal(
      await second.reply(),
      '421 4.7.0 Too many concurrent connections from this client, closing transmission channel',
    );
    await second.closedByServer();
  });

  it('answers an over-long command line with 500 5.5.2 Line too long and closes', async (t) => {
    await start(t, {}, { commandLineLength: 512 });
    const client = await open();
    assert.match(await client.reply(), /^220 /);
    client.write(`EHLO ${'a'.repeat(600)}`);
    assert.equal(await client.reply(), '500 5.5.2 Line too long');
    await client.closedByServer();
  });

  it('accepts a command line at the limit', async (t) => {
    await start(t, {}, { commandLineLength: 512 });
    const client = await open();
    assert.match(await client.reply(), /^220 /);
    client.write(`NOOP ${'a'.repeat(507)}`);
    assert.match(await client.reply(), /^250 /);
  });

  it('closes a client silent past connectionInactivityTimeout with 421 4.4.2', async (t) => {
    // The listener's own idle time is long: the connector's value is the one that counts.
    await start(t, { connectionInactivityTimeout: '300ms' }, { idleTimeout: 60_000 });
    const client = await open();
    assert.match(await client.reply(), /^220 /);
    const started = Date.now();
    assert.equal(await client.reply(5_000), '421 4.4.2 Idle timeout, closing transmission channel');
    assert.ok(Date.now() - started >= 250, 'not before the timeout');
    await client.closedByServer();
  });

  it('keeps a client that talks within connectionInactivityTimeout', async (t) => {
    await start(t, { connectionInactivityTimeout: '1s' });
    const client = await open();
    assert.match(await client.reply(), /^220 /);
    for (let i = 0; i < 4; i += 1) {
      await new Promise((resolve) => setTimeout(resolve, 400));
      client.write('NOOP');
      assert.match(await client.reply(), /^250 /);
    }
  });

  it('ends a busy session past connectionTimeout with 421 4.4.2', async (t) => {
    await start(t, { connectionTimeout: '1s', connectionInactivityTimeout: '1m' });
    const client = await open();
    const started = Date.now();
    assert.match(await client.reply(), /^220 /);
    // Never idle: a command every 100 ms until the server ends the session.
    let reply = '';
    while (Date.now() - started < 8_000) {
      client.write('NOOP');
      reply = await client.reply(5_000);
      if (!reply.startsWith('250')) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.equal(reply, '421 4.4.2 Session time limit exceeded, closing transmission channel');
    assert.ok(Date.now() - started >= 900, 'not before the session time limit');
    await client.closedByServer();
  });

  it('answers a recipient over maxRecipientsPerMessage with 452 4.5.3 and takes the message for the others', async (t) => {
    await start(t, { ...PLAINTEXT, maxRecipientsPerMessage: 2 });
    const client = await open();
    assert.match(await client.reply(), /^220 /);
    client.write('EHLO client.example');
    assert.match(await client.reply(), /^250[ -]/);
    client.write('MAIL FROM:<someone@fabrikam.com>');
    assert.match(await client.reply(), /^250 /);
    client.write('RCPT TO:<one@treyresearch.net>');
    assert.match(await client.reply(), /^250 /);
    client.write('RCPT TO:<two@treyresearch.net>');
    assert.match(await client.reply(), /^250 /);
    client.write('RCPT TO:<three@treyresearch.net>');
    assert.equal(await client.reply(), '452 4.5.3 Too many recipients');
    client.write('DATA');
    assert.match(await client.reply(), /^354 /);
    client.write('Subject: two of three\r\n\r\nbody\r\n.');
    assert.match(await client.reply(), /^250 2\.6\.0 /);
    // The count is per transaction: the next one starts from zero.
    client.write('MAIL FROM:<someone@fabrikam.com>');
    assert.match(await client.reply(), /^250 /);
    client.write('RCPT TO:<three@treyresearch.net>');
    assert.match(await client.reply(), /^250 /);
  });

  it('refuses a message whose header section is over maxHeaderSize with 552 5.3.4 after its data', async (t) => {
    await start(t, { ...PLAINTEXT, maxHeaderSize: '1KB' });
    const client = await open();
    assert.match(await client.reply(), /^220 /);
    client.write('EHLO client.example');
    assert.match(await client.reply(), /^250[ -]/);
    const send = async (header: string) => {
      client.write('MAIL FROM:<someone@fabrikam.com>');
      assert.match(await client.reply(), /^250 /);
      client.write('RCPT TO:<user@treyresearch.net>');
      assert.match(await client.reply(), /^250 /);
      client.write('DATA');
      assert.match(await client.reply(), /^354 /);
      // A long body never counts: only the fields above the empty line do.
      client.write(`${header}\r\n\r\n${`${'b'.repeat(70)}\r\n`.repeat(40)}.`);
      return client.reply();
    };
    // 1,024 octets of header section exactly: "X-Pad: " + padding + CRLF.
    assert.match(await send(`X-Pad: ${'a'.repeat(1024 - 9)}`), /^250 2\.6\.0 /);
    assert.equal(
      await send(`X-Pad: ${'a'.repeat(1024 - 8)}`),
      '552 5.3.4 Header size exceeds fixed maximum size',
    );
  });

  it('measures the header section up to the first empty line, CRLF or LF', () => {
    const message = (header: string) => Buffer.from(`${header}\r\n\r\nbody\r\n`);
    assert.equal(headerExceeds(message('A: 1234'), 9), false); // "A: 1234\r\n" is 9 octets
    assert.equal(headerExceeds(message('A: 12345'), 9), true);
    assert.equal(headerExceeds(Buffer.from('A: 1234\n\nbody'), 8), false);
    assert.equal(headerExceeds(Buffer.from('A: 12345\n\nbody'), 8), true);
    assert.equal(headerExceeds(Buffer.from('\r\n' + 'b'.repeat(100)), 9), false, 'no header');
    assert.equal(headerExceeds(Buffer.from('A: 1'.repeat(10)), 9), true, 'no empty line');
  });

  it('closes a session past its count of junk commands (NOOP, RSET, EHLO...) with 421 4.7.0', async (t) => {
    await start(t, {}, { junkCommandsPerSession: 3 });
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
    await start(t, PLAINTEXT, { junkCommandsPerSession: 2 });
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

describe('receive limits across an apply', () => {
  it('applies a new maxInboundConnectionPerSource to new sessions while sessions in flight keep their limits', async (t) => {
    const state = await tempDir('domsec-receive-limits-');
    const running = await startEngine(state.path);
    const clients: LineClient[] = [];
    t.after(async () => {
      for (const client of clients) client.close();
      await running.stop();
      await state.remove();
    });
    const configWith = (connector: Partial<ReceiveConnectorSpec>) =>
      runtimeConfig({ receiveConnector: connector });
    await running.engine.apply(
      configWith({ maxInboundConnectionPerSource: 1, connectionInactivityTimeout: '1500ms' }),
    );
    const port = running.engine.state().listeners[0]?.port;
    assert.ok(typeof port === 'number' && port > 0);
    const connect = async () => {
      const client = await LineClient.open(port);
      clients.push(client);
      return client;
    };

    const first = await connect();
    assert.match(await first.reply(), /^220 /);
    const refused = await connect();
    assert.match(await refused.reply(), /^421 4\.7\.0 Too many concurrent connections/);
    await refused.closedByServer();

    // Same listener, next generation: two per source, and a long inactivity timeout.
    await running.engine.apply(
      configWith({ maxInboundConnectionPerSource: 2, connectionInactivityTimeout: '1h' }),
    );
    assert.equal(running.engine.state().listeners[0]?.port, port, 'the listener was kept');
    const second = await connect();
    assert.match(await second.reply(), /^220 /, 'a new session gets the new limit');
    const third = await connect();
    assert.match(await third.reply(), /^421 4\.7\.0 Too many concurrent connections/);

    // The first session started under 1.5 s of inactivity and keeps it; the second has an hour.
    assert.equal(await first.reply(8_000), '421 4.4.2 Idle timeout, closing transmission channel');
    await first.closedByServer();
    second.write('NOOP');
    assert.match(await second.reply(), /^250 /, 'the new session is still open');
  });

  it('counts maxInboundConnection across every binding of the connector', async (t) => {
    const state = await tempDir('domsec-receive-limits-');
    const running = await startEngine(state.path);
    const clients: LineClient[] = [];
    t.after(async () => {
      for (const client of clients) client.close();
      await running.stop();
      await state.remove();
    });
    await running.engine.apply(
      runtimeConfig({
        receiveConnector: { bindings: ['127.0.0.1:0', '127.0.0.2:0'], maxInboundConnection: 2 },
      }),
    );
    const ports = running.engine.state().listeners.map((listener) => listener.port);
    assert.equal(ports.length, 2);
    const [one, two] = ports;
    assert.ok(typeof one === 'number' && typeof two === 'number');
    const connect = async (host: string, port: number) => {
      const client = await LineClient.open(port, host);
      clients.push(client);
      return client;
    };
    assert.match(await (await connect('127.0.0.1', one)).reply(), /^220 /);
    assert.match(await (await connect('127.0.0.2', two)).reply(), /^220 /);
    // A third session on either binding is one too many for the connector.
    const refused = await connect('127.0.0.2', two);
    assert.match(await refused.reply(), /^421 4\.3\.2 /);
  });
});
