// The contract between the receive adapter and the installed smtp-server: each private member the
// adapter patches or reads exists with the shape it relies on, and each patch fires where the
// receive limits expect it. A release that renames or reorders them fails here, not in production.
import assert from 'node:assert/strict';
import { Socket } from 'node:net';
import { connect as tlsConnect, TLSSocket } from 'node:tls';
import { describe, it, type TestContext } from 'node:test';
import { SMTPServer, type SMTPServerOptions } from 'smtp-server';
import {
  adaptSmtpServer,
  assertSmtpServerVersion,
  connectionSocket,
  installedSmtpServerVersion,
  isEnding,
  isReadingStream,
  owesReply,
  smtpServerVersionError,
  timeOut,
  type ConnectionPatches,
  type SMTPConnection,
  type SmtpServerAdaptation,
} from '../../src/engine/receive/smtp-server-adapter.js';
import { eventually } from '../support/eventually.js';
import { lab } from '../support/lab.js';
import { LineClient } from '../support/line-client.js';

interface Started {
  server: SMTPServer;
  port: number;
  /** Every connection the adapter saw, in order. */
  connections: SMTPConnection[];
  open(): Promise<LineClient>;
}

/** A real SMTPServer on a free loopback port, adapted with `patches` for each connection. */
async function start(
  t: TestContext,
  options: SMTPServerOptions = {},
  patches: (connection: SMTPConnection) => ConnectionPatches = () => ({}),
  adaptation: Omit<SmtpServerAdaptation, 'connection'> = { greetAtOnce: true },
): Promise<Started> {
  const { treyMail } = lab();
  const server = new SMTPServer({
    logger: false,
    disabledCommands: ['AUTH'],
    disableReverseLookup: true,
    key: treyMail.keyPem,
    cert: treyMail.certPem,
    closeTimeout: 200,
    ...options,
  });
  const connections: SMTPConnection[] = [];
  adaptSmtpServer(server, {
    ...adaptation,
    connection: (connection) => {
      connections.push(connection);
      return patches(connection);
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.server.address();
  assert.ok(address !== null && typeof address === 'object');
  const clients: LineClient[] = [];
  t.after(async () => {
    for (const client of clients) client.close();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return {
    server,
    port: address.port,
    connections,
    open: async () => {
      const client = await LineClient.open(address.port);
      clients.push(client);
      return client;
    },
  };
}

/** A session greeted and past EHLO. */
async function greeted(started: Started): Promise<LineClient> {
  const client = await started.open();
  assert.match(await client.reply(), /^220 /);
  client.write('EHLO client.example');
  assert.match(await client.reply(), /^250[- ]/);
  return client;
}

function only(started: Started): SMTPConnection {
  assert.equal(started.connections.length, 1);
  const [connection] = started.connections;
  assert.ok(connection !== undefined);
  return connection;
}

describe('smtp-server version', () => {
  it('accepts 3.21 and later 3.x, the installed one included', () => {
    for (const version of ['3.21.0', '3.21.6', '3.22.0', '3.99.12'])
      assert.equal(smtpServerVersionError(version), undefined, version);
    assert.doesNotThrow(() => assertSmtpServerVersion());
    assert.equal(smtpServerVersionError(installedSmtpServerVersion()), undefined);
  });

  it('refuses a version outside the tested range with one clear error', () => {
    for (const version of [
      '3.20.9',
      '3.0.0',
      '2.99.0',
      '4.0.0',
      '10.21.0',
      '3.21.0-beta.1',
      '',
      'x',
    ])
      assert.match(
        smtpServerVersionError(version) ?? 'accepted',
        /is outside the tested range >=3\.21\.0 <4\.0\.0/,
        version,
      );
    assert.throws(() => assertSmtpServerVersion('4.0.0'), /smtp-server "4\.0\.0" is outside/);
  });

  it('adapts a server once', (t) => {
    const server = new SMTPServer({ logger: false });
    t.after(() => server.close());
    adaptSmtpServer(server, {});
    assert.throws(() => adaptSmtpServer(server, {}), /adapted already/);
  });
});

describe('smtp-server private members the adapter relies on', () => {
  it('are there with their shape, on each connection before it reads a byte', async (t) => {
    const seen: string[] = [];
    const started = await start(t, {}, (connection) => {
      // At connections.add, before init(): the members exist, the socket is set, nothing read.
      for (const name of [
        '_onClose',
        '_armTimeout',
        'send',
        '_onCommand',
        'init',
        '_setListeners',
        'connectionReady',
        '_onTimeout',
      ] as const)
        if (typeof connection[name] !== 'function') seen.push(`${name} is not a function`);
      for (const name of ['_closing', '_closed', '_upgrading', '_handlerPending'] as const)
        if (typeof connection[name] !== 'boolean') seen.push(`${name} is not a boolean`);
      if (!(connection._socket instanceof Socket)) seen.push('_socket is not a net.Socket');
      const parser = connection._parser;
      if (parser === false || typeof parser._dataMode !== 'boolean')
        seen.push('_parser._dataMode is not a boolean');
      if (connection._dataStream !== false) seen.push('_dataStream is set before DATA');
      if (started.server.connections.has(connection)) seen.push('added before the hook ran');
      return {};
    });
    const client = await greeted(started);
    const connection = only(started);
    assert.deepEqual(seen, []);
    assert.ok(started.server.connections.has(connection));
    assert.equal(connectionSocket(connection), connection._socket);
    assert.equal(isEnding(connection), false);
    client.close();
  });
});

describe('smtp-server patches', () => {
  it('_onCommand: the hook sees each command line outside DATA, and may answer it instead', async (t) => {
    const commands: string[] = [];
    const started = await start(t, {}, (connection) => ({
      command: (original, command, callback) => {
        const line = command.toString('latin1');
        commands.push(line);
        if (line === 'NOOP') {
          connection.send(250, 'answered by the hook');
          callback?.();
          return;
        }
        original(command, callback);
      },
    }));
    const client = await greeted(started);
    client.write('NOOP');
    assert.equal(await client.reply(), '250 answered by the hook');
    client.write('RSET');
    assert.match(await client.reply(), /^250 /);
    client.write('QUIT');
    assert.match(await client.reply(), /^221 /);
    assert.deepEqual(commands, ['EHLO client.example', 'NOOP', 'RSET', 'QUIT']);
  });

  it('send: every reply passes the hook, smtp-server own limit texts as the limits match them', async (t) => {
    const sent: string[] = [];
    const started = await start(t, { maxCommandLength: 100 }, () => ({
      send: (original, code, data, context) => {
        if (typeof data === 'string') sent.push(`${code} ${data}`);
        original(code, data, context);
      },
    }));
    const client = await greeted(started);
    for (let i = 1; i <= 10; i += 1) {
      client.write('XYZZY');
      await client.reply();
    }
    assert.deepEqual(sent.slice(-2), [
      '500 Error: command not recognized',
      '421 Error: too many unrecognized commands',
    ]);
    await client.closedByServer();

    const long = await started.open();
    await long.reply();
    long.write(`NOOP ${'x'.repeat(200)}`);
    await long.reply();
    assert.ok(sent.includes('421 Error: Command line too long'), sent.join('\n'));

    await greeted(started);
    const idle = started.connections[2];
    assert.ok(idle !== undefined);
    timeOut(idle);
    assert.equal(sent.at(-1), '421 Timeout - closing connection');
  });

  it('_armTimeout: armed once the socket is set up, with the TLS socket at STARTTLS, and again by _onTimeout while a reply is owed', async (t) => {
    const armed: (Socket | undefined)[] = [];
    let release: (() => void) | undefined;
    const started = await start(
      t,
      {
        onMailFrom: (_address, _session, callback) => {
          release = () => callback();
        },
      },
      () => ({ armTimeout: (socket) => armed.push(socket) }),
    );
    const client = await greeted(started);
    const connection = only(started);
    assert.deepEqual([...armed], [undefined]);

    client.write('MAIL FROM:<a@client.example>');
    await eventually('onMailFrom to be deciding', () => release !== undefined, 5_000);
    assert.equal(owesReply(connection), true);
    timeOut(connection); // the idle timer fires while smtp-server owes the reply: re-armed
    assert.deepEqual([...armed], [undefined, undefined]);
    release?.();
    assert.match(await client.reply(), /^250 /);
    assert.equal(owesReply(connection), false);

    const tls = await starttls(started.port);
    t.after(() => tls.destroy());
    const upgraded = started.connections[1];
    assert.ok(upgraded !== undefined);
    await eventually('the TLS socket to be armed', () => armed.length === 4, 5_000);
    assert.equal(armed[2], undefined);
    assert.ok(armed[3] instanceof TLSSocket, 'STARTTLS arms the TLS socket being set up');
    const tlsSocket = armed[3];
    await eventually(
      'smtp-server to read from the TLS socket once secure',
      () => connectionSocket(upgraded) === tlsSocket,
    );
  });

  it('_onClose: the hook runs before onClose, which runs once, whether the client quits or goes away', async (t) => {
    const events: string[] = [];
    const started = await start(
      t,
      { onClose: (session) => events.push(`onClose ${session.id}`) },
      (connection) => ({ closing: () => events.push(`closing ${connection.id}`) }),
    );
    const quits = await greeted(started);
    const [quitting] = started.connections;
    assert.ok(quitting !== undefined);
    quits.write('QUIT');
    assert.match(await quits.reply(), /^221 /);
    const leaves = await greeted(started);
    const leaving = started.connections[1];
    assert.ok(leaving !== undefined);
    leaves.close();
    for (const connection of [quitting, leaving]) {
      const { id } = connection;
      await eventually(`onClose of ${id}`, () => events.includes(`onClose ${id}`), 5_000);
      const mine = events.filter((e) => e.endsWith(` ${id}`));
      assert.equal(mine[0], `closing ${id}`, events.join(', '));
      assert.equal(mine.filter((e) => e.startsWith('onClose')).length, 1, events.join(', '));
      assert.equal(started.server.connections.has(connection), false);
      assert.equal(isEnding(connection), true);
    }
  });

  it('_parser._dataMode: true while the message arrives, then the reply is owed until onData calls back', async (t) => {
    const seen: Record<string, boolean> = {};
    const started = await start(t, {
      onData: (stream, session, callback) => {
        const connection = [...started.server.connections].find((c) => c.session === session);
        assert.ok(connection !== undefined);
        seen.readingAtStart = isReadingStream(connection);
        seen.dataModeAtStart = connection._parser !== false && connection._parser._dataMode;
        stream.resume();
        stream.on('end', () => {
          seen.readingAtEnd = isReadingStream(connection);
          seen.owedAtEnd = owesReply(connection);
          setImmediate(() => callback(null, 'queued'));
        });
      },
    });
    const client = await greeted(started);
    client.write('MAIL FROM:<a@client.example>');
    assert.match(await client.reply(), /^250 /);
    client.write('RCPT TO:<b@server.example>');
    assert.match(await client.reply(), /^250 /);
    client.write('DATA');
    assert.match(await client.reply(), /^354 /);
    client.write('Subject: contract\r\n\r\nbody\r\n.');
    assert.match(await client.reply(), /^250 /);
    assert.deepEqual(seen, {
      readingAtStart: true,
      dataModeAtStart: true,
      readingAtEnd: false,
      owedAtEnd: true,
    });
    assert.equal(owesReply(only(started)), false);
  });

  it('init: greetAtOnce replaces it, and without it smtp-server keeps its own', async (t) => {
    const atOnce = await start(t);
    await greeted(atOnce);
    const patched = only(atOnce);
    assert.ok(Object.hasOwn(patched, 'init'), 'init replaced on the connection');

    const delayed = await start(t, {}, () => ({}), {});
    await greeted(delayed);
    assert.equal(Object.hasOwn(only(delayed), 'init'), false);
  });
});

/** Opens a session and completes STARTTLS; resolves with the client's TLS socket. */
async function starttls(port: number): Promise<TLSSocket> {
  const { treyRoot } = lab();
  const socket = new Socket();
  let buffer = '';
  const next = (pattern: RegExp) =>
    eventually(`a reply matching ${pattern}`, () => pattern.test(buffer), 5_000).then(() => {
      buffer = '';
    });
  const onData = (chunk: Buffer) => (buffer += chunk.toString('latin1'));
  socket.on('data', onData);
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.connect(port, '127.0.0.1', resolve);
  });
  await next(/^220 .*\r\n/m);
  socket.write('EHLO client.example\r\n');
  await next(/^250 .*\r\n/m);
  socket.write('STARTTLS\r\n');
  await next(/^220 .*\r\n/m);
  socket.off('data', onData);
  const tls = tlsConnect({
    socket,
    servername: 'mail.treyresearch.net',
    ca: [treyRoot.certPem],
    rejectUnauthorized: false,
  });
  await new Promise<void>((resolve, reject) => {
    tls.once('secureConnect', resolve);
    tls.once('error', reject);
  });
  return tls;
}
