// A TlsPolicy change is judged like every other field: lowering DANE or MTA-STS, dropping
// requireTls, deleting a strict policy, creating a lax one and turning off the validating
// resolver weaken, and the one gate refuses them without --approve-weakening.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Named, RuntimeConfig, TlsPolicySpec } from '../../src/model.js';
import { describeConfig } from '../../src/objects.js';
import { judgePlan, savedGenerationState } from '../../src/reconcile/gate.js';
import { computePlan } from '../../src/reconcile/plan.js';
import { runtimeConfig } from '../support/runtime-config.js';

const policy = (name: string, spec: Partial<TlsPolicySpec> = {}): Named<TlsPolicySpec> => ({
  name,
  spec: {
    addressSpaces: ['fabrikam.example'],
    dane: 'optional',
    mtaSts: 'optional',
    requireTls: false,
    ...spec,
  },
});

const withPolicies = (policies: Named<TlsPolicySpec>[], validating = true): RuntimeConfig => {
  const base = runtimeConfig();
  return {
    ...base,
    organization: {
      ...base.organization,
      spec: {
        ...base.organization.spec,
        resolver: { ...base.organization.spec.resolver, validating },
      },
    },
    tlsPolicies: policies,
  };
};

function plan(before: RuntimeConfig, after: RuntimeConfig) {
  return computePlan(describeConfig(after), savedGenerationState(before, 1));
}

function impact(before: RuntimeConfig, after: RuntimeConfig) {
  return plan(before, after).changes.map((change) => [
    `${change.kind}/${change.name}`,
    change.action,
    change.security,
    change.reasons.join('; '),
  ]);
}

describe('TlsPolicy security impact', () => {
  it('weakens when DANE or MTA-STS is lowered or requireTls turned off, strengthens the other way', () => {
    const strict = withPolicies([
      policy('fabrikam', { dane: 'require', mtaSts: 'require', requireTls: true }),
    ]);
    const lowered = withPolicies([
      policy('fabrikam', { dane: 'optional', mtaSts: 'disable', requireTls: false }),
    ]);
    const [change] = plan(strict, lowered).changes;
    assert.equal(change?.security, 'weakens');
    assert.deepEqual(change?.reasons, [
      'DANE loosened to optional',
      'MTA-STS loosened to disable',
      'required TLS turned off',
    ]);
    assert.equal(plan(lowered, strict).changes[0]?.security, 'strengthens');
  });

  it('weakens when a strict policy is deleted or a lax one created; neutral for a policy equal to the defaults', () => {
    const none = withPolicies([]);
    assert.deepEqual(impact(withPolicies([policy('fabrikam', { mtaSts: 'require' })]), none), [
      [
        'TlsPolicy/fabrikam',
        'delete',
        'weakens',
        'mtaSts: require no longer for fabrikam.example (policy deleted)',
      ],
    ]);
    assert.deepEqual(impact(none, withPolicies([policy('fabrikam', { dane: 'disable' })])), [
      ['TlsPolicy/fabrikam', 'create', 'weakens', 'dane: disable for fabrikam.example'],
    ]);
    assert.deepEqual(impact(none, withPolicies([policy('fabrikam')])), [
      ['TlsPolicy/fabrikam', 'create', 'none', ''],
    ]);
  });

  it('weakens when a lax policy gains a domain or a strict one loses one', () => {
    const lax = (spaces: string[]) =>
      withPolicies([policy('lax', { addressSpaces: spaces, dane: 'disable' })]);
    assert.equal(
      plan(lax(['a.example']), lax(['a.example', 'b.example'])).changes[0]?.security,
      'weakens',
    );
    assert.equal(
      plan(lax(['a.example', 'b.example']), lax(['a.example'])).changes[0]?.security,
      'none',
    );
    const strict = (spaces: string[]) =>
      withPolicies([policy('strict', { addressSpaces: spaces, requireTls: true })]);
    assert.equal(
      plan(strict(['a.example', 'b.example']), strict(['a.example'])).changes[0]?.security,
      'weakens',
    );
  });

  it('weakens when the resolver stops being trusted as validating', () => {
    const [change] = plan(withPolicies([], true), withPolicies([], false)).changes;
    assert.equal(change?.kind, 'Organization');
    assert.equal(change?.security, 'weakens');
    assert.match(change?.reasons.join() ?? '', /DNSSEC validation by the resolver .* turned off/);
  });

  it('weakens when MTA-STS policy hosts at internal addresses are allowed, strengthens back', () => {
    const base = withPolicies([]);
    const allowing: RuntimeConfig = {
      ...base,
      organization: {
        ...base.organization,
        spec: { ...base.organization.spec, allowInternalPolicyHosts: true },
      },
    };
    const [on] = plan(base, allowing).changes;
    assert.equal(on?.kind, 'Organization');
    assert.equal(on?.security, 'weakens');
    assert.match(
      on?.reasons.join() ?? '',
      /MTA-STS policy hosts at internal addresses fetched from/,
    );
    const [off] = plan(allowing, base).changes;
    assert.equal(off?.security, 'strengthens');
  });

  it('is refused by the gate unattended without --approve-weakening, naming the policy', async () => {
    const before = withPolicies([policy('fabrikam', { dane: 'require' })]);
    const after = withPolicies([policy('fabrikam', { dane: 'disable' })]);
    const printed: string[] = [];
    const refused = await judgePlan(plan(before, after), {
      approval: { kind: 'unattended', approveWeakening: false },
      print: (text) => printed.push(text),
    });
    assert.equal(refused.status, 'refused');
    assert.match(
      refused.status === 'refused' ? refused.message : '',
      /TlsPolicy\/fabrikam \(DANE loosened to disable\)/,
    );
    const approved = await judgePlan(plan(before, after), {
      approval: { kind: 'unattended', approveWeakening: true },
      print: () => undefined,
    });
    assert.equal(approved.status, 'approved');
  });
});
