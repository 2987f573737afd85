// watch's and serve --watch's own flags: --settle is a duration, --settle and --prune go with
// --watch; each refusal is one line and nothing starts.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CliError } from '../../src/cli/errors.js';
import { serveCommand } from '../../src/cli/serve.js';
import { register as registerWatch } from '../../src/cli/watch.js';
import type { Output } from '../../src/cli/output.js';
import { domsecInProcess } from '../support/cli.js';

const silent: Output = {
  stdout: () => undefined,
  stderr: () => undefined,
  color: false,
  interactive: false,
};

describe('watch flags', () => {
  it('refuses a --settle that is not a duration, before reaching any engine', async () => {
    const result = await domsecInProcess(
      [registerWatch],
      ['watch', '-f', 'nowhere', '--settle', 'soon', '--server', 'http://127.0.0.1:9'],
    );
    assert.equal(result.code, 1);
    assert.match(result.stderr, /--settle soon is not a duration \(e\.g\. 1s, 500ms, 5s\)/);
    assert.doesNotMatch(result.stderr, /unreachable/);
  });

  for (const flag of [{ settle: '1s' }, { prune: true }]) {
    const name = Object.keys(flag)[0] ?? '';
    it(`serve refuses --${name} without --watch`, async () => {
      await assert.rejects(
        serveCommand(
          { state: 'nowhere', watch: false, file: ['nowhere'], ...flag },
          silent,
          new AbortController().signal,
        ),
        (error: unknown) =>
          error instanceof CliError && error.message === `--${name} goes with --watch`,
      );
    });
  }
});
