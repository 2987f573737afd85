// Memory of `domsec serve --workers 2` against clients that send large messages at once: bodies
// in DATA, not yet ended, from a few sessions. One process writes a large body to storage as it
// arrives (its memory does not grow with the message); a receive worker must not hold it whole
// either, or a handful of clients within the connectors' limits exhausts a worker's memory.
// Held whole, the group grows by more than the bodies (160 MiB); spooled, by about a third.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { TREY } from '../support/manifests.js';
import { tempDir, type TempDir } from '../support/tmp.js';
import { writePartnerLab, type PartnerLab } from '../reliability/partner-lab.js';
import { ServeProcess } from '../reliability/serve-process.js';
import { workersOf } from './worker-processes.js';

const SESSIONS = 8;
/** Below the connectors' default maxMessageSize (25MB). */
const BODY_BYTES = 20 * 1024 * 1024;
/** Growth allowed for the whole group while the bodies are in flight. */
const ALLOWED_GROWTH_BYTES = 120 * 1024 * 1024;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function residentBytes(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  return Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? 0) * 1024;
}

/** A session in DATA that sent `bytes` of body and not its end; resolves once all was written. */
async function largeBodyInFlight(port: number, bytes: number): Promise<Socket> {
  const socket = connect(port, '127.0.0.1');
  socket.on('error', () => undefined);
  let replies = '';
  const replied = (count: number) =>
    new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no reply: ${replies}`)), 10_000);
      const check = () => {
        if ((replies.match(/^\d{3} /gm) ?? []).length >= count) {
          clearTimeout(timer);
          socket.off('data', check);
          resolve();
        }
      };
      socket.on('data', check);
      check();
    });
  socket.on('data', (chunk: Buffer) => (replies += chunk.toString('latin1')));
  await replied(1);
  socket.write(
    `EHLO app.treyresearch.net\r\nMAIL FROM:<app@${TREY.domain}>\r\nRCPT TO:<box@${TREY.domain}>\r\nDATA\r\n`,
  );
  await replied(5);
  assert.match(replies, /^354 /m, replies);
  socket.write(`Subject: large\r\nX-Test-Id: large\r\n\r\n`);
  const line = Buffer.from(`${'m'.repeat(998)}\r\n`);
  const chunk = Buffer.concat(Array.from({ length: 256 }, () => line));
  for (let sent = 0; sent < bytes; sent += chunk.length)
    if (!socket.write(chunk)) await new Promise((resolve) => socket.once('drain', resolve));
  return socket;
}

describe('large bodies in flight and receive workers', () => {
  let work: TempDir;
  let lab: PartnerLab;
  let engine: ServeProcess | undefined;
  const sockets: Socket[] = [];

  before(async () => {
    work = await tempDir('domsec-attack-memory-');
    lab = await writePartnerLab(work.path);
  });
  after(async () => {
    for (const socket of sockets) socket.destroy();
    await engine?.kill();
    await work?.remove();
  });

  /** The group's resident memory growth while SESSIONS bodies of BODY_BYTES are in DATA. */
  async function growth(workers: string): Promise<number> {
    engine = new ServeProcess([
      '-f',
      lab.manifests,
      '--state',
      join(work.path, `state-${workers}`),
      '--workers',
      workers,
    ]);
    await engine.ready();
    const primary = engine.pid ?? 0;
    const group = [primary, ...(await workersOf(primary))];
    const total = async () =>
      (await Promise.all(group.map(residentBytes))).reduce((sum, n) => sum + n, 0);
    await sleep(500);
    const before = await total();
    const inFlight = await Promise.all(
      Array.from({ length: SESSIONS }, () => largeBodyInFlight(lab.internalPort, BODY_BYTES)),
    );
    sockets.push(...inFlight);
    await sleep(1_000);
    const during = await total();
    for (const socket of inFlight) socket.destroy();
    assert.equal(await engine.stop(), 0);
    engine = undefined;
    return during - before;
  }

  it(
    `holds ${SESSIONS} bodies of ${BODY_BYTES / 1024 / 1024} MiB in DATA without growing by more than ${ALLOWED_GROWTH_BYTES / 1024 / 1024} MiB`,
    { timeout: 120_000 },
    async (t) => {
      const single = await growth('1');
      const grouped = await growth('2');
      t.diagnostic(
        `figures ${JSON.stringify({ singleProcessGrowthMiB: Math.round(single / 1048576), workersGrowthMiB: Math.round(grouped / 1048576), bodiesMiB: (SESSIONS * BODY_BYTES) / 1048576 })}`,
      );
      assert.ok(single < ALLOWED_GROWTH_BYTES, `one process grew by ${single} bytes`);
      assert.ok(grouped < ALLOWED_GROWTH_BYTES, `the group grew by ${grouped} bytes`);
    },
  );
});
