// Property: a manifest that spells a running partner's domain another way (case, full-width
// letters, ideographic dots, trailing dot, U-label for A-label) plans no change at all, because
// compile makes the one canonical form before the plan compares anything.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { loadConfiguration } from '../../src/config/index.js';
import type { EngineState } from '../../src/model.js';
import { describeConfig } from '../../src/objects.js';
import { computePlan } from '../../src/reconcile/plan.js';
import { ADATUM, TREY, writeLab, writeManifests } from '../support/manifests.js';
import { tempDir } from '../support/tmp.js';

const IDN = 'xn--bcher-kva.example'; // bücher.example
const FULL_WIDTH_OFFSET = 0xff01 - 0x21;
const DOTS = ['.', '\u3002', '\uff0e', '\uff61']; // UTS #46 maps all four to "."

function spelledCharacter(char: string): fc.Arbitrary<string> {
  const forms = new Set([char, char.toUpperCase()]);
  if (/[a-z0-9-]/.test(char))
    for (const form of [char, char.toUpperCase()])
      forms.add(String.fromCodePoint((form.codePointAt(0) ?? 0) + FULL_WIDTH_OFFSET));
  return fc.constantFrom(...forms);
}

/** A spelling of `name` that UTS #46 maps back to it. */
function spelling(name: string): fc.Arbitrary<string> {
  const labels = name.split('.');
  return fc
    .tuple(
      fc.tuple(...labels.map((label) => fc.tuple(...[...label].map(spelledCharacter)))),
      fc.array(fc.constantFrom(...DOTS), { minLength: labels.length, maxLength: labels.length }),
      fc.boolean(),
    )
    .map(
      ([parts, dots, trailing]) =>
        parts
          .map((chars, index) => `${index === 0 ? '' : (dots[index] ?? '.')}${chars.join('')}`)
          .join('') + (trailing ? '.' : ''),
    );
}

const partner = (domain: string) => `apiVersion: domsec.io/v1alpha1
kind: PartnerDomain
metadata: {name: buecher}
spec:
  domain: ${JSON.stringify(domain)}
  domainSecure: {send: false, receive: true}
  trustAnchors: [system]
  remoteIPRanges: [127.0.0.0/8]
`;

describe('plan and domain spellings', () => {
  let lab: Awaited<ReturnType<typeof tempDir>>;
  let manifests: string;
  let running: EngineState;
  const load = (domain: string) =>
    loadConfiguration([manifests, '-'], {
      stdin: () => Promise.resolve(Buffer.from(partner(domain))),
    });

  before(async () => {
    lab = await tempDir();
    await writeLab(lab.path);
    manifests = await writeManifests({
      root: lab.path,
      org: ADATUM,
      partner: TREY,
      partnerBinding: '127.0.0.1:0',
      internalBinding: '127.0.0.1:0',
      adminListen: '127.0.0.1:1',
      partnerRoute: { host: '127.0.0.1', port: 9 },
      trust: 'root',
    });
    const canonical = await load(IDN);
    assert.ok(canonical.config, JSON.stringify(canonical.diagnostics));
    running = {
      formatVersion: 1,
      generation: 1,
      appliedAt: null,
      source: null,
      hostname: ADATUM.hostname,
      objects: describeConfig(canonical.config),
      listeners: [],
      queues: [],
    };
  });

  after(() => lab.remove());

  it('another spelling of the running partner domain plans no change', async () => {
    await fc.assert(
      fc.asyncProperty(fc.oneof(spelling(IDN), spelling('bücher.example')), async (spelled) => {
        const loaded = await load(spelled);
        assert.ok(loaded.config, `${spelled}: ${JSON.stringify(loaded.diagnostics)}`);
        const plan = computePlan(describeConfig(loaded.config), running);
        assert.deepEqual(plan.changes, [], spelled);
      }),
      { numRuns: 40 },
    );
  });
});
