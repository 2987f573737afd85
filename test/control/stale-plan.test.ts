// A stale plan is refused with its reasons as fields ({ code, base, current }) through the admin
// API, so the CLI words it without reading the engine's message back; anything else in that
// field (an older engine sends none, a hostile one anything) decodes to nothing.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { ControlError } from '../../src/control/client.js';
import { decodeStalePlan, describeStalePlan } from '../../src/stale-plan.js';
import { startEngine, type RunningEngine } from '../support/engine.js';
import { runtimeConfig } from '../support/runtime-config.js';
import { tempDir } from '../support/tmp.js';

describe('stale plans over the admin API', () => {
  let running: RunningEngine;
  let removeState: () => Promise<void> = () => Promise.resolve();
  before(async () => {
    const state = await tempDir('domsec-stale-');
    removeState = state.remove;
    running = await startEngine(state.path);
    await running.client.apply(runtimeConfig());
  });
  after(async () => {
    await running.stop();
    await removeState();
  });

  async function refusal(apply: Promise<unknown>): Promise<ControlError> {
    try {
      await apply;
    } catch (error) {
      assert.ok(error instanceof ControlError);
      assert.equal(error.code, 'stale-plan');
      return error;
    }
    assert.fail('the apply was not refused');
  }

  it('carries the generation the plan was made against and the one the engine is at', async () => {
    const error = await refusal(running.client.apply(runtimeConfig(), 0));
    assert.deepEqual(error.stale, { code: 'generation-moved', base: 0, current: 1 });
    assert.equal(
      error.message,
      `${describeStalePlan({ code: 'generation-moved', base: 0, current: 1 })}: plan again`,
    );
  });

  it('carries the engine the plan was made against and this engine', async () => {
    const { engineId } = await running.client.state();
    const other = '00000000-0000-4000-8000-000000000000';
    const error = await refusal(running.client.apply(runtimeConfig(), 1, other));
    assert.deepEqual(error.stale, { code: 'other-engine', base: other, current: engineId });
    assert.match(error.message, /made against engine 0{8}-.*, this is engine .*: plan again$/);
  });

  it('refuses (400) an engine id it cannot check, rather than skipping the check', async () => {
    for (const malformed of ['another-engine', 'X'.repeat(10), '']) {
      await assert.rejects(
        running.client.apply(runtimeConfig(), 1, malformed),
        (error: unknown) => {
          assert.ok(error instanceof ControlError);
          assert.equal(error.code, 'bad-request', malformed);
          assert.match(error.message, /domsec-engine-id is not an engine id/);
          return true;
        },
      );
    }
    assert.equal((await running.client.state()).generation, 1, 'nothing was applied');
  });
});

describe('decodeStalePlan', () => {
  it('takes only the two shapes the engine sends, and nothing else', () => {
    assert.deepEqual(decodeStalePlan({ code: 'generation-moved', base: 2, current: 5 }), {
      code: 'generation-moved',
      base: 2,
      current: 5,
    });
    for (const odd of [
      undefined,
      null,
      'stale',
      { code: 'generation-moved', base: '2', current: 5 },
      { code: 'generation-moved', base: 1.5, current: 5 },
      { code: 'other-engine', base: 1, current: 'x' },
      { code: 'other', base: 1, current: 2 },
    ]) {
      assert.equal(decodeStalePlan(odd), undefined, JSON.stringify(odd));
    }
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        const decoded = decodeStalePlan(value);
        if (decoded !== undefined) assert.deepEqual(decodeStalePlan(decoded), decoded);
      }),
      { numRuns: 300 },
    );
  });
});
