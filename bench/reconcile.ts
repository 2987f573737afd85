// By hand, not CI: `node --import tsx bench/reconcile.ts [partners...]`. Plan and apply time for
// many partners (goals: 10,000 planned < 1 s, applied < 2 s; `domsec-plan-process` is the built CLI
// end to end, run `npm run build` first) and watch latency from a save to the
// new configuration answering on the wire: the settle window plus an overhead (median goal
// < 300 ms), with a 10-partner baseline.
import { spawn } from 'node:child_process';
import { connect } from 'node:net';
import { fileURLToPath } from 'node:url';
import { readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { loadConfiguration } from '../src/config/index.js';
import { describeConfig } from '../src/objects.js';
import { computePlan } from '../src/reconcile/plan.js';
import { withRevision } from '../src/reconcile/source.js';
import { DEFAULT_SETTLE_MS, watchManifests } from '../src/reconcile/watch.js';
import { startEngine } from '../test/support/engine.js';
import { ADATUM, TREY, writeLab, writeManifests } from '../test/support/manifests.js';
import { freePort } from '../test/support/ports.js';
import { tempDir } from '../test/support/tmp.js';

const CLI = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));
const sizes = process.argv.slice(2).map(Number);
const PARTNERS = sizes.length > 0 ? sizes : [10, 1_000, 10_000];

function partners(count: number, variant: string): string {
  return Array.from(
    { length: count },
    (_, i) => `apiVersion: domsec.io/v1alpha1
kind: PartnerDomain
metadata: {name: partner-${i}}
spec:
  domain: partner-${i}.example
  domainSecure: {send: false, receive: true}
  trustAnchors: [${TREY.name}-root]
  certificateNames: [mail${variant}.partner-${i}.example]
`,
  ).join('---\n');
}

/**
 * `domsec plan` as a user runs it (the built CLI, a whole process): best of three, in ms. Async:
 * the engine under test runs in this process and must keep answering.
 */
