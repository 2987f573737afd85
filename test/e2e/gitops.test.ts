// examples/gitops as CI runs it: its pull-request and deploy scripts, unchanged, against two real
// engines (one per transport node): validate and plan -o json, then apply of the saved plan.
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { cp, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { createCertificateAuthority, issueCertificate } from '../../src/pki/lab.js';
import type { Plan } from '../../src/model.js';
import { startEngine, type RunningEngine } from '../support/engine.js';
import { freePort } from '../support/ports.js';
import { tempDir } from '../support/tmp.js';

const EXAMPLE = fileURLToPath(new URL('../../examples/gitops', import.meta.url));
const CLI = `${process.execPath} ${fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url))}`;
const NODES = ['mx1', 'mx2'] as const;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

describe('examples/gitops', () => {
  let lab: Awaited<ReturnType<typeof tempDir>>;
  let repo: string;
  const engines = new Map<string, RunningEngine>();

  const script = (name: string, node: string): Promise<Run> => {
    const engine = engines.get(node);
    assert.ok(engine !== undefined);
    return new Promise((resolve) => {
      execFile(
        'sh',
        [join('ci', name), node],
        {
          cwd: repo,
          timeout: 60_000,
          env: {
            ...process.env,
            NO_COLOR: '1',
            DOMSEC: CLI,
            DOMSEC_SERVER: engine.control.url,
            DOMSEC_TOKEN: engine.token,
            PLAN_DIR: lab.path,
          },
        },
        (error, stdout, stderr) =>
          resolve({ code: error === null ? 0 : Number(error.code ?? 1), stdout, stderr }),
      );
    });
  };

  before(async () => {
    lab = await tempDir();
    repo = join(lab.path, 'repo');
    await cp(EXAMPLE, repo, { recursive: true });
    // CI writes certificates from secrets; here the lab PKI stands in for them.
    const adatumRoot = createCertificateAuthority({ commonName: 'Adatum Root CA' });
    const treyRoot = createCertificateAuthority({ commonName: 'Trey Research Root CA' });
    await mkdir(join(repo, 'shared', 'pki'), { recursive: true });
    await writeFile(join(repo, 'shared', 'pki', 'treyresearch-root.crt'), treyRoot.certPem);
    for (const node of NODES) {
      const mail = issueCertificate(adatumRoot, {
        commonName: `${node}.adatum.com`,
        dnsNames: [`${node}.adatum.com`, 'adatum.com'],
      });
      const dir = join(repo, 'nodes', node);
      await mkdir(join(dir, 'pki'), { recursive: true });
      await writeFile(join(dir, 'pki', `${node}.adatum.com.crt`), mail.certPem);
      await writeFile(join(dir, 'pki', `${node}.adatum.com.key`), mail.keyPem, { mode: 0o600 });
      // The example binds 127.0.0.2/3:2525, which other tests may hold: free ports instead.
      const manifest = join(dir, 'node.yaml');
      const text = await readFile(manifest, 'utf8');
      await writeFile(
        manifest,
        text.replace(/bindings: \['[^']+'\]/, `bindings: ['127.0.0.1:${await freePort()}']`),
      );
      engines.set(node, await startEngine(join(lab.path, `state-${node}`)));
    }
    const git = (...args: string[]) =>
      execFileSync('git', ['-c', 'user.name=ci', '-c', 'user.email=ci@example.com', ...args], {
        cwd: repo,
        stdio: 'pipe',
      });
    git('init', '-q');
    git('add', '.');
    git('commit', '-q', '-m', 'two nodes, one partner');
  });

  after(async () => {
    for (const engine of engines.values()) await engine.stop();
    await lab.remove();
  });

  it('validates and plans each node on a pull request, keeping the JSON plan', async () => {
    for (const node of NODES) {
      const result = await script('pull-request.sh', node);
      assert.equal(result.code, 0, `${result.stdout}\n${result.stderr}`);
      const plan = JSON.parse(await readFile(join(lab.path, `plan-${node}.json`), 'utf8')) as Plan;
      assert.equal(plan.formatVersion, 1);
      assert.ok(plan.changes.some((c) => c.kind === 'PartnerDomain' && c.name === 'treyresearch'));
      assert.match(result.stdout, /Plan: \d+ to add, 0 to change, 0 to delete\./);
      assert.equal(
        (await engines.get(node)?.client.state())?.generation,
        0,
        'a PR applies nothing',
      );
    }
  });

  it('applies the saved plan on merge, each node its own, recording the Git revision', async () => {
    const head = execFileSync('git', ['rev-parse', 'HEAD'], { cwd: repo }).toString().trim();
    for (const node of NODES) {
      const result = await script('deploy.sh', node);
      assert.equal(result.code, 0, `${result.stdout}\n${result.stderr}`);
      assert.match(result.stdout, /Apply complete: the engine runs generation 1\./);
      assert.match(result.stderr, /mode 0600/);
      const state = await engines.get(node)?.client.state();
      assert.equal(state?.hostname, `${node}.adatum.com`);
      assert.equal(state?.source?.revision, head);
    }
    const again = await script('pull-request.sh', 'mx1');
    assert.equal(again.code, 0, again.stderr);
    const plan = JSON.parse(await readFile(join(lab.path, 'plan-mx1.json'), 'utf8')) as Plan;
    assert.deepEqual(plan.changes, []);
  });
});
