// The TLSA judgement of a plan, on the engine states it can meet: a renewed certificate with the
// same key keeps our TLSA 3 1 1 record (no impact); naming another certificate with another key
// weakens; an engine that does not report its key's digest shows no spurious change, and a plan
// that changes the certificate against it says that it cannot compare. All of it only when the
// Organization says it publishes the record (publishesTlsa); otherwise a new key is routine.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { JsonObject, ObjectState, RuntimeConfig } from '../../src/model.js';
import { describeConfig } from '../../src/objects.js';
import { savedGenerationState } from '../../src/reconcile/gate.js';
import { computePlan } from '../../src/reconcile/plan.js';
import { lab } from '../support/lab.js';
import { certificate, ORGANIZATION_CERTIFICATE, runtimeConfig } from '../support/runtime-config.js';

const running = runtimeConfig({ organization: { publishesTlsa: true } });

const stateWith = (edit: (spec: JsonObject) => void) => {
  const state = savedGenerationState(running, 1);
  for (const object of state.objects) if (object.kind === 'Certificate') edit(object.spec);
  return state;
};

const plan = (desired: RuntimeConfig | ObjectState[], state = savedGenerationState(running, 1)) =>
  computePlan(Array.isArray(desired) ? desired : describeConfig(desired), state);

describe('plan: our TLSA record', () => {
  it('a renewed certificate with the same key changes nothing for TLSA', () => {
    const state = stateWith((spec) => {
      spec.fingerprint = 'AA:BB';
      spec.notAfter = '2020-01-01T00:00:00.000Z';
    });
    const [change] = plan(running, state).changes;
    assert.equal(change?.kind, 'Certificate');
    assert.equal(change.security, 'none');
    assert.deepEqual(change.reasons, []);
  });

  it('naming another certificate with another key weakens the Organization change', () => {
    const other = runtimeConfig({
      organization: { certificate: 'next', publishesTlsa: true },
      certificates: [
        certificate(ORGANIZATION_CERTIFICATE, lab().treyMail),
        certificate('next', lab().adatumMail),
      ],
    });
    const organization = plan(other).changes.find((c) => c.kind === 'Organization');
    assert.equal(organization?.security, 'weakens');
    assert.match(
      organization.reasons.join(),
      /publish the next TLSA record first: _25\._tcp\.mail\.treyresearch\.net\. IN TLSA 3 1 1 [0-9a-f]{64}$/,
    );
  });

  it('without publishesTlsa a new key is an ordinary change: no weakening, no warning', () => {
    const unpublished = runtimeConfig();
    const other = runtimeConfig({
      organization: { certificate: 'next' },
      certificates: [
        certificate(ORGANIZATION_CERTIFICATE, lab().treyMail),
        certificate('next', lab().adatumMail),
      ],
    });
    const result = plan(other, savedGenerationState(unpublished, 1));
    const organization = result.changes.find((c) => c.kind === 'Organization');
    assert.equal(organization?.security, 'none');
    assert.doesNotMatch(organization.reasons.join(), /TLSA/);
    const old = savedGenerationState(unpublished, 1);
    for (const object of old.objects)
      if (object.kind === 'Certificate') {
        delete object.spec.spkiSha256;
        object.spec.fingerprint = 'AA:BB';
      }
    assert.deepEqual(plan(unpublished, old).warnings, []);
  });

  it('against an engine that does not report the digest: no change, and a warning when the certificate changes', () => {
    const old = stateWith((spec) => delete spec.spkiSha256);
    assert.deepEqual(plan(running, old).changes, []);
    assert.deepEqual(plan(running, old).warnings, []);
    const renewed = stateWith((spec) => {
      delete spec.spkiSha256;
      spec.fingerprint = 'AA:BB';
    });
    const result = plan(running, renewed);
    assert.deepEqual(
      result.changes.map((c) => [c.kind, c.security, c.fields.map((f) => f.path)]),
      [['Certificate', 'none', ['fingerprint']]],
    );
    assert.deepEqual(
      result.warnings.map((w) => w.code),
      ['tlsa-not-compared'],
    );
    assert.match(result.warnings[0]?.message ?? '', /cannot compare it with our TLSA record/);
  });
});
