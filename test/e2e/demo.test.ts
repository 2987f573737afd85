// README.md's quick start, as written: its first command's `npm run demo` runs the whole story on
// real engine processes in a copy of the checkout and exits 0, printing what the README says it
// does. (`npm ci`, the half before `&&`, is what this suite itself runs after: the copy gets the
// checkout's node_modules and dist/ instead of a second install from the registry.)
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { cp, readFile, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';
import { tempDir } from '../support/tmp.js';

const REPOSITORY = fileURLToPath(new URL('../..', import.meta.url));

/** The ```sh blocks of README.md's quick start. */
async function quickStart(): Promise<string[]> {
  const readme = await readFile(join(REPOSITORY, 'README.md'), 'utf8');
  const start = readme.indexOf('## Quick start');
  const section = readme.slice(start, readme.indexOf('\n## ', start + 1));
  return [...section.matchAll(/^```sh\n([\s\S]*?)^```$/gm)].map((m) => (m[1] ?? '').trim());
}

describe("README.md's quick start", () => {
  let work: Awaited<ReturnType<typeof tempDir>> | undefined;
  after(async () => work?.remove());

  it('is the two commands, npm ci && npm run demo and npm ci && npm test', async () => {
    assert.deepEqual(await quickStart(), ['npm ci && npm run demo', 'npm ci && npm test']);
  });

  it('npm run demo queues on an untrusted partner certificate, then delivers domain-secured after apply', async () => {
    const [demo = ''] = await quickStart();
    const command = demo.replace(/^npm ci && /, '');
    assert.equal(command, 'npm run demo');
    work = await tempDir('domsec-demo-');
    const checkout = join(work.path, 'domsec');
    const skipped = new Set(['.git', 'node_modules', 'var', 'test-output']);
    await cp(REPOSITORY, checkout, {
      recursive: true,
      filter: (source) => !skipped.has(source.slice(REPOSITORY.length).split('/')[0] ?? ''),
    });
    await symlink(join(REPOSITORY, 'node_modules'), join(checkout, 'node_modules'));
    const env: Record<string, string> = {};
    for (const [name, value] of Object.entries(process.env))
      if (value !== undefined && !/^(npm_|DOMSEC_)/i.test(name)) env[name] = value;
    const { code, output } = await new Promise<{ code: number; output: string }>(
      (resolve, reject) => {
        const child = spawn('bash', ['-c', command], {
          cwd: checkout,
          env: { ...env, NO_COLOR: '1', npm_config_update_notifier: 'false' },
          timeout: 90_000,
        });
        let output = '';
        child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
        child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
        child.once('error', reject);
        child.once('close', (status) => resolve({ code: status ?? -1, output }));
      },
    );
    assert.equal(code, 0, output);
    // What the README says the demo shows, in its words.
    const readme = await readFile(join(REPOSITORY, 'README.md'), 'utf8');
    const quoted = /\(`(451 4\.4\.0 [^`]*?) \.\.\.`\)/.exec(readme.replace(/\n/g, ' '))?.[1];
    assert.ok(quoted !== undefined, "README.md quotes the demo's 451");
    assert.ok(output.includes(quoted), `no ${quoted} in:\n${output}`);
    assert.match(
      output,
      /451 4\.4\.0 Primary target IP address responded with: "454 4\.7\.5 Certificate validation failure\."/,
    );
    assert.match(output, /~ PartnerDomain\/adatum/);
    assert.match(output, /\+ TrustAnchor\/adatum-root/);
    for (const shown of ['X-Domsec-AuthAs: Partner', 'x-domsec=pass', 'var/demo/'])
      assert.ok(output.includes(shown), `the README says the demo shows ${shown}`);
    assert.match(output, /Both engines stopped\./);
  });
});
