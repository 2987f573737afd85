// A command starts in about a tenth of a second because it loads only what it uses: the engine's
// modules (smtp-server, nodemailer, the queue, TLS verification) are loaded by `serve` and by the
// commands that run part of the engine (probe, tlsrpt show, dns records with a DKIM key), in the
// action, never at start. Asserted on the modules a real process resolves.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { domsec } from '../support/cli.js';
import { tempDir, type TempDir } from '../support/tmp.js';

const HOOKS = fileURLToPath(new URL('../support/module-log.mjs', import.meta.url));
const EXAMPLE = fileURLToPath(new URL('../../examples/adatum', import.meta.url));

describe('CLI start', () => {
  let dir: TempDir;
  before(async () => {
    dir = await tempDir('domsec-startup-');
  });
  after(() => dir.remove());

  /** The modules of dist/ a command loaded, relative to dist/. */
  async function loaded(name: string, args: string[]): Promise<string[]> {
    const log = join(dir.path, `${name}.log`);
    const result = await domsec(args, {
      DOMSEC_MODULE_LOG: log,
      NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --import=${HOOKS}`.trim(),
    });
    assert.ok(result.code === 0 || result.code === 1, `${name}: ${result.stderr}`);
    const urls = (await readFile(log, 'utf8')).split('\n');
    return [
      ...new Set(
        urls.filter((u) => u.includes('/dist/')).map((u) => u.slice(u.indexOf('/dist/') + 6)),
      ),
    ];
  }

  it('loads no engine module for commands that do not run one', async () => {
    const cases: Record<string, string[]> = {
      version: ['--version'],
      help: ['--help'],
      'validate --help': ['validate', '--help'],
      validate: ['validate', '-f', EXAMPLE, '-o', 'json'],
      explain: ['explain', 'DS001'],
      'dns records': ['dns', 'records', '-f', EXAMPLE],
      'plan --help': ['plan', '--help'],
      'tlsrpt show --help': ['tlsrpt', 'show', '--help'],
    };
    for (const [name, args] of Object.entries(cases)) {
      const modules = await loaded(name.replace(/\W+/g, '-'), args);
      assert.ok(modules.includes('cli/main.js'), `${name}: the hook saw ${modules.join(', ')}`);
      assert.deepEqual(
        modules.filter((m) => m.startsWith('engine/')),
        [],
        `${name} loaded engine modules at start`,
      );
    }
  });

  it('loads the engine for tlsrpt show, when it runs', async () => {
    const modules = await loaded('tlsrpt-show', ['tlsrpt', 'show', '--state', dir.path]);
    assert.ok(modules.includes('engine/index.js'), modules.join(', '));
  });
});
