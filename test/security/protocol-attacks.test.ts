// Protocol attacks against a real engine's receive connector, over raw sockets: each case asserts
// the exact replies (or the closure) and that nothing was queued or delivered that must not be.
// Already covered elsewhere, and not repeated here (test/engine/receive-limits.test.ts): an
// over-long command line (500 5.5.2), the idle and session timeouts, too many recipients, too many
// connections per client and per connector, junk and unknown command floods.
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { connect as connectTcp, type Socket } from 'node:net';
import { join } from 'node:path';
import { connect as connectTls } from 'node:tls';
import { after, afterEach, before, describe, it } from 'node:test';
import { lab } from '../support/lab.js';
import { eventually, startEngine, type RunningEngine } from '../support/engine.js';
import { freePort } from '../support/ports.js';
import { receiveConnector, runtimeConfig } from '../support/runtime-config.js';
import { tempDir } from '../support/tmp.js';
import { deliveredIds, queueFiles } from '../reliability/partner-lab.js';

/** A client that writes exactly the bytes it is given and can switch to TLS mid-stream. */
class RawClient {
  private buffer = '';
  private closed = false;
  private socket: Socket;

  private constructor(socket: Socket) {
    this.socket = socket;
    this.listen(socket);
  }

  static async open(port: number): Promise<RawClient> {
    const socket = connectTcp({ port, host: '127.0.0.1', noDelay: true });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    return new RawClient(socket);
  }

  private listen(socket: Socket): void {
    socket.on('data', (chunk: Buffer) => (this.buffer += chunk.toString('latin1')));
    socket.on('close', () => (this.closed = true));
    socket.on('error', () => undefined);
  }

  write(bytes: string): void {
    this.socket.write(Buffer.from(bytes, 'latin1'));
  }

