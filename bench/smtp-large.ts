// Large messages (bench/smtp.ts --size 25MB --clients 32): every client sends one message of that
// size at once over mutual TLS, to `domsec serve` and to a private Postfix in turn; reports each
// server's peak resident memory (the engine's VmHWM; every Postfix process's RSS summed, sampled)
// and its throughput, until the 250s and until the last message is in its Maildir.
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { lab } from '../test/support/lab.js';
import { TREY } from '../test/support/manifests.js';
import { postfixInstalled, startPostfix } from '../test/support/postfix.js';
import { tempDir } from '../test/support/tmp.js';
import { sendLarge } from '../test/reliability/large-sender.js';
import { writePartnerLab, type PartnerLab } from '../test/reliability/partner-lab.js';
import { ServeProcess } from '../test/reliability/serve-process.js';
import { parseSize } from '../src/units.js';

/** Room left under the size limit for the header section and the marking. */
const HEADER_ROOM = 16 * 1024;
const SAMPLE_MS = 100;
const DRAIN_TIMEOUT_MS = 300_000;

interface Target {
  name: string;
  lab: Pick<PartnerLab, 'port' | 'client'>;
  /** Where the messages land (their files are counted). */
  maildirs: () => Promise<number>;
  /** Resident bytes now, summed over the server's processes. */
  resident: () => Promise<number>;
  /** The peak resident set the kernel kept (VmHWM), where one process is the server. */
  peak?: () => Promise<number>;
  stop: () => Promise<void>;
}

async function statusBytes(pid: number, field: string): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  return Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0) * 1024;
}

/** Processes whose session is `leader`'s (Postfix's master calls setsid()). */
async function sessionPids(leader: number): Promise<number[]> {
  const pids: number[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const stat = await readFile(`/proc/${name}/stat`, 'utf8').catch(() => '');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(fields[3]) === leader) pids.push(Number(name));
  }
  return pids;
}

/** The pid of the master(8) started with this config directory. */
async function masterOf(configDir: string): Promise<number> {
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const command = await readFile(`/proc/${name}/cmdline`, 'latin1').catch(() => '');
    const words = command.split('\0');
    if (words[0]?.endsWith('master') === true && words.includes(configDir)) return Number(name);
  }
  throw new Error(`no postfix master for ${configDir}`);
}

async function countFiles(dir: string): Promise<number> {
  let count = 0;
  for (const mailbox of await readdir(dir).catch(() => [] as string[]))
    count += (await readdir(join(dir, mailbox, 'new')).catch(() => [])).length;
  return count;
}

async function startEngine(root: string): Promise<Target> {
  const partnerLab = await writePartnerLab(root);
  const engine = new ServeProcess(['-f', partnerLab.manifests, '--state', join(root, 'state')], {
    DOMSEC_TOKEN: 'bench-large-token-0123456789abcdef0123',
  });
  await engine.ready();
  const pid = engine.pid ?? 0;
  return {
    name: 'engine',
    lab: partnerLab,
    maildirs: () => countFiles(join(root, 'state', 'mail', TREY.domain)),
    resident: () => statusBytes(pid, 'VmRSS'),
    peak: () => statusBytes(pid, 'VmHWM'),
    stop: async () => {
      await engine.stop();
    },
  };
}

async function startPostfixTarget(size: number): Promise<Target> {
  const { treyMail, adatumRoot, adatumMail, treyRoot } = lab();
  const postfix = await startPostfix({
    hostname: TREY.hostname,
    mailboxDomains: [TREY.domain],
    certificate: treyMail,
    clientCa: adatumRoot.certPem,
    listeners: { smtpd: { tls: 'mutual' } },
    settings: {
      smtpd_tls_loglevel: '0',
      smtpd_tls_received_header: 'no',
      message_size_limit: String(size * 2),
      virtual_mailbox_limit: '0',
    },
    lifetimeSeconds: 900,
  });
  const master = await masterOf(postfix.configDir);
  return {
    name: 'postfix',
    lab: {
      port: postfix.ports.smtpd ?? 0,
      client: { certificate: { ...adatumMail, fingerprint: '' }, serverCa: treyRoot.certPem },
    },
    maildirs: async () => (await readdir(join(postfix.maildir, 'new')).catch(() => [])).length,
    resident: async () => {
      const sizes = await Promise.all(
        (await sessionPids(master)).map((pid) => statusBytes(pid, 'VmRSS')),
      );
      return sizes.reduce((sum, bytes) => sum + bytes, 0);
    },
    stop: () => postfix.stop(),
  };
}

