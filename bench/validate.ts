// Times `domsec validate` as a whole process over generated organizations with 1,000, 10,000 and
// 50,000 partner domains (each with its own TrustAnchor and an address space on the send
// connector), against a baseline measured in the same run. Run `npm run build` first, then
// `node --import tsx bench/validate.ts [SIZES...]`. Not a CI test. The goal: 10,000 partners in
// under 1 s on a 2-core machine, and 50,000 in under 5 times that (nothing quadratic).
import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeLabPki } from '../src/pki/organization.js';

const REPOSITORY = fileURLToPath(new URL('../', import.meta.url));
/** DOMSEC_BENCH_CLI=PATH times another build (an older checkout's dist/cli/main.js, say). */
const CLI = process.env.DOMSEC_BENCH_CLI ?? join(REPOSITORY, 'dist', 'cli', 'main.js');
const SIZES = process.argv.slice(2).map(Number);
const PARTNERS_PER_FILE = 500;
/** DOMSEC_BENCH_PROFILE=DIR writes a CPU profile of every run there (node --cpu-prof). */
const PROFILE = process.env.DOMSEC_BENCH_PROFILE;
const RUNS = PROFILE === undefined ? 3 : 1;
const ENVELOPE = (kind: string, name: string) =>
  `apiVersion: domsec.io/v1alpha1\nkind: ${kind}\nmetadata: {name: ${name}}\n`;

const partnerName = (index: number) => `partner-${String(index).padStart(6, '0')}`;
const partnerDomain = (index: number) => `p${index}.example.net`;

/** An organization with `partners` partner domains, in `dir`, with adatum's lab PKI. */
async function writeOrganization(dir: string, partners: number, pki: string): Promise<void> {
  await mkdir(join(dir, 'partners'), { recursive: true });
  const domains = Array.from({ length: partners }, (_, i) => partnerDomain(i));
  await writeFile(
    join(dir, 'organization.yaml'),
    `${ENVELOPE('Organization', 'adatum')}spec: {hostname: mail.adatum.com, acceptedDomains: [adatum.com], certificate: mail}
---
${ENVELOPE('Certificate', 'mail')}spec: {certFile: ${pki}/mail.adatum.com.crt, keyFile: ${pki}/mail.adatum.com.key}
---
${ENVELOPE('SendConnector', 'to-partners')}spec:
  domainSecure: true
  addressSpaces:
${domains.map((d) => `    - ${d}\n`).join('')}---
${ENVELOPE('ReceiveConnector', 'from-partners')}spec: {bindings: ['127.0.0.2:2525'], domainSecure: true}
`,
  );
  for (let first = 0; first < partners; first += PARTNERS_PER_FILE) {
    const documents: string[] = [];
    for (let i = first; i < Math.min(partners, first + PARTNERS_PER_FILE); i++) {
      documents.push(
        `${ENVELOPE('TrustAnchor', `${partnerName(i)}-root`)}spec: {pemFile: ${pki}/treyresearch-root.crt}\n---\n` +
          `${ENVELOPE('PartnerDomain', partnerName(i))}spec:\n  domain: ${partnerDomain(i)}\n  domainSecure: {send: true, receive: true}\n  trustAnchors: [${partnerName(i)}-root]\n  remoteIPRanges: [192.0.2.0/24]\n`,
      );
    }
    await writeFile(join(dir, 'partners', `${partnerName(first)}.yaml`), documents.join('---\n'));
  }
}

/** Wall-clock seconds of the best of RUNS runs (the least disturbed by the machine). */
function time(args: string[], expectValid: boolean): number {
  let best = Number.POSITIVE_INFINITY;
  for (let run = 0; run < RUNS; run++) {
    const started = process.hrtime.bigint();
    const profile = PROFILE === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${PROFILE}`];
    const result = spawnSync(process.execPath, [...profile, ...args], {
      encoding: 'utf8',
      maxBuffer: 1 << 28,
    });
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    if (expectValid && result.status !== 0) {
      throw new Error(
        `${args.join(' ')} exited ${result.status}:\n${result.stderr.slice(0, 2000)}`,
      );
    }
    best = Math.min(best, seconds);
  }
  return best;
}

async function main(): Promise<void> {
  const root = await mkdtemp(join(tmpdir(), 'domsec-bench-'));
  try {
    await writeLabPki(join(root, 'lab'), [
      { name: 'adatum', hostname: 'mail.adatum.com', domains: ['adatum.com'] },
      { name: 'treyresearch', hostname: 'mail.treyresearch.net', domains: ['treyresearch.net'] },
    ]);
    const pki = join(root, 'lab', 'adatum', 'pki');
    const node = time(['-e', '0'], true);
    const one = join(root, 'org-1');
    await writeOrganization(one, 1, pki);
    const baseline = time([CLI, 'validate', '-f', one], true);
    const rows = [
      ['node -e 0', 0, node],
      ['1 partner (baseline)', 1, baseline],
    ] as [string, number, number][];
    for (const size of SIZES.length > 0 ? SIZES : [1_000, 10_000, 50_000]) {
      const dir = join(root, `org-${size}`);
      await writeOrganization(dir, size, pki);
      rows.push([
        `${size.toLocaleString('en')} partners`,
        size,
        time([CLI, 'validate', '-f', dir], true),
      ]);
    }
    console.log(`domsec validate, best of ${RUNS} runs, Node ${process.version}`);
    console.log('| organization | seconds | vs baseline | µs per partner over baseline |');
    console.log('|---|---:|---:|---:|');
    for (const [label, partners, seconds] of rows) {
      const per = partners > 1 ? (((seconds - baseline) / partners) * 1e6).toFixed(0) : '';
      console.log(
        `| ${label} | ${seconds.toFixed(3)} | ${(seconds / baseline).toFixed(2)}x | ${per} |`,
      );
    }
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

await main();
