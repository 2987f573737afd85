// Runs every test file under test/ with Node's test runner (Node 20's --test does not expand globs),
// and greps the suite's whole output for the private keys and admin tokens the tests made
// (recorded by test/support/secret-ledger.mjs): a leak fails the run even if every test passed.
import { Buffer } from 'node:buffer';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';

const PRELOAD = './test/support/secret-ledger.mjs';
/** Characters of output shown either side of a leak, every base64 run in them masked. */
const CONTEXT = 30;

function find(dir) {
  return readdirSync(dir)
    .sort()
    .flatMap((name) => {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) return name === 'fixtures' ? [] : find(path);
      return name.endsWith('.test.ts') ? [path] : [];
    });
}

/** The ledger's records: "<kind> <id> <origin> <secret>" lines, one file per process. */
function readLedger(dir) {
  const secrets = new Map();
  const ids = { keys: new Set(), tokens: new Set() };
  for (const file of readdirSync(dir)) {
    for (const line of readFileSync(join(dir, file), 'utf8').split('\n')) {
      const [kind, id, origin, secret] = line.split(' ');
      if (secret === undefined) continue;
      if (kind === 'unrecorded-key') {
        process.stderr.write(`secrets: a key made by ${origin} could not be recorded: ${secret}\n`);
        continue;
      }
      const name = kind === 'token' ? secret : id; // a token is its own name
      (kind === 'token' ? ids.tokens : ids.keys).add(name);
      if (secret.length >= 16 && !secrets.has(secret)) secrets.set(secret, { kind, name, origin });
    }
  }
  return { secrets, keys: ids.keys.size, tokens: ids.tokens.size };
}

function describeKind(kind) {
  return kind === 'token' ? 'admin token' : `${kind.replace(/-key$/, '')} private key`;
}

/**
 * Output around a found secret, with the secret and any other base64 run masked: the context is
 * taken from the ends of the secret's run, and a run it would cut is taken whole, so masked whole.
 */
function context(output, index, length) {
  const base64 = /[A-Za-z0-9+/=_-]/;
  const runStart = (from) => {
    while (from > 0 && base64.test(output.charAt(from - 1))) from -= 1;
    return from;
  };
  const runEnd = (from) => {
    while (from < output.length && base64.test(output.charAt(from))) from += 1;
    return from;
  };
  const start = runStart(Math.max(0, runStart(index) - CONTEXT));
  const end = runEnd(Math.min(output.length, runEnd(index + length) + CONTEXT));
  const before = output.slice(start, index);
  const after = output.slice(index + length, end);
  // Long runs, and any run touching the secret (the rest of an unbroken base64 text).
  const masked = (text, touching) =>
    text.replace(/[A-Za-z0-9+/=_-]{16,}/g, '[masked]').replace(touching, '[masked]');
  const shown = [masked(before, /[A-Za-z0-9+/=_-]+$/), masked(after, /^[A-Za-z0-9+/=_-]+/)];
  return JSON.stringify(shown.join('[SECRET]'));
}

const only = process.argv.slice(2);
const files = only.length > 0 ? only : find('test');
const ledger = mkdtempSync(join(tmpdir(), 'domsec-secret-ledger-'));
const preloadUrl = pathToFileURL(PRELOAD).href;
const env = {
  ...process.env,
  DOMSEC_SECRET_LEDGER: ledger,
  // Processes the tests start (the CLI, the demo) record their keys too.
  NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --import=${preloadUrl}`.trim(),
};
// Piped output would switch the runner to TAP: a terminal keeps its spec reporter.
const reporter = process.stdout.isTTY ? ['--test-reporter=spec'] : [];
const child = spawn(
  process.execPath,
  [
    '--import',
    'tsx',
    '--import',
    PRELOAD,
    '--test',
    // Three files at a time on two cores: most of a test's time is sockets, timers and child
    // processes waiting (the suite took 553 s at two, 470 s at three, on an idle 2-core machine).
    '--test-concurrency=3',
    '--test-timeout=120000',
    ...reporter,
    ...files,
  ],
  { stdio: ['inherit', 'pipe', 'pipe'], env },
);
// Printed live and kept, each stream whole (a secret may span two chunks of one stream).
const captured = { stdout: [], stderr: [] };
for (const stream of ['stdout', 'stderr']) {
  child[stream].on('data', (chunk) => {
    process[stream].write(chunk);
    captured[stream].push(chunk);
  });
}
// Interrupted, the runner still ends its tests and the ledger is still removed.
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => child.kill(signal));
const status = await new Promise((resolve) => {
  child.once('error', () => resolve(1));
  child.once('close', (code) => resolve(code ?? 1));
});

const output = [captured.stdout, captured.stderr]
  .map((chunks) => Buffer.concat(chunks).toString('utf8'))
  .join('\n');
let ledgerRecords;
try {
  ledgerRecords = readLedger(ledger);
} finally {
  rmSync(ledger, { recursive: true, force: true });
}
const { secrets, keys, tokens } = ledgerRecords;
const leaked = new Set();
for (const [secret, { kind, name, origin }] of secrets) {
  if (leaked.has(name)) continue; // one report per key, however many of its lines show
  const index = output.indexOf(secret);
  if (index < 0) continue;
  leaked.add(name);
  process.stderr.write(
    `SECRET LEAK: ${describeKind(kind)} (made by ${relative(process.cwd(), origin)}) found in test output near: ` +
      `${context(output, index, secret.length)}\n`,
  );
}
process.stderr.write(
  `secrets: ${keys} keys and ${tokens} tokens from the suite checked against ` +
    `${Buffer.byteLength(output)} bytes of output: ${leaked.size === 0 ? 'none found' : `${leaked.size} found`}\n`,
);
// The runner's counts again, last, as the plain closing line: the secrets line came after them.
const count = (name) => {
  const found = [...output.matchAll(new RegExp(`^(?:#|ℹ) ${name} (\\d+)$`, 'gm'))].at(-1);
  return Number(found?.[1] ?? 0);
};
process.stdout.write(
  `${count('pass')} passed, ${count('fail') + leaked.size} failed, ${count('skipped')} skipped\n`,
);
process.exit(leaked.size > 0 ? 1 : status);
