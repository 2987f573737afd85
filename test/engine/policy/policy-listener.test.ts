// serve answers our MTA-STS policy over real HTTPS on loopback (Organization mtaSts.listen), with
// the Organization certificate from the lab CA: exactly the text `dns records` prints (its id is
// the hash of what is served), only GET /.well-known/mta-sts.txt for mta-sts.<accepted domain>;
// an apply swaps policy and certificate on the same listener, and one without `listen` closes it.
import assert from 'node:assert/strict';
import { createHash, X509Certificate } from 'node:crypto';
import { request } from 'node:https';
import { createServer, type AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { dnsRecords } from '../../../src/cli/dns.js';
import { domainName } from '../../../src/domain-name.js';
import { answer, type ServedPolicy } from '../../../src/engine/policy/policy-listener.js';
import type { OrganizationSpec } from '../../../src/model.js';
import { issueCertificate, type IssuedCertificate } from '../../../src/pki/lab.js';
import { startEngine } from '../../support/engine.js';
import { lab } from '../../support/lab.js';
import {
  certificate,
  ORGANIZATION_CERTIFICATE,
  runtimeConfig,
} from '../../support/runtime-config.js';
import { tempDir } from '../../support/tmp.js';

const HOST = 'mta-sts.treyresearch.net';

const issued = (): IssuedCertificate =>
  issueCertificate(lab().treyRoot, {
    commonName: 'mail.treyresearch.net',
    dnsNames: ['mail.treyresearch.net', 'treyresearch.net', HOST],
  });

const config = (mtaSts: OrganizationSpec['mtaSts'], cert: IssuedCertificate = lab().treyMail) =>
  runtimeConfig({
    organization: mtaSts === undefined ? {} : { mtaSts },
    certificates: [certificate(ORGANIZATION_CERTIFICATE, cert)],
  });

interface Reply {
  status: number;
  type: string | undefined;
  body: string;
  fingerprint: string;
}

function get(
  port: number,
  options: { host?: string; path?: string; method?: string } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        servername: HOST,
        ca: lab().treyRoot.certPem,
        method: options.method ?? 'GET',
        path: options.path ?? '/.well-known/mta-sts.txt',
        headers: { host: options.host ?? HOST },
        agent: false,
        timeout: 5000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            type: res.headers['content-type'],
            body: Buffer.concat(chunks).toString('utf8'),
            fingerprint: (res.socket as TLSSocket).getPeerCertificate().fingerprint256,
          }),
        );
      },
    );
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end();
  });
}

describe('MTA-STS policy listener', () => {
  it('serves the policy dns records prints, over HTTPS with our certificate; hot reload swaps it on the same port', async (t) => {
    const state = await tempDir('domsec-policy-listener-');
    const running = await startEngine(state.path);
    t.after(async () => {
      await running.stop();
      await state.remove();
    });
    const first = issued();
    const enforce = config(
      { mode: 'enforce', mx: [], maxAge: 86400, listen: '127.0.0.1:0' },
      first,
    );
    await running.engine.apply(enforce);
    const port = running.engine.mtaStsAddress()?.port;
    assert.ok(typeof port === 'number' && port > 0);

    const served = await get(port);
    assert.equal(served.status, 200);
    assert.equal(served.type, 'text/plain; charset=utf-8');
    const records = dnsRecords(enforce);
    assert.equal(served.body, records.mtaSts?.policy);
    assert.equal(
      records.mtaSts?.id,
      createHash('sha256').update(served.body).digest('hex').slice(0, 32),
    );
    assert.match(
      served.body,
      /^version: STSv1\r\nmode: enforce\r\nmx: mail\.treyresearch\.net\r\n/,
    );
    assert.equal(served.fingerprint, new X509Certificate(first.certPem).fingerprint256);

    // The Host header names the policy host in any spelling of it; nothing else is served.
    assert.equal((await get(port, { host: `MTA-STS.TreyResearch.NET:${port}` })).status, 200);
    assert.equal((await get(port, { host: 'mta-sts.adatum.com' })).status, 404);
    assert.equal((await get(port, { host: 'treyresearch.net' })).status, 404);
    assert.equal((await get(port, { host: '127.0.0.1' })).status, 404);
    assert.equal((await get(port, { path: '/' })).status, 404);
    assert.equal((await get(port, { path: '/.well-known/mta-sts.txt?x=1' })).status, 404);
    assert.equal((await get(port, { method: 'POST' })).status, 404);

    // Next generation, same listener: the new policy and the new certificate, no restart.
    const second = issued();
    const testing = config(
      { mode: 'testing', mx: ['*.treyresearch.net'], maxAge: 86400, listen: '127.0.0.1:0' },
      second,
    );
    await running.engine.apply(testing);
    assert.equal(running.engine.mtaStsAddress()?.port, port, 'the listener was kept');
    const reloaded = await get(port);
    assert.equal(reloaded.body, dnsRecords(testing).mtaSts?.policy);
    assert.match(reloaded.body, /mode: testing\r\nmx: \*\.treyresearch\.net\r\n/);
    assert.notEqual(dnsRecords(testing).mtaSts?.id, records.mtaSts?.id);
    assert.equal(reloaded.fingerprint, new X509Certificate(second.certPem).fingerprint256);

    // A listener that cannot be bound fails the apply; the running one keeps serving.
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    t.after(() => new Promise<void>((resolve) => taken.close(() => resolve())));
    const takenPort = (taken.address() as AddressInfo).port;
    await assert.rejects(
      running.engine.apply(
        config({ mode: 'none', mx: [], maxAge: 86400, listen: `127.0.0.1:${takenPort}` }, second),
      ),
      new RegExp(`cannot bind 127\\.0\\.0\\.1:${takenPort}`),
    );
    assert.equal(running.engine.mtaStsAddress()?.port, port);
    assert.match((await get(port)).body, /mode: testing/);

    // Without listen the policy is no longer served.
    await running.engine.apply(config({ mode: 'testing', mx: [], maxAge: 86400 }, second));
    assert.equal(running.engine.mtaStsAddress(), null);
    await assert.rejects(get(port), /ECONNREFUSED|ECONNRESET/);
  });

  it('answers 200 only for GET of the policy path at a name equal to mta-sts.<accepted domain>', () => {
    const host = domainName(HOST);
    assert.ok(host !== undefined);
    const served: ServedPolicy = { policy: 'version: STSv1\r\n', hosts: new Set([host]) };
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string(),
          fc.constantFrom(HOST, `${HOST}.`, `${HOST}:443`, 'MTA-STS.treyresearch.net'),
        ),
        fc.constantFrom('GET', 'HEAD', 'POST', 'get'),
        fc.oneof(fc.string(), fc.constant('/.well-known/mta-sts.txt')),
        (header, method, url) => {
          const result = answer(served, { method, url, host: header });
          const named = domainName(header.replace(/:\d{1,5}$/, '')) === host;
          const expected =
            method === 'GET' && url === '/.well-known/mta-sts.txt' && named ? 200 : 404;
          assert.equal(result.status, expected, JSON.stringify({ header, method, url }));
        },
      ),
      { numRuns: 500 },
    );
    assert.equal(
      answer(undefined, { method: 'GET', url: '/.well-known/mta-sts.txt', host: HOST }).status,
      404,
    );
  });
});
