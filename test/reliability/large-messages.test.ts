// A message's memory does not depend on its size: 16 partner sessions send 8 MB each at once to a
// real `domsec serve` (a child process, whose peak resident memory /proc says), and each message
// arrives byte-exact, in its Maildir and, with delivery.relay, at a mailbox server behind us.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SMTPServer } from 'smtp-server';
import { eventually } from '../support/eventually.js';
import { TREY } from '../support/manifests.js';
import { tempDir, type TempDir } from '../support/tmp.js';
import { queueFiles, writePartnerLab, type PartnerLab } from './partner-lab.js';
import { sendLarge, storedBody } from './large-sender.js';
import { ServeProcess } from './serve-process.js';

const SESSIONS = 16;
const MESSAGE_BYTES = 8 * 1024 * 1024;
/**
 * The engine's peak resident memory may be at most this. Idle it is about 90 MB; holding each
 * message once would add 128 MB, and it used to hold each about three times (470 MB).
 */
const PEAK_RSS_BOUND = 190 * 1024 * 1024;
/** kB figures of /proc/<pid>/status: VmHWM is the peak resident set. */
async function memoryOf(pid: number): Promise<{ peak: number; now: number }> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) =>
    Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1]) * 1024;
  return { peak: kb('VmHWM'), now: kb('VmRSS') };
}

/** Sends SESSIONS large messages at once; resolves with id -> body hash of those that got 250. */
async function sendAll(lab: PartnerLab, tag: string): Promise<Map<string, string>> {
  const sent = await Promise.all(
    Array.from({ length: SESSIONS }, (_, n) =>
      sendLarge(lab, `${tag}${n}`, `box${n % 4}@${TREY.domain}`, MESSAGE_BYTES),
    ),
  );
  assert.deepEqual(
    sent.map((s) => s.code),
    sent.map(() => 250),
    'every message got 250',
  );
  return new Map(sent.map((s, n) => [`${tag}${n}`, s.bodyHash]));
}