  /** The next complete reply (all lines of a multi-line one), within the bound. */
  async reply(timeout = 5_000): Promise<string> {
    const deadline = Date.now() + timeout;
    for (;;) {
      const match = /^(?:\d{3}-[^\r\n]*\r\n)*\d{3}(?: [^\r\n]*)?\r\n/.exec(this.buffer);
      if (match !== null) {
        this.buffer = this.buffer.slice(match[0].length);
        return match[0].trimEnd();
      }
      if (this.closed) throw new Error(`connection closed; unread: ${JSON.stringify(this.buffer)}`);
      if (Date.now() > deadline) throw new Error(`no reply within ${timeout} ms`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  /** Whatever arrives within `ms` that no command asked for. */
  async unsolicited(ms = 300): Promise<string> {
    await new Promise((resolve) => setTimeout(resolve, ms));
    const extra = this.buffer;
    this.buffer = '';
    return extra;
  }

  /** STARTTLS's handshake on the same TCP connection; the server must have said 220 already. */
  async startTls(ca: string, servername: string): Promise<void> {
    this.socket.removeAllListeners('data');
    const secure = connectTls({ socket: this.socket, ca: [ca], servername });
    await new Promise<void>((resolve, reject) => {
      secure.once('secureConnect', resolve);
      secure.once('error', reject);
    });
    this.socket = secure;
    this.listen(secure);
  }

  async closedByServer(timeout = 5_000): Promise<void> {
    await eventually('the server to close the connection', () => this.closed, timeout);
  }

  close(): void {
    this.socket.destroy();
  }
}

const ATTACKER = 'mail.fabrikam.com';
const SENDER = 'someone@fabrikam.com';
const RECIPIENT = 'user@treyresearch.net';

describe('protocol attacks', () => {
  let work: Awaited<ReturnType<typeof tempDir>>;
  let running: RunningEngine;
  let port: number;
  let guardedPort: number;
  const clients: RawClient[] = [];
  const figures = { tried: 0, refused: 0 };

  before(async () => {
    work = await tempDir('domsec-attacks-');
    running = await startEngine(work.path);
    port = await freePort();
    guardedPort = await freePort();
    const plaintext = { domainSecure: false, requireTls: false, maxMessageSize: '64KB' };
    await running.client.apply(
      runtimeConfig({
        receiveConnectors: [
          receiveConnector('open', {
            ...plaintext,
            bindings: [`127.0.0.1:${port}`],
          }),
          receiveConnector('guarded', {
            ...plaintext,
            bindings: [`127.0.0.1:${guardedPort}`],
            connectionTimeout: '2s',
            maxInboundConnectionPerSource: 20,
          }),
        ],
      }),
    );
  });
  afterEach(() => {
    for (const client of clients.splice(0)) client.close();
  });
  after(async () => {
    console.log(`protocol-attack figures: ${JSON.stringify(figures)}`);
    await running.stop();
    await work.remove();
  });

  async function open(at = port): Promise<RawClient> {
    const client = await RawClient.open(at);
    clients.push(client);
    assert.match(await client.reply(), /^220 /);
    return client;
  }

  /** EHLO, MAIL, RCPT and DATA, each answered as a plain transaction is. */
  async function startData(client: RawClient, recipients = [RECIPIENT]): Promise<void> {
    client.write(`EHLO ${ATTACKER}\r\n`);
    assert.match(await client.reply(), /^250-/);
    client.write(`MAIL FROM:<${SENDER}>\r\n`);
    assert.match(await client.reply(), /^250 /);
    for (const recipient of recipients) {
      client.write(`RCPT TO:<${recipient}>\r\n`);
      assert.match(await client.reply(), /^250 /);
    }
    client.write('DATA\r\n');
    assert.match(await client.reply(), /^354 /);
  }

  const mail = () => join(work.path, 'mail');

  /** Delivered messages of this test id (the Maildir is shared by the cases, ids are not). */
  async function copiesOf(id: string): Promise<number> {
    return (await deliveredIds(mail())).get(id) ?? 0;
  }

  /** A refused attempt: nothing of it in the queue, and nothing in any Maildir after a pause. */
  async function assertNothingKept(id: string): Promise<void> {
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(await copiesOf(id), 0, `${id} was delivered`);
    assert.deepEqual((await queueFiles(join(work.path, 'queue'))).control, []);
  }

  it('discards commands pipelined behind STARTTLS: none is answered or applied inside TLS', async () => {
    figures.tried += 1;
    const client = await open();
    client.write(`EHLO ${ATTACKER}\r\n`);
    assert.match(await client.reply(), /STARTTLS/);
    // One packet: STARTTLS and the injected commands a man in the middle appended.
    client.write(`STARTTLS\r\nRSET\r\nMAIL FROM:<injected@fabrikam.com>\r\n`);
    assert.match(await client.reply(), /^220 /);
    assert.equal(
      await client.unsolicited(200),
      '',
      'no reply to the injected commands in plaintext',
    );
    await client.startTls(lab().treyRoot.certPem, 'mail.treyresearch.net');
    client.write(`EHLO ${ATTACKER}\r\n`);
    // The first reply inside TLS answers our EHLO, not the injected RSET ("250 Flushed").
    assert.match(await client.reply(), /^250-mail\.treyresearch\.net/);
    // The injected MAIL FROM set no sender: RCPT without MAIL is out of sequence.
    client.write(`RCPT TO:<${RECIPIENT}>\r\n`);
    assert.match(await client.reply(), /^503 /);
    assert.equal(await client.unsolicited(), '');
    figures.refused += 1;
  });

  const smuggling: [string, string][] = [
    ['LF . CRLF', '\n.\r\n'],
    ['CR . LF', '\r.\n'],
    ['LF . LF', '\n.\n'],
    ['CRLF . LF', '\r\n.\n'],
  ];
  for (const [name, fakeEnd] of smuggling) {
    it(`never takes "${name}" as the end of data: one message with the smuggled bytes, no second transaction`, async () => {
      figures.tried += 1;
      const id = `smuggle-${name.replace(/[^A-Z]+/g, '')}`;
      const client = await open();
      await startData(client);
      const smuggled =
        `MAIL FROM:<forged@treyresearch.net>\r\nRCPT TO:<victim@treyresearch.net>\r\nDATA\r\n` +
        `X-Test-Id: ${id}-smuggled\r\n\r\nsmuggled\r\n`;
      client.write(
        `X-Test-Id: ${id}\r\nSubject: smuggling\r\n\r\nfirst part${fakeEnd}${smuggled}.\r\n`,
      );
      // One 250 for one message, then QUIT's 221: a split would answer MAIL, RCPT, DATA, ... too.
      assert.match(await client.reply(), /^250 2\.6\.0 /);
      client.write('QUIT\r\n');
      assert.match(await client.reply(), /^221 /);
      const copies = await eventually('the message in its Maildir', async () => {
        const ids = await deliveredIds(mail());
        return ids.has(id) ? ids : undefined;
      });
      assert.equal(copies.get(id), 1);
      assert.equal(copies.has(`${id}-smuggled`), false, 'no second message');
      const inbox = join(mail(), 'treyresearch.net', 'user', 'new');
      const files = await Promise.all(
        (await readdir(inbox)).map((name) => readFile(join(inbox, name), 'latin1')),
      );
      const delivered = files.find((text) => text.includes(`X-Test-Id: ${id}\r\n`)) ?? '';
      // Stored as every reader after us reads it: each bare CR and bare LF made CRLF.
      const stored = fakeEnd.replace(/\r\n|\r|\n/g, '\r\n');
      assert.ok(
        delivered.includes(`first part${stored}MAIL FROM:<forged@treyresearch.net>`),
        'the smuggled bytes are the message’s own content',
      );
      assert.equal(await copiesOf(`${id}-smuggled`), 0);
      figures.refused += 1;
    });
  }

  it('refuses a 200 kB line in DATA over the connector’s 64 kB with 552 5.3.4, keeps nothing, and the session goes on', async () => {
    figures.tried += 1;
    const client = await open();
    await startData(client);
    client.write(`X-Test-Id: long-line\r\n\r\n${'x'.repeat(200 * 1024)}\r\n.\r\n`);
    assert.match(await client.reply(), /^552 5\.3\.4 /);
    client.write('RSET\r\n');
    assert.match(await client.reply(), /^250 /);
    await assertNothingKept('long-line');
    figures.refused += 1;
  });

  it('ends a client dripping its message a byte at a time past connectionTimeout with 421 4.4.2, keeping nothing', async () => {
    figures.tried += 1;
    const client = await open(guardedPort);
    await startData(client);
    const drip = 'X-Test-Id: slow-drip\r\n\r\n' + 'slow '.repeat(200);
    let closed = false;
    const dripping = (async () => {
      for (const byte of drip) {
        if (closed) return;
        client.write(byte);
        await new Promise((resolve) => setTimeout(resolve, 50)); // never idle, always late
      }
    })();
    assert.match(await client.reply(6_000), /^421 4\.4\.2 /);
    await client.closedByServer();
    closed = true;
    await dripping;
    await assertNothingKept('slow-drip');
    figures.refused += 1;
  });

  it('turns away a flood of 200 connections from one address past its limit with 421 4.7.0 and serves again after', async () => {
    figures.tried += 1;
    const flood = await Promise.all(
      Array.from({ length: 200 }, () =>
        RawClient.open(guardedPort).then((c) => (clients.push(c), c)),
      ),
    );
    const greetings = await Promise.all(flood.map((c) => c.reply().catch((e: Error) => e.message)));
    const admitted = greetings.filter((g) => g.startsWith('220 ')).length;
    const refused = greetings.filter((g) => g.startsWith('421 4.7.0 ')).length;
    assert.equal(admitted, 20, greetings.join('\n'));
    assert.equal(refused, 180);
    for (const c of flood) c.close();
    // The counts are released with the sockets: a normal transaction goes through again.
    await eventually('a session admitted after the flood', async () => {
      const client = await RawClient.open(guardedPort);
      clients.push(client);
      const greeting = await client.reply();
      client.close();
      return greeting.startsWith('220 ') ? true : undefined;
    });
    figures.refused += 1;
  });

  it('delivers nothing of a message whose client drops in the middle of DATA', async () => {
    figures.tried += 1;
    const client = await open();
    await startData(client);
    client.write(`X-Test-Id: dropped\r\nSubject: half\r\n\r\nthe first half of the body\r\n`);
    await new Promise((resolve) => setTimeout(resolve, 100));
    client.close();
    await assertNothingKept('dropped');
    // The engine is unharmed: the next client's message is delivered.
    const next = await open();
    await startData(next);
    next.write('X-Test-Id: after-drop\r\n\r\nwhole\r\n.\r\n');
    assert.match(await next.reply(), /^250 /);
    await eventually('the next message', async () =>
      (await copiesOf('after-drop')) === 1 ? true : undefined,
    );
    figures.refused += 1;
  });
});
