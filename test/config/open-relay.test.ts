// DS019 under fast-check: for generated remoteIPRanges (any spelling, split or joined, IPv4-mapped
// IPv6 included), a relay connector is refused exactly when its ranges cover an address outside
// loopback and private networks, as an interval computation written here independently says.
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { relayReach } from '../../src/relay-ranges.js';
import { CaseLab, codes, FIXTURES } from './cases.js';

type Family = 4 | 6;

interface Range {
  family: Family;
  start: bigint;
  end: bigint;
  text: string;
}

const V4 = (a: number, b: number, c: number, d: number) =>
  (BigInt(a) << 24n) | (BigInt(b) << 16n) | (BigInt(c) << 8n) | BigInt(d);
const MAPPED = 0xffffn << 32n;
const block = (start: bigint, bits: number): [bigint, bigint] => [
  start,
  start + (1n << BigInt(bits)) - 1n,
];

/** Loopback and private networks as numbers, the v4 ones also IPv4-mapped. */
const V4_ALLOWED: [bigint, bigint][] = [
  block(V4(127, 0, 0, 0), 24),
  block(V4(10, 0, 0, 0), 24),
  block(V4(172, 16, 0, 0), 20),
  block(V4(192, 168, 0, 0), 16),
  block(V4(169, 254, 0, 0), 16),
];
const ALLOWED: Record<Family, [bigint, bigint][]> = {
  4: V4_ALLOWED,
  6: [
    [1n, 1n],
    block(0xfcn << 120n, 121),
    block(0xfe8n << 116n, 118),
    ...V4_ALLOWED.map(([s, e]): [bigint, bigint] => [MAPPED + s, MAPPED + e]),
  ],
};

/** Whether [start, end] holds a number outside every allowed interval. */
function reachesBeyond({ family, start, end }: Range): boolean {
  const allowed = [...ALLOWED[family]].sort((a, b) => (a[0] < b[0] ? -1 : 1));
  let next = start;
  for (const [low, high] of allowed) {
    if (high < next) continue;
    if (low > next) return true; // a gap before this interval
    next = high + 1n;
    if (next > end) return false;
  }
  return next <= end;
}

const hex = (value: bigint, groups: number) =>
  Array.from({ length: groups }, (_, i) =>
    ((value >> BigInt(16 * (groups - 1 - i))) & 0xffffn).toString(16),
  );

/** An IPv6 address written in full, with :: for its longest zero run, or in upper case. */
function v6Text(value: bigint, style: number): string {
  const groups = hex(value, 8);
  if (style === 0) return groups.join(':');
  if (style === 1) return groups.join(':').toUpperCase();
  let best = [-1, 0];
  for (let i = 0; i < 8; i++) {
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > (best[1] ?? 0)) best = [i, j - i];
  }
  const [at = -1, length = 0] = best;
  if (length < 2) return groups.join(':');
  return `${groups.slice(0, at).join(':')}::${groups.slice(at + length).join(':')}`;
}

const v4Text = (value: bigint) =>
  [24n, 16n, 8n, 0n].map((shift) => String((value >> shift) & 0xffn)).join('.');

/** Starting points near every border the rule knows of, and anywhere. */
const v4Start = fc.oneof(
  fc.constantFrom(
    0n,
    V4(10, 0, 0, 0),
    V4(127, 0, 0, 1),
    V4(128, 0, 0, 0),
    V4(172, 16, 0, 0),
    V4(172, 32, 0, 0),
    V4(192, 168, 0, 0),
    V4(169, 254, 1, 0),
    V4(100, 64, 0, 0),
    V4(8, 8, 8, 8),
  ),
  fc.bigInt({ min: 0n, max: (1n << 32n) - 1n }),
);
const v6Start = fc.oneof(
  fc.constantFrom(
    0n,
    1n,
    0xfcn << 120n,
    0xfdn << 120n,
    0xfe8n << 116n,
    0xfecn << 116n,
    MAPPED,
    MAPPED + V4(10, 0, 0, 0),
    MAPPED + V4(127, 0, 0, 0),
    0x20010db8n << 96n,
  ),
  fc.bigInt({ min: 0n, max: (1n << 128n) - 1n }),
);

