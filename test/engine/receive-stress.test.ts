// Receive connectors under a connection flood, over real sockets from many loopback addresses:
// stress (80% of maxInboundConnection) shortens the waits and sheds idle sessions in seconds, the
// last 10% is kept for clients in a partner's remoteIPRanges, and a trickling sender is cut off.
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { describe, it, type TestContext } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import fc from 'fast-check';
import { parseBinding } from '../../src/engine/addresses.js';
import { buildGeneration } from '../../src/engine/generation.js';
import { memoryLog } from '../../src/engine/log.js';
import type { MessageSink } from '../../src/engine/message-sink.js';
import { ProtocolLog } from '../../src/engine/protocol-log.js';
import { ReceiveListener } from '../../src/engine/receive.js';
import {
  ConnectionCounter,
  connectorCapacity,
  type StressChange,
} from '../../src/engine/receive/capacity.js';
import { connectorLimits } from '../../src/engine/receive/limits.js';
import type { ReceiveConnectorSpec } from '../../src/model.js';
import { startEngine } from '../support/engine.js';
import { eventually } from '../support/eventually.js';
import { lab } from '../support/lab.js';
import { LineClient } from '../support/line-client.js';
import { receiveConnector, runtimeConfig } from '../support/runtime-config.js';
import { submit } from '../support/smtp-submit.js';
import { tempDir } from '../support/tmp.js';

const PARTNER_ADDRESS = '127.0.0.250';
const PLAINTEXT = { requireTls: false, domainSecure: false };

const MESSAGE = [
  'From: alice@adatum.com',
  'To: bob@treyresearch.net',
  'Subject: through the flood',
  '',
  'Delivered while strangers held the connector.',
  '',
].join('\r\n');

function limitsOf(spec: Partial<ReceiveConnectorSpec>) {
  return connectorLimits(receiveConnector('c', spec).spec);
}

function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * A session that has said EHLO, STARTTLS and EHLO again; `command` sends a line and resolves with
 * its whole reply (bounded), or with "closed" once the server has ended the session.
 */
async function tlsSession(t: TestContext, port: number) {
  const raw = connect({ port, host: '127.0.0.1' });
  t.after(() => raw.destroy());
  let buffer = '';
  let closed = false;
  let socket: NodeJS.ReadWriteStream = raw;
  const take = async (): Promise<string> => {
    const deadline = Date.now() + 5_000;
    for (;;) {
      const match = /^(?:\d{3}-[^\r\n]*\r\n)*\d{3}(?: [^\r\n]*)?\r\n/.exec(buffer);
      if (match !== null) {
        buffer = buffer.slice(match[0].length);
        return match[0].trimEnd();
      }
      if (closed) return 'closed';
      if (Date.now() > deadline) throw new Error(`no reply; unread: ${JSON.stringify(buffer)}`);
      await pause(10);
    }
  };
  const listen = (stream: NodeJS.ReadableStream) => {
    stream.on('data', (chunk: Buffer) => (buffer += chunk.toString('latin1')));
    stream.on('close', () => (closed = true));
    stream.on('error', () => undefined);
  };
  listen(raw);
  const command = (line: string) => (socket.write(`${line}\r\n`), take());
  assert.match(await take(), /^220 /);
  assert.match(await command('EHLO mail.adatum.com'), /STARTTLS/);
  assert.match(await command('STARTTLS'), /^220 /);
  raw.removeAllListeners('data'); // from here the TLS socket reads it
  const { adatumMail, treyRoot } = lab();
  const secure = tlsConnect({
    socket: raw,
    servername: 'mail.treyresearch.net',
    ca: [treyRoot.certPem],
    key: adatumMail.keyPem,
    cert: adatumMail.certPem,
  });
  await new Promise<void>((resolve, reject) => {
    secure.once('secureConnect', resolve);
    secure.once('error', reject);
  });
  socket = secure;
  listen(secure);
  assert.match(await command('EHLO mail.adatum.com'), /^250[ -]/);
  return { command };
}

