// Trust attacks in both directions over real sockets: a client presenting a hostile certificate
// to our receive connector, and our send side facing a server presenting it. Every attack must be
// refused with 454 4.7.5 (receive) or Exchange's 451 4.4.0 last error (send), nothing delivered.
import { requireDomainName } from '../../src/domain-name.js';
import assert from 'node:assert/strict';
import { createSecureContext, TLSSocket, type SecureContext } from 'node:tls';
import { createServer, type Server, type Socket } from 'node:net';
import { after, describe, it } from 'node:test';
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import { buildGeneration } from '../../src/engine/generation.js';
import { memoryLog } from '../../src/engine/log.js';
import type { OutboundMessage } from '../../src/engine/queue/outcome.js';
import { createRemoteDelivery } from '../../src/engine/send/deliver.js';
import type { CertificateNameMatch } from '../../src/model.js';
import type { IssuedCertificate } from '../../src/pki/lab.js';
import { hostileLab, type Presented } from '../support/hostile-pki.js';
import { lab } from '../support/lab.js';
import { receiving, refusedReason } from '../support/receiving.js';
import {
  partnerDomain,
  runtimeConfig,
  sendConnector,
  trustAnchor,
} from '../support/runtime-config.js';
import { replyText } from '../support/replies.js';

/** Lets the attacker's side load what OpenSSL's defaults refuse (1024-bit keys, SHA-1, TLS 1.1). */
const ANYTHING_GOES = 'DEFAULT:@SECLEVEL=0';
const BODY = 'From: a@adatum.com\r\nSubject: attack\r\n\r\nbody\r\n';

/** Why each attack must be refused: the reason our log and reply give, not just any failure. */
const EXPECTED_REASON: Record<string, RegExp> = {
  'a certificate from a CA nobody trusts': /not issued by a trust anchor of partner adatum\.com/,
  'a self-signed certificate naming adatum.com': /not issued by a trust anchor/,
  'a certificate from another partner’s CA claiming adatum.com': /not issued by a trust anchor/,
  'a CA with the anchor’s name but another key': /not issued by a trust anchor/,
  'a chain through an intermediate that is not a CA': /not issued by a trust anchor/,
  'a chain through a sub-CA the root’s pathLength forbids': /PATH_LENGTH_EXCEEDED|path length/i,
  'a serverAuth-only certificate through a sub-CA the root’s pathLength forbids':
    /PATH_LENGTH_EXCEEDED|path length/i,
  'an expired certificate': /expired on/,
  'a certificate not yet valid': /not valid before/,
  'a certificate naming another domain': /names mail\.contoso\.com, expected adatum\.com/,
  'a certificate naming only hosts below adatum.com': /names mail\.adatum\.com, expected/,
  'a wildcard *.adatum.com (domain match wants adatum.com itself)': /names \*\.adatum\.com,/,
  'adatum.com with two trailing dots': /expected adatum\.com/,
  'adatum.com as a label of another domain': /expected adatum\.com/,
  'an IDN homograph of adatum.com (Cyrillic a)': /names xn--datum-3ve\.com, expected/,
  'a subject CN in full-width letters that IDNA maps to adatum.com': /expected adatum\.com/,
  'a SAN with a zero-width space that IDNA drops': /expected adatum\.com/,
  'percent-escapes that URL host parsing decodes to adatum.com': /expected adatum\.com/,
  'a 1024-bit RSA key': /1024-bit RSA key/,
  'a revoked certificate': /certificate is revoked by the CRL of CN=Adatum Root CA/,
  'a 1024-bit RSA key with a serverAuth-only EKU': /1024-bit RSA key/,
  'a SHA-1 signature on the certificate': /SHA-1/,
  'a SHA-1 signature on a serverAuth-only certificate': /SHA-1/,
  'a chain through a SHA-1 signed intermediate': /SHA-1/,
  'a wildcard two labels deep (*.*.adatum.com)': /expected adatum\.com/,
  'a wildcard below a host (*.mail.adatum.com)': /expected adatum\.com/,
  'a host two labels below (a.mail.adatum.com)': /expected adatum\.com/,
  'a partial-label wildcard (mail*.adatum.com)': /expected adatum\.com/,
};

const figures = { tried: 0, refused: 0 };
after(() => {
  // Recorded as the figure: attacks tried and refused, both directions together.
  console.log(`# trust attacks: ${figures.tried} tried, ${figures.refused} refused`);
});

