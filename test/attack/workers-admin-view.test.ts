// The admin view of `domsec serve --workers 2` (GET /v1/overview and /metrics): sessions and
// counters are every worker's, summed; a worker killed with SIGKILL takes its sessions out of the
// figures and leaves the counters where they were; partner health counts what the workers saw.
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { eventually } from '../support/eventually.js';
import { ADATUM, TREY } from '../support/manifests.js';
import { tempDir, type TempDir } from '../support/tmp.js';
import { sendMarked, writePartnerLab, type PartnerLab } from '../reliability/partner-lab.js';
import { ServeProcess } from '../reliability/serve-process.js';
import { workersOf } from './worker-processes.js';

const TOKEN = 'attack-admin-view-token-2b7e1c9d04fa63';
const IDLE_SESSIONS = 6;

interface Overview {
  partners: { domain: string; receive: { mark: string } }[];
  receiveConnectors: { name: string; sessions: number; bindings: { listening: boolean }[] }[];
}

/** An SMTP session held open after its greeting and EHLO; `open` turns false once it closes. */
async function idleSession(port: number): Promise<{ socket: Socket; open: () => boolean }> {
  const socket = connect(port, '127.0.0.1');
  let closed = false;
  socket.on('close', () => (closed = true));
  socket.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => {
    socket.setTimeout(5_000, () => reject(new Error('no greeting')));
    socket.once('data', () => {
      socket.setTimeout(0);
      socket.write('EHLO idle.adatum.com\r\n');
      resolve();
    });
  });
  return { socket, open: () => !closed };
}

describe('the admin view of receive workers', () => {
  let work: TempDir;
  let lab: PartnerLab;
  let engine: ServeProcess | undefined;
  const sockets: Socket[] = [];

  before(async () => {
    work = await tempDir('domsec-attack-admin-');
    lab = await writePartnerLab(work.path);
  });
  after(async () => {
    for (const socket of sockets) socket.destroy();
    await engine?.kill();
    await work?.remove();
  });

  const get = async (path: string): Promise<string> => {
    const response = await fetch(`http://${lab.admin}${path}`, {
      headers: { authorization: `Bearer ${TOKEN}` },
      signal: AbortSignal.timeout(5_000),
    });
    assert.equal(response.status, 200, path);
    return response.text();
  };
  const overview = async () => JSON.parse(await get('/v1/overview')) as Overview;
  const sessionsOf = async (connector: string) =>
    (await overview()).receiveConnectors.find((c) => c.name === connector)?.sessions;
  /** A sample of /metrics, summed over every label set whose labels include `labels`. */
  const metric = async (name: string, labels = ''): Promise<number> => {
    let sum = 0;
    for (const line of (await get('/metrics')).split('\n')) {
      if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
      if (!line.includes(labels)) continue;
      sum += Number(line.slice(line.lastIndexOf(' ') + 1));
    }
    return sum;
  };

  it(
    'sums sessions and counters over the workers, and drops a killed worker’s sessions but not its counts',
    { timeout: 90_000 },
    async () => {
      engine = new ServeProcess(
        ['-f', lab.manifests, '--state', join(work.path, 'state'), '--workers', '2'],
        { DOMSEC_TOKEN: TOKEN },
      );
      await engine.ready();
      const primary = engine.pid ?? 0;
      for (let n = 0; n < 4; n += 1)
        assert.equal((await sendMarked(lab, `a-m${n}`, [`box@${TREY.domain}`])).code, 250);
      await eventually('four messages counted', () => metric('domsec_messages_received_total'), {
        until: (count) => count === 4,
      });
      const partner = (await overview()).partners.find((p) => p.domain === ADATUM.domain);
      assert.equal(partner?.receive.mark, 'secured');

      const idle = await Promise.all(
        Array.from({ length: IDLE_SESSIONS }, () => idleSession(lab.internalPort)),
      );
      sockets.push(...idle.map((session) => session.socket));
      await eventually('every idle session counted', () => sessionsOf('internal'), {
        timeoutMs: 5_000,
        until: (count) => count === IDLE_SESSIONS,
      });
      assert.equal(await metric('domsec_receive_sessions', 'connector="internal"'), IDLE_SESSIONS);

      const [victim] = await workersOf(primary);
      assert.ok(victim !== undefined);
      process.kill(victim, 'SIGKILL');
      await eventually('the killed worker’s sessions closed', () => idle.filter((s) => s.open()), {
        timeoutMs: 5_000,
        until: (left) => left.length < IDLE_SESSIONS,
      });
      const left = idle.filter((s) => s.open()).length;
      assert.ok(left > 0, 'round-robin gave the surviving worker some of the sessions');
      await eventually('the sessions still open, and only those', () => sessionsOf('internal'), {
        timeoutMs: 5_000,
        until: (count) => count === left,
      });
      await eventually('a replacement listening', () => overview(), {
        timeoutMs: 10_000,
        until: (now) =>
          now.receiveConnectors.every((c) => c.bindings.every((b) => b.listening)) &&
          engine !== undefined,
      });
      await eventually('a replacement worker', () => workersOf(primary), {
        timeoutMs: 10_000,
        until: (now) => now.length === 2 && !now.includes(victim),
      });
      assert.equal(await metric('domsec_messages_received_total'), 4, 'counts survive the worker');
      for (let n = 4; n < 8; n += 1)
        assert.equal((await sendMarked(lab, `a-m${n}`, [`box@${TREY.domain}`])).code, 250);
      await eventually('eight messages counted', () => metric('domsec_messages_received_total'), {
        until: (count) => count === 8,
      });
      for (const socket of sockets) socket.destroy();
      await eventually('no session left', () => sessionsOf('internal'), {
        timeoutMs: 5_000,
        until: (count) => count === 0,
      });
      assert.equal(await engine.stop(), 0);
      engine = undefined;
    },
  );
});
