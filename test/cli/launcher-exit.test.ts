// Under npm exec (npx), the end of the process that started us is our SIGTERM; anywhere else a
// parent's end changes nothing (a shell's `&`, nohup and service managers keep their meaning).
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it } from 'node:test';
import { abortWhenLauncherExits } from '../../src/cli/launcher-exit.js';

describe('abortWhenLauncherExits', () => {
  it('aborts with SIGTERM once the parent changes under npm exec, and says which one ended', async () => {
    let parent = 4242;
    const ended: number[] = [];
    const controller = new AbortController();
    abortWhenLauncherExits(controller, {
      env: { npm_command: 'exec' },
      parentPid: () => parent,
      intervalMs: 5,
      onLauncherExit: (pid) => ended.push(pid),
    });
    await sleep(30);
    assert.equal(controller.signal.aborted, false);
    parent = 1;
    for (let wait = 0; wait < 100 && !controller.signal.aborted; wait++) await sleep(5);
    assert.equal(controller.signal.reason, 'SIGTERM');
    assert.deepEqual(ended, [4242]);
  });

  it('watches nothing outside npm exec', async () => {
    let parent = 4242;
    const controller = new AbortController();
    abortWhenLauncherExits(controller, {
      env: { npm_command: 'run-script' },
      parentPid: () => parent,
      intervalMs: 5,
    });
    parent = 1;
    await sleep(40);
    assert.equal(controller.signal.aborted, false);
  });
});