interface ConfigOptions {
  nameMatch?: CertificateNameMatch;
  /** Where mail for adatum.com goes. */
  adatumHost?: { port: number };
  /** The adatum partner's remoteIPRanges (none by default: any address). */
  adatumRanges?: string[];
}

/**
 * adatum.com (two roots of its own, the first with a CRL) and fabrikam.com (its own root) as
 * domain-secure partners of treyresearch.net.
 */
function partnersConfig(options: ConfigOptions = {}) {
  const { fabrikamRoot, adatumIssuingRoot, adatumRootCrl } = hostileLab();
  const staticRoutes: Record<string, { host: string; port: number }[]> =
    options.adatumHost === undefined
      ? {}
      : { 'adatum.com': [{ host: '127.0.0.1', port: options.adatumHost.port }] };
  const adatumRoot = trustAnchor('adatum-root', lab().adatumRoot);
  return runtimeConfig({
    trustAnchors: [
      { ...adatumRoot, spec: { ...adatumRoot.spec, crlPem: adatumRootCrl } },
      trustAnchor('adatum-issuing-root', adatumIssuingRoot),
      trustAnchor('fabrikam-root', fabrikamRoot),
    ],
    partners: [
      partnerDomain('adatum', {
        domain: 'adatum.com',
        trustAnchors: ['adatum-root', 'adatum-issuing-root'],
        certificateNameMatch: options.nameMatch ?? 'domain',
        remoteIPRanges: options.adatumRanges ?? [],
      }),
      partnerDomain('fabrikam', { domain: 'fabrikam.com', trustAnchors: ['fabrikam-root'] }),
    ],
    sendConnectors: [
      sendConnector('to-partners', { addressSpaces: ['adatum.com', 'fabrikam.com'] }),
    ],
    organization: { resolver: { servers: [], static: staticRoutes } },
  });
}

// ---------------------------------------------------------------------------------------------
// Receiving: our connector, a hostile client.

interface ClientOptions {
  certificate?: IssuedCertificate;
  /** Never STARTTLS. */
  plaintext?: boolean;
  /** The highest TLS version the client offers. */
  maxVersion?: 'TLSv1' | 'TLSv1.1' | 'TLSv1.2' | 'TLSv1.3';
}

/** One transaction as a hostile partner would run it; the final reply, whatever stage gave it. */
async function hostileSubmit(port: number, options: ClientOptions): Promise<string> {
  const connection = new SMTPConnection({
    host: '127.0.0.1',
    port,
    name: 'mail.adatum.com',
    requireTLS: options.plaintext !== true,
    ignoreTLS: options.plaintext === true,
    connectionTimeout: 5_000,
    greetingTimeout: 5_000,
    socketTimeout: 5_000,
    tls: {
      ca: [lab().treyRoot.certPem],
      servername: 'mail.treyresearch.net',
      ciphers: ANYTHING_GOES,
      minVersion: 'TLSv1',
      maxVersion: options.maxVersion ?? 'TLSv1.3',
      ...(options.certificate === undefined
        ? {}
        : { key: options.certificate.keyPem, cert: options.certificate.certPem }),
    },
  });
  const failed = new Promise<never>((_, reject) => connection.on('error', reject));
  failed.catch(() => undefined);
  try {
    await Promise.race([
      failed,
      new Promise<void>((resolve, reject) =>
        connection.connect((error) => (error ? reject(error) : resolve())),
      ),
    ]);
    const envelope = { from: 'a@adatum.com', to: ['u@treyresearch.net'] };
    const info = await Promise.race([
      failed,
      new Promise<{ response: string }>((resolve, reject) =>
        connection.send(envelope, BODY, (error, result) =>
          error || result === undefined ? reject(error) : resolve(result),
        ),
      ),
    ]);
    return info.response;
  } catch (error) {
    const failure = error as { response?: string; message: string };
    return failure.response ?? `connection failed: ${failure.message}`;
  } finally {
    connection.close();
  }
}

// ---------------------------------------------------------------------------------------------
// Sending: a hostile partner server. Raw SMTP with STARTTLS, so that it can present anything
// (SHA-1, 1024-bit keys, TLS 1.1) that smtp-server's OpenSSL defaults would refuse to load.

