// A connector's connection limits hold for the group of receive workers, not for each worker: the
// primary counts every worker's sessions (per connector, per client, the share kept for partners)
// and a worker asks before it greets. Real sockets to an engine with two workers, and generated
// sequences of admissions, ends and worker deaths against a model of one counter.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { Engine } from '../../../src/engine/engine.js';
import { EngineEvents } from '../../../src/engine/events.js';
import { memoryLog } from '../../../src/engine/log.js';
import { REPLIES } from '../../../src/engine/replies.js';
import { GroupAdmissions } from '../../../src/engine/workers/admissions.js';
import type { WorkerMessage } from '../../../src/engine/workers/protocol.js';
import { WorkerCounter } from '../../../src/engine/workers/worker-counter.js';
import { eventually } from '../../support/eventually.js';
import { freePort } from '../../support/ports.js';
import { LineClient } from '../../support/line-client.js';
import { runtimeConfig } from '../../support/runtime-config.js';
import { tempDir, type TempDir } from '../../support/tmp.js';

const PER_CLIENT =
  '421 4.7.0 Too many concurrent connections from this client, closing transmission channel';
const PER_CONNECTOR =
  '421 4.3.2 The maximum number of concurrent server connections has exceeded a limit, closing transmission channel';

describe('connection limits across receive workers', () => {
  let dir: TempDir;
  let engine: Engine;
  let port: number;
  const clients: LineClient[] = [];

  const open = async (localAddress?: string): Promise<{ client: LineClient; reply: string }> => {
    const client = await LineClient.open(port, '127.0.0.1', localAddress);
    clients.push(client);
    return { client, reply: await client.reply() };
  };
  const closeAll = async (): Promise<void> => {
    for (const client of clients.splice(0)) client.close();
    // Every session counted out again: as many clients as the per-client limit are greeted.
    await eventually(
      'both places of the client free',
      async () => {
        // Refused while no worker listens (every one was killed and their replacements bind).
        const opened = await Promise.all([open(), open()]).catch(() => []);
        if (opened.length === 0) return false;
        for (const o of opened) o.client.close();
        clients.splice(0);
        return opened.every((o) => o.reply.startsWith('220 '));
      },
      20_000,
    );
    // And the probe's own sessions counted out too, so that the next test starts from none.
    await eventually(
      'no session counted',
      () => engine.receiveSessions().every((c) => c.sessions === 0),
      10_000,
    );
  };

  before(async () => {
    dir = await tempDir('domsec-workers-limits-');
    engine = await Engine.open({ stateDir: join(dir.path, 'state'), log: memoryLog(), workers: 2 });
    port = await freePort();
    await engine.apply(
      runtimeConfig({
        receiveConnector: {
          bindings: [`127.0.0.1:${port}`],
          maxInboundConnection: 4,
          maxInboundConnectionPerSource: 2,
        },
      }),
    );
  });
  // Each test starts with every session of the last one counted out.
  afterEach(closeAll);
  after(async () => {
    for (const client of clients) client.close();
    await engine?.close();
    await dir?.remove();
  });

  it('greets as many sessions from one client as maxInboundConnectionPerSource allows, over every worker', async () => {
    // Round robin gives each worker two of the four: counted per worker, all four would be greeted.
    const replies: string[] = [];
    for (let n = 0; n < 4; n += 1) replies.push((await open()).reply);
    assert.deepEqual(
      replies.map((reply) => reply.slice(0, 4)),
      ['220 ', '220 ', '421 ', '421 '],
    );
    assert.equal(replies[2], PER_CLIENT);
    assert.equal(replies[3], PER_CLIENT);
  });

  it('refuses the connector over maxInboundConnection whichever worker gets the connection', async () => {
    const from = ['127.0.0.2', '127.0.0.3', '127.0.0.4', '127.0.0.5', '127.0.0.6', '127.0.0.7'];
    const replies: string[] = [];
    for (const address of from) replies.push((await open(address)).reply);
    assert.equal(replies.filter((reply) => reply.startsWith('220 ')).length, 4);
    assert.deepEqual(replies.slice(4), [PER_CONNECTOR, PER_CONNECTOR]);
  });

  it('counts a session out when it ends, in whichever worker it ran', async () => {
    const first = await open();
    const second = await open();
    assert.match(first.reply, /^220 /);
    assert.match(second.reply, /^220 /);
    first.client.write('QUIT');
    assert.match(await first.client.reply(), /^221 /);
    await first.client.closedByServer();
    await eventually(
      'a second session greeted again',
      async () => {
        const again = await open();
        again.client.close();
        return again.reply.startsWith('220 ');
      },
      10_000,
    );
  });

  it('counts out every session of a worker that was killed', { timeout: 60_000 }, async () => {
    const held = [await open(), await open()];
    for (const session of held) assert.match(session.reply, /^220 /);
    const before = [...engine.workerPids().values()];
    for (const pid of before) process.kill(pid, 'SIGKILL');
    for (const session of held) await session.client.closedByServer();
    await eventually(
      'two new workers',
      () => {
        const now = [...engine.workerPids().values()];
        return now.length === 2 && now.every((pid) => !before.includes(pid));
      },
      20_000,
    );
    // Their sessions died with them: both of this client's places are free again.
  });
});