describe('large messages', { timeout: 120_000 }, () => {
  let work: TempDir;
  let engine: ServeProcess | undefined;
  let relay: SMTPServer | undefined;

  before(async () => {
    work = await tempDir('domsec-large-');
  });
  after(async () => {
    await engine?.kill();
    await new Promise<void>((resolve) =>
      relay === undefined ? resolve() : relay.close(() => resolve()),
    );
    await work.remove();
  });

  it(`keeps the engine's peak memory bounded with ${SESSIONS} concurrent 8 MB messages, each delivered byte-exact to its Maildir`, async (t) => {
    const lab = await writePartnerLab(join(work.path, 'maildir'));
    const state = join(work.path, 'maildir', 'state');
    engine = new ServeProcess(['-f', lab.manifests, '--state', state], {
      DOMSEC_TOKEN: 'large-messages-token-0123456789abcdef',
    });
    await engine.ready();
    const pid = engine.pid ?? 0;
    const idle = await memoryOf(pid);
    const started = Date.now();
    const expected = await sendAll(lab, 'm');
    const seconds = (Date.now() - started) / 1000;

    const mail = join(state, 'mail', TREY.domain);
    const found = new Map<string, string>();
    const serving = engine;
    await eventually(
      `the ${SESSIONS} messages delivered`,
      async () => {
        for (const mailbox of await readdir(mail).catch(() => [] as string[])) {
          for (const name of await readdir(join(mail, mailbox, 'new')).catch(
            () => [] as string[],
          )) {
            if ([...found.keys()].some((id) => name.includes(id))) continue;
            const stored = await storedBody(join(mail, mailbox, 'new', name));
            if (stored.id !== undefined) found.set(stored.id, stored.bodyHash);
          }
        }
        return found.size;
      },
      {
        timeoutMs: 60_000,
        intervalMs: 100,
        until: (delivered) => delivered >= SESSIONS,
        explain: () => serving.stderr.slice(-3000),
      },
    );
    const memory = await memoryOf(pid);
    const figures = {
      sessions: SESSIONS,
      messageMB: MESSAGE_BYTES / 2 ** 20,
      idleRssMB: Math.round(idle.now / 2 ** 20),
      peakRssMB: Math.round(memory.peak / 2 ** 20),
      receiveSeconds: seconds,
      receiveMBps: Math.round((SESSIONS * MESSAGE_BYTES) / 2 ** 20 / seconds),
    };
    t.diagnostic(`figures ${JSON.stringify(figures)}`);
    assert.deepEqual(
      new Map([...found].sort()),
      new Map([...expected].sort()),
      'every body arrives byte-exact',
    );
    assert.ok(memory.peak < PEAK_RSS_BOUND, `peak RSS ${figures.peakRssMB} MB`);
    // Delivered: nothing left in the queue's data/.
    await eventually(
      "the queue's data/ to empty",
      async () => (await queueFiles(join(state, 'queue'))).data ?? [],
      { until: (data) => data.length === 0 },
    );
    assert.deepEqual((await queueFiles(join(state, 'queue'))).data, []);
    assert.equal(await engine.stop(), 0);
    engine = undefined;
  });

  it(`relays ${SESSIONS} concurrent 8 MB messages to the mailbox server byte-exact, memory bounded`, async (t) => {
    const received = new Map<string, string>();
    relay = new SMTPServer({
      authOptional: true,
      disabledCommands: ['STARTTLS', 'AUTH'],
      size: 64 * 1024 * 1024,
      onData(stream, _session, callback) {
        // Hashes what follows the header section as it streams by.
        const hash = createHash('sha256');
        let head = '';
        let inBody = false;
        stream.on('data', (chunk: Buffer) => {
          if (inBody) {
            hash.update(chunk);
            return;
          }
          head += chunk.toString('latin1');
          const end = head.indexOf('\r\n\r\n');
          if (end === -1) return;
          inBody = true;
          hash.update(Buffer.from(head.slice(end + 4), 'latin1'));
          head = head.slice(0, end);
        });
        stream.on('end', () => {
          const id = /^X-Test-Id: (\S+?)\r?$/m.exec(head)?.[1] ?? '?';
          received.set(id, hash.digest('hex'));
          callback();
        });
      },
    });
    await new Promise<void>((resolve) => relay?.listen(0, '127.0.0.1', resolve));
    const relayPort = (relay.server.address() as { port: number }).port;

    const root = join(work.path, 'relay');
    const lab = await writePartnerLab(root);
    const organization = join(lab.manifests, 'organization.yaml');
    const text = await readFile(organization, 'utf8');
    await writeFile(
      organization,
      text.replace(
        '  queue: {retry: [1m]}\n',
        `  queue: {retry: [1m]}\n  delivery: {relay: {host: "127.0.0.1:${relayPort}", tls: none}}\n`,
      ),
    );
    const state = join(root, 'state');
    engine = new ServeProcess(['-f', lab.manifests, '--state', state], {
      DOMSEC_TOKEN: 'large-messages-token-0123456789abcdef',
    });
    await engine.ready();
    const pid = engine.pid ?? 0;
    const expected = await sendAll(lab, 'r');
    await eventually(`the ${SESSIONS} messages relayed`, () => received.size, {
      timeoutMs: 60_000,
      intervalMs: 100,
      until: (relayed) => relayed >= SESSIONS,
    });
    const memory = await memoryOf(pid);
    t.diagnostic(`relay peak RSS ${Math.round(memory.peak / 2 ** 20)} MB`);
    assert.deepEqual(
      new Map([...received].sort()),
      new Map([...expected].sort()),
      'every body relayed byte-exact',
    );
    assert.ok(memory.peak < PEAK_RSS_BOUND, `peak RSS ${Math.round(memory.peak / 2 ** 20)} MB`);
    assert.equal(await engine.stop(), 0);
    engine = undefined;
  });
});
