// The tests' one polling helper: it waits for the value, within its bound, and a failed wait says
// what it waited for and what it saw last.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { eventually, WaitTimedOut } from './eventually.js';

describe('eventually', () => {
  it('resolves with the first value that is not undefined, null or false (0 and "" count)', async () => {
    for (const last of [0, '', 'ready']) {
      const values = [undefined, null, false, last];
      let calls = 0;
      const value = await eventually('the value', () => values[calls++], { intervalMs: 1 });
      assert.equal(value, last);
      assert.equal(calls, 4);
    }
  });

  it('waits for an async probe, and for `until` when given, resolving with the value it accepted', async () => {
    let count = 0;
    const value = await eventually(
      'three deferrals',
      async () => {
        await Promise.resolve();
        return ++count;
      },
      { until: (seen) => seen >= 3, intervalMs: 1 },
    );
    assert.equal(value, 3);
  });

  it('fails after its bound, naming what it awaited and the last value seen', async () => {
    const started = Date.now();
    let count = 0;
    await assert.rejects(
      eventually('three deferrals', () => ++count && 2, { timeoutMs: 150, until: (n) => n >= 3 }),
      (error: Error) => {
        assert.ok(error instanceof WaitTimedOut);
        assert.equal(
          error.message,
          'timed out after 150 ms waiting for three deferrals; last seen: 2',
        );
        return true;
      },
    );
    const took = Date.now() - started;
    assert.ok(took >= 150 && took < 5_000, `took ${took} ms`);
    assert.ok(count >= 2, 'probed more than once');
  });

  it('takes a number as the timeout, and adds what explain says to the error', async () => {
    await assert.rejects(
      eventually('a message', () => undefined, 60),
      {
        message: 'timed out after 60 ms waiting for a message; last seen: undefined',
      },
    );
    await assert.rejects(
      eventually('Postfix to log', () => false, {
        timeoutMs: 60,
        explain: async () => 'the mail log:\nstatus=deferred',
      }),
      {
        message:
          'timed out after 60 ms waiting for Postfix to log; last seen: false\nthe mail log:\nstatus=deferred',
      },
    );
  });

  it('shows a long last value cut short', async () => {
    await assert.rejects(
      eventually('x', () => 'a'.repeat(10_000), { timeoutMs: 30, until: () => false }),
      (error: Error) => {
        assert.ok(error.message.length < 700, `${error.message.length} characters`);
        assert.match(error.message, /last seen: 'a{100,}…$/);
        return true;
      },
    );
  });

  it('ends the wait at once when the probe throws', async () => {
    let calls = 0;
    await assert.rejects(
      eventually('a value', () => {
        calls += 1;
        throw new Error('probe broke');
      }),
      (error: Error) => error.message === 'probe broke' && !(error instanceof WaitTimedOut),
    );
    assert.equal(calls, 1);
  });
});