describe('the group count (generated)', () => {
  type Step =
    | { kind: 'admit'; writer: number; client: number }
    | { kind: 'release'; writer: number; client: number }
    | { kind: 'gone'; writer: number };
  const step = fc.oneof(
    fc.record({
      kind: fc.constant('admit' as const),
      writer: fc.nat(2),
      client: fc.nat(3),
    }),
    fc.record({
      kind: fc.constant('release' as const),
      writer: fc.nat(2),
      client: fc.nat(3),
    }),
    fc.record({ kind: fc.constant('gone' as const), writer: fc.nat(2) }),
  );

  it('admits exactly what one counter of the whole group would, through releases and deaths', () => {
    fc.assert(
      fc.property(
        fc.array(step, { maxLength: 80 }),
        fc.integer({ min: 1, max: 12 }),
        fc.integer({ min: 1, max: 5 }),
        (steps: Step[], maxInboundConnection, maxInboundConnectionPerSource) => {
          const events = new EngineEvents();
          const stress: boolean[] = [];
          events.subscribe((event) => {
            if (event.type === 'receive.stress-started') stress.push(true);
            if (event.type === 'receive.stress-ended') stress.push(false);
          });
          const admissions = new GroupAdmissions(events, () => undefined);
          // The model: sessions held, by worker and client.
          const held = new Map<string, number>();
          const total = (): number => [...held.values()].reduce((a, b) => a + b, 0);
          const ofClient = (client: number): number =>
            [...held].filter(([key]) => key.endsWith(` ${client}`)).reduce((a, [, n]) => a + n, 0);
          const strangers = maxInboundConnection - Math.floor(maxInboundConnection * 0.1);
          for (const s of steps) {
            if (s.kind === 'admit') {
              const refusal = admissions.admit(`w${s.writer}`, {
                type: 'admit',
                id: 1,
                connector: 'from-partners',
                client: `127.0.0.${s.client + 1}`,
                maxInboundConnection,
                maxInboundConnectionPerSource,
                partnerRange: false,
              });
              const expected =
                total() < strangers && ofClient(s.client) < maxInboundConnectionPerSource;
              assert.equal(refusal === undefined, expected);
              if (expected) {
                const key = `w${s.writer} ${s.client}`;
                held.set(key, (held.get(key) ?? 0) + 1);
              }
            } else if (s.kind === 'release') {
              admissions.release(`w${s.writer}`, 'from-partners', `127.0.0.${s.client + 1}`);
              const key = `w${s.writer} ${s.client}`;
              const count = held.get(key) ?? 0;
              if (count > 1) held.set(key, count - 1);
              else held.delete(key);
            } else {
              admissions.gone(`w${s.writer}`);
              for (const key of [...held.keys()])
                if (key.startsWith(`w${s.writer} `)) held.delete(key);
            }
            assert.equal(admissions.sessions(), total());
          }
          // Stress starts and ends alternate, beginning with a start.
          stress.forEach((started, n) => assert.equal(started, n % 2 === 0));
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe("a worker's admissions (fail closed)", () => {
  const limits = { maxInboundConnection: 10, maxInboundConnectionPerSource: 2 };
  // The counter's own timer does not hold a process open (a worker's channel does): this does.
  let alive: NodeJS.Timeout;
  before(() => {
    alive = setInterval(() => undefined, 1_000);
  });
  after(() => clearInterval(alive));

  it('refuses a connection when the primary cannot be told, or does not answer in time', async () => {
    const gone = new WorkerCounter(() => false, 1_000);
    assert.equal((await gone.admit('c', '127.0.0.1', limits)).refusal?.enhanced, '4.3.2');
    const throwing = new WorkerCounter(() => {
      throw new Error('channel closed');
    }, 1_000);
    assert.equal((await throwing.admit('c', '127.0.0.1', limits)).refusal?.enhanced, '4.3.2');
    const sent: WorkerMessage[] = [];
    const silent = new WorkerCounter((message) => sent.push(message) > 0, 50);
    const started = Date.now();
    assert.equal((await silent.admit('c', '127.0.0.1', limits)).refusal?.enhanced, '4.3.2');
    assert.ok(Date.now() - started >= 45);
    // The primary's late yes is given back at once: the client was refused, nothing holds it.
    const asked = sent[0];
    assert.ok(asked?.type === 'admit');
    silent.answered(asked.id, 'c', '127.0.0.1', {});
    assert.deepEqual(sent[1], { type: 'release', connector: 'c', client: '127.0.0.1' });
    // A late no is nothing to give back.
    silent.answered(asked.id, 'c', '127.0.0.1', { refusal: REPLIES.tooManyFromClient });
    assert.equal(sent.length, 2);
  });

  it("answers each admission with the primary's answer to it, in whatever order they come", async () => {
    const sent: WorkerMessage[] = [];
    const counter = new WorkerCounter((message) => sent.push(message) > 0);
    const first = counter.admit('c', '127.0.0.1', limits);
    const second = counter.admit('c', '127.0.0.2', limits);
    const [a, b] = sent;
    assert.ok(a?.type === 'admit' && b?.type === 'admit');
    counter.answered(b.id, 'c', '127.0.0.2', { refusal: REPLIES.tooManyFromClient });
    counter.answered(a.id, 'c', '127.0.0.1', {});
    assert.deepEqual(await first, {});
    assert.equal((await second).refusal, REPLIES.tooManyFromClient);
  });
});
