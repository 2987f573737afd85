// Input that is not a plain manifest file: standard input (`-f -`), bytes that are not UTF-8,
// tabs, and a YAML alias bomb. Each is an answer with a position, never a crash or a hang.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadConfiguration } from '../../src/config/index.js';
import { CaseLab, codes } from './cases.js';

const ENVELOPE = 'apiVersion: domsec.io/v1alpha1\nkind: PartnerDomain\nmetadata: {name: contoso}\n';

/** Nine levels of nine: 387 million strings if every alias were expanded. */
function aliasBomb(): string {
  const lines = ['lol: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]'];
  for (let level = 1; level < 9; level++) {
    lines.push(
      `l${level}: &a${level} [${Array(9)
        .fill(`*a${level - 1}`)
        .join(', ')}]`,
    );
  }
  return `${lines.join('\n')}\n`;
}

describe('manifest input', () => {
  let cases: CaseLab;
  let scratch: string;
  before(async () => {
    cases = await CaseLab.create();
    scratch = await mkdtemp(join(tmpdir(), 'domsec-input-'));
  });
  after(async () => {
    await cases.remove();
    await rm(scratch, { recursive: true, force: true });
  });

  it('reads `-` from standard input once, beside other paths, resolving paths from the working directory', async () => {
    const dir = await cases.prepare();
    const partners = join(dir, 'partners.yaml');
    const text = await readFile(partners);
    await rm(partners);
    let reads = 0;
    const stdin = () => {
      reads++;
      return Promise.resolve(text);
    };
    const result = await loadConfiguration([dir, '-', '-'], { stdin });
    assert.equal(reads, 1);
    assert.ok(result.files.includes('<stdin>'));
    // pki/treyresearch-root.crt is resolved from the working directory, where it is not.
    assert.deepEqual(codes(result.diagnostics), ['DS016']);
    assert.equal(result.diagnostics[0]?.file, '<stdin>');
    assert.equal(result.diagnostics[0]?.line, 7);
  });

  it('reports stdin that is not YAML at its line and column', async () => {
    const stdin = () => Promise.resolve(Buffer.from(`${ENVELOPE}spec: {domain: [unclosed\n`));
    const result = await loadConfiguration(['-'], { stdin });
    assert.ok(result.diagnostics.some((d) => d.code === 'YAML' && d.file === '<stdin>'));
    // The bracket is found unclosed at the end of the input, on the line after it.
    assert.equal(result.diagnostics.find((d) => d.code === 'YAML')?.line, 5);
  });

  it('refuses a file that is not UTF-8 at the first byte that is not, without crashing', async () => {
    const dir = await cases.prepare();
    const latin1 = Buffer.concat([
      Buffer.from(`${ENVELOPE}spec:\n  domain: caf`),
      Buffer.from([0xe9]),
      Buffer.from('.example\n'),
    ]);
    await writeFile(join(dir, 'latin1.yaml'), latin1);
    const result = await loadConfiguration([dir]);
    assert.equal(result.config, undefined);
    assert.deepEqual(codes(result.diagnostics), ['LOAD']);
    const [d] = result.diagnostics;
    assert.match(d?.message ?? '', /latin1\.yaml is not UTF-8 text \(byte 0xe9 at offset \d+\)/);
    assert.deepEqual([d?.line, d?.col], [5, 14]);
    assert.match(d?.hint ?? '', /UTF-8/);
  });

  it('accepts a UTF-8 byte order mark', async () => {
    const dir = await cases.prepare();
    const path = join(dir, 'partners.yaml');
    const text = await readFile(path);
    await writeFile(path, Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), text]));
    assert.deepEqual((await loadConfiguration([dir])).diagnostics, []);
  });

  it('refuses a tab used as indentation, at the tab', async () => {
    const path = join(scratch, 'tabs.yaml');
    await writeFile(path, `${ENVELOPE}spec:\n\tdomain: contoso.com\n`);
    const result = await loadConfiguration([path]);
    const yaml = result.diagnostics.filter((d) => d.code === 'YAML');
    assert.equal(yaml.length, 1);
    assert.deepEqual([yaml[0]?.line, yaml[0]?.col], [5, 1]);
    assert.equal(yaml[0]?.hint, 'indent YAML with spaces');
  });

  it('reads anchors and aliases, and refuses an alias bomb quickly', async () => {
    const dir = await cases.prepare();
    await writeFile(
      join(dir, 'contoso.yaml'),
      `${ENVELOPE}spec:\n  domain: &domain contoso.com\n  certificateNames: [*domain]\n`,
    );
    const anchors = await loadConfiguration([dir]);
    assert.deepEqual(anchors.diagnostics, []);
    assert.deepEqual(
      anchors.config?.partners.find((p) => p.name === 'contoso')?.spec.certificateNames,
      ['contoso.com'],
    );

    const path = join(scratch, 'bomb.yaml');
    await writeFile(path, aliasBomb());
    const started = performance.now();
    const result = await loadConfiguration([path]);
    assert.ok(performance.now() - started < 2000, 'refused in well under two seconds');
    const [d] = result.diagnostics.filter((x) => x.code === 'YAML');
    assert.match(d?.message ?? '', /alias/i);
    assert.equal(d?.line, 1);
  });
});
