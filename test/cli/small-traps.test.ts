// The small traps of a first hour, each over the built CLI against a real engine: history says
// when the manifests applied were not their Git revision, validate and apply count the same days
// to a certificate's expiry, and explain knows every code the troubleshooting page lists.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { createCertificateAuthority, issueCertificate } from '../../src/pki/lab.js';
import { domsec } from '../support/cli.js';
import { startCliLab, type CliLab } from '../support/cli-lab.js';
import { ADATUM, partnerManifest } from '../support/manifests.js';

const REPOSITORY = fileURLToPath(new URL('../..', import.meta.url));
const DAY = 24 * 60 * 60 * 1000;

describe('small traps', () => {
  let lab: CliLab;
  let git: (...args: string[]) => string;

  before(async () => {
    lab = await startCliLab();
    git = (...args) =>
      execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@example.com', ...args], {
        cwd: lab.manifests,
        stdio: 'pipe',
      }).toString();
    git('init', '-q');
    git('add', '.');
    git('commit', '-q', '-m', 'adatum');
  });

  after(() => lab.stop());

  const apply = () =>
    domsec(
      ['apply', '-f', lab.manifests, '--auto-approve', '--approve-weakening'],
      lab.env,
      20_000,
    );
  /** The running generation's REVISION column. */
  const revision = async () => {
    const history = await domsec(['history', '-f', lab.manifests], lab.env);
    assert.equal(history.code, 0, history.stderr);
    const running = history.stdout.split('\n').find((line) => line.startsWith('*'));
    return running?.split(/\s+/)[2] ?? '';
  };

  it('history marks a generation applied from modified or untracked manifests +dirty', async () => {
    const head = git('rev-parse', 'HEAD').trim().slice(0, 12);
    assert.equal((await apply()).code, 0);
    assert.equal(await revision(), head, 'a clean checkout is its revision');

    const organization = join(lab.manifests, 'organization.yaml');
    await writeFile(
      organization,
      (await readFile(organization, 'utf8')).replace('retry: [1m]', 'retry: [2m]'),
    );
    const modified = await apply();
    assert.equal(modified.code, 0, modified.stderr);
    assert.equal(await revision(), `${head}+dirty`, 'a modified file');
    git('commit', '-q', '-am', 'retry 2m');

    const committed = git('rev-parse', 'HEAD').trim().slice(0, 12);
    await writeFile(
      join(lab.manifests, 'partners', 'contoso.yaml'),
      partnerManifest(
        { name: 'contoso', hostname: 'mail.contoso.com', domain: 'contoso.com' },
        'system',
        false,
      ),
    );
    const untracked = await apply();
    assert.equal(untracked.code, 0, untracked.stderr);
    assert.equal(await revision(), `${committed}+dirty`, 'an untracked file');
    const json = await domsec(['history', '-f', lab.manifests, '-o', 'json'], lab.env);
    const [newest] = (JSON.parse(json.stdout) as { entries: { source?: { dirty?: boolean } }[] })
      .entries;
    assert.equal(newest?.source?.dirty, true, json.stdout);
  });

  it('validate and apply count the same days to a certificate expiring in ten and a half days', async () => {
    // Half a day past a day boundary: a count rounding one way in one and another in the other
    // disagrees by one.
    const notAfter = new Date(Date.now() + 10 * DAY + DAY / 2);
    const root = createCertificateAuthority({ commonName: 'short-lived lab CA' });
    const leaf = issueCertificate(root, {
      commonName: ADATUM.hostname,
      dnsNames: [ADATUM.hostname, ADATUM.domain],
      extendedKeyUsage: ['serverAuth', 'clientAuth'],
      notAfter,
    });
    const pki = join(lab.root.path, 'adatum', 'pki');
    await writeFile(join(pki, `${ADATUM.hostname}.crt`), leaf.certPem);
    await writeFile(join(pki, `${ADATUM.hostname}.key`), leaf.keyPem, { mode: 0o600 });

    const days = (text: string) =>
      [...text.matchAll(/expires in (\d+) day\(s\)/g)].map((m) => m[1]);
    const validated = await domsec(['validate', '-f', lab.manifests]);
    assert.equal(validated.code, 0, validated.stderr);
    const applied = await apply();
    assert.equal(applied.code, 0, applied.stderr);
    // validate's DS101, and apply's: the same warning when it reads the manifests, then the plan's.
    const counts = [...days(validated.stderr), ...days(applied.stderr + applied.stdout)];
    assert.deepEqual(new Set(counts), new Set(['11']), validated.stderr + applied.stdout);
    assert.match(validated.stderr, /DS101 .*Certificate\/mail expires in 11 day\(s\)/);
    assert.match(applied.stdout, /Certificate\/mail: expires in 11 day\(s\)/);
  });

  it('explain knows every code the troubleshooting page lists, each as one entry', async () => {
    const page = await readFile(join(REPOSITORY, 'docs', 'troubleshooting.md'), 'utf8');
    const codes = [...page.matchAll(/^\| `(DS\d{3})`/gm)].map((match) => match[1] ?? '');
    assert.ok(codes.length >= 20, `${codes.length} codes on the page`);
    // A few at a time: each is a process of its own.
    for (let start = 0; start < codes.length; start += 4) {
      await Promise.all(
        codes.slice(start, start + 4).map(async (code) => {
          const result = await domsec(['explain', code, '-o', 'json']);
          assert.equal(result.code, 0, `${code}: ${result.stderr}`);
          const entry = JSON.parse(result.stdout) as { code: string; meaning: string; fix: string };
          assert.equal(entry.code, code);
          assert.ok(entry.meaning.length > 20 && entry.fix.length > 10, code);
        }),
      );
    }
  });

  it('apply FILE deletes the saved plan once applied, as README.md and docs/plan-format.md say', async () => {
    const words = (text: string) => text.replace(/\s+/g, ' ');
    for (const doc of ['README.md', join('docs', 'plan-format.md')])
      assert.match(
        words(await readFile(join(REPOSITORY, doc), 'utf8')),
        /`apply FILE` deletes it/,
        doc,
      );
    const file = join(lab.root.path, 'retry.plan');
    const organization = join(lab.manifests, 'organization.yaml');
    await writeFile(
      organization,
      (await readFile(organization, 'utf8')).replace(/retry: \[\d+m\]/, 'retry: [3m]'),
    );
    const planned = await domsec(['plan', '-f', lab.manifests, '--out', file], lab.env);
    assert.equal(planned.code, 0, planned.stderr);
    await stat(file);
    const applied = await domsec(['apply', file, '--auto-approve'], lab.env);
    assert.equal(applied.code, 0, applied.stderr);
    assert.match(applied.stderr, /Deleted .*retry\.plan/);
    await assert.rejects(stat(file), { code: 'ENOENT' });
  });

  it('apply DIRECTORY asks whether -f was meant, in one line', async () => {
    const result = await domsec(['apply', lab.manifests, '--auto-approve'], lab.env);
    assert.equal(result.code, 1);
    assert.equal(
      result.stderr,
      `domsec: ${lab.manifests} is a directory, not a plan saved by plan --out: did you mean -f ${lab.manifests}?\n`,
    );
  });
});