interface HostileServer {
  port: number;
  /** MAIL commands received, in clear or under TLS: none may arrive after a refusal. */
  mailCommands: string[];
  messages: number;
  handshakes: number;
  close(): Promise<void>;
}

interface ServerOptions {
  /** The highest TLS version the server speaks (default TLS 1.3). */
  maxVersion?: 'TLSv1.1' | 'TLSv1.3';
  /** Offer STARTTLS (default true). */
  starttls?: boolean;
}

async function startHostileServer(
  certificate: IssuedCertificate,
  options: ServerOptions = {},
): Promise<HostileServer> {
  const context: SecureContext = createSecureContext({
    key: certificate.keyPem,
    cert: certificate.certPem,
    ciphers: ANYTHING_GOES,
    minVersion: 'TLSv1',
    maxVersion: options.maxVersion ?? 'TLSv1.3',
  });
  const offerTls = options.starttls ?? true;
  const sockets = new Set<Socket>();
  const state = { mailCommands: [] as string[], messages: 0, handshakes: 0 };

  function converse(stream: Socket | TLSSocket, secure: boolean): void {
    let buffer = '';
    let inData = false;
    const reply = (text: string) => stream.write(`${text}\r\n`);
    const onData = (chunk: Buffer) => {
      buffer += chunk.toString('latin1');
      for (;;) {
        if (inData) {
          const end = buffer.indexOf('\r\n.\r\n');
          if (end < 0) return;
          buffer = buffer.slice(end + 5);
          inData = false;
          state.messages += 1;
          reply('250 2.0.0 queued');
          continue;
        }
        const eol = buffer.indexOf('\r\n');
        if (eol < 0) return;
        const line = buffer.slice(0, eol);
        buffer = buffer.slice(eol + 2);
        const verb = line.slice(0, 4).toUpperCase();
        if (verb === 'EHLO' || verb === 'HELO') {
          reply(
            secure || !offerTls ? '250 mail.adatum.com' : '250-mail.adatum.com\r\n250 STARTTLS',
          );
        } else if (verb === 'STAR' && !offerTls) {
          reply('502 5.5.1 command not implemented');
        } else if (verb === 'STAR' && !secure) {
          stream.off('data', onData);
          reply('220 2.0.0 Ready to start TLS');
          const upgraded = new TLSSocket(stream as Socket, {
            isServer: true,
            secureContext: context,
            requestCert: true,
            rejectUnauthorized: false,
          });
          upgraded.on('error', () => undefined);
          upgraded.on('secure', () => {
            state.handshakes += 1;
          });
          converse(upgraded, true);
          return;
        } else if (verb === 'MAIL') {
          state.mailCommands.push(line);
          reply('250 2.1.0 OK');
        } else if (verb === 'RCPT') {
          reply('250 2.1.5 OK');
        } else if (verb === 'DATA') {
          inData = true;
          reply('354 go ahead');
        } else if (verb === 'QUIT') {
          reply('221 2.0.0 bye');
          stream.end();
          return;
        } else {
          reply('250 OK');
        }
      }
    };
    stream.on('data', onData);
  }

  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    socket.write('220 mail.adatum.com ESMTP\r\n');
    converse(socket, false);
  });
  const port = await new Promise<number>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      resolve(typeof address === 'object' && address !== null ? address.port : 0);
    });
  });
  return Object.assign(state, {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  });
}

const servers: HostileServer[] = [];
after(async () => {
  await Promise.all(servers.map((server) => server.close()));
});

/** Delivers one message to adatum.com through a hostile server; the recipient's outcome. */
async function sendThrough(
  certificate: IssuedCertificate,
  options: ServerOptions & ConfigOptions = {},
) {
  const server = await startHostileServer(certificate, options);
  servers.push(server);
  const generation = buildGeneration(partnersConfig({ ...options, adatumHost: server }), 1);
  const log = memoryLog();
  const deliver = createRemoteDelivery({
    log,
    timeouts: { connectMs: 5_000, greetingMs: 5_000, socketMs: 10_000 },
  });
  const body = Buffer.from(BODY);
  const message: OutboundMessage = {
    id: `A${servers.length}.1`,
    from: 'alice@treyresearch.net',
    recipients: ['bob@adatum.com'],
    size: body.length,
    receivedAt: new Date(),
    body: () => Promise.resolve(body),
  };
  const [outcome] = await deliver(
    requireDomainName('adatum.com'),
    [message],
    generation,
    AbortSignal.timeout(30_000),
  );
  assert.ok(outcome !== undefined);
  return { outcome, server, log };
}

