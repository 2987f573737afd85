// Hot reload under load (SPEC §8): 16 partners' senders keep sending over mutual TLS while 50
// applies add and remove partners and connectors and rotate the server certificate. No
// transaction that should succeed fails, and every message answered 250 reaches the Maildir.
// It runs with receive in the engine's process and with two receive workers sharing the listeners.
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import type { Named, ReceiveConnectorSpec, RuntimeConfig } from '../../src/model.js';
import { issueCertificate } from '../../src/pki/lab.js';
import { eventually, startEngine, type RunningEngine } from '../support/engine.js';
import { lab } from '../support/lab.js';
import { freePort } from '../support/ports.js';
import {
  certificate,
  ORGANIZATION_CERTIFICATE,
  partnerDomain,
  receiveConnector,
  runtimeConfig,
  sendConnector,
} from '../support/runtime-config.js';
import { tempDir } from '../support/tmp.js';

const SENDERS = 16;
const APPLIES = 50;

/** One transaction from adatum's mail server, presenting its certificate; resolves with the reply. */
async function sendOne(port: number, token: string): Promise<string> {
  const { treyRoot, adatumMail } = lab();
  const connection = new SMTPConnection({
    host: '127.0.0.1',
    port,
    name: 'mail.adatum.com',
    servername: 'mail.treyresearch.net',
    requireTLS: true,
    connectionTimeout: 10_000,
    greetingTimeout: 10_000,
    socketTimeout: 10_000,
    tls: { ca: [treyRoot.certPem], key: adatumMail.keyPem, cert: adatumMail.certPem },
  });
  const failed = new Promise<never>((_, reject) => connection.on('error', reject));
  failed.catch(() => undefined);
  const message = [
    'From: alice@adatum.com',
    'To: bob@treyresearch.net',
    `Subject: ${token}`,
    `Message-ID: <${token}@adatum.com>`,
    '',
    `load ${token}`,
    '',
  ].join('\r\n');
  try {
    await Promise.race([
      failed,
      new Promise<void>((resolve, reject) =>
        connection.connect((error) => (error ? reject(error) : resolve())),
      ),
    ]);
    const info = await Promise.race([
      failed,
      new Promise<{ response: string }>((resolve, reject) =>
        connection.send(
          { from: 'alice@adatum.com', to: ['bob@treyresearch.net'] },
          message,
          (error, result) => (error || result === undefined ? reject(error) : resolve(result)),
        ),
      ),
    ]);
    return info.response;
  } finally {
    connection.quit();
  }
}

for (const workers of [1, 2])
  describe(`hot reload under load (workers: ${workers})`, () => {
    let state: Awaited<ReturnType<typeof tempDir>>;
    let running: RunningEngine;
    let port: number;
    let extraPort: number;

    before(async () => {
      state = await tempDir();
      running = await startEngine(state.path, { workers });
      port = await freePort();
      extraPort = await freePort();
    });
    after(async () => {
      await running.stop();
      await state.remove();
    });

    it('loses no message and fails no transaction while 50 applies reshape the engine', async (t) => {
      const { treyRoot, treyMail } = lab();
      const rotated = issueCertificate(treyRoot, {
        commonName: 'mail.treyresearch.net',
        dnsNames: ['mail.treyresearch.net', 'treyresearch.net'],
      });
      const configFor = (i: number): RuntimeConfig => {
        const receiveConnectors: Named<ReceiveConnectorSpec>[] = [
          receiveConnector('from-partners', { bindings: [`127.0.0.1:${port}`] }),
        ];
        if (i % 2 === 0)
          receiveConnectors.push(
            receiveConnector('extra', { bindings: [`127.0.0.1:${extraPort}`] }),
          );
        return {
          ...runtimeConfig({ receiveConnectors }),
          certificates: [certificate(ORGANIZATION_CERTIFICATE, i % 2 === 0 ? treyMail : rotated)],
          partners: [
            partnerDomain('adatum', { domain: 'adatum.com' }),
            ...Array.from({ length: i % 4 }, (_, k) =>
              partnerDomain(`partner-${i}-${k}`, { domain: `partner-${i}-${k}.example` }),
            ),
          ],
          sendConnectors: [
            sendConnector('to-partners', { addressSpaces: ['adatum.com'] }),
            ...(i % 3 === 0
              ? [sendConnector(`to-extra-${i}`, { addressSpaces: [`extra-${i}.example`] })]
              : []),
          ],
        };
      };
      await running.client.apply(configFor(0));

      const accepted: string[] = [];
      const failures: string[] = [];
      let sending = true;
      const workers = Array.from({ length: SENDERS }, async (_, worker) => {
        for (let n = 0; sending; n += 1) {
          const token = `load-${worker}-${n}`;
          try {
            const reply = await sendOne(port, token);
            if (reply.startsWith('250')) accepted.push(token);
            else failures.push(`${token}: ${reply}`);
          } catch (error) {
            failures.push(`${token}: ${(error as Error).message}`);
          }
        }
      });

      const started = Date.now();
      const certificates = new Set<string>();
      for (let i = 1; i <= APPLIES; i += 1) {
        await new Promise((resolve) => setTimeout(resolve, 80));
        const result = await running.client.apply(configFor(i));
        assert.equal(result.generation, i + 1);
        const served = (await running.client.state()).objects.find((o) => o.kind === 'Certificate');
        certificates.add(String(served?.spec.fingerprint));
      }
      await new Promise((resolve) => setTimeout(resolve, 300));
      sending = false;
      await Promise.all(workers);
      const elapsed = Date.now() - started;

      t.diagnostic(`${accepted.length} messages accepted by ${SENDERS} senders in ${elapsed} ms`);
      assert.deepEqual(failures, [], `${failures.length} failed transactions`);
      assert.equal(certificates.size, 2, 'the server certificate was rotated');
      assert.ok(
        accepted.length >= SENDERS * 5,
        `only ${accepted.length} messages in ${elapsed} ms`,
      );

      // Every 250 ends up in bob's Maildir, exactly once.
      const mailbox = join(state.path, 'mail', 'treyresearch.net', 'bob', 'new');
      const delivered = await eventually(
        `${accepted.length} messages in ${mailbox}`,
        async () => {
          const names = await readdir(mailbox).catch(() => []);
          return names.length >= accepted.length ? names : undefined;
        },
        15_000,
      );
      const subjects = await Promise.all(
        delivered.map(async (name) => {
          const text = await readFile(join(mailbox, name), 'utf8');
          return /^Subject: (.*)$/m.exec(text)?.[1]?.trim() ?? '';
        }),
      );
      assert.deepEqual(subjects.sort(), [...accepted].sort());
    });
  });
