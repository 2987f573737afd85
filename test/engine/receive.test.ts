// The receive side over real sockets: smtp-server on 127.0.0.1, lab certificates, nodemailer's
// SMTP client presenting (or not) a client certificate. No mocks of TLS or SMTP.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { before, describe, it, type TestContext } from 'node:test';
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import { buildGeneration, type Generation } from '../../src/engine/generation.js';
import { memoryLog } from '../../src/engine/log.js';
import { ProtocolLog } from '../../src/engine/protocol-log.js';
import { ReceiveListener } from '../../src/engine/receive.js';
import { parseBinding } from '../../src/engine/addresses.js';
import { issueCertificate, type IssuedCertificate } from '../../src/pki/lab.js';
import { eventually } from '../support/eventually.js';
import { lab } from '../support/lab.js';
import { MemorySink, receiving, type Receiving } from '../support/receiving.js';
import {
  submit as submitMessage,
  type SubmitClient,
  type SubmitOutcome,
} from '../support/smtp-submit.js';
import {
  partnerDomain,
  receiveConnector,
  runtimeConfig,
  trustAnchor,
  type RuntimeConfigOverrides,
} from '../support/runtime-config.js';
import { tempDir } from '../support/tmp.js';

const ADATUM_NAMES = { commonName: 'mail.adatum.com', dnsNames: ['mail.adatum.com', 'adatum.com'] };

/** Keeps what it is given; fails the way it is told to. */
/** A listener serving one generation, its protocol log written to a directory when given. */
function start(
  t: TestContext,
  generation: Generation,
  protocolDirectory: string | null = null,
): Promise<Receiving> {
  return receiving(t, generation, { protocolDirectory, closeTimeout: 1_000 });
}

function generation(overrides: RuntimeConfigOverrides = {}, number = 1): Generation {
  return buildGeneration(runtimeConfig(overrides), number);
}

type ClientOptions = Omit<SubmitClient, 'serverCa'>;
type Outcome = SubmitOutcome;

const MESSAGE = [
  'From: Someone <someone@adatum.com>',
  'To: user@treyresearch.net',
  'Subject: hello',
  'X-Domsec-AuthAs: Partner',
  'X-Domsec-Partner:',
  ' forged.example',
  'Authentication-Results: mail.treyresearch.net; x-domsec=pass',
  '',
  'The body stays as it is.',
  '',
].join('\r\n');

/** One SMTP transaction (test/support/smtp-submit.ts) trusting treyresearch's server certificate. */
function submit(
  port: number,
  envelope: { from: string; to: string[]; size?: number },
  client: ClientOptions = {},
  message: string = MESSAGE,
): Promise<Outcome> {
  return submitMessage(port, envelope, { ...client, serverCa: lab().treyRoot.certPem }, message);
}

function assertReply(outcome: Outcome, code: number, enhanced: string): void {
  assert.equal(outcome.code, code, outcome.response);
  assert.ok(
    outcome.response.startsWith(`${code} ${enhanced} `),
    `expected "${code} ${enhanced} ...", got ${JSON.stringify(outcome.response)}`,
  );
}

const fromAdatum = { from: 'someone@adatum.com', to: ['user@treyresearch.net'] };
const fromFabrikam = { from: 'someone@fabrikam.com', to: ['user@treyresearch.net'] };

let extra: { serverAuthOnly: IssuedCertificate; treyClaimingAdatum: IssuedCertificate };
before(() => {
  const { adatumRoot, treyRoot } = lab();
  extra = {
    serverAuthOnly: issueCertificate(adatumRoot, {
      ...ADATUM_NAMES,
      extendedKeyUsage: ['serverAuth'],
    }),
    treyClaimingAdatum: issueCertificate(treyRoot, ADATUM_NAMES),
  };
});