// Exchange's form of a hop refused for its certificate (SPEC §4.5).
const SEND_REFUSAL =
  /^451 4\.4\.0 Primary target IP address responded with: "454 4\.7\.5 Certificate validation failure: (.*)" Attempted failover to alternate host, but that did not succeed\.$/;

// ---------------------------------------------------------------------------------------------

describe('trust attacks: positive controls (the refusals below are not an accident)', () => {
  const legit = (): [string, Presented][] => [
    ['adatum’s own certificate', { attack: 'none', ...lab().adatumMail }],
    ['a chain through a proper intermediate', hostileLab().viaIntermediate],
    ['names in upper case with a trailing dot', hostileLab().upperCaseTrailingDot],
  ];

  it('accepts legitimate partner certificates when receiving: 250, domain-secured', async (t) => {
    const { port, messages } = await receiving(t, buildGeneration(partnersConfig(), 1));
    for (const [what, certificate] of legit()) {
      const reply = await hostileSubmit(port, { certificate });
      assert.match(reply, /^250 /, what);
    }
    assert.equal(messages.length, 3);
    assert.ok(messages.every((m) => m.domainSecured?.partner === 'adatum.com'));
  });

  it('accepts legitimate partner certificates when sending: delivered', async () => {
    for (const [what, certificate] of legit()) {
      const { outcome, server } = await sendThrough(certificate);
      assert.deepEqual(outcome.failures, [], what);
      assert.deepEqual(outcome.delivered, ['bob@adatum.com'], what);
      assert.equal(server.messages, 1, what);
    }
  });
});

describe('trust attacks: receiving (hostile client certificate)', () => {
  const cases = (): [CertificateNameMatch, Presented][] => [
    ...hostileLab().attacks.map((a): [CertificateNameMatch, Presented] => ['domain', a]),
    ...hostileLab().subdomainAttacks.map((a): [CertificateNameMatch, Presented] => [
      'subdomain',
      a,
    ]),
  ];

  for (const nameMatch of ['domain', 'subdomain'] as const) {
    it(`refuses every hostile certificate (${nameMatch} name match) with 454 4.7.5 and delivers nothing`, async (t) => {
      const generation = buildGeneration(partnersConfig({ nameMatch }), 1);
      const problems: string[] = [];
      for (const [match, attack] of cases()) {
        if (match !== nameMatch) continue;
        // One listener per attack: the refusal is logged once per partner and listener session.
        const { port, messages, log } = await receiving(t, generation);
        figures.tried += 1;
        const reply = await hostileSubmit(port, { certificate: attack });
        const reason = refusedReason(log);
        const expected = EXPECTED_REASON[attack.attack] ?? /no expected reason/;
        if (!/^454 4\.7\.5 Certificate validation failure\b/.test(reply))
          problems.push(`${attack.attack}: replied ${reply}`);
        else if (messages.length > 0) problems.push(`${attack.attack}: delivered`);
        else if (!expected.test(reason))
          problems.push(`${attack.attack}: refused because ${reason}`);
        else figures.refused += 1;
      }
      assert.deepEqual(problems, []);
    });
  }

  it('refuses a client that offers nothing newer than TLS 1.1: no handshake, nothing delivered', async (t) => {
    const { port, messages } = await receiving(t, buildGeneration(partnersConfig(), 1));
    for (const maxVersion of ['TLSv1', 'TLSv1.1'] as const) {
      figures.tried += 1;
      const reply = await hostileSubmit(port, { certificate: lab().adatumMail, maxVersion });
      assert.match(reply, /connection failed: .*(protocol version|unsupported protocol)/i);
      figures.refused += 1;
    }
    assert.equal(messages.length, 0);
    // TLS 1.2 from the same client is served: the refusal is about the version alone.
    const reply = await hostileSubmit(port, {
      certificate: lab().adatumMail,
      maxVersion: 'TLSv1.2',
    });
    assert.match(reply, /^250 /);
  });
});

