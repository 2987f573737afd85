// Receive workers in one engine: N processes share each receive listener, the primary's queue
// takes what they accept, a generation reaches them prepare then commit (or nowhere), and a worker
// killed with SIGKILL loses nothing it acknowledged and is replaced.
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { connect as connectTcp, createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Engine } from '../../../src/engine/engine.js';
import { ApplyNotCommittedError } from '../../../src/engine/runtime/lifecycle.js';
import { memoryLog } from '../../../src/engine/log.js';
import { eventually } from '../../support/eventually.js';
import { lab } from '../../support/lab.js';
import { freePort } from '../../support/ports.js';
import { runtimeConfig } from '../../support/runtime-config.js';
import { submit } from '../../support/smtp-submit.js';
import { tempDir, type TempDir } from '../../support/tmp.js';

const WORKERS = 2;
const TOKEN = 'workers-test-token-5c1e0a9b7d3f2e4a6c8b';

/** Whether a TCP connection to the port on loopback is taken. */
function connects(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connectTcp({ port, host: '127.0.0.1' });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

function send(port: number, subject: string) {
  const { adatumMail, treyRoot } = lab();
  return submit(
    port,
    { from: 'alice@adatum.com', to: ['bob@treyresearch.net'] },
    { certificate: adatumMail, serverCa: treyRoot.certPem },
    `From: alice@adatum.com\r\nTo: bob@treyresearch.net\r\nSubject: ${subject}\r\n\r\nHello.\r\n`,
  );
}

describe('receive workers', () => {
  let dir: TempDir;
  let engine: Engine;
  let log: ReturnType<typeof memoryLog>;
  let port: number;
  let blocker: Server | undefined;
  const accepted = () => log.entries.filter((e) => e.event === 'queue.accepted').length;

  before(async () => {
    dir = await tempDir('domsec-workers-');
    log = memoryLog();
    // The primary's admin token, which the workers must not get.
    process.env.DOMSEC_TOKEN = TOKEN;
    engine = await Engine.open({
      stateDir: join(dir.path, 'state'),
      log,
      workers: WORKERS,
      workerTimeouts: { prepareMs: 2_000, silenceMs: 8_000 },
    });
    port = await freePort();
    await engine.apply(runtimeConfig({ receiveConnector: { bindings: [`127.0.0.1:${port}`] } }));
  });
  after(async () => {
    delete process.env.DOMSEC_TOKEN;
    await engine?.close();
    await new Promise((resolve) =>
      blocker === undefined ? resolve(undefined) : blocker.close(resolve),
    );
    await dir?.remove();
  });

  it('shares the listener between the workers and queues what each accepts in the primary', async () => {
    assert.equal(engine.workerPids().size, WORKERS);
    const replies = await Promise.all(
      Array.from({ length: 12 }, (_, n) => send(port, `shared ${n}`)),
    );
    for (const reply of replies) assert.equal(reply.code, 250, reply.response);
    await eventually('every message queued', () => accepted(), { until: (n) => n >= 12 });
    // Each worker appended to a journal segment of its own.
    const writers = new Set(
      (await readdir(join(dir.path, 'state', 'queue', 'journal')))
        .map((name) => /^(w\d+)\./.exec(name)?.[1])
        .filter((writer) => writer !== undefined),
    );
    assert.deepEqual([...writers].sort(), [...engine.workerPids().keys()].sort());
    const state = engine.state();
    assert.deepEqual(
      state.listeners.map((l) => [l.binding, l.listening, l.port]),
      [[`127.0.0.1:${port}`, true, port]],
    );
  });

  it('takes a large message into the file store as it arrives, and the primary delivers it', async () => {
    const before = log.entries.filter(
      (e) => e.event === 'queue.accepted' && e.fields.stored === 'data',
    ).length;
    const { adatumMail, treyRoot } = lab();
    const body = `${'x'.repeat(76)}\r\n`.repeat(8_000); // 624 KB: over what is kept in memory
    const reply = await submit(
      port,
      { from: 'alice@adatum.com', to: ['bob@treyresearch.net'] },
      { certificate: adatumMail, serverCa: treyRoot.certPem },
      `From: alice@adatum.com\r\nTo: bob@treyresearch.net\r\nSubject: large\r\n\r\n${body}`,
    );
    assert.equal(reply.code, 250, reply.response);
    await eventually(
      'the large message queued from the file store',
      () =>
        log.entries.filter((e) => e.event === 'queue.accepted' && e.fields.stored === 'data')
          .length,
      { until: (n) => n > before },
    );
    await eventually('it delivered', () => engine.queuedMessages().length, {
      until: (n) => n === 0,
    });
  });

  it('starts the workers without the admin token in their environment', async () => {
    for (const pid of engine.workerPids().values()) {
      const environment = (await readFile(`/proc/${pid}/environ`, 'latin1')).split('\0');
      assert.ok(environment.some((entry) => entry.startsWith('DOMSEC_WORKER_WRITER=')));
      assert.deepEqual(
        environment.filter((entry) => entry.includes(TOKEN)),
        [],
      );
    }
  });

  it("counts what the workers saw in the primary's metrics: messages received and a partner refused", async () => {
    const { treyRoot } = lab();
    const refused = await submit(
      port,
      { from: 'alice@adatum.com', to: ['bob@treyresearch.net'] },
      { serverCa: treyRoot.certPem },
      'Subject: no certificate\r\n\r\nHello.\r\n',
    ).catch((error: Error & { responseCode?: number }) => ({
      code: error.responseCode ?? 0,
      response: error.message,
    }));
    assert.notEqual(refused.code, 250);
    await eventually('the refusal counted', async () => (await engine.metrics.text()).body, {
      until: (text) =>
        /domsec_tls_verification_failures_total\{direction="receive"[^}]*\} 1/.test(text),
    });
    const text = (await engine.metrics.text()).body;
    const received =
      /domsec_messages_received_total\{[^}]*connector="from-partners"[^}]*\} (\d+)/.exec(text);
    assert.ok(Number(received?.[1]) >= 12, `received: ${received?.[0]}`);
  });

  it('applies a generation no worker can prepare nowhere, and the running one keeps serving', async () => {
    const before = engine.currentGeneration;
    const taken = await freePort();
    blocker = createServer();
    await new Promise<void>((resolve) => blocker?.listen(taken, '127.0.0.1', resolve));
    await assert.rejects(
      engine.apply(
        runtimeConfig({
          receiveConnector: { bindings: [`127.0.0.1:${port}`, `127.0.0.1:${taken}`] },
        }),
      ),
      ApplyNotCommittedError,
    );
    assert.equal(engine.currentGeneration, before);
    assert.equal((await send(port, 'after the refused apply')).code, 250);
    assert.deepEqual(
      engine.state().listeners.map((l) => l.binding),
      [`127.0.0.1:${port}`],
    );
  });

  it('applies a generation one worker does not prepare in time nowhere: the other undoes what it bound', async () => {
    const before = engine.currentGeneration;
    const added = await freePort();
    const [, stopped] = [...engine.workerPids()][0] ?? [];
    assert.ok(stopped !== undefined);
    process.kill(stopped, 'SIGSTOP');
    try {
      await assert.rejects(
        engine.apply(
          runtimeConfig({
            receiveConnector: { bindings: [`127.0.0.1:${port}`, `127.0.0.1:${added}`] },
          }),
        ),
        (error: Error) =>
          error instanceof ApplyNotCommittedError && /did not answer/.test(error.message),
      );
    } finally {
      process.kill(stopped, 'SIGCONT');
    }
    assert.equal(engine.currentGeneration, before);
    // The late worker prepares, then hears the abort: neither keeps the added listener.
    await eventually('the added binding closed everywhere', () => connects(added), {
      until: (open) => !open,
    });
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(await connects(added), false);
    assert.deepEqual(
      engine.state().listeners.map((l) => [l.binding, l.listening]),
      [[`127.0.0.1:${port}`, true]],
    );
    const replies = await Promise.all(Array.from({ length: 4 }, (_, n) => send(port, `kept ${n}`)));
    for (const reply of replies) assert.equal(reply.code, 250, reply.response);
  });

  it('kills a worker that hangs (stopped, its channel open) and replaces it', async () => {
    const [hung, pid] = [...engine.workerPids()][0] ?? [];
    assert.ok(hung !== undefined && pid !== undefined);
    process.kill(pid, 'SIGSTOP');
    await eventually('the hung worker replaced', () => engine.workerPids(), {
      timeoutMs: 25_000,
      until: (now) => now.size === WORKERS && !now.has(hung),
    });
    assert.ok(
      log.entries.some(
        (e) => e.event === 'workers.worker-unresponsive' && e.fields.worker === hung,
      ),
    );
    const replies = await Promise.all(
      Array.from({ length: 6 }, (_, n) => send(port, `after hang ${n}`)),
    );
    for (const reply of replies) assert.equal(reply.code, 250, reply.response);
  });

  it('takes an apply while a replacement worker starts, and every worker runs it after', async () => {
    const [victim, pid] = [...engine.workerPids()][0] ?? [];
    assert.ok(victim !== undefined && pid !== undefined);
    const before = engine.currentGeneration;
    process.kill(pid, 'SIGKILL');
    // Forked, not yet ready (or not yet brought up): the apply comes now.
    await eventually('the replacement forked', () => engine.workerPids(), {
      timeoutMs: 10_000,
      intervalMs: 5,
      until: (now) => now.size === WORKERS && !now.has(victim),
    });
    const added = await freePort();
    const bindings = [`127.0.0.1:${port}`, `127.0.0.1:${added}`];
    await engine.apply(runtimeConfig({ receiveConnector: { bindings } }));
    assert.equal(engine.currentGeneration, before + 1);
    await eventually(
      'both bindings listening in every worker',
      () => engine.state().listeners.map((l) => [l.binding, l.listening]),
      {
        timeoutMs: 15_000,
        until: (listeners) =>
          listeners.length === 2 && listeners.every(([, listening]) => listening === true),
      },
    );
    const replies = await Promise.all(
      Array.from({ length: 8 }, (_, n) => send(n % 2 === 0 ? port : added, `both ${n}`)),
    );
    for (const reply of replies) assert.equal(reply.code, 250, reply.response);
    // Back to the one binding, for the tests after.
    await engine.apply(runtimeConfig({ receiveConnector: { bindings: [`127.0.0.1:${port}`] } }));
  });

  it('loses nothing a worker killed with SIGKILL acknowledged, and replaces the worker', async () => {
    const pids = engine.workerPids();
    const [victim, pid] = [...pids][0] ?? [];
    assert.ok(victim !== undefined && pid !== undefined);
    const start = accepted();
    let acknowledged = 0;
    const sending = Promise.all(
      Array.from({ length: 24 }, async (_, n) => {
        const reply = await send(port, `under kill ${n}`).catch(() => undefined);
        if (reply?.code === 250) acknowledged += 1;
      }),
    );
    await new Promise((resolve) => setTimeout(resolve, 30));
    process.kill(pid, 'SIGKILL');
    await sending;
    await eventually('a replacement worker', () => engine.workerPids(), {
      until: (now) => now.size === WORKERS && !now.has(victim),
    });
    await eventually('every acknowledged message queued', () => accepted() - start, {
      until: (n) => n >= acknowledged,
    });
    assert.ok(
      log.entries.some((e) => e.event === 'workers.worker-exited' && e.fields.worker === victim),
    );
    // The replacement runs the current generation.
    const replies = await Promise.all(
      Array.from({ length: 6 }, (_, n) => send(port, `later ${n}`)),
    );
    for (const reply of replies) assert.equal(reply.code, 250, reply.response);
  });
});
