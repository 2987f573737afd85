// The TlsPolicy a domain falls under, chosen by one function for validate (DS024) and the engine:
// the most specific address space, ties to the first name; none when nothing matches (fast-check).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { addressSpaceMatch, chooseByAddressSpace } from '../src/address-spaces.js';

const label = fc.constantFrom('a', 'b', 'mail', 'contoso', 'com', 'example');
const domain = fc.array(label, { minLength: 1, maxLength: 4 }).map((labels) => labels.join('.'));
const space = fc.oneof(
  domain,
  domain.map((d) => `*.${d}`),
  fc.constant('*'),
  domain.map((d) => d.toUpperCase()),
);
const policies = fc.uniqueArray(
  fc.record({ name: fc.stringMatching(/^[a-c]{1,2}$/), spaces: fc.array(space, { maxLength: 3 }) }),
  { maxLength: 5, selector: (p) => p.name },
);

describe('choosing by address space', () => {
  it('picks the most specific match, ties to the first name, none without a match', () => {
    fc.assert(
      fc.property(policies, domain, (written, target) => {
        const items = written.map((p) => ({ name: p.name, spec: { addressSpaces: p.spaces } }));
        const score = (item: (typeof items)[number]) =>
          Math.max(-1, ...item.spec.addressSpaces.map((s) => addressSpaceMatch(s, target)));
        const chosen = chooseByAddressSpace(items, target);
        const matching = items.filter((item) => score(item) >= 0);
        if (matching.length === 0) return assert.equal(chosen, undefined);
        assert.ok(chosen !== undefined);
        for (const other of matching) {
          assert.ok(score(chosen) >= score(other));
          if (score(other) === score(chosen)) assert.ok(chosen.name <= other.name);
        }
      }),
      { numRuns: 500 },
    );
  });
});
