// The suite's secret check (test/run.mjs with test/support/secret-ledger.mjs): a test that prints a
// private key or an admin token fails the run even though it passes; public material does not.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const FIXTURES = 'test/security/fixtures';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** `node test/run.mjs <fixture>` as CI runs the suite, from the repository root. */
function runSuite(fixture: string): Promise<Run> {
  // A fresh run, not a child of this one: the runner would report to its parent, not as CI reads it.
  const env = { ...process.env };
  delete env.NODE_TEST_CONTEXT;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['test/run.mjs', `${FIXTURES}/${fixture}`], {
      cwd: ROOT,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 90_000,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

function leakLines(run: Run): string[] {
  return run.stderr.split('\n').filter((line) => line.startsWith('SECRET LEAK: '));
}

/** The closing summary: keys and tokens recorded, bytes of output searched, the verdict. */
function summary(run: Run): { keys: number; tokens: number; bytes: number; verdict: string } {
  const match =
    /^secrets: (\d+) keys and (\d+) tokens from the suite checked against (\d+) bytes of output: (.+)$/m.exec(
      run.stderr,
    );
  assert.ok(match, `no secrets summary in:\n${run.stderr}`);
  return {
    keys: Number(match[1]),
    tokens: Number(match[2]),
    bytes: Number(match[3]),
    verdict: match[4] ?? '',
  };
}

/** A leak report shows where, never the secret: no base64 run long enough to be key material. */
function assertMasked(line: string): void {
  const near = line.slice(line.indexOf(' near: '));
  assert.doesNotMatch(near, /[A-Za-z0-9+/_-]{16,}/, `unmasked secret in: ${line}`);
}

describe('the suite greps its own output for the keys and tokens its tests made', () => {
  it('fails a run whose passing test prints a lab private key', async () => {
    const run = await runSuite('leaky-key.fixture.ts');
    assert.match(run.stdout, /^# pass 1$/m, 'the fixture test itself passes');
    assert.match(run.stdout, /^# fail 0$/m);
    assert.equal(run.code, 1, run.stderr);
    const leaks = leakLines(run);
    assert.equal(leaks.length, 1, run.stderr);
    assert.match(
      leaks[0] ?? '',
      /^SECRET LEAK: rsa private key \(made by \S*leaky-key\.fixture\.ts\) found in test output near: ".*\[SECRET\].*"$/,
    );
    assertMasked(leaks[0] ?? '');
    const { keys, verdict } = summary(run);
    assert.equal(keys, 1);
    assert.equal(verdict, '1 found');
  });

  it('fails a run that prints the admin tokens given to an engine and to a command', async () => {
    const run = await runSuite('leaky-tokens.fixture.ts');
    assert.match(run.stdout, /^# pass 2$/m, 'the fixture tests themselves pass');
    assert.equal(run.code, 1, run.stderr);
    const leaks = leakLines(run);
    assert.equal(leaks.length, 2, run.stderr);
    for (const line of leaks) {
      assert.match(line, /^SECRET LEAK: admin token \(made by \S*leaky-tokens\.fixture\.ts\) /);
      assertMasked(line);
    }
    assert.ok(leaks.some((line) => line.includes('engine token: [SECRET]')));
    assert.ok(leaks.some((line) => line.includes('command token: [SECRET]')));
    assert.equal(summary(run).tokens, 2);
  });

  it('passes a run that prints certificates and keeps keys and tokens to itself', async () => {
    const run = await runSuite('clean.fixture.ts');
    assert.equal(run.code, 0, `${run.stdout}\n${run.stderr}`);
    assert.equal(leakLines(run).length, 0);
    assert.match(run.stdout, /BEGIN CERTIFICATE/, 'the output searched holds the certificates');
    const { keys, tokens, bytes, verdict } = summary(run);
    assert.equal(keys, 2, 'an RSA authority and an ECDSA leaf were recorded');
    assert.equal(tokens, 1, 'the engine token was recorded');
    assert.ok(bytes > 1000);
    assert.equal(verdict, 'none found');
  });
});
