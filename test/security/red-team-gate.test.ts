// Red team: changes the gate called neutral although the engine then accepts what it refused, or
// sends with less verification. Each case shows the engine's behaviour before and after (on
// loopback where it is a socket decision) and that the plan calls the change weakening.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { chooseSendConnector } from '../../src/address-spaces.js';
import { requireDomainName } from '../../src/domain-name.js';
import { buildGeneration } from '../../src/engine/generation.js';
import type { EngineState, Plan, RuntimeConfig } from '../../src/model.js';
import { describeConfig } from '../../src/objects.js';
import { passGate } from '../../src/reconcile/gate.js';
import { computePlan } from '../../src/reconcile/plan.js';
import { lab } from '../support/lab.js';
import { receiving } from '../support/receiving.js';
import { runtimeConfig, sendConnector } from '../support/runtime-config.js';
import { submit } from '../support/smtp-submit.js';

/** What an engine running `config` reports (generation 3: not the first configuration). */
function running(config: RuntimeConfig): EngineState {
  return {
    formatVersion: 1,
    generation: 3,
    appliedAt: null,
    source: null,
    hostname: config.organization.spec.hostname,
    objects: describeConfig(config),
    listeners: [],
    queues: [],
  };
}

function plan(from: RuntimeConfig, to: RuntimeConfig): Plan {
  return computePlan(describeConfig(to), running(from));
}

/** The gate as watch and `apply --auto-approve` pass it, without --approve-weakening. */
async function unattendedGate(from: RuntimeConfig, to: RuntimeConfig) {
  return passGate({
    desired: describeConfig(to),
    actual: running(from),
    approval: { kind: 'unattended', approveWeakening: false },
    print: () => undefined,
  });
}

describe('red team: weakening changes the gate must not call neutral', () => {
  it('an accepted domain removed: its senders, refused from outside before, are accepted after', async (t) => {
    const before = runtimeConfig({
      organization: { acceptedDomains: ['treyresearch.net', 'trey.example'] },
    });
    const after = runtimeConfig({ organization: { acceptedDomains: ['treyresearch.net'] } });
    const envelope = { from: 'ceo@trey.example', to: ['user@treyresearch.net'] };
    const message = 'From: ceo@trey.example\r\nSubject: wire the money\r\n\r\nnow\r\n';
    const client = { serverCa: lab().treyRoot.certPem };

    const old = await receiving(t, buildGeneration(before, 1));
    const refused = await submit(old.port, envelope, client, message);
    assert.equal(refused.code, 550, refused.response);
    assert.match(refused.response, /^550 5\.7\.1 /);
    const next = await receiving(t, buildGeneration(after, 2));
    const accepted = await submit(next.port, envelope, client, message);
    assert.equal(accepted.code, 250, accepted.response);

    const [change] = plan(before, after).changes;
    assert.equal(change?.kind, 'Organization');
    assert.equal(change.security, 'weakens', JSON.stringify(change.reasons));
    assert.match(change.reasons.join('; '), /trey\.example/);
    const gate = await unattendedGate(before, after);
    assert.equal(gate.status, 'refused');
  });

  it('an accepted domain added is not weakening (its senders are refused from outside now)', () => {
    const before = runtimeConfig({ organization: { acceptedDomains: ['treyresearch.net'] } });
    const after = runtimeConfig({
      organization: { acceptedDomains: ['treyresearch.net', 'trey.example'] },
    });
    const [change] = plan(before, after).changes;
    assert.notEqual(change?.security, 'weakens');
  });

  const connectors = (plainCost: number, tlsCost = 1) =>
    runtimeConfig({
      sendConnectors: [
        sendConnector('to-partners', { addressSpaces: ['adatum.com'] }),
        sendConnector('tls', {
          addressSpaces: ['contoso.com'],
          domainSecure: false,
          requireTls: true,
          cost: tlsCost,
        }),
        sendConnector('plain', {
          addressSpaces: ['contoso.com'],
          domainSecure: false,
          requireTls: false,
          cost: plainCost,
        }),
      ],
    });
  const carrier = (config: RuntimeConfig) =>
    chooseSendConnector(buildGeneration(config, 1).sendConnectors, requireDomainName('contoso.com'))
      ?.name;

  it('a connector without required TLS made cheaper: mail that left with required TLS leaves without', async () => {
    const before = connectors(5);
    const after = connectors(0);
    assert.equal(carrier(before), 'tls');
    assert.equal(carrier(after), 'plain');
    const [change] = plan(before, after).changes;
    assert.equal(change?.name, 'plain');
    assert.equal(change.security, 'weakens', JSON.stringify(change.reasons));
    assert.equal((await unattendedGate(before, after)).status, 'refused');
  });

  it('a connector with required TLS made dearer: the same weakening from the other side', async () => {
    const before = connectors(5, 1);
    const after = connectors(5, 9);
    assert.equal(carrier(after), 'plain');
    const [change] = plan(before, after).changes;
    assert.equal(change?.name, 'tls');
    assert.equal(change.security, 'weakens', JSON.stringify(change.reasons));
    assert.equal((await unattendedGate(before, after)).status, 'refused');
  });

  it('costs moved the other way are not weakening', () => {
    for (const [from, to] of [
      [connectors(0), connectors(5)],
      [connectors(5, 9), connectors(5, 1)],
    ] as const) {
      for (const change of plan(from, to).changes) assert.notEqual(change.security, 'weakens');
    }
  });
});
