// The engine's delivery side under an MTA-STS enforce policy: a queued message to a host with a
// wrong certificate waits with the policy's last error and reaches the peer with no MAIL FROM,
// the policy is kept in <state>/mta-sts, and an apply that turns MTA-STS off for the domain
// retries its queue at once (the policy is part of what the queue depends on).
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { EngineDelivery } from '../../../src/engine/delivery/engine-delivery.js';
import { buildGeneration, type Generation } from '../../../src/engine/generation.js';
import { memoryLog } from '../../../src/engine/log.js';
import type { Named, TlsPolicySpec } from '../../../src/model.js';
import { createCertificateAuthority, issueCertificate } from '../../../src/pki/lab.js';
import { startDnsServer } from '../../support/dns-server.js';
import { eventually } from '../../support/eventually.js';
import { lab } from '../../support/lab.js';
import { startPolicyHost } from '../../support/policy-host.js';
import { runtimeConfig, sendConnector } from '../../support/runtime-config.js';
import { startSmtpPeer } from '../../support/smtp-peer.js';
import { tempDir } from '../../support/tmp.js';

describe('engine delivery under MTA-STS', () => {
  const cleanup: (() => Promise<void>)[] = [];
  after(async () => {
    for (const step of cleanup.reverse()) await step();
  });

  it('defers a wrong certificate with the MTA-STS last error, then delivers once a policy disables it', async () => {
    const webCa = createCertificateAuthority({ commonName: 'Engine Web CA' });
    const state = await tempDir('domsec-engine-policy-');
    // Trusted by nobody here: the MX host cannot prove itself to an enforce policy.
    const peer = await startSmtpPeer({ certificate: lab().strangerAdatum });
    const host = await startPolicyHost(
      issueCertificate(webCa, {
        commonName: 'mta-sts.sts.example',
        dnsNames: ['mta-sts.sts.example'],
      }),
      {
        status: 200,
        contentType: 'text/plain',
        body: 'version: STSv1\nmode: enforce\nmx: mx.sts.example\nmax_age: 3600\n',
      },
    );
    const dns = await startDnsServer({
      'sts.example': { MX: [{ preference: 10, exchange: 'mx.sts.example' }] },
      'mx.sts.example': { A: ['127.0.0.1'] },
      '_mta-sts.sts.example': { TXT: ['v=STSv1; id=engine1'] },
      'mta-sts.sts.example': { A: ['127.0.0.1'] },
    });
    cleanup.push(state.remove, peer.close, host.close, dns.close);

    const generationFor = (number: number, tlsPolicies: Named<TlsPolicySpec>[]) =>
      buildGeneration(
        {
          ...runtimeConfig({
            organization: {
              resolver: { servers: [dns.server], static: {} },
              // The lab's policy host is on loopback.
              allowInternalPolicyHosts: true,
            },
            sendConnectors: [
              sendConnector('out', { domainSecure: false, requireTls: false, port: peer.port }),
            ],
          }),
          tlsPolicies,
        },
        number,
      );
    let current: Generation | undefined;
    const delivery = await EngineDelivery.open({
      stateDir: state.path,
      log: memoryLog(),
      generation: () => current,
      timeouts: { connectMs: 3_000, greetingMs: 3_000, socketMs: 5_000 },
      dns: { timeoutMs: 1_000, tries: 1 },
      tlsPolicyLab: { extraCas: [webCa.certPem], mtaStsPort: host.port },
    });
    cleanup.push(() => delivery.close());
    await delivery.queue.accept({
      from: 'alice@treyresearch.net',
      recipients: ['bob@sts.example'],
      body: Buffer.from('Subject: hi\r\n\r\nhello\r\n'),
      receivedAt: new Date(),
      connector: 'internal',
      remoteAddress: '127.0.0.1',
    });

    const first = generationFor(1, []);
    current = first;
    delivery.afterApply(undefined, first);
    await eventually('the first attempt', () => delivery.queue.summaries()[0]?.status === 'retry');
    assert.match(
      delivery.queue.summaries()[0]?.lastError ?? '',
      /454 4\.7\.5 MTA-STS: the certificate of mx\.sts\.example does not chain to a trusted CA/,
    );
    assert.deepEqual(peer.mailCommands, []);
    const kept = JSON.parse(
      await readFile(join(state.path, 'mta-sts', 'sts.example.json'), 'utf8'),
    );
    assert.equal(kept.id, 'engine1');
    assert.equal(kept.policy.mode, 'enforce');

    const lax = generationFor(2, [
      {
        name: 'no-sts',
        spec: {
          addressSpaces: ['sts.example'],
          dane: 'optional',
          mtaSts: 'disable',
          requireTls: false,
        },
      },
    ]);
    current = lax;
    delivery.afterApply(first, lax);
    await eventually('delivery after the apply', () => delivery.queue.messages().length === 0);
    assert.deepEqual(
      peer.messages.map((m) => m.recipients),
      [['bob@sts.example']],
    );
  });
});
