// The engine's structured log on pino: JSON lines with level, time and event, a readable pretty
// form, levels, secrets redacted; and `domsec serve` with --log-format and --log-level.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { serveCommand } from '../../src/cli/serve.js';
import { CliError } from '../../src/cli/errors.js';
import type { Output } from '../../src/cli/output.js';
import { pinoLog } from '../../src/engine/log.js';
import { eventually, WaitTimedOut } from '../support/eventually.js';
import { ADATUM, TREY, writeLab, writeManifests } from '../support/manifests.js';
import { freePort } from '../support/ports.js';
import { tempDir } from '../support/tmp.js';

function capture(): { lines: string[]; write: (line: string) => void } {
  const lines: string[] = [];
  return { lines, write: (line) => lines.push(line) };
}

describe('structured log', () => {
  it('writes one JSON object per event with level, ISO time and event; below the level nothing', () => {
    const out = capture();
    const log = pinoLog({ write: out.write, level: 'info', format: 'json' });
    log.log('debug', 'receive.connection-error', { remote: '127.0.0.1' });
    log.log('warn', 'partner.refused', { partner: 'adatum.com', reason: 'not under TLS' });
    assert.equal(out.lines.length, 1);
    const entry = JSON.parse(out.lines[0] ?? '') as Record<string, unknown>;
    assert.equal(entry.level, 'warn');
    assert.equal(entry.event, 'partner.refused');
    assert.equal(entry.partner, 'adatum.com');
    assert.equal(entry.reason, 'not under TLS');
    assert.match(String(entry.time), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.ok(out.lines[0]?.endsWith('\n'));
  });

  it('redacts fields that could carry a secret, at the top level and one level down', () => {
    const out = capture();
    const log = pinoLog({ write: out.write, format: 'json' });
    log.log('info', 'control.request', {
      token: 'secret-token-value',
      certificate: { name: 'mail', keyPem: '-----BEGIN PRIVATE KEY-----' },
    });
    const text = out.lines.join('');
    assert.doesNotMatch(text, /secret-token-value|PRIVATE KEY/);
    assert.match(text, /"token":"\[redacted\]"/);
  });

  it('prints a readable line per event in the pretty form', () => {
    const out = capture();
    const log = pinoLog({ write: out.write, format: 'pretty', level: 'debug' });
    log.log('warn', 'partner.refused', { partner: 'adatum.com', reason: 'not under TLS' });
    const text = out.lines.join('');
    assert.match(text, /^\[\d\d:\d\d:\d\d\.\d{3}\] WARN: partner\.refused\n/);
    assert.match(text, /partner: "adatum\.com"/);
    assert.throws(() => JSON.parse(text));
  });
});

describe('domsec serve --log-format --log-level', () => {
  let lab: Awaited<ReturnType<typeof tempDir>>;
  let manifests: string;

  before(async () => {
    lab = await tempDir('domsec-serve-log-');
    await writeLab(lab.path);
    manifests = await writeManifests({
      root: lab.path,
      org: ADATUM,
      partner: TREY,
      partnerBinding: `127.0.0.1:${await freePort()}`,
      internalBinding: `127.0.0.1:${await freePort()}`,
      adminListen: `127.0.0.1:${await freePort()}`,
      partnerRoute: { host: '127.0.0.1', port: 9 },
      trust: 'root',
    });
  });
  after(async () => lab.remove());

  /** serve in this process until `ready` resolves, then stopped; what it wrote. */
  async function serve(
    logFormat: string,
    logLevel: string,
  ): Promise<{ code: number; stdout: string; stderr: string }> {
    let stdout = '';
    let stderr = '';
    const out: Output = {
      stdout: (text) => (stdout += text),
      stderr: (text) => (stderr += text),
      color: false,
      interactive: false,
    };
    const controller = new AbortController();
    const running = serveCommand(
      {
        file: [manifests],
        state: `${lab.path}/state-${logFormat}-${logLevel}`,
        watch: false,
        logFormat,
        logLevel,
      },
      out,
      controller.signal,
    );
    let ended = false;
    void running.finally(() => (ended = true)).catch(() => undefined);
    // Ready, or ended without it: either way the output tells, and the caller judges it.
    await eventually(
      'the engine to be ready or to end',
      () => ended || stdout.includes('domsec engine ready'),
      15_000,
    ).catch((error: unknown) => {
      if (!(error instanceof WaitTimedOut)) throw error;
    });
    controller.abort();
    const code = await running;
    return { code, stdout, stderr };
  }

  it('logs JSON lines at the level asked, never the token or a key', async () => {
    const { code, stdout, stderr } = await serve('json', 'debug');
    assert.equal(code, 0);
    assert.match(stdout, /domsec engine ready: generation 1/);
    const entries = stderr
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { level: string; event: string });
    assert.ok(entries.some((e) => e.event === 'engine.applied' && e.level === 'info'));
    assert.ok(entries.some((e) => e.event === 'serve.started'));
    assert.doesNotMatch(stderr, /PRIVATE KEY/);
  });

  it('logs readable lines in the pretty form', async () => {
    const { code, stderr } = await serve('pretty', 'info');
    assert.equal(code, 0);
    assert.match(stderr, /^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: engine\.applied$/m);
    assert.doesNotMatch(stderr, /^\{/m);
  });

  it('logs only warnings and errors with --log-level warn', async () => {
    const { code, stderr } = await serve('json', 'warn');
    assert.equal(code, 0);
    assert.doesNotMatch(stderr, /engine\.applied|serve\.started/);
  });

  it('refuses an unknown format or level', async () => {
    await assert.rejects(serve('xml', 'info'), (error: unknown) => {
      assert.ok(error instanceof CliError);
      assert.match(error.message, /--log-format xml: expected json or pretty/);
      return true;
    });
    await assert.rejects(
      serve('json', 'verbose'),
      /--log-level verbose: expected debug, info, warn, error/,
    );
  });
});
