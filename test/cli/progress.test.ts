// Progress of long-running CLI work: shown on a terminal (a real pseudo-terminal made by script(1)),
// never in a pipe or in CI, and never mixed into standard output.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { CLI, domsec } from '../support/cli.js';
import { tempDir, type TempDir } from '../support/tmp.js';

const run = promisify(execFile);

/** Runs `domsec ARGS` on a pseudo-terminal; what the terminal showed (stdout and stderr mixed). */
async function onTerminal(
  args: string[],
  env: Record<string, string | undefined>,
): Promise<string> {
  const command = [process.execPath, CLI, ...args].map((word) => `'${word}'`).join(' ');
  const { stdout } = await run('script', ['-qec', command, '/dev/null'], {
    env: { ...process.env, ...env, NO_COLOR: '1', TERM: 'xterm' },
    timeout: 60_000,
  });
  return stdout;
}

describe('progress on a terminal', () => {
  let dir: TempDir;
  before(async () => {
    dir = await tempDir('domsec-progress-');
  });
  after(async () => {
    await dir.remove();
  });

  it('shows each organization of the lab PKI being made, ticked off with its time, on a terminal', async () => {
    const shown = await onTerminal(['certs', 'lab', join(dir.path, 'tty')], { CI: '' });
    assert.match(
      shown,
      /✓ adatum: a root CA and a certificate for mail\.adatum\.com \(\d+\.\d s\)/,
    );
    assert.match(shown, /✓ treyresearch: a root CA and a certificate for mail\.treyresearch\.net/);
    assert.match(shown, /\/adatum\/pki: adatum-root\.crt \(CA\)/);
    assert.deepEqual((await readdir(join(dir.path, 'tty'))).sort(), ['adatum', 'treyresearch']);
  });

  it('stays quiet in CI even on a terminal', async () => {
    const shown = await onTerminal(['certs', 'lab', join(dir.path, 'ci')], { CI: 'true' });
    assert.doesNotMatch(shown, /✓|a root CA and a certificate/);
    assert.match(shown, /adatum-root\.crt \(CA\)/);
  });

  it('stays quiet in a pipe: standard output and standard error carry only the results', async () => {
    const result = await domsec(['certs', 'lab', join(dir.path, 'pipe')], { CI: '' });
    assert.equal(result.code, 0);
    assert.equal(result.stderr, '');
    assert.doesNotMatch(result.stdout, /✓|\r/);
  });
});