const range: fc.Arbitrary<Range> = fc.oneof(
  fc.tuple(v4Start, fc.integer({ min: 0, max: 32 })).map(([value, prefix]) => {
    const size = 1n << BigInt(32 - prefix);
    const start = (value / size) * size;
    return {
      family: 4 as const,
      start,
      end: start + size - 1n,
      text: `${v4Text(start)}/${prefix}`,
    };
  }),
  fc
    .tuple(v6Start, fc.integer({ min: 0, max: 128 }), fc.integer({ min: 0, max: 2 }))
    .map(([value, prefix, style]) => {
      const size = 1n << BigInt(128 - prefix);
      const start = (value / size) * size;
      return {
        family: 6 as const,
        start,
        end: start + size - 1n,
        text: `${v6Text(start, style)}/${prefix}`,
      };
    }),
);

const rangeLists = fc.uniqueArray(range, { minLength: 1, maxLength: 5, selector: (r) => r.text });

describe('relay ranges (DS019) under fast-check', () => {
  let cases: CaseLab;
  before(async () => {
    cases = await CaseLab.create();
  });
  after(async () => {
    await cases.remove();
  });

  it('relayReach puts a range beyond private exactly when it covers an address outside loopback and private networks', () => {
    fc.assert(
      fc.property(rangeLists, (ranges) => {
        const reach = relayReach(ranges.map((r) => r.text));
        for (const r of ranges)
          assert.equal(reach.beyond.includes(r.text), reachesBeyond(r), r.text);
        assert.equal(
          reach.loopback.length + reach.private.length + reach.beyond.length,
          ranges.length,
          'each range in one class',
        );
      }),
      { numRuns: 3_000 },
    );
  });

  it('a range split in halves is judged as the whole', () => {
    fc.assert(
      fc.property(
        range.filter((r) => r.end > r.start),
        (r) => {
          const prefix = Number(r.text.split('/')[1]);
          const width = r.family === 4 ? 32 : 128;
          const half = 1n << BigInt(width - prefix - 1);
          const text = (value: bigint) =>
            `${r.family === 4 ? v4Text(value) : v6Text(value, 2)}/${prefix + 1}`;
          const halves = relayReach([text(r.start), text(r.start + half)]);
          assert.equal(halves.beyond.length > 0, relayReach([r.text]).beyond.length > 0, r.text);
        },
      ),
      { numRuns: 2_000 },
    );
  });

  it('validate refuses a relay connector with DS019 exactly when its ranges reach beyond private', async () => {
    const base = await readFile(join(FIXTURES, 'base', 'connectors.yaml'), 'utf8');
    let refused = 0;
    await fc.assert(
      fc.asyncProperty(rangeLists, async (ranges) => {
        const result = await cases.load(undefined, async (dir) => {
          const list = ranges.map((r) => `'${r.text}'`).join(', ');
          await writeFile(
            join(dir, 'connectors.yaml'),
            `${base}---\napiVersion: domsec.io/v1alpha1\nkind: ReceiveConnector\nmetadata: {name: internal}\nspec: {bindings: ['[::]:587'], remoteIPRanges: [${list}], permitRelay: true}\n`,
          );
        });
        const expected = ranges.some(reachesBeyond);
        const found = codes(result.diagnostics).filter((code) => code !== 'DS107');
        assert.deepEqual(found, expected ? ['DS019'] : [], ranges.map((r) => r.text).join(', '));
        if (expected) refused += 1;
      }),
      { numRuns: 60 },
    );
    assert.ok(refused > 0, 'some lists reached beyond private');
  });
});
