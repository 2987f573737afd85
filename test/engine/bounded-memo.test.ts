// BoundedMemo: never more than its limit, always the computed value, the least recently used
// dropped first (fast-check over arbitrary sequences of keys).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { BoundedMemo } from '../../src/engine/bounded-memo.js';

describe('BoundedMemo', () => {
  it('holds at most its limit, answers what compute answers and computes only what it lost', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 8 }),
        fc.array(fc.integer({ min: 0, max: 12 }), { maxLength: 200 }),
        (limit, keys) => {
          const memo = new BoundedMemo<number, string>(limit);
          const recent: number[] = []; // a model: most recently used last
          for (const key of keys) {
            let computed = false;
            const value = memo.get(key, (k) => {
              computed = true;
              return `v${k}`;
            });
            assert.equal(value, `v${key}`);
            assert.equal(computed, !recent.includes(key), `key ${key} after ${recent.join(',')}`);
            const at = recent.indexOf(key);
            if (at >= 0) recent.splice(at, 1);
            recent.push(key);
            if (recent.length > limit) recent.shift();
            assert.ok(memo.size <= limit);
            assert.equal(memo.size, recent.length);
          }
        },
      ),
    );
  });

  it('keeps an undefined value as computed, and refuses a limit that bounds nothing', () => {
    const memo = new BoundedMemo<string, undefined>(2);
    let computations = 0;
    memo.get('a', () => void (computations += 1));
    memo.get('a', () => void (computations += 1));
    assert.equal(computations, 1);
    for (const limit of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
      assert.throws(() => new BoundedMemo(limit), RangeError);
    }
  });
});
