// The outbound TLS policies on the paths that do not go by the domain's MX, read as an attacker
// on the wire would: a TlsPolicy's `dane: require` or `mtaSts: require` cannot be verified through
// a smart host or a static route, so the mail waits there (it left with the connector's
// opportunistic TLS, plaintext when STARTTLS was stripped), and the internal relay's tls setting
// loosens nothing when it holds a value this version does not know.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { requireDomainName } from '../../src/domain-name.js';
import { createRelayDelivery, relayPolicy } from '../../src/engine/delivery/relay.js';
import { buildGeneration } from '../../src/engine/generation.js';
import { memoryLog } from '../../src/engine/log.js';
import { StsPolicyCache } from '../../src/engine/policy/mta-sts-cache.js';
import type { OutboundMessage } from '../../src/engine/queue/outcome.js';
import { createRemoteDelivery } from '../../src/engine/send/deliver.js';
import type { PolicyLevel, RelayDelivery, RuntimeConfig } from '../../src/model.js';
import { smtpReplyText } from '../../src/smtp-reply.js';
import { lab } from '../support/lab.js';
import { runtimeConfig, sendConnector } from '../support/runtime-config.js';
import { startSmtpPeer, type SmtpPeer } from '../support/smtp-peer.js';
import { tempDir } from '../support/tmp.js';

const TIMEOUTS = { connectMs: 3_000, greetingMs: 3_000, socketMs: 5_000 };

function message(id: string, recipient: string): OutboundMessage {
  const body = Buffer.from('From: alice@treyresearch.net\r\nSubject: x\r\n\r\nsecret\r\n');
  return {
    id,
    from: 'alice@treyresearch.net',
    recipients: [recipient],
    size: body.length,
    receivedAt: new Date(),
    body: () => Promise.resolve(body),
  };
}

describe('TLS policies off the MX path', () => {
  const cleanup: (() => Promise<void>)[] = [];
  after(async () => {
    for (const step of cleanup.reverse()) await step();
  });

  async function peer(starttls: boolean): Promise<SmtpPeer> {
    const started = await startSmtpPeer({ certificate: lab().strangerAdatum, starttls });
    cleanup.push(started.close);
    return started;
  }

  async function send(config: RuntimeConfig, dane: PolicyLevel, mtaSts: PolicyLevel) {
    const state = await tempDir('domsec-policy-paths-');
    cleanup.push(state.remove);
    const generation = buildGeneration(
      {
        ...config,
        tlsPolicies: [
          {
            name: 'bank',
            spec: { addressSpaces: ['bank.example'], dane, mtaSts, requireTls: false },
          },
        ],
      },
      1,
    );
    const deliver = createRemoteDelivery({
      log: memoryLog(),
      timeouts: TIMEOUTS,
      dns: { timeoutMs: 1_000, tries: 1 },
      tlsPolicy: { cache: new StsPolicyCache(`${state.path}/mta-sts`), timeoutMs: 1_000 },
    });
    const [outcome] = await deliver(
      requireDomainName('bank.example'),
      [message('PATHS1.1', 'bob@bank.example')],
      generation,
      new AbortController().signal,
    );
    await deliver.close?.();
    assert.ok(outcome);
    return outcome;
  }

  const smartHost = (port: number) =>
    runtimeConfig({
      sendConnectors: [
        sendConnector('out', {
          domainSecure: false,
          requireTls: false,
          port,
          routing: { smartHosts: ['127.0.0.1'] },
        }),
      ],
    });
  const staticRoute = (port: number) =>
    runtimeConfig({
      organization: {
        resolver: {
          servers: [],
          validating: true,
          static: { 'bank.example': [{ host: '127.0.0.1', port }] },
        },
      },
      sendConnectors: [sendConnector('out', { domainSecure: false, requireTls: false, port })],
    });

  it('dane: require through a smart host: the mail waits, nothing is sent even in plaintext', async () => {
    const stripped = await peer(false);
    const outcome = await send(smartHost(stripped.port), 'require', 'optional');
    assert.deepEqual(stripped.mailCommands, [], 'MAIL FROM went out');
    assert.equal(stripped.connections, 0);
    assert.equal(outcome.failures[0]?.permanent, false);
    assert.match(
      smtpReplyText(outcome.failures[0]?.reply ?? { code: 0, enhanced: '', text: '' }),
      /^454 4\.7\.5 DANE: required for bank\.example by TlsPolicy bank, and its mail goes through the smart host 127\.0\.0\.1, not its MX: DANE cannot be verified there$/,
    );
  });

  it('mtaSts: require through a static route: the mail waits, even where TLS is offered', async () => {
    const offering = await peer(true);
    const outcome = await send(staticRoute(offering.port), 'optional', 'require');
    assert.deepEqual(offering.messages, []);
    assert.match(
      outcome.failures.map((f) => smtpReplyText(f.reply)).join('\n'),
      /454 4\.7\.5 MTA-STS: required for bank\.example by TlsPolicy bank, and its mail goes by a static route \(resolver\.static\), not its MX/,
    );
  });

  it('optional levels through a smart host send as before, with the connector’s TLS', async () => {
    const offering = await peer(true);
    const outcome = await send(smartHost(offering.port), 'optional', 'optional');
    assert.deepEqual(outcome.failures, []);
    assert.equal(offering.messages.length, 1);
    assert.equal(offering.mailCommands[0]?.secure, true);
  });

  it('an internal relay whose tls this version does not know is required: no plaintext', async () => {
    assert.deepEqual(relayPolicy({ tls: 'none' } as RelayDelivery), { kind: 'none' });
    assert.deepEqual(relayPolicy({} as RelayDelivery), { kind: 'opportunistic' });
    for (const tls of ['verify-full', 'Required', 'NONE', ''])
      assert.deepEqual(relayPolicy({ tls } as unknown as RelayDelivery), { kind: 'required' }, tls);

    const stripped = await peer(false);
    const relay = { host: `127.0.0.1:${stripped.port}`, protocol: 'smtp', tls: 'verify-full' };
    const generation = buildGeneration(
      runtimeConfig({ organization: { delivery: { relay } as unknown as { maildir: string } } }),
      1,
    );
    const deliver = createRelayDelivery({ log: memoryLog(), timeouts: TIMEOUTS });
    cleanup.push(deliver.close);
    const outcome = await deliver(message('RELAY1.1', 'kim@treyresearch.net'), generation);
    assert.deepEqual(stripped.mailCommands, [], 'MAIL FROM went out in plaintext');
    assert.equal(
      smtpReplyText(outcome.failures[0]?.reply ?? { code: 0, enhanced: '', text: '' }),
      '451 4.7.3 STARTTLS is required to send mail',
    );
  });
});
