// Interoperability with Postfix (Debian's package), a partner domsec did not write, in both
// directions over mutual TLS with the lab PKI. Postfix is required (CI installs it); never skipped.
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Engine } from '../../src/engine/engine.js';
import { memoryLog } from '../../src/engine/log.js';
import type { RuntimeConfig } from '../../src/model.js';
import { issueCertificate, type IssuedCertificate } from '../../src/pki/lab.js';
import { eventually } from '../support/engine.js';
import { lab } from '../support/lab.js';
import { freePort } from '../support/ports.js';
import { startPostfix, type Postfix } from '../support/postfix.js';
import {
  certificate,
  ORGANIZATION_CERTIFICATE,
  receiveConnector,
  runtimeConfig,
} from '../support/runtime-config.js';
import { submit } from '../support/smtp-submit.js';
import { tempDir } from '../support/tmp.js';

// Postfix is adatum.com (mail.adatum.com, adatum's lab certificate); the engine is treyresearch.net.
let postfix: Postfix;
let engine: Engine;
let stateDir = '';
let partnerPort = 0; // the engine's domain-secure receive connector
let internalPort = 0; // the engine's internal submission connector (relay from loopback)
const cleanup: (() => Promise<void>)[] = [];

/** The engine's configuration with adatum.com routed to one of Postfix's listeners. */
function engineConfig(
  adatumListener: string,
  organizationCertificate: IssuedCertificate = lab().treyMail,
): RuntimeConfig {
  const port = postfix.ports[adatumListener];
  if (port === undefined) throw new Error(`Postfix has no listener ${adatumListener}`);
  return runtimeConfig({
    certificates: [certificate(ORGANIZATION_CERTIFICATE, organizationCertificate)],
    organization: {
      resolver: {
        servers: [],
        static: {
          'adatum.com': [{ host: '127.0.0.1', port }],
        },
      },
    },
    receiveConnectors: [
      receiveConnector('from-partners', { bindings: [`127.0.0.1:${partnerPort}`] }),
      receiveConnector('internal', {
        bindings: [`127.0.0.1:${internalPort}`],
        remoteIPRanges: ['127.0.0.1/32'],
        permitRelay: true,
        domainSecure: false,
        requireTls: false,
      }),
    ],
  });
}

/** Postfix's mail log: what a failed wait shows beside what it waited for. */
const mailLog = async () => `Postfix's mail log:\n${await postfix.log()}`;

/** Postfix's log lines that match, once there is one: postlogd writes them asynchronously. */
function logLines(what: string, pattern: RegExp, atLeast = 1): Promise<string[]> {
  return eventually(
    `Postfix to log ${what}`,
    async () => {
      const lines = (await postfix.log()).split('\n').filter((line) => pattern.test(line));
      return lines.length >= atLeast ? lines : undefined;
    },
    { explain: mailLog },
  );
}

function message(subject: string): string {
  return `Subject: ${subject}\r\nMessage-ID: <${subject.replace(/\W/g, '-')}@interop>\r\n\r\nHello from the interop test.\r\n`;
}

/** Hands a message to Postfix on its plaintext listener; returns Postfix's queue id. */
async function submitToPostfix(to: string, subject: string): Promise<string> {
  const outcome = await submit(
    postfix.ports.inject ?? 0,
    { from: 'alice@adatum.com', to: [to] },
    { plaintext: true, serverCa: '' },
    message(subject),
  );
  assert.equal(outcome.code, 250, outcome.response);
  const id = /queued as (\w+)/.exec(outcome.response)?.[1];
  assert.ok(id !== undefined, outcome.response);
  return id;
}

/** Hands a message to the engine's internal connector, addressed to adatum.com (Postfix). */
async function submitToEngine(subject: string): Promise<void> {
  const outcome = await submit(
    internalPort,
    { from: 'alice@treyresearch.net', to: ['bob@adatum.com'] },
    { plaintext: true, serverCa: lab().treyRoot.certPem },
    message(subject),
  );
  assert.equal(outcome.code, 250, outcome.response);
}

async function engineMailbox(localPart: string): Promise<string[]> {
  const dir = join(stateDir, 'mail', 'treyresearch.net', localPart, 'new');
  const names = await readdir(dir).catch(() => []);
  return Promise.all(names.map((name) => readFile(join(dir, name), 'utf8')));
}