/** Prometheus text: the value of one sample, or undefined. */
function sample(text: string, name: string, labels: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name}{${labels}} `));
  return line === undefined ? undefined : Number(line.split(' ')[1]);
}

describe('connector capacity', () => {
  it('keeps the last 10% of maxInboundConnection for partners, stress from 80% until 60%', () => {
    assert.deepEqual(connectorCapacity(200), {
      strangers: 180,
      stressStarts: 160,
      stressEnds: 120,
    });
    assert.deepEqual(connectorCapacity(5000), {
      strangers: 4500,
      stressStarts: 4000,
      stressEnds: 3000,
    });
    // Small connectors keep every session for anyone; stress still needs them (nearly) full.
    assert.deepEqual(connectorCapacity(2), { strangers: 2, stressStarts: 2, stressEnds: 1 });
    assert.deepEqual(connectorCapacity(1), { strangers: 1, stressStarts: 1, stressEnds: 0 });
  });

  it('starts and ends stress once each, however the count hovers between the thresholds', () => {
    let now = 1_000;
    const counter = new ConnectionCounter(() => now);
    const seen: StressChange[] = [];
    counter.watch((change) => (seen.push(change), 0));
    const limits = limitsOf({ maxInboundConnection: 10 });
    for (let i = 0; i < 7; i += 1)
      assert.deepEqual(counter.admit('in', `192.0.2.${i}`, limits), {});
    const start = counter.admit('in', '192.0.2.7', limits);
    assert.deepEqual(start.stress, {
      connector: 'in',
      stressed: true,
      sessions: 8,
      maxInboundConnection: 10,
      closed: 0,
    });
    assert.equal(counter.stressed('in'), true);
    // 7, 8, 7: no change while above 60%.
    assert.equal(counter.release('in', '192.0.2.7'), undefined);
    assert.deepEqual(counter.admit('in', '192.0.2.7', limits), {});
    counter.admit('in', '192.0.2.8', limits);
    assert.equal(counter.admit('in', '192.0.2.9', limits).refusal?.enhanced, '4.3.2', 'at 90%');
    now += 2_500;
    for (const i of [8, 7]) assert.equal(counter.release('in', `192.0.2.${i}`), undefined);
    const end = counter.release('in', '192.0.2.6');
    assert.deepEqual(end, {
      connector: 'in',
      stressed: false,
      sessions: 6,
      maxInboundConnection: 10,
      refused: 1,
      durationMs: 2_500,
    });
    assert.equal(seen.length, 2);
    assert.equal(counter.stressed('in'), false);
  });

  it('never refuses a partner-range client while the connector has room, whatever strangers did (property)', () => {
    // Admissions outweigh releases, so that runs reach a full connector and hover there.
    const step = fc.oneof(
      {
        arbitrary: fc.record({
          kind: fc.constant('stranger' as const),
          source: fc.integer({ min: 0, max: 5 }),
        }),
        weight: 3,
      },
      {
        arbitrary: fc.record({
          kind: fc.constant('partner' as const),
          source: fc.integer({ min: 0, max: 1 }),
        }),
        weight: 1,
      },
      {
        arbitrary: fc.record({ kind: fc.constant('release' as const), pick: fc.nat() }),
        weight: 1,
      },
    );
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 40 }),
        fc.array(step, { minLength: 20, maxLength: 200 }),
        (max, steps) => {
          const counter = new ConnectionCounter();
          const limits = limitsOf({
            maxInboundConnection: max,
            maxInboundConnectionPerSource: max,
          });
          // The rule in whole numbers: a tenth kept for partners, stress from 8 tenths to 6.
          const strangers = max - Math.floor(max / 10);
          const [starts, ends] = [Math.ceil((max * 8) / 10), Math.floor((max * 6) / 10)];
          const held: string[] = [];
          let stressed = false;
          for (const s of steps) {
            if (s.kind === 'release') {
              const [client] = held.splice(s.pick % Math.max(held.length, 1), 1);
              if (client !== undefined) counter.release('in', client);
            } else {
              const client =
                s.kind === 'partner' ? `198.51.100.${s.source}` : `192.0.2.${s.source}`;
              const { refusal } = counter.admit('in', client, limits, s.kind === 'partner');
              const room = s.kind === 'partner' ? max : strangers;
              assert.equal(
                refusal === undefined,
                held.length < room,
                `${s.kind} at ${held.length}`,
              );
              if (refusal === undefined) held.push(client);
            }
            assert.ok(held.length <= max);
            if (!stressed && held.length >= starts) stressed = true;
            else if (stressed && held.length <= ends) stressed = false;
            assert.equal(counter.stressed('in'), stressed, `stress at ${held.length} of ${max}`);
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});

/** One listener, its connector with these fields; the partner adatum connects from 127.0.0.250. */
async function listen(t: TestContext, connector: Partial<ReceiveConnectorSpec>) {
  const protocolLog = new ProtocolLog(null);
  const log = memoryLog();
  const accepted: string[] = [];
  const sink: MessageSink = {
    accept: () => {
      accepted.push('message');
      return Promise.resolve(['Q1']);
    },
  };
  const generation = buildGeneration(
    runtimeConfig({
      receiveConnector: connector,
      adatum: { remoteIPRanges: [`${PARTNER_ADDRESS}/32`] },
    }),
    1,
  );
  const listener = new ReceiveListener({
    binding: parseBinding('127.0.0.1:0'),
    generation: () => generation,
    sink,
    log,
    protocolLog,
    closeTimeout: 500,
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
  const open = async (localAddress = '127.0.0.1') => {
    const client = await LineClient.open(port, '127.0.0.1', localAddress);
    clients.push(client);
    return client;
  };
  const events = (name: string) => log.entries.filter((e) => e.event === name);
  return { listener, port, open, events, accepted };
}

describe('a receive connector under stress', () => {
  it('closes sessions already idle past stressInactivityTimeout as soon as stress starts', async (t) => {
    const { open, events } = await listen(t, {
      maxInboundConnection: 10,
      stressInactivityTimeout: '2s',
    });
    const idle = await Promise.all(Array.from({ length: 7 }, () => open()));
    for (const client of idle) assert.match(await client.reply(), /^220 /);
    await pause(2_300);
    assert.equal(events('receive.stress-started').length, 0, '7 of 10 is no stress');
    const eighth = await open();
    const started = Date.now();
    assert.match(await eighth.reply(), /^220 /);
    for (const client of idle) {
      assert.equal(
        await client.reply(1_000),
        '421 4.4.2 Idle timeout, closing transmission channel',
      );
      await client.closedByServer(1_000);
    }
    const shedMs = Date.now() - started;
    assert.ok(shedMs < 1_000, `the 7 idle sessions were shed in ${shedMs} ms`);
    assert.deepEqual(events('receive.stress-started')[0]?.fields, {
      connector: 'from-partners',
      sessions: 8,
      maxInboundConnection: 10,
      closed: 7,
    });
    // Down to 60% of 10 the stress ends; the session that saw it keeps the shorter wait.
    const ended = events('receive.stress-ended')[0]?.fields;
    assert.equal(ended?.sessions, 6, 'ends when 60% of 10 is reached');
    assert.equal(ended?.refused, 0);
    eighth.write('NOOP');
    assert.match(await eighth.reply(), /^250 /);
    const spoke = Date.now();
    assert.equal(await eighth.reply(4_000), '421 4.4.2 Idle timeout, closing transmission channel');
    assert.ok(Date.now() - spoke >= 1_900, 'not before 2 s of silence');
  });

  it('closes a client that never says EHLO at stressInactivityTimeout from its connect, keeping the ones that talk', async (t) => {
    const { open } = await listen(t, {
      maxInboundConnection: 10,
      stressInactivityTimeout: '1s',
      connectionInactivityTimeout: '1m',
    });
    const talking = await Promise.all(Array.from({ length: 7 }, () => open()));
    for (const client of talking) {
      assert.match(await client.reply(), /^220 /);
      client.write('EHLO client.example');
      assert.match(await client.reply(), /^250[ -]/);
    }
    const silentName = await open(); // the eighth: stress starts
    const connected = Date.now();
    assert.match(await silentName.reply(), /^220 /);
    let reply = '';
    while (Date.now() - connected < 4_000) {
      silentName.write('NOOP');
      reply = await silentName.reply();
      if (!reply.startsWith('250')) break;
      for (const client of talking) {
        client.write('NOOP');
        assert.match(await client.reply(), /^250 /);
      }
      await pause(250);
    }
    const cutAt = Date.now() - connected;
    assert.equal(reply, '421 4.4.2 Idle timeout, closing transmission channel');
    assert.ok(cutAt >= 900 && cutAt < 2_500, `closed after ${cutAt} ms`);
    for (const client of talking) {
      client.write('NOOP');
      assert.match(await client.reply(), /^250 /, 'a greeted client that talks is kept');
    }
  });

  it('measures silence past STARTTLS: a TLS session that talks is kept when stress starts, one that stopped is closed', async (t) => {
    const { port, open, events } = await listen(t, {
      maxInboundConnection: 10,
      stressInactivityTimeout: '1s',
    });
    const talking = await tlsSession(t, port);
    const quiet = await tlsSession(t, port);
    // Both connected over a second ago; only one has spoken in the last second.
    const started = Date.now();
    while (Date.now() - started < 1_500) {
      assert.match(await talking.command('NOOP'), /^250 /);
      await pause(200);
    }
    const fillers = await Promise.all(Array.from({ length: 6 }, () => open()));
    for (const client of fillers) assert.match(await client.reply(), /^220 /);
    assert.equal(events('receive.stress-started')[0]?.fields.closed, 1);
    assert.match(await talking.command('NOOP'), /^250 /, 'the talking TLS session is kept');
    assert.equal(
      await quiet.command('NOOP'),
      '421 4.4.2 Idle timeout, closing transmission channel',
    );
  });

  it('cuts off a client trickling its DATA a byte a second at connectionTimeout with 421 4.4.2, storing nothing', async (t) => {
    const { listener, open, accepted } = await listen(t, {
      ...PLAINTEXT,
      connectionInactivityTimeout: '2500ms',
      connectionTimeout: '4s',
    });
    const client = await open();
    const started = Date.now();
    assert.match(await client.reply(), /^220 /);
    client.write('EHLO client.example');
    assert.match(await client.reply(), /^250[ -]/);
    client.write('MAIL FROM:<someone@fabrikam.com>');
    assert.match(await client.reply(), /^250 /);
    client.write('RCPT TO:<user@treyresearch.net>');
    assert.match(await client.reply(), /^250 /);
    client.write('DATA');
    assert.match(await client.reply(), /^354 /);
    let stopped = false;
    const trickle = (async () => {
      // A short line a second: never silent for the inactivity timeout, so only the session
      // limit can end it.
      for (let line = 0; line < 100 && !stopped; line += 1) {
        client.write(line === 0 ? 'Subject: slow' : 'x');
        await pause(1_000);
      }
    })();
    assert.equal(
      await client.reply(8_000),
      '421 4.4.2 Session time limit exceeded, closing transmission channel',
    );
    const cutAt = Date.now() - started;
    stopped = true;
    await client.closedByServer();
    await trickle;
    assert.ok(cutAt >= 3_900 && cutAt < 6_000, `cut off after ${cutAt} ms`);
    assert.deepEqual(accepted, [], 'nothing stored');
    await eventually('the session to end', () => listener.sessionCount, {
      timeoutMs: 2_000,
      intervalMs: 20,
      until: (sessions) => sessions === 0,
    });
    assert.equal(listener.sessionCount, 0, 'the session and what it held are gone');
  });
});

describe('a connection flood against an engine', () => {
  it('delivers a partner’s message while ten addresses fill the connector, sheds the idle flood within the stress timeout, and logs and exposes the stress', async (t) => {
    const state = await tempDir('domsec-receive-stress-');
    const running = await startEngine(state.path);
    const clients: LineClient[] = [];
    t.after(async () => {
      for (const client of clients) client.close();
      await running.stop();
      await state.remove();
    });
    await running.engine.apply(
      runtimeConfig({
        adatum: { remoteIPRanges: [`${PARTNER_ADDRESS}/32`] },
        receiveConnector: {
          maxInboundConnection: 200,
          maxInboundConnectionPerSource: 20,
          stressInactivityTimeout: '1s',
        },
      }),
    );
    const port = running.engine.state().listeners[0]?.port;
    assert.ok(typeof port === 'number' && port > 0);
    const events = (name: string) => running.log.entries.filter((e) => e.event === name);
    const stress = async () =>
      sample(
        (await running.engine.metrics.text()).body,
        'domsec_receive_stress',
        'connector="from-partners"',
      );
    const open = async (localAddress: string) => {
      const client = await LineClient.open(port, '127.0.0.1', localAddress);
      clients.push(client);
      return client;
    };

    // Ten source addresses, twenty each (the per-source limit): 200 sessions asked for.
    const flooding = Date.now();
    const flood = await Promise.all(
      Array.from({ length: 200 }, (_, i) => open(`127.0.0.${10 + (i % 10)}`)),
    );
    const greetings = await Promise.all(flood.map((c) => c.reply().catch((e: Error) => e.message)));
    const greeted = flood.filter((_, i) => greetings[i]?.startsWith('220 '));
    assert.equal(greeted.length, 180, 'strangers get 90% of maxInboundConnection');
    assert.equal(greetings.filter((g) => g.startsWith('421 4.3.2 ')).length, 20);
    assert.equal(events('receive.stress-started').length, 1);
    assert.equal(events('receive.stress-started')[0]?.fields.sessions, 160);
    assert.equal(await stress(), 1, 'the gauge shows the stress');

    // Full for strangers: one more from elsewhere is refused, the partner is not.
    const stranger = await open('127.0.0.30');
    assert.match(await stranger.reply(), /^421 4\.3\.2 /);
    const outcome = await submit(
      port,
      { from: 'alice@adatum.com', to: ['bob@treyresearch.net'] },
      {
        certificate: lab().adatumMail,
        serverCa: lab().treyRoot.certPem,
        localAddress: PARTNER_ADDRESS,
      },
      MESSAGE,
    );
    assert.equal(outcome.code, 250, outcome.response);
    assert.match(outcome.response, /^250 2\.6\.0 /);

    // The flood never says a word: every session is closed a stress timeout after its connect.
    await Promise.all(
      greeted.map(async (client) => {
        assert.equal(
          await client.reply(5_000),
          '421 4.4.2 Idle timeout, closing transmission channel',
        );
        await client.closedByServer(5_000);
      }),
    );
    const shedMs = Date.now() - flooding;
    console.log(`flood of 180 idle sessions shed ${shedMs} ms after it began (stress timeout 1 s)`);
    assert.ok(shedMs < 3_500, `shed in ${shedMs} ms`);
    await eventually('the stress to end', () => events('receive.stress-ended').length > 0, {
      timeoutMs: 2_000,
      intervalMs: 20,
    });
    const ended = events('receive.stress-ended')[0]?.fields;
    assert.equal(ended?.connector, 'from-partners');
    assert.ok(Number(ended?.refused) >= 21, `refused under stress: ${String(ended?.refused)}`);
    assert.equal(await stress(), 0, 'the gauge follows the end');
    const after = await open('127.0.0.30');
    assert.match(await after.reply(), /^220 /, 'strangers are served again');
  });
});