describe('trust attacks: sending (hostile partner server)', () => {
  for (const nameMatch of ['domain', 'subdomain'] as const) {
    it(`refuses every hostile server certificate (${nameMatch} name match) before MAIL FROM: 451 4.4.0 … 454 4.7.5`, async () => {
      const list = nameMatch === 'domain' ? hostileLab().attacks : hostileLab().subdomainAttacks;
      const problems: string[] = [];
      for (const attack of list) {
        figures.tried += 1;
        const { outcome, server, log } = await sendThrough(attack, { nameMatch });
        const failure = outcome.failures[0];
        const reason = SEND_REFUSAL.exec(replyText(failure?.reply))?.[1];
        const expected = EXPECTED_REASON[attack.attack] ?? /no expected reason/;
        if (outcome.delivered.length > 0 || server.messages > 0)
          problems.push(`${attack.attack}: delivered`);
        else if (server.mailCommands.length > 0) problems.push(`${attack.attack}: sent MAIL FROM`);
        else if (failure?.permanent !== false || reason === undefined)
          problems.push(`${attack.attack}: failed with ${failure?.reply}`);
        else if (!expected.test(reason))
          problems.push(`${attack.attack}: refused because ${reason}`);
        else if (!log.entries.some((e) => e.event === 'send.partner-refused'))
          problems.push(`${attack.attack}: refusal not logged`);
        else figures.refused += 1;
      }
      assert.deepEqual(problems, []);
    });
  }

  it('refuses a partner server that speaks nothing newer than TLS 1.1, before MAIL FROM', async () => {
    figures.tried += 1;
    const { outcome, server } = await sendThrough(lab().adatumMail, { maxVersion: 'TLSv1.1' });
    assert.equal(outcome.delivered.length, 0);
    assert.equal(outcome.failures[0]?.permanent, false);
    assert.match(replyText(outcome.failures[0]?.reply), /^451 4\.4\.0 /);
    assert.equal(server.handshakes, 0);
    assert.deepEqual(server.mailCommands, []);
    figures.refused += 1;
  });
});

describe('trust attacks: the rest of the negative matrix', () => {
  it('refuses a partner sender without a client certificate: 454 4.7.5, "no client certificate" logged', async (t) => {
    const { port, messages, log } = await receiving(t, buildGeneration(partnersConfig(), 1));
    figures.tried += 1;
    const reply = await hostileSubmit(port, {});
    assert.match(reply, /^454 4\.7\.5 Certificate validation failure\b/);
    assert.match(refusedReason(log), /no client certificate/);
    assert.equal(messages.length, 0);
    figures.refused += 1;
  });

  it('refuses a partner sender in clear text: 530 5.7.0 Must issue a STARTTLS command first', async (t) => {
    const { port, messages } = await receiving(t, buildGeneration(partnersConfig(), 1));
    figures.tried += 1;
    const reply = await hostileSubmit(port, { plaintext: true });
    assert.match(reply, /^530 5\.7\.0 Must issue a STARTTLS command first/);
    assert.equal(messages.length, 0);
    figures.refused += 1;
  });

  it('refuses a valid partner certificate from outside the partner’s remote IP ranges: 454 4.7.5', async (t) => {
    const config = partnersConfig({ adatumRanges: ['192.0.2.0/24'] });
    const { port, messages, log } = await receiving(t, buildGeneration(config, 1));
    figures.tried += 1;
    const reply = await hostileSubmit(port, { certificate: lab().adatumMail });
    assert.match(reply, /^454 4\.7\.5 /);
    assert.match(refusedReason(log), /127\.0\.0\.1/);
    assert.equal(messages.length, 0);
    figures.refused += 1;
  });

  it('never sends to a partner server that offers no STARTTLS: 451 4.7.3, no MAIL FROM in clear', async () => {
    figures.tried += 1;
    const { outcome, server } = await sendThrough(lab().adatumMail, { starttls: false });
    assert.equal(outcome.delivered.length, 0);
    assert.match(
      replyText(outcome.failures[0]?.reply),
      /451 4\.7\.3 STARTTLS is required to send mail/,
    );
    assert.deepEqual(server.mailCommands, []);
    figures.refused += 1;
  });

  it('refuses a partner server presenting a certificate for TLS clients only (no serverAuth)', async () => {
    figures.tried += 1;
    const { outcome, server } = await sendThrough(hostileLab().clientOnly);
    const reason = SEND_REFUSAL.exec(replyText(outcome.failures[0]?.reply))?.[1];
    assert.match(reason ?? `${outcome.failures[0]?.reply}`, /lacks serverAuth/);
    assert.deepEqual(server.mailCommands, []);
    figures.refused += 1;
  });
});