async function planProcessMs(dir: string, server: string, token: string): Promise<number> {
  let best = Number.POSITIVE_INFINITY;
  for (let round = 0; round < 3; round++) {
    const start = performance.now();
    const child = spawn(
      process.execPath,
      [CLI, 'plan', '-f', dir, '--server', server, '-o', 'json'],
      {
        env: { ...process.env, DOMSEC_TOKEN: token },
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    );
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
    if (code !== 0) throw new Error(`domsec plan failed: ${stderr}`);
    best = Math.min(best, performance.now() - start);
  }
  return best;
}

/** `domsec apply --auto-approve` as a user runs it, in ms: one run (it changes the engine; every
 * round renames the certificate names, which weakens, so it is approved up front). */
async function applyProcessMs(dir: string, server: string, token: string): Promise<number> {
  const start = performance.now();
  const child = spawn(
    process.execPath,
    [CLI, 'apply', '-f', dir, '--server', server, '--auto-approve', '--approve-weakening'],
    { env: { ...process.env, DOMSEC_TOKEN: token }, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
  if (code !== 0) throw new Error(`domsec apply failed: ${stderr}`);
  return performance.now() - start;
}

async function time<T>(action: () => Promise<T> | T): Promise<[T, number]> {
  const start = performance.now();
  const result = await action();
  return [result, performance.now() - start];
}

/** The EHLO reply of a new session: what the listener's current configuration answers. */
function ehlo(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let text = '';
    let greeted = false;
    socket.on('data', (chunk: Buffer) => {
      text += chunk.toString();
      if (!greeted && /^220 .*\r\n/m.test(text)) {
        greeted = true;
        text = '';
        socket.write('EHLO bench.example\r\n');
      } else if (greeted && /^250 .*\r\n/m.test(text)) {
        socket.destroy();
        resolve(text);
      }
    });
    socket.once('error', reject);
  });
}

async function planAndApply(count: number): Promise<void> {
  const lab = await tempDir('domsec-bench-');
  const engine = await startEngine(join(lab.path, 'state'));
  try {
    await writeLab(lab.path);
    const dir = await writeManifests({
      root: lab.path,
      org: ADATUM,
      partner: TREY,
      partnerBinding: `127.0.0.1:${await freePort()}`,
      internalBinding: `127.0.0.1:${await freePort()}`,
      adminListen: '127.0.0.1:1',
      partnerRoute: { host: '127.0.0.1', port: 9 },
      trust: 'root',
    });
    const file = join(dir, 'partners', 'many.yaml');
    await writeFile(file, partners(count, ''));
    const [first, loadMs] = await time(() => loadConfiguration([dir]));
    const initial = first.config;
    if (initial === undefined) throw new Error(JSON.stringify(first.diagnostics.slice(0, 3)));
    const [, firstApplyMs] = await time(() => engine.client.apply(initial));

    // The second round changes every partner: the worst case for plan and apply.
    await writeFile(file, partners(count, '2'));
    const [second, reloadMs] = await time(() => loadConfiguration([dir]));
    if (second.config === undefined) throw new Error('second load failed');
    const config = second.config;
    const [state, stateMs] = await time(() => engine.client.state());
    const [plan, planMs] = await time(async () =>
      computePlan(describeConfig(await withRevision(config, [dir])), state),
    );
    const planProcess = await planProcessMs(dir, engine.control.url, engine.token);
    const [, applyMs] = await time(() => engine.client.apply(config, plan.baseGeneration));
    // And back to the first variant by the CLI: every partner changes again.
    await writeFile(file, partners(count, ''));
    const applyProcess = await applyProcessMs(dir, engine.control.url, engine.token);
    console.log(
      [
        `partners=${count}`,
        `load=${loadMs.toFixed(0)}ms`,
        `first-apply=${firstApplyMs.toFixed(0)}ms`,
        `reload=${reloadMs.toFixed(0)}ms`,
        `state=${stateMs.toFixed(0)}ms`,
        `plan=${planMs.toFixed(0)}ms (${plan.changes.length} changes)`,
        `plan-total(state+plan)=${(stateMs + planMs).toFixed(0)}ms`,
        `apply=${applyMs.toFixed(0)}ms`,
        `domsec-plan-process=${planProcess.toFixed(0)}ms`,
        `domsec-apply-process=${applyProcess.toFixed(0)}ms`,
      ].join('  '),
    );
  } finally {
    await engine.stop();
    await lab.remove();
  }
}

async function watchLatency(settleMs = DEFAULT_SETTLE_MS, rounds = 15): Promise<void> {
  const lab = await tempDir('domsec-bench-');
  const engine = await startEngine(join(lab.path, 'state'));
  const controller = new AbortController();
  try {
    await writeLab(lab.path);
    const port = await freePort();
    const dir = await writeManifests({
      root: lab.path,
      org: ADATUM,
      partner: TREY,
      partnerBinding: `127.0.0.1:${port}`,
      internalBinding: `127.0.0.1:${await freePort()}`,
      adminListen: '127.0.0.1:1',
      partnerRoute: { host: '127.0.0.1', port: 9 },
      trust: 'root',
    });
    const first = await loadConfiguration([dir]);
    if (first.config === undefined) throw new Error(JSON.stringify(first.diagnostics.slice(0, 3)));
    await engine.client.apply(first.config);
    const watching = watchManifests({
      paths: [dir],
      client: engine.client,
      signal: controller.signal,
      print: () => undefined,
      settleMs,
    });
    // The first reconcile at start (the files were just written, so it waits one window too).
    await new Promise((resolve) => setTimeout(resolve, 1_000 + 2 * settleMs));
    const connectors = join(dir, 'connectors.yaml');
    const original = await readFile(connectors, 'utf8');
    const samples: number[] = [];
    for (let round = 1; round <= rounds; round += 1) {
      // A new size limit on the partner connector answers on the wire in EHLO's SIZE.
      const size = 1_000_000 + round;
      const text = original.replace(
        '  authMechanisms: [tls]\n  domainSecure: true',
        `  authMechanisms: [tls]\n  domainSecure: true\n  maxMessageSize: "${size}B"`,
      );
      const start = performance.now();
      await writeFile(`${connectors}.tmp`, text); // an editor's atomic save
      await rename(`${connectors}.tmp`, connectors);
      for (;;) {
        if ((await ehlo(port)).includes(`SIZE ${size}`)) break;
        if (performance.now() - start > 10_000) throw new Error('no reload in 10 s');
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      samples.push(performance.now() - start);
      await new Promise((resolve) => setTimeout(resolve, 300));
    }
    samples.sort((a, b) => a - b);
    const median = samples[Math.floor(samples.length / 2)] ?? NaN;
    const overhead = (ms: number | undefined) => ((ms ?? NaN) - settleMs).toFixed(0);
    console.log(
      `watch save->wire (settle ${settleMs}ms): p50=${median.toFixed(0)}ms = ${settleMs}ms + ${overhead(median)}ms, min=${samples[0]?.toFixed(0)}ms (+${overhead(samples[0])}), max=${samples.at(-1)?.toFixed(0)}ms (+${overhead(samples.at(-1))}) (n=${samples.length})`,
    );
    controller.abort();
    await watching;
  } finally {
    controller.abort();
    await engine.stop();
    await lab.remove();
  }
}

for (const count of PARTNERS) await planAndApply(count);
await watchLatency();
await watchLatency(200); // a short window, as --settle 200ms: the overhead should not move
