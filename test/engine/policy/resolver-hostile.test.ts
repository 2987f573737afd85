// A hostile or broken DNS server against the policy resolver: random bytes, an answer with another
// id, an answer to another question, a truncated answer whose TCP side is closed. Each is a
// look-up error within the bound (a TLSA look-up that fails defers), never an answer, never secure.
import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import { after, before, describe, it } from 'node:test';
import dnsPacket from 'dns-packet';
import fc from 'fast-check';
import { DnsLookupError, PolicyResolver } from '../../../src/engine/policy/resolver.js';

type Reply = (query: Buffer) => Buffer | undefined;

describe('policy resolver against a hostile server', () => {
  let socket: Socket;
  let port = 0;
  let reply: Reply = () => undefined;

  before(async () => {
    socket = createSocket('udp4');
    socket.on('message', (message, remote) => {
      const answer = reply(message);
      if (answer !== undefined) socket.send(answer, remote.port, remote.address);
    });
    port = await new Promise<number>((resolve) =>
      socket.bind(0, '127.0.0.1', () => resolve(socket.address().port)),
    );
  });
  after(() => new Promise<void>((resolve) => socket.close(() => resolve())));

  const resolver = () =>
    new PolicyResolver({
      servers: [`127.0.0.1:${port}`],
      validating: true,
      timeoutMs: 60,
      tries: 1,
    });
  const response = (query: Buffer, change: (packet: dnsPacket.Packet) => dnsPacket.Packet) => {
    const decoded = dnsPacket.decode(query);
    return dnsPacket.encode(
      change({
        type: 'response',
        id: decoded.id ?? 0,
        flags: dnsPacket.AUTHENTIC_DATA,
        questions: decoded.questions ?? [],
        answers: [{ type: 'TXT', name: '_mta-sts.fabrikam.example', data: 'v=STSv1; id=evil' }],
      }),
    );
  };
  const fails = async (pattern: RegExp) => {
    await assert.rejects(resolver().txt('_mta-sts.fabrikam.example'), (error: unknown) => {
      assert.ok(error instanceof DnsLookupError, String(error));
      assert.match(error.message, pattern);
      return true;
    });
  };

  it('fails on random bytes, whatever they are (property)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ minLength: 0, maxLength: 600 }), async (bytes) => {
        reply = () => Buffer.from(bytes);
        await fails(/timeout|another question|SERVFAIL|REFUSED|[A-Z]+$/);
      }),
      { numRuns: 25 },
    );
  });

  it('ignores an answer with another id (a blind spoof) and times out', async () => {
    reply = (query) =>
      response(query, (packet) => ({ ...packet, id: ((packet.id ?? 0) + 1) % 65_536 }));
    await fails(/timeout after 60 ms/);
  });

  it('refuses an answer to another question', async () => {
    reply = (query) =>
      response(query, (packet) => ({
        ...packet,
        questions: [{ type: 'TXT', name: '_mta-sts.evil.example' }],
      }));
    await fails(/the answer is for another question/);
  });

  it('fails when a truncated answer cannot be had over TCP', async () => {
    reply = (query) => response(query, (packet) => ({ ...packet, flags: 1 << 9, answers: [] }));
    await fails(/TCP: connect ECONNREFUSED|TCP/);
  });

  it('takes a well-formed answer, secure only from a resolver named validating', async () => {
    reply = (query) => response(query, (packet) => packet);
    assert.deepEqual(await resolver().txt('_mta-sts.fabrikam.example'), {
      status: 'answer',
      records: ['v=STSv1; id=evil'],
      secure: true,
    });
    const plain = new PolicyResolver({
      servers: [`127.0.0.1:${port}`],
      validating: false,
      timeoutMs: 200,
    });
    assert.equal((await plain.txt('_mta-sts.fabrikam.example')).secure, false);
  });
});
