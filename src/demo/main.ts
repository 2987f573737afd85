// `npm run demo`: the story of the reference articles on one machine. Two transport engines
// (adatum.com on 127.0.0.2, treyresearch.net on 127.0.0.3) get their manifests with `domsec
// apply`; a message waits in adatum's queue until treyresearch trusts adatum's CA, then lands
// domain-secured. Every step runs the real CLI against real engine processes.
import { cp, mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { parseDocument } from 'yaml';
import { ControlClient } from '../control/client.js';
import { STORY_ORGANIZATIONS } from '../cli/certs.js';
import { progressStep } from '../cli/progress.js';
import { writeLabPki } from '../pki/organization.js';
import { DemoEngine, runCli, type CliRun } from './processes.js';
import { submitMessage } from './submit.js';

const root = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const work = resolve(process.env.DOMSEC_DEMO_DIR ?? 'var/demo');
const WAIT_MS = 20_000;
/** Progress of the slow steps, on a terminal only (stderr; stdout tells the story). */
const progress = progressStep();

const say = (text = '') => process.stdout.write(`${text}\n`);
const step = (n: number, title: string) => say(`\n== ${n}. ${title}`);
const show = (run: CliRun) => {
  say(`$ domsec ${run.args.join(' ')}`);
  const text = `${run.stdout}${run.stderr}`.trimEnd();
  if (text !== '') say(text.replace(/^/gm, '  '));
};
const rel = (path: string) => relative(process.cwd(), path) || '.';

async function main(): Promise<number> {
  const adatum = join(work, 'adatum');
  const trey = join(work, 'treyresearch');
  const anchorFile = join(trey, 'partners', 'adatum-root.yaml');
  const partnerFile = join(trey, 'partners', 'adatum.yaml');

  step(1, 'The lab PKI: a root CA and a mail certificate per organization (node-forge)');
  await rm(work, { recursive: true, force: true });
  await mkdir(work, { recursive: true });
  await cp(join(root, 'examples', 'adatum'), adatum, { recursive: true });
  await cp(join(root, 'examples', 'treyresearch'), trey, { recursive: true });
  await writeLabPki(work, STORY_ORGANIZATIONS, progress);
  say(
    `  ${rel(work)}/{adatum,treyresearch}/pki: each organization's root, its mail certificate, the other's root`,
  );
  // Before the story starts treyresearch knows adatum as a partner but trusts only public CAs for it.
  const anchorText = await readFile(anchorFile, 'utf8');
  const partnerText = await readFile(partnerFile, 'utf8');
  await rm(anchorFile);
  const before = parseDocument(partnerText);
  before.setIn(['spec', 'trustAnchors'], before.createNode(['system'], { flow: true }));
  await writeFile(partnerFile, before.toString());
  say(
    '  treyresearch starts without adatum-root.yaml: its partner adatum.com trusts only public CAs (system).',
  );

  step(2, 'Validate the manifests');
  for (const dir of [adatum, trey]) {
    const run = await runCli(['validate', '-f', rel(dir)]);
    show(run);
    if (run.code !== 0) return fail('the example manifests do not validate');
  }

  step(3, 'Start two transport engines on loopback and apply the manifests');
  const tokens = {
    adatum: randomBytes(24).toString('base64url'),
    trey: randomBytes(24).toString('base64url'),
  };
  const engines = await progress('Starting the adatum and treyresearch engines', async () => [
    await DemoEngine.start(
      'adatum',
      ['--state', rel(join(adatum, 'state')), '--admin', '127.0.0.2:8025'],
      tokens.adatum,
      join(adatum, 'engine.log'),
    ),
    await DemoEngine.start(
      'treyresearch',
      ['--state', rel(join(trey, 'state')), '--admin', '127.0.0.3:8025'],
      tokens.trey,
      join(trey, 'engine.log'),
    ),
  ]);
  try {
    for (const [dir, token] of [
      [adatum, tokens.adatum],
      [trey, tokens.trey],
    ] as const) {
      // Creating the internal submission connector permits relay from 127.0.0.0/8: a weakening change.
      const run = await runCli(
        ['apply', '-f', rel(dir), '--auto-approve', '--approve-weakening'],
        token,
      );
      show(run);
      if (run.code !== 0) return fail('apply failed');
    }
    const adatumClient = new ControlClient('http://127.0.0.2:8025', tokens.adatum);
    const treyClient = new ControlClient('http://127.0.0.3:8025', tokens.trey);

    step(
      4,
      "alice@adatum.com writes to bob@treyresearch.net (submitted to adatum's internal connector)",
    );
    const id = await submitMessage({
      host: '127.0.0.2',
      port: 2587,
      caPem: await readFile(join(adatum, 'pki', 'adatum-root.crt'), 'utf8'),
      from: 'alice@adatum.com',
      to: 'bob@treyresearch.net',
      subject: 'Q4 research results',
    });
    say(`  adatum accepted it: ${id}`);
    const lastError = await waitFor('the first delivery attempt', async () => {
      const queue = (await adatumClient.queues()).queues.find(
        (q) => q.nextHopDomain === 'treyresearch.net',
      );
      return queue?.lastError ?? undefined;
    });
    say(
      "  treyresearch refuses adatum's certificate: it does not trust adatum's CA yet. At adatum:",
    );
    show(await runCli(['queue', 'list', '--server', 'http://127.0.0.2:8025'], tokens.adatum));
    if (
      !lastError.startsWith(
        '451 4.4.0 Primary target IP address responded with: "454 4.7.5 Certificate validation failure',
      )
    ) {
      return fail(`unexpected last error: ${lastError}`);
    }

    step(5, "treyresearch imports adatum's root CA: add the TrustAnchor, name it on the partner");
    await writeFile(anchorFile, anchorText);
    await writeFile(partnerFile, partnerText);
    say(`  + ${rel(anchorFile)}`);
    say(`  ~ ${rel(partnerFile)} (trustAnchors: [system] -> [adatum-root])`);
    show(await runCli(['plan', '-f', rel(trey)], tokens.trey));
    const apply = await runCli(
      ['apply', '-f', rel(trey), '--auto-approve', '--approve-weakening'],
      tokens.trey,
    );
    show(apply);
    if (apply.code !== 0) return fail('apply failed');

    step(6, 'adatum retries the queue (Exchange: Retry-Queue); the message lands domain-secured');
    show(
      await runCli(
        ['queue', 'retry', 'treyresearch.net', '--server', 'http://127.0.0.2:8025'],
        tokens.adatum,
      ),
    );
    const mailbox = join(trey, 'state', 'mail', 'treyresearch.net', 'bob', 'new');
    const delivered = await waitFor('delivery to bob', async () => {
      const names = await readdir(mailbox).catch(() => [] as string[]);
      return names[0] === undefined ? undefined : join(mailbox, names[0]);
    });
    const message = await readFile(delivered, 'utf8');
    const headers = message.slice(0, message.indexOf('\r\n\r\n') >>> 0).split(/\r\n(?![ \t])/);
    say(`  ${rel(delivered)}:`);
    for (const header of headers.filter((h) =>
      /^(X-Domsec-|Authentication-Results:|Subject:|From:)/i.test(h),
    )) {
      say(`    ${header.replace(/\r\n/g, '\n    ')}`);
    }
    if (!message.includes('X-Domsec-AuthAs: Partner') || !/x-domsec=pass/.test(message)) {
      return fail('the delivered message is not marked domain-secured');
    }
    const treyState = await treyClient.state();
    say(
      `  treyresearch runs generation ${treyState.generation}; adatum's queue is empty again: ${
        (await adatumClient.queues()).queues.length === 0 ? 'yes' : 'no'
      }`,
    );

    step(7, 'Where to look');
    say(`  bob's mailbox:        ${rel(mailbox)}`);
    say(`  adatum's queue:       ${rel(join(adatum, 'state', 'queue'))}`);
    say(
      `  protocol logs:        ${rel(join(adatum, 'state', 'logs', 'protocol'))}, ${rel(join(trey, 'state', 'logs', 'protocol'))}`,
    );
    say(
      `  engine logs:          ${rel(join(adatum, 'engine.log'))}, ${rel(join(trey, 'engine.log'))}`,
    );
    say(`  manifests:            ${rel(adatum)}, ${rel(trey)}`);
    say(
      '\nDone: domain security between adatum.com and treyresearch.net works. Both engines stopped.',
    );
    return 0;
  } finally {
    await Promise.all(engines.map((engine) => engine.stop()));
  }
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>): Promise<T> {
  return progress(`Waiting for ${what}`, async () => {
    const deadline = Date.now() + WAIT_MS;
    while (Date.now() < deadline) {
      const value = await probe();
      if (value !== undefined) return value;
      await new Promise((done) => setTimeout(done, 100));
    }
    throw new Error(`timed out after ${WAIT_MS / 1000}s waiting for ${what}`);
  });
}

function fail(message: string): number {
  say(`\nDemo failed: ${message}`);
  return 1;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    say(`\nDemo failed: ${(error as Error).message}`);
    process.exitCode = 1;
  },
);
