// OpenSSL's verdict on a TLS peer, read one way on both sides: authorizationCode gives the code as
// a string, or null once the chain verified. Real handshakes on loopback with the lab's PKI; the
// receive side's tlsFacts carries the same reading.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { after, describe, it } from 'node:test';
import { connect, createServer, type TLSSocket } from 'node:tls';
import { tlsFacts } from '../../src/engine/receive/server-tls.js';
import { authorizationCode } from '../../src/engine/tls/verify.js';
import { lab } from '../support/lab.js';

describe('authorizationCode', () => {
  const servers: ReturnType<typeof createServer>[] = [];
  after(async () => {
    for (const server of servers) await new Promise((resolve) => server.close(resolve));
  });

  /** adatum's server, asking for a client certificate against `clientCa`; resolves both ends. */
  async function handshake(options: {
    clientCa?: string;
    clientCert?: { certPem: string; keyPem: string };
    serverClientCa: string;
  }): Promise<{ client: TLSSocket; server: TLSSocket }> {
    const { adatumMail } = lab();
    const accepted: TLSSocket[] = [];
    const server = createServer({
      key: adatumMail.keyPem,
      cert: adatumMail.certPem,
      ca: [options.serverClientCa],
      requestCert: true,
      rejectUnauthorized: false,
    });
    servers.push(server);
    const secured = new Promise<void>((resolve) =>
      server.once('secureConnection', (socket: TLSSocket) => {
        accepted.push(socket);
        resolve();
      }),
    );
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const { port } = server.address() as AddressInfo;
    const client = connect({
      host: '127.0.0.1',
      port,
      rejectUnauthorized: false,
      checkServerIdentity: () => undefined,
      ...(options.clientCa === undefined ? {} : { ca: [options.clientCa] }),
      ...(options.clientCert === undefined
        ? {}
        : { key: options.clientCert.keyPem, cert: options.clientCert.certPem }),
    });
    await Promise.race([
      Promise.all([once(client, 'secureConnect'), secured]),
      new Promise((_, reject) =>
        setTimeout(() => reject(new Error('no handshake in 10 s')), 10_000),
      ),
    ]);
    const socket = accepted[0];
    assert.ok(socket !== undefined);
    client.on('error', () => undefined);
    return { client, server: socket };
  }

  it('is null for a chain that verified, on both sides', async () => {
    const { adatumRoot, treyRoot, treyMail } = lab();
    const { client, server } = await handshake({
      clientCa: adatumRoot.certPem,
      clientCert: treyMail,
      serverClientCa: treyRoot.certPem,
    });
    assert.equal(client.authorized, true);
    assert.equal(authorizationCode(client), null);
    assert.equal(authorizationCode(server), null);
    assert.equal(tlsFacts(server).authorizationError, null);
    assert.equal(tlsFacts(server).authorized, true);
    client.destroy();
  });

  it("is OpenSSL's code as a string for a chain that did not verify, on both sides", async () => {
    const { treyRoot, strangerAdatum } = lab();
    // The client trusts trey's root only (not adatum's); the server trusts trey's root only (not the stranger's).
    const { client, server } = await handshake({
      clientCa: treyRoot.certPem,
      clientCert: strangerAdatum,
      serverClientCa: treyRoot.certPem,
    });
    const clientCode = authorizationCode(client);
    const serverCode = authorizationCode(server);
    assert.equal(client.authorized, false);
    for (const code of [clientCode, serverCode]) {
      assert.equal(typeof code, 'string');
      assert.match(String(code), /^[A-Z][A-Z_]+$/, 'an OpenSSL code, not a message');
    }
    assert.equal(tlsFacts(server).authorizationError, serverCode);
    assert.equal(tlsFacts(server).authorized, false);
    client.destroy();
  });
});