describe('ReceiveListener', () => {
  it('accepts a partner presenting adatum’s certificate and marks the message', async (t) => {
    const { port, sink } = await start(t, generation());
    const outcome = await submit(port, fromAdatum, { certificate: lab().adatumMail });
    assertReply(outcome, 250, '2.6.0');
    assert.match(outcome.response, /queued as Q1/);
    assert.equal(sink.messages.length, 1);
    const message = sink.messages[0];
    assert.ok(message);
    assert.deepEqual(message.domainSecured, {
      partner: 'adatum.com',
      certificateSubject: 'CN=mail.adatum.com',
      certificateFingerprint: lab().adatumMail.fingerprint,
      certificateNotAfter: new X509Certificate(lab().adatumMail.certPem).validTo,
    });
    assert.equal(message.from, 'someone@adatum.com');
    assert.deepEqual(message.recipients, ['user@treyresearch.net']);
    assert.equal(message.connector, 'from-partners');
    const text = message.body.toString();
    const [header = '', body] = text.split('\r\n\r\n');
    assert.match(header, /^X-Domsec-AuthAs: Partner\r\nX-Domsec-Partner: adatum\.com\r\n/);
    assert.match(
      header,
      /Authentication-Results: mail\.treyresearch\.net;\r\n\tx-domsec=pass \(mutual TLS\)/,
    );
    assert.match(header, new RegExp(`x-domsec.fingerprint="${lab().adatumMail.fingerprint}"`));
    assert.match(header, /Received: from mail\.adatum\.com \(\[127\.0\.0\.1\]\)/);
    assert.equal(header.match(/X-Domsec-AuthAs/g)?.length, 1, 'the forged field is gone');
    assert.doesNotMatch(header, /forged\.example/);
    assert.equal(header.match(/x-domsec=pass/g)?.length, 1);
    assert.equal(body, 'The body stays as it is.\r\n');
  });

  it('accepts a partner certificate whose EKU is serverAuth only (OpenSSL: INVALID_PURPOSE)', async (t) => {
    const { port, sink } = await start(t, generation());
    const outcome = await submit(port, fromAdatum, { certificate: extra.serverAuthOnly });
    assertReply(outcome, 250, '2.6.0');
    assert.equal(
      sink.messages[0]?.domainSecured?.certificateFingerprint,
      extra.serverAuthOnly.fingerprint,
    );
  });

  describe('refuses a partner, and queues nothing, when', () => {
    const refusals: [string, () => ClientOptions, RegExp][] = [
      [
        'its certificate is from a CA nobody trusts',
        () => ({ certificate: lab().strangerAdatum }),
        /not issued by a trust anchor of partner adatum\.com/,
      ],
      [
        'its certificate expired',
        () => ({ certificate: lab().adatumExpired }),
        /^certificate expired on/,
      ],
      [
        'its certificate names another domain',
        () => ({ certificate: lab().adatumWrongName }),
        /names mail\.contoso\.com, expected adatum\.com/,
      ],
      ['it presents no certificate over TLS', () => ({}), /^no client certificate$/],
    ];
    for (const [when, client, reason] of refusals) {
      it(`${when}: 454 4.7.5, reason logged once`, async (t) => {
        const { port, sink, log } = await start(t, generation());
        assertReply(await submit(port, fromAdatum, client()), 454, '4.7.5');
        assert.equal(sink.messages.length, 0);
        const logged = log.entries.filter((e) => e.event === 'partner.refused');
        assert.equal(logged.length, 1);
        assert.equal(logged[0]?.fields.partner, 'adatum.com');
        assert.match(String(logged[0]?.fields.reason), reason);
      });
    }

    it('its certificate chains to another partner’s anchor, which OpenSSL trusts: 454 4.7.5', async (t) => {
      // trey's root is in the server's CA list for fabrikam's sake, so OpenSSL says "authorized".
      const { treyRoot, adatumRoot } = lab();
      const { port, sink, log } = await start(
        t,
        generation({
          trustAnchors: [
            trustAnchor('adatum-root', adatumRoot),
            trustAnchor('trey-root', treyRoot),
          ],
          partners: [
            partnerDomain('adatum', { domain: 'adatum.com' }),
            partnerDomain('fabrikam', { domain: 'fabrikam.com', trustAnchors: ['trey-root'] }),
          ],
        }),
      );
      assertReply(
        await submit(port, fromAdatum, { certificate: extra.treyClaimingAdatum }),
        454,
        '4.7.5',
      );
      assert.equal(sink.messages.length, 0);
      assert.match(
        String(log.entries.find((e) => e.event === 'partner.refused')?.fields.reason),
        /trust anchor/,
      );
    });

    it('it connects from outside the partner’s remoteIPRanges: 454 4.7.5', async (t) => {
      const { port, sink, log } = await start(
        t,
        generation({ adatum: { remoteIPRanges: ['192.0.2.0/24'] } }),
      );
      assertReply(await submit(port, fromAdatum, { certificate: lab().adatumMail }), 454, '4.7.5');
      assert.equal(sink.messages.length, 0);
      assert.match(
        String(log.entries.find((e) => e.event === 'partner.refused')?.fields.reason),
        /outside/,
      );
    });

    it('it speaks plaintext: 530 5.7.0, even on a connector that does not require TLS', async (t) => {
      const open = receiveConnector('internet', { domainSecure: false, requireTls: false });
      for (const config of [{}, { receiveConnectors: [open] }]) {
        const { port, sink } = await start(t, generation(config));
        assertReply(await submit(port, fromAdatum, { plaintext: true }), 530, '5.7.0');
        assert.equal(sink.messages.length, 0);
      }
    });
  });

  it('refuses plaintext from anyone on a connector that requires TLS, and lets others in where it does not', async (t) => {
    const strict = await start(t, generation());
    assertReply(await submit(strict.port, fromFabrikam, { plaintext: true }), 530, '5.7.0');
    assert.equal(strict.sink.messages.length, 0);
    const open = await start(
      t,
      generation({
        receiveConnectors: [
          receiveConnector('internet', { domainSecure: false, requireTls: false }),
        ],
      }),
    );
    assertReply(await submit(open.port, fromFabrikam, { plaintext: true }), 250, '2.6.0');
    const header = open.sink.messages[0]?.body.toString().split('\r\n\r\n')[0] ?? '';
    assert.doesNotMatch(header, /^(X-Domsec-|Authentication-Results)/im, 'no marking without TLS');
  });

  it('refuses a relay attempt to a domain that is not accepted: 550 5.7.1', async (t) => {
    const { port, sink } = await start(t, generation());
    const relay = { from: 'someone@adatum.com', to: ['someone@contoso.com'] };
    assertReply(await submit(port, relay, { certificate: lab().adatumMail }), 550, '5.7.1');
    assert.equal(sink.messages.length, 0);
  });

  it('relays for a connector that permits it', async (t) => {
    const { port, sink } = await start(
      t,
      generation({ receiveConnectors: [receiveConnector('internal', { permitRelay: true })] }),
    );
    const relay = { from: 'someone@fabrikam.com', to: ['someone@contoso.com'] };
    assertReply(await submit(port, relay), 250, '2.6.0');
    assert.deepEqual(sink.messages[0]?.recipients, ['someone@contoso.com']);
  });

  it('strips a forged X-Domsec-AuthAs from a non-partner and marks it x-domsec=none', async (t) => {
    const { port, sink } = await start(t, generation());
    assertReply(await submit(port, fromFabrikam, { name: 'mail.fabrikam.com' }), 250, '2.6.0');
    const message = sink.messages[0];
    assert.ok(message);
    assert.equal(message.domainSecured, undefined);
    const header = message.body.toString().split('\r\n\r\n')[0] ?? '';
    assert.doesNotMatch(header, /^X-Domsec-/im);
    assert.match(header, /^Authentication-Results: mail\.treyresearch\.net; x-domsec=none\r\n/);
    assert.equal(header.match(/Authentication-Results/g)?.length, 1);
  });

  it('refuses a connection no connector accepts with 554 5.7.1', async (t) => {
    const { port, log } = await start(
      t,
      generation({ receiveConnector: { remoteIPRanges: ['10.0.0.0/8'] } }),
    );
    assertReply(await submit(port, fromAdatum, { certificate: lab().adatumMail }), 554, '5.7.1');
    assert.ok(log.entries.some((e) => e.event === 'receive.connection-refused'));
  });

  it('places a connection on the connector with the most specific range', async (t) => {
    const { port, sink } = await start(
      t,
      generation({
        receiveConnectors: [
          receiveConnector('internet', { remoteIPRanges: ['0.0.0.0/0'] }),
          receiveConnector('loopback', { remoteIPRanges: ['127.0.0.0/8'] }),
          receiveConnector('elsewhere', {
            remoteIPRanges: ['127.0.0.0/8'],
            bindings: ['127.0.0.2:2525'],
          }),
        ],
      }),
    );
    assertReply(await submit(port, fromAdatum, { certificate: lab().adatumMail }), 250, '2.6.0');
    assert.equal(sink.messages[0]?.connector, 'loopback');
  });

  it('enforces the placed connector’s maxMessageSize with 552 5.3.4', async (t) => {
    const { port, sink } = await start(
      t,
      generation({
        receiveConnectors: [
          receiveConnector('small', { remoteIPRanges: ['127.0.0.0/8'], maxMessageSize: '1KB' }),
          receiveConnector('large', { remoteIPRanges: ['0.0.0.0/0'], maxMessageSize: '1MB' }),
        ],
      }),
    );
    const big = `Subject: big\r\n\r\n${'x'.repeat(2000)}\r\n`;
    const client = { certificate: lab().adatumMail };
    assertReply(await submit(port, fromAdatum, client, big), 552, '5.3.4');
    // SIZE announces the largest limit on the binding; a declared size over the connector's is refused at MAIL.
    assertReply(await submit(port, { ...fromAdatum, size: 5000 }, client), 552, '5.3.4');
    assert.equal(sink.messages.length, 0);
    assertReply(await submit(port, fromAdatum, client), 250, '2.6.0');
  });

  it('answers 452 4.3.1 when the queue is out of space and 451 4.3.0 on other failures, never 250', async (t) => {
    const { port, sink, log } = await start(t, generation());
    const client = { certificate: lab().adatumMail };
    sink.failure = Object.assign(new Error('no space left on device'), { code: 'ENOSPC' });
    assertReply(await submit(port, fromAdatum, client), 452, '4.3.1');
    sink.failure = new Error('the queue is closed');
    assertReply(await submit(port, fromAdatum, client), 451, '4.3.0');
    assert.equal(sink.messages.length, 0);
    assert.equal(log.entries.filter((e) => e.event === 'receive.queue-failed').length, 2);
  });

  it('accepts, after reload with a new CA list, a certificate it refused, on the same listener', async (t) => {
    const { strangerRoot, strangerAdatum, adatumRoot } = lab();
    let current = generation();
    const sink = new MemorySink();
    const listener = new ReceiveListener({
      binding: parseBinding('127.0.0.1:0'),
      generation: () => current,
      sink,
      log: memoryLog(),
      protocolLog: new ProtocolLog(null),
      closeTimeout: 1_000,
    });
    await listener.listen();
    t.after(() => listener.close());
    const port = listener.address()?.port ?? 0;
    const client = { certificate: strangerAdatum };
    assertReply(await submit(port, fromAdatum, client), 454, '4.7.5');

    const next = generation(
      {
        trustAnchors: [
          trustAnchor('adatum-root', adatumRoot),
          trustAnchor('stranger-root', strangerRoot),
        ],
        adatum: { trustAnchors: ['adatum-root', 'stranger-root'] },
      },
      2,
    );
    listener.reload(next); // the provider still returns generation 1: reload alone must do it
    assert.equal(listener.address()?.port, port);
    assertReply(await submit(port, fromAdatum, client), 250, '2.6.0');
    assert.equal(
      sink.messages[0]?.domainSecured?.certificateFingerprint,
      strangerAdatum.fingerprint,
    );
    current = next;
  });

  it('finishes a session in flight on the generation it started with', async (t) => {
    const { adatumRoot, strangerRoot, adatumMail } = lab();
    const first = generation();
    const { listener, port, sink } = await start(t, first);
    // A second generation that no longer trusts adatum's root.
    const second = generation(
      {
        trustAnchors: [
          trustAnchor('stranger-root', strangerRoot),
          trustAnchor('adatum-root', adatumRoot),
        ],
        adatum: { trustAnchors: ['stranger-root'] },
      },
      2,
    );
    const connection = new SMTPConnection({
      host: '127.0.0.1',
      port,
      name: 'mail.adatum.com',
      servername: 'mail.treyresearch.net',
      requireTLS: true,
      tls: { ca: [lab().treyRoot.certPem], key: adatumMail.keyPem, cert: adatumMail.certPem },
    });
    connection.on('error', () => undefined);
    t.after(() => connection.close());
    await new Promise<void>((resolve, reject) =>
      connection.connect((e) => (e ? reject(e) : resolve())),
    );
    assert.equal(listener.sessionCount, 1);
    listener.reload(second);
    const info = await new Promise<{ response: string }>((resolve, reject) =>
      connection.send(fromAdatum, MESSAGE, (e, r) => (e || !r ? reject(e) : resolve(r))),
    );
    assert.match(info.response, /^250 2\.6\.0 /);
    assert.equal(sink.messages.length, 1);
    connection.close();
    // A new session is judged by the new generation.
    assertReply(await submit(port, fromAdatum, { certificate: adatumMail }), 454, '4.7.5');
  });

  it('rejects listen() on a port in use, leaving nothing bound', async (t) => {
    const occupier: Server = createServer();
    await new Promise<void>((resolve) => occupier.listen(0, '127.0.0.1', resolve));
    t.after(() => new Promise<void>((resolve) => occupier.close(() => resolve())));
    const address = occupier.address();
    assert.ok(address !== null && typeof address === 'object');
    const config = runtimeConfig({ receiveConnector: { bindings: [`127.0.0.1:${address.port}`] } });
    const listener = new ReceiveListener({
      binding: parseBinding(`127.0.0.1:${address.port}`),
      generation: () => buildGeneration(config, 1),
      sink: new MemorySink(),
      log: memoryLog(),
      protocolLog: new ProtocolLog(null),
    });
    await assert.rejects(listener.listen(), { code: 'EADDRINUSE' });
    assert.equal(listener.address(), null);
    await listener.close(); // nothing to close, and no error
  });

  it('writes a verbose protocol log: connect, TLS and certificate, commands, replies; never the body', async (t) => {
    const directory = await tempDir();
    t.after(() => directory.remove());
    const { port, listener } = await start(
      t,
      generation({ receiveConnector: { protocolLogging: 'verbose' } }),
      directory.path,
    );
    assertReply(
      await submit(port, fromAdatum, { certificate: lab().adatumMail, name: 'relay.adatum.com' }),
      250,
      '2.6.0',
    );
    await eventually('every session to end', () => listener.sessionCount, {
      until: (n) => n === 0,
    });
    await listener.close();
    const files = await readdir(directory.path);
    assert.equal(files.length, 1);
    assert.match(files[0] ?? '', /^from-partners-\d{8}\.log$/);
    const text = await readFile(join(directory.path, files[0] ?? ''), 'utf8');
    const lines = text.trim().split('\n');
    assert.equal(
      lines[0],
      '#Fields: date-time,connector-id,session-id,sequence-number,local-endpoint,remote-endpoint,event,data,context',
    );
    const events = lines.slice(1).map((line) => line.split(','));
    assert.equal(events[0]?.[6], '+');
    assert.equal(events.at(-1)?.[6], '-');
    assert.deepEqual(
      events.map((e) => Number(e[3])),
      events.map((_, i) => i),
      'sequence numbers count up',
    );
    assert.match(text, /,<,EHLO relay\.adatum\.com,/);
    assert.match(text, /,>,250 SIZE 10485760,/);
    assert.match(text, /,<,STARTTLS,/);
    assert.match(text, /,>,250-STARTTLS,/);
    assert.match(text, /,\*,TLS protocol=TLSv1\.3 cipher=/);
    assert.match(
      text,
      new RegExp(
        `,\\*,"client certificate subject=""CN=mail\\.adatum\\.com"".*fingerprint=${lab().adatumMail.fingerprint}`,
      ),
    );
    assert.match(text, /,\*,OpenSSL client certificate verification: authorized,/);
    assert.match(text, /,<,MAIL FROM:<someone@adatum\.com>/);
    assert.match(
      text,
      /,\*,"domain-secured for partner adatum\.com: subject=""CN=mail\.adatum\.com""/,
    );
    assert.match(text, /note: EHLO name relay\.adatum\.com is not among the certificate names/);
    assert.match(text, /,>,250 2\.6\.0 Ok: queued as Q1,/);
    assert.doesNotMatch(text, /body stays/);
  });

  it('closes within its bound while a client holds a session open', async (t) => {
    const { adatumMail, treyRoot } = lab();
    const sink = new MemorySink();
    const listener = new ReceiveListener({
      binding: parseBinding('127.0.0.1:0'),
      generation: () => generation(),
      sink,
      log: memoryLog(),
      protocolLog: new ProtocolLog(null),
      closeTimeout: 300,
    });
    await listener.listen();
    const connection = new SMTPConnection({
      host: '127.0.0.1',
      port: listener.address()?.port ?? 0,
      servername: 'mail.treyresearch.net',
      requireTLS: true,
      tls: { ca: [treyRoot.certPem], key: adatumMail.keyPem, cert: adatumMail.certPem },
    });
    connection.on('error', () => undefined);
    t.after(() => connection.close());
    await new Promise<void>((resolve, reject) =>
      connection.connect((e) => (e ? reject(e) : resolve())),
    );
    assert.equal(listener.sessionCount, 1);
    const started = Date.now();
    await listener.close();
    assert.ok(Date.now() - started < 2_500, `close took ${Date.now() - started} ms`);
    await eventually('every session to end', () => listener.sessionCount, {
      until: (n) => n === 0,
    });
    assert.equal(listener.address(), null);
  });

  it('closes with no session left and resolves', async (t) => {
    const { listener } = await start(t, generation());
    await listener.close();
    assert.equal(listener.sessionCount, 0);
    assert.equal(listener.address(), null);
  });
});

