// One count of a certificate's days to expiry for validate (DS101) and plan/apply: a day begun
// counts as one, notAfter itself is still valid, and the warning window includes its last day.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { certificateExpiry, EXPIRY_WARNING_DAYS } from '../src/certificate-expiry.js';

const DAY = 86_400_000;
const now = new Date('2026-12-01T00:00:00.000Z');
const at = (ms: number) => new Date(now.getTime() + ms);

describe('certificateExpiry', () => {
  it('counts a day begun as one day left, and is expired only after notAfter', () => {
    assert.deepEqual(certificateExpiry(at(10 * DAY), now), { state: 'expiring', days: 10 });
    assert.deepEqual(certificateExpiry(at(10 * DAY - 60_000), now), {
      state: 'expiring',
      days: 10,
    });
    assert.deepEqual(certificateExpiry(at(1), now), { state: 'expiring', days: 1 });
    assert.deepEqual(certificateExpiry(at(0), now), { state: 'expiring', days: 0 });
    assert.deepEqual(certificateExpiry(at(-1), now), { state: 'expired' });
  });

  it('warns within the window, its last day included, and not beyond it', () => {
    assert.equal(certificateExpiry(at(EXPIRY_WARNING_DAYS * DAY), now).state, 'expiring');
    assert.equal(certificateExpiry(at(EXPIRY_WARNING_DAYS * DAY + 1), now).state, 'valid');
    assert.equal(certificateExpiry(at(5 * DAY), now, 3).state, 'valid');
  });

  it('never counts fewer days for a later notAfter', () => {
    fc.assert(
      fc.property(fc.nat(400 * DAY), fc.nat(400 * DAY), (a, b) => {
        const [early, late] = a <= b ? [a, b] : [b, a];
        const first = certificateExpiry(at(early), now);
        const second = certificateExpiry(at(late), now);
        assert.ok('days' in first && 'days' in second);
        assert.ok(first.days <= second.days);
      }),
    );
  });
});