before(async () => {
  const { adatumMail, adatumWrongName, strangerAdatum, treyRoot } = lab();
  const state = await tempDir('domsec-postfix-engine-');
  cleanup.push(state.remove);
  stateDir = state.path;
  internalPort = await freePort();
  // The engine's partner port must be known before Postfix starts: bind it on a port picked now.
  partnerPort = await freePort();
  const route = (recipients: string) => ({
    recipients,
    host: '127.0.0.1',
    port: partnerPort,
    serverCa: treyRoot.certPem,
    serverName: 'treyresearch.net',
  });
  postfix = await startPostfix({
    hostname: 'mail.adatum.com',
    mailboxDomains: ['adatum.com'],
    certificate: adatumMail,
    clientCa: treyRoot.certPem,
    listeners: {
      mutual: { tls: 'mutual' },
      'wrong-name': { tls: 'mutual', certificate: adatumWrongName },
      plaintext: { tls: 'none' },
      inject: { tls: 'none' },
    },
    routes: [
      // Postfix's smtp client: TLS level secure, our certificate must name treyresearch.net.
      route('treyresearch.net'),
      { ...route('carol@treyresearch.net'), certificate: strangerAdatum },
      { ...route('dave@treyresearch.net'), certificate: null },
    ],
  });
  cleanup.push(() => postfix.stop());

  engine = await Engine.open({ stateDir, log: memoryLog() });
  cleanup.push(() => engine.close());
  await engine.apply(engineConfig('mutual'));
});

after(async () => {
  for (const step of cleanup.reverse()) await step();
});