describe('ProtocolLog', () => {
  const entry = {
    connector: 'from partners/1',
    sessionId: 's1',
    sequence: 0,
    local: '127.0.0.1:25',
    remote: '192.0.2.7:4000',
    event: '*' as const,
    data: 'subject="CN=a, O=b"\r\nsecond line',
  };

  it('writes Exchange-ordered CSV lines, quoted where needed, to a file per connector and day', async (t) => {
    const directory = await tempDir();
    t.after(() => directory.remove());
    let now = new Date('2026-11-25T23:59:59.000Z');
    const log = new ProtocolLog(join(directory.path, 'protocol'), { now: () => now });
    log.write(entry, true);
    log.write({ ...entry, sequence: 1, event: '<', data: 'EHLO a' }, false); // not verbose
    now = new Date('2026-11-26T00:00:01.000Z');
    log.write({ ...entry, sequence: 2, event: '-', data: '' }, true);
    await log.close();
    log.write(entry, true); // after close: dropped
    const files = (await readdir(join(directory.path, 'protocol'))).sort();
    assert.deepEqual(files, ['from_partners_1-20261125.log', 'from_partners_1-20261126.log']);
    const first = await readFile(join(directory.path, 'protocol', files[0] ?? ''), 'utf8');
    assert.equal(
      first,
      '#Fields: date-time,connector-id,session-id,sequence-number,local-endpoint,remote-endpoint,event,data,context\n' +
        '2026-11-25T23:59:59.000Z,from partners/1,s1,0,127.0.0.1:25,192.0.2.7:4000,*,"subject=""CN=a, O=b"" second line",\n',
    );
    const second = await readFile(join(directory.path, 'protocol', files[1] ?? ''), 'utf8');
    assert.match(
      second,
      /\n2026-11-26T00:00:01\.000Z,from partners\/1,s1,2,127\.0\.0\.1:25,192\.0\.2\.7:4000,-,,\n$/,
    );
  });

  it('writes nothing without a directory, and reports an unusable one once instead of throwing', async (t) => {
    new ProtocolLog(null).write(entry, true);
    const directory = await tempDir();
    t.after(() => directory.remove());
    const blocker = join(directory.path, 'not-a-directory');
    await writeFile(blocker, '');
    const errors: Error[] = [];
    const log = new ProtocolLog(join(blocker, 'protocol'), { onError: (e) => errors.push(e) });
    log.write(entry, true);
    log.write(entry, true);
    await log.close();
    assert.equal(errors.length, 1);
  });
});