async function measure(target: Target, clients: number, size: number): Promise<string> {
  const idle = await target.resident();
  let sampled = idle;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      sampled = Math.max(sampled, await target.resident());
      await new Promise((resolve) => setTimeout(resolve, SAMPLE_MS));
    }
  })();
  const bytes = size - HEADER_ROOM;
  const started = performance.now();
  const before = await target.maildirs();
  const replies = await Promise.all(
    Array.from({ length: clients }, (_, n) =>
      sendLarge(target.lab, `${target.name}-${n}`, `bob${n % 8}@${TREY.domain}`, bytes),
    ),
  );
  const accepted = (performance.now() - started) / 1000;
  const deadline = Date.now() + DRAIN_TIMEOUT_MS;
  const ok = replies.filter((reply) => reply.code === 250).length;
  while ((await target.maildirs()) - before < ok && Date.now() < deadline)
    await new Promise((resolve) => setTimeout(resolve, 200));
  const delivered = (performance.now() - started) / 1000;
  sampling = false;
  await sampler;
  const peak = (await target.peak?.()) ?? sampled;
  const mb = (value: number) => (value / 2 ** 20).toFixed(0);
  const total = (ok * bytes) / 2 ** 20;
  return [
    target.name.padEnd(8),
    `${ok}/${clients}`.padStart(7),
    mb(idle).padStart(8),
    mb(peak).padStart(9),
    mb(sampled).padStart(11),
    (total / accepted).toFixed(1).padStart(10),
    (total / delivered).toFixed(1).padStart(12),
    `${accepted.toFixed(1)} s / ${delivered.toFixed(1)} s`.padStart(18),
  ].join(' ');
}

/** `--size 25MB --clients 32 [--only engine|postfix]`. */
export async function runLargeMessages(args: string[]): Promise<void> {
  const size = parseSize(args[args.indexOf('--size') + 1] ?? '') ?? 0;
  if (size <= HEADER_ROOM) throw new Error('--size: a size such as 25MB');
  const clients = Number(args[args.indexOf('--clients') + 1] ?? 32) || 32;
  const onlyIndex = args.indexOf('--only');
  const only = onlyIndex >= 0 ? (args[onlyIndex + 1] ?? '').split(',') : ['engine', 'postfix'];
  const postfix = only.includes('postfix') && (await postfixInstalled());
  console.log(
    `${clients} clients at once, one ${(size / 2 ** 20).toFixed(0)} MB message each, client certificate over STARTTLS (Node ${process.version})`,
  );
  console.log(
    'server    250s   idle MB   peak MB   sampled MB   MB/s 250   MB/s Maildir      250 / delivered',
  );
  const work = await tempDir('domsec-bench-large-');
  try {
    const targets: (() => Promise<Target>)[] = [];
    if (only.includes('engine')) targets.push(() => startEngine(join(work.path, 'engine')));
    if (postfix) targets.push(() => startPostfixTarget(size));
    for (const start of targets) {
      const target = await start();
      try {
        console.log(await measure(target, clients, size));
      } finally {
        await target.stop();
      }
    }
  } finally {
    await work.remove();
  }
  console.log(
    "peak MB: the engine process's VmHWM; for Postfix the largest sum of its processes' RSS sampled every 100 ms",
  );
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href)
  await runLargeMessages(process.argv.slice(2));