describe('Postfix as adatum.com, sending to the engine', () => {
  it('delivers domain-secured mail with smtp_tls_security_level = secure and adatum’s client certificate', async () => {
    await submitToPostfix('bob@treyresearch.net', 'postfix to domsec');
    const [delivered] = await eventually(
      'the message in the engine’s Maildir',
      async () => {
        const messages = await engineMailbox('bob');
        return messages.length > 0 ? messages : undefined;
      },
      { explain: mailLog },
    );
    assert.ok(delivered !== undefined);
    const header = delivered.split('\r\n\r\n')[0] ?? '';
    assert.match(header, /^X-Domsec-AuthAs: Partner\r\nX-Domsec-Partner: adatum\.com\r\n/);
    assert.match(
      header,
      /Authentication-Results: mail\.treyresearch\.net;\s+x-domsec=pass \(mutual TLS\) smtp\.mailfrom=adatum\.com/,
    );
    assert.match(header, /Subject: postfix to domsec/);
    // Postfix verified our certificate too ("Verified": chain and name), and logged the 250.
    await logLines(
      'our verified certificate',
      new RegExp(
        `Verified TLS connection established to 127\\.0\\.0\\.1\\[127\\.0\\.0\\.1\\]:${partnerPort}`,
      ),
    );
    await logLines(
      'our 250',
      /to=<bob@treyresearch\.net>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:\d+.*status=sent \(250 /,
    );
  });

  it('stays deferred in Postfix with 454 4.7.5 when Postfix presents a certificate from an untrusted CA, or none', async () => {
    const untrusted = await submitToPostfix('carol@treyresearch.net', 'untrusted');
    const anonymous = await submitToPostfix('dave@treyresearch.net', 'no certificate');
    const reasons = await eventually(
      'both messages deferred in Postfix’s queue',
      async () => {
        const queue = await postfix.queue();
        const reasonOf = (id: string) =>
          queue.find((entry) => entry.queue_id === id && entry.queue_name === 'deferred')
            ?.recipients[0]?.delay_reason;
        const reasons = [reasonOf(untrusted), reasonOf(anonymous)];
        return reasons.every((reason) => reason !== undefined) ? reasons : undefined;
      },
      { timeoutMs: 15_000, explain: mailLog },
    );
    for (const reason of reasons) {
      assert.match(
        reason ?? '',
        /said: 454 4\.7\.5 Certificate validation failure.*\(in reply to MAIL FROM command\)/,
      );
    }
    // postqueue -f: Postfix tries again at once, and is refused again.
    const attempt = new RegExp(`${untrusted}: to=<carol@treyresearch\\.net>`);
    assert.equal((await logLines('the first attempt', attempt)).length, 1);
    await postfix.flush();
    const [, second] = await logLines('a second attempt', attempt, 2);
    assert.match(
      second ?? '',
      /status=deferred \(host 127\.0\.0\.1\[127\.0\.0\.1\] said: 454 4\.7\.5 /,
    );
    assert.deepEqual(await engineMailbox('carol'), []);
    assert.deepEqual(await engineMailbox('dave'), []);
  });
});

// These run in order and share the engine's queue: a message refused in one test is retried at
// once by the next test's apply (SPEC §8), against another of Postfix's listeners.
describe('the engine sending to Postfix as adatum.com', () => {
  it('delivers to Postfix with smtpd_tls_req_ccert = yes; Postfix verified our client certificate', async () => {
    await submitToEngine('domsec to postfix');
    const [delivered] = await eventually(
      'the message in Postfix’s Maildir',
      async () => {
        const messages = await postfix.delivered();
        return messages.length > 0 ? messages : undefined;
      },
      { explain: mailLog },
    );
    assert.ok(delivered !== undefined);
    assert.match(delivered, /Subject: domsec to postfix/);
    // smtpd_tls_received_header: the protocol, and the client certificate Postfix verified.
    const received = delivered.slice(delivered.indexOf('Received: '), delivered.indexOf('\tfor <'));
    assert.match(
      received,
      /^Received: from mail\.treyresearch\.net \(unknown \[127\.0\.0\.1\]\)\n\t\(using TLSv1\.[23] with cipher /,
    );
    assert.match(
      received,
      /\n\t\(Client CN "mail\.treyresearch\.net", Issuer "Trey Research Root CA" \(verified OK\)\)\n\tby mail\.adatum\.com \(Postfix\) with ESMTPS id /,
    );
    await logLines(
      'our trusted client certificate',
      /postfix\/mutual\/smtpd\[\d+\]: Trusted TLS connection established from unknown\[127\.0\.0\.1\]/,
    );
    assert.deepEqual(engine.queuedMessages(), []);
  });

  it('refuses a Postfix whose certificate names another host: 451 4.4.0 … 454 4.7.5, no MAIL FROM sent', async () => {
    const before = (await postfix.delivered()).length;
    await engine.apply(engineConfig('wrong-name'));
    await submitToEngine('to the wrong name');
    const lastError = await eventually(
      'the queue’s last error',
      () => {
        const queued = engine.queuedMessages()[0];
        return queued?.lastError ?? undefined;
      },
      { explain: mailLog },
    );
    assert.match(
      lastError,
      /^451 4\.4\.0 Primary target IP address responded with: "454 4\.7\.5 Certificate validation failure/,
    );
    // Postfix saw the TLS handshake and the session end, never a MAIL command.
    const sessions = await logLines(
      'the end of a session with STARTTLS',
      /postfix\/wrong-name\/smtpd\[\d+\]: disconnect from .* starttls=1 /,
    );
    for (const line of sessions) assert.doesNotMatch(line, /\bmail=/);
    assert.equal((await postfix.delivered()).length, before);
  });

  it('never falls back to plaintext when Postfix offers no STARTTLS: 451 4.7.3', async () => {
    const before = (await postfix.delivered()).length;
    await engine.apply(engineConfig('plaintext'));
    // The apply changed the route: the queued message is retried at once, against Postfix without TLS.
    const lastError = await eventually(
      'a plaintext refusal',
      () => {
        const queued = engine.queuedMessages()[0];
        return queued?.lastError?.includes('4.7.3') === true ? queued.lastError : undefined;
      },
      { explain: mailLog },
    );
    assert.match(lastError, /STARTTLS is required to send mail/);
    // The engine asked for STARTTLS (refused: starttls=0/1) and left without a MAIL command.
    const sessions = await logLines(
      'the end of the engine’s session',
      /postfix\/plaintext\/smtpd\[\d+\]: disconnect from .* starttls=0\/1 /,
    );
    for (const line of sessions) assert.doesNotMatch(line, /\b(mail|data|bdat)=/);
    assert.equal((await postfix.delivered()).length, before);
  });

  it('keeps Postfix’s own refusal as the last error when Postfix does not trust our certificate', async () => {
    const before = (await postfix.delivered()).length;
    const untrusted = issueCertificate(lab().strangerRoot, {
      commonName: 'mail.treyresearch.net',
      dnsNames: ['mail.treyresearch.net', 'treyresearch.net'],
    });
    // Our certificate changed: the queued message is retried at once, against the mutual listener.
    await engine.apply(engineConfig('mutual', untrusted));
    const lastError = await eventually(
      'Postfix’s refusal',
      () => {
        const queued = engine.queuedMessages()[0];
        return queued?.lastError?.includes('4.7.3') === false ? queued.lastError : undefined;
      },
      { explain: mailLog },
    );
    assert.match(
      lastError,
      /^451 4\.4\.0 Primary target IP address responded with: "421 4\.7\.1 mail\.adatum\.com Error: Client certificate not trusted/,
    );
    await logLines(
      'our untrusted client certificate',
      /postfix\/mutual\/smtpd\[\d+\]: Untrusted TLS connection established from unknown\[127\.0\.0\.1\]/,
    );
    assert.equal((await postfix.delivered()).length, before);
  });
});
