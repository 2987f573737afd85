// Sending to an IPv6 next hop: a partner on [::1] reached through a static route, with mutual TLS
// and verification exactly as over IPv4, and the protocol log writing the endpoint in brackets.
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { buildGeneration } from '../../src/engine/generation.js';
import { memoryLog } from '../../src/engine/log.js';
import { ProtocolLog } from '../../src/engine/protocol-log.js';
import type { OutboundMessage } from '../../src/engine/queue/outcome.js';
import { createRemoteDelivery } from '../../src/engine/send/deliver.js';
import { lab } from '../support/lab.js';
import { runtimeConfig } from '../support/runtime-config.js';
import { startSmtpPeer, type SmtpPeer } from '../support/smtp-peer.js';
import { tempDir } from '../support/tmp.js';
import { requireDomainName } from '../../src/domain-name.js';

describe('sending over IPv6', () => {
  const cleanups: (() => Promise<void>)[] = [];
  after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  it('delivers to a partner on [::1] with verified mutual TLS and logs [::1]:port', async () => {
    const peer: SmtpPeer = await startSmtpPeer({ host: '::1', certificate: lab().adatumMail });
    cleanups.push(() => peer.close());
    const logs = await tempDir('domsec-ipv6-');
    cleanups.push(logs.remove);
    const protocolLog = new ProtocolLog(logs.path);
    cleanups.push(() => protocolLog.close());
    const generation = buildGeneration(
      runtimeConfig({
        organization: {
          resolver: { servers: [], static: { 'adatum.com': [{ host: '::1', port: peer.port }] } },
        },
        sendConnector: { protocolLogging: 'verbose' },
      }),
      1,
    );
    const deliver = createRemoteDelivery({
      log: memoryLog(),
      protocolLog,
      timeouts: { connectMs: 3_000, greetingMs: 3_000, socketMs: 5_000 },
    });
    const body = Buffer.from('Subject: v6\r\n\r\nv6\r\n');
    const message: OutboundMessage = {
      id: 'V6.1',
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
      new AbortController().signal,
    );
    assert.deepEqual(outcome, { delivered: ['bob@adatum.com'], failures: [] });
    assert.equal(peer.messages[0]?.secure, true);
    assert.equal(peer.clientCertificates[0]?.fingerprint256, lab().treyMail.fingerprint);
    await protocolLog.close();
    const files = await readdir(logs.path, { recursive: true });
    const csv = files.find((f) => f.endsWith('.log'));
    assert.ok(csv !== undefined, `a protocol log file in ${files.join(', ')}`);
    const text = await readFile(join(logs.path, csv), 'utf8');
    assert.match(text, new RegExp(`\\[::1\\]:${peer.port}`));
  });
});
