// GET /metrics: Prometheus text from the engine's own registry, behind the admin token, counting
// a real domain-secured exchange in both directions and real refusals, with queue and expiry gauges.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { refusalReason } from '../../src/engine/metrics.js';
import type { OverviewResponse } from '../../src/control/protocol.js';
import { lab } from '../support/lab.js';
import { LineClient } from '../support/line-client.js';
import {
  eventually,
  fabrikamFailed,
  refusedTwiceInOneSession,
  startScenario,
  type OperatorScenario,
} from './operator-scenario.js';

/** The value of one series, matched on its name and exact label set; undefined when absent. */
function sample(
  text: string,
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  const wanted = Object.entries(labels)
    .map(([key, value]) => `${key}="${value}"`)
    .sort()
    .join(',');
  for (const line of text.split('\n')) {
    const match = /^([a-z_]+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (match === null || match[1] !== name) continue;
    const have = (match[2] ?? '')
      .split(/,(?=[a-z_]+=")/)
      .filter(Boolean)
      .sort()
      .join(',');
    if (have === wanted) return Number(match[3]);
  }
  return undefined;
}

describe('/metrics', () => {
  let scenario: OperatorScenario;
  let scrape: () => Promise<string>;

  before(async () => {
    scenario = await startScenario();
    const { control, token } = scenario.running;
    scrape = async () => {
      const response = await fetch(`${control.url}/metrics`, {
        headers: { authorization: `Bearer ${token}` },
      });
      assert.equal(response.status, 200);
      assert.match(response.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
      return response.text();
    };
  });
  after(async () => scenario.close());

  it('refuses a scrape without the token or with a wrong one (401, Bearer challenge)', async () => {
    const { control, token } = scenario.running;
    const bare = await fetch(`${control.url}/metrics`);
    assert.equal(bare.status, 401);
    assert.equal(bare.headers.get('www-authenticate'), 'Bearer');
    assert.doesNotMatch(await bare.text(), /domsec_/);
    const wrong = await fetch(`${control.url}/metrics`, {
      headers: { authorization: `Bearer ${token}x` },
    });
    assert.equal(wrong.status, 401);
  });

  it('counts messages received and sent by connector and domain-secure result', async () => {
    assert.equal((await scenario.receiveSecured()).code, 250);
    assert.equal((await scenario.sendTo('bob@adatum.com')).code, 250);
    await eventually('delivery to the partner', () =>
      scenario.partner.messages.length === 1 &&
      scenario.running.engine.queuedMessages().length === 0
        ? true
        : undefined,
    );
    const text = await scrape();
    const received = (connector: string, secured: string) =>
      sample(text, 'domsec_messages_received_total', { connector, domain_secured: secured });
    const sent = (connector: string, secured: string) =>
      sample(text, 'domsec_messages_sent_total', { connector, domain_secured: secured });
    assert.equal(received('from-partners', 'true'), 1);
    assert.equal(received('internal', 'false'), 1);
    assert.equal(sent('to-partners', 'true'), 1, 'the partner delivery went over domain security');
    assert.equal(sent('local', 'false'), 1, 'the partner message went to the local mailbox');
    assert.equal(sample(text, 'domsec_generation'), 1);

    // Our certificate and the partner's, as verified in each direction, with their expiry.
    const days = (pem: string) =>
      (Date.parse(new X509Certificate(pem).validTo) - Date.now()) / 86_400_000;
    const ours = sample(text, 'domsec_certificate_expiry_days', {
      certificate: 'mail-treyresearch',
    });
    assert.ok(ours !== undefined && Math.abs(ours - days(lab().treyMail.certPem)) < 0.1);
    for (const direction of ['send', 'receive']) {
      const partner = sample(text, 'domsec_partner_certificate_expiry_days', {
        partner: 'adatum.com',
        direction,
      });
      assert.ok(
        partner !== undefined && Math.abs(partner - days(lab().adatumMail.certPem)) < 0.1,
        `partner certificate expiry (${direction}): ${partner}`,
      );
      assert.equal(
        sample(text, 'domsec_partner_domain_secured', { partner: 'adatum.com', direction }),
        1,
      );
    }
  });

  it('counts TLS verification failures by direction and reason, logging each once per session', async () => {
    const outcome = await scenario.receiveImpostor();
    assert.equal(outcome.code, 454);
    assert.deepEqual(await refusedTwiceInOneSession(scenario.partnerPort), [454, 454]);
    assert.equal((await scenario.sendTo('carol@fabrikam.com')).code, 250);
    await fabrikamFailed(scenario.running);

    const text = await scrape();
    // Two sessions refused, the second one twice: one refusal counted and logged per session.
    assert.equal(
      sample(text, 'domsec_tls_verification_failures_total', {
        direction: 'receive',
        reason: 'untrusted-issuer',
      }),
      2,
    );
    const logged = scenario.running.log.entries.filter((e) => e.event === 'partner.refused');
    assert.equal(logged.length, 2);
    assert.match(
      String(logged[0]?.fields.reason),
      /not issued by a trust anchor of partner adatum\.com/,
    );
    assert.equal(
      sample(text, 'domsec_tls_verification_failures_total', {
        direction: 'send',
        reason: 'untrusted-issuer',
      }),
      1,
    );
    assert.equal(
      sample(text, 'domsec_partner_domain_secured', { partner: 'fabrikam.com', direction: 'send' }),
      0,
    );
    assert.equal(
      sample(text, 'domsec_partner_domain_secured', {
        partner: 'adatum.com',
        direction: 'receive',
      }),
      0,
      'the last session claiming adatum.com was refused',
    );
    // The refused message waits in its queue: depth and age by next-hop domain.
    assert.equal(sample(text, 'domsec_queue_depth', { next_hop_domain: 'fabrikam.com' }), 1);
    const age = sample(text, 'domsec_queue_oldest_message_age_seconds', {
      next_hop_domain: 'fabrikam.com',
    });
    assert.ok(age !== undefined && age >= 0 && age < 120, `oldest message age ${age}`);
    assert.equal(sample(text, 'domsec_queue_depth', { next_hop_domain: 'adatum.com' }), undefined);
  });

  it('counts reconcile reports by outcome and times reconcilers and applies', async () => {
    const { client, control, token, engine } = scenario.running;
    const report = (outcome: string, error: string | null, durationMs?: number) =>
      fetch(`${control.url}/v1/status`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ outcome, generation: 1, error, reconciler: 'test', durationMs }),
      });
    assert.equal((await report('applied', null, 1_250)).status, 200);
    assert.equal((await report('invalid', 'manifests/x.yaml:1:1 DS001')).status, 200);
    await assert.rejects(client.rollback(99));
    const text = await scrape();
    assert.equal(sample(text, 'domsec_reconcile_total', { outcome: 'applied' }), 1);
    assert.equal(sample(text, 'domsec_reconcile_total', { outcome: 'invalid' }), 1);
    // The reconciler's own time: read, validate, plan and apply, as watch reports it.
    assert.equal(
      sample(text, 'domsec_reconcile_duration_seconds_count', { outcome: 'applied' }),
      1,
    );
    assert.equal(
      sample(text, 'domsec_reconcile_duration_seconds_sum', { outcome: 'applied' }),
      1.25,
    );
    assert.equal(
      sample(text, 'domsec_reconcile_duration_seconds_count', { outcome: 'invalid' }),
      undefined,
    );
    assert.equal(sample(text, 'domsec_apply_duration_seconds_count', { result: 'applied' }), 1);
    assert.equal(sample(text, 'domsec_apply_duration_seconds_count', { result: 'failed' }), 1);
    assert.equal(engine.currentGeneration, 1);
  });

  it('shows the sessions open now on each receive connector, in /metrics and the overview', async () => {
    const { client, control, token } = scenario.running;
    const open = await LineClient.open(scenario.internalPort);
    try {
      assert.match(await open.reply(), /^220 /);
      const text = await scrape();
      assert.equal(sample(text, 'domsec_receive_sessions', { connector: 'internal' }), 1);
      assert.equal(sample(text, 'domsec_receive_sessions', { connector: 'from-partners' }), 0);
      const response = await fetch(`${control.url}/v1/overview`, {
        headers: { authorization: `Bearer ${token}` },
      });
      const view = (await response.json()) as OverviewResponse;
      assert.deepEqual(
        view.receiveConnectors.map((c) => [c.name, c.sessions, c.bindings[0]?.listening]),
        [
          ['from-partners', 0, true],
          ['internal', 1, true],
        ],
      );
      assert.equal((await client.state()).generation, view.reconcile.generation);
    } finally {
      open.close();
    }
  });

  it('shows the sessions open now to next hops on each send connector, a kept one included', async () => {
    const { control, token } = scenario.running;
    const before = scenario.partner.messages.length;
    assert.equal((await scenario.sendTo('carol@adatum.com')).code, 250);
    await eventually('delivery to the partner', () =>
      scenario.partner.messages.length > before ? true : undefined,
    );
    // The connection is kept for the next round (2 s, as Postfix's connection cache): still open.
    const text = await scrape();
    assert.equal(sample(text, 'domsec_send_sessions', { connector: 'to-partners' }), 1);
    const response = await fetch(`${control.url}/v1/overview`, {
      headers: { authorization: `Bearer ${token}` },
    });
    const view = (await response.json()) as OverviewResponse;
    assert.deepEqual(
      view.sendConnectors.map((c) => [c.name, c.sessions]),
      [['to-partners', 1]],
    );
    // Once it is closed, idle past the cache's limit, it is no longer counted.
    await eventually(
      'the kept connection to close',
      async () =>
        sample(await scrape(), 'domsec_send_sessions', { connector: 'to-partners' }) === 0
          ? true
          : undefined,
      10_000,
    );
  });

  it('names few reasons: the refusal texts become stable labels', () => {
    assert.equal(refusalReason('no client certificate'), 'no-certificate');
    assert.equal(refusalReason('not under TLS'), 'no-tls');
    assert.equal(refusalReason('certificate expired on 2026-01-01T00:00:00.000Z'), 'validity');
    assert.equal(
      refusalReason('certificate names mail.contoso.com, expected adatum.com'),
      'name-mismatch',
    );
    assert.equal(refusalReason('TLS verification failed: CERT_REVOKED'), 'revoked');
    assert.equal(refusalReason('something new'), 'other');
  });
});
