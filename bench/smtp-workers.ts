// Receive workers (bench/smtp.ts --workers 1,2 [--mode new|reuse] [--clients 32] [--seconds 4]):
// the engine with each number of receive processes in turn, 4 KB messages with a client
// certificate over STARTTLS, as bench/smtp.ts sends them. Each row: msgs/s, the time to the 250,
// and the server's CPU per message summed over its processes (the primary, which queues and
// delivers, and the workers, which receive), beside the load generator's. On a machine where the
// generator shares the cores the rate cannot grow with the workers; the last lines project the
// rate a machine with cores to spare allows: each process can spend one core, so the group's
// bound is the smaller of N workers' receive bound and the primary's.
// BENCH_PROFILE=<dir> writes V8 CPU profiles of the primary and the workers (bench/cpu-profile-top.ts
// reads them). On shared cores they count the time a process waited for a core to the function it
// was in (system calls that wake another process look expensive): `perf record -p <pids>` counts
// CPU time only, and is the one to split a process's CPU by.
import { fork, type ChildProcess } from 'node:child_process';
import { readFile, mkdtemp, rm } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Engine } from '../src/engine/engine.js';
import type { EngineLog } from '../src/engine/log.js';
import { lab } from '../test/support/lab.js';
import { certificate, runtimeConfig, trustAnchor } from '../test/support/runtime-config.js';
import { load, type Run } from './smtp-load.js';
import { serverExecArgv, type Identity, type Mode, type Server } from './smtp-servers.js';

/** Linux's clock ticks per second in /proc/<pid>/stat (USER_HZ). */
const TICKS_PER_SECOND = 100;
const WARMUP_MESSAGES = 2_000;
const WARMUP_LIMIT_MS = 30_000;
const silent: EngineLog = { log: () => undefined };

/** CPU time so far, µs: the primary, and its workers summed. */
interface GroupCpu {
  primary: { user: number; system: number };
  workers: { user: number; system: number };
}

type Request = { kind: 'cpu' } | { kind: 'idle' };
interface Reply {
  port?: number;
  client?: Identity;
  serverCa?: string;
  cpu?: GroupCpu;
  backlog?: number;
}

/** utime and stime of a process, µs (fields 14 and 15, after the command's parenthesis). */
async function processCpu(pid: number): Promise<{ user: number; system: number }> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const micros = (ticks: string | undefined) => (Number(ticks ?? 0) * 1e6) / TICKS_PER_SECOND;
  return { user: micros(fields[11]), system: micros(fields[12]) };
}

/** The engine with `workers` receive processes, in this (child) process. */
async function serveEngine(workers: number): Promise<void> {
  const stateDir = await mkdtemp(join(tmpdir(), 'domsec-bench-workers-'));
  const engine = await Engine.open({ stateDir, log: silent, workers });
  const { treyMail, adatumRoot, adatumMail, treyRoot } = lab();
  await engine.apply(
    runtimeConfig({
      receiveConnector: { remoteIPRanges: ['0.0.0.0/0'], bindings: ['127.0.0.1:0'] },
      certificates: [certificate('mail', treyMail)],
      organization: { certificate: 'mail' },
      trustAnchors: [trustAnchor('adatum-root', adatumRoot)],
    }),
  );
  // The workers' first report says where they listen: wait for it.
  let port: number | null | undefined;
  for (let waited = 0; waited < 5_000 && (port ?? null) === null; waited += 20) {
    port = engine.state().listeners[0]?.port;
    if ((port ?? null) === null) await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const send = (reply: Reply) => process.send?.(reply);
  process.on('message', (request: Request) => {
    if (request.kind === 'cpu') {
      void (async () => {
        const own = process.cpuUsage();
        const each = await Promise.all([...engine.workerPids().values()].map(processCpu));
        send({
          cpu: {
            primary: { user: own.user, system: own.system },
            workers: {
              user: each.reduce((sum, cpu) => sum + cpu.user, 0),
              system: each.reduce((sum, cpu) => sum + cpu.system, 0),
            },
          },
        });
      })();
      return;
    }
    void (async () => {
      const deadline = Date.now() + 60_000;
      while (engine.queuedMessages().length > 0 && Date.now() < deadline)
        await new Promise((resolve) => setTimeout(resolve, 50));
      send({ backlog: engine.queuedMessages().length });
    })();
  });
  process.on('disconnect', () => {
    void engine
      .close()
      .then(() => rm(stateDir, { recursive: true, force: true }))
      .then(() => process.exit(0));
  });
  send({ port: port ?? 0, client: adatumMail, serverCa: treyRoot.certPem });
}

/** The engine child process, as smtp-load.ts drives a server; cpu() sums the group. */
class GroupServer implements Server {
  readonly maildir = undefined;
  private constructor(
    private readonly child: ChildProcess,
    readonly port: number,
    readonly client: Identity,
    readonly serverCa: string,
  ) {}

  static async start(workers: number): Promise<GroupServer> {
    const child = fork(fileURLToPath(import.meta.url), ['--serve-workers', String(workers)], {
      // BENCH_PROFILE=<dir>: CPU profiles of the primary and of its workers (cluster forks them
      // with the primary's execArgv), one file per pid.
      execArgv: serverExecArgv(),
    });
    if (process.env.BENCH_PROFILE !== undefined)
      console.log(
        `engine: CPU profiles of pid ${child.pid} and its workers in ${process.env.BENCH_PROFILE}`,
      );
    const ready = await new Promise<Reply>((resolve, reject) => {
      child.once('message', resolve);
      child.once('exit', (code) => reject(new Error(`the engine exited with ${code}`)));
    });
    if (ready.port === undefined || ready.client === undefined || ready.serverCa === undefined)
      throw new Error('the engine did not say where it listens');
    return new GroupServer(child, ready.port, ready.client, ready.serverCa);
  }

  split(): Promise<GroupCpu> {
    return new Promise((resolve) => {
      this.child.once('message', (reply: Reply) =>
        resolve(reply.cpu ?? { primary: { user: 0, system: 0 }, workers: { user: 0, system: 0 } }),
      );
      this.child.send({ kind: 'cpu' } satisfies Request);
    });
  }

  async cpu(): Promise<{ user: number; system: number }> {
    const { primary, workers } = await this.split();
    return { user: primary.user + workers.user, system: primary.system + workers.system };
  }

  idle(): Promise<number> {
    return new Promise((resolve) => {
      this.child.once('message', (reply: Reply) => resolve(reply.backlog ?? 0));
      this.child.send({ kind: 'idle' } satisfies Request);
    });
  }

  async stop(): Promise<void> {
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.child.disconnect();
    await exited;
  }
}

function flag(args: string[], name: string): string | undefined {
  const index = args.indexOf(name);
  return index >= 0 ? args[index + 1] : undefined;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

const total = (cpu: { user: number; system: number }) => cpu.user + cpu.system;

interface Row {
  workers: number;
  mode: Mode;
  clients: number;
  rate: number;
  primaryPerMessage: number;
  workersPerMessage: number;
}

export async function runWorkerRows(args: string[]): Promise<void> {
  const counts = (flag(args, '--workers') ?? '1,2').split(',').map(Number);
  const seconds = Number(flag(args, '--seconds') ?? 4) || 4;
  const modeFlag = flag(args, '--mode');
  const modes: Mode[] = modeFlag === undefined ? ['new', 'reuse'] : [modeFlag as Mode];
  const clients = (flag(args, '--clients') ?? '32').split(',').map(Number);
  console.log(
    `receive workers: 4 KB messages, client certificate over STARTTLS, ${seconds} s per row, ${availableParallelism()} cores shared with the load generator (Node ${process.version})`,
  );
  console.log(
    'workers  mode   clients   msgs/s   p50 ms   p99 ms   server CPU µs/msg (primary + workers)   client CPU µs/msg',
  );
  const rows: Row[] = [];
  for (const workers of counts) {
    const server = await GroupServer.start(workers);
    try {
      // V8 optimizes the per-connection code only after a few thousand connections, in each
      // process: every worker gets as many as one process does (round robin shares them out).
      const warmup = WARMUP_MESSAGES * Math.max(1, workers);
      const deadline = performance.now() + WARMUP_LIMIT_MS * Math.max(1, workers);
      for (let sent = 0; sent < warmup && performance.now() < deadline;)
        sent += (await load(server, 'new', 8, 2)).messages;
      await server.idle();
      for (const mode of modes) {
        for (const count of clients) {
          const before = await server.split();
          const run: Run = await load(server, mode, count, seconds);
          const after = await server.split();
          await server.idle();
          const messages = Math.max(1, run.messages);
          const primary = (total(after.primary) - total(before.primary)) / messages;
          const receive = (total(after.workers) - total(before.workers)) / messages;
          const sorted = [...run.latencies].sort((a, b) => a - b);
          rows.push({
            workers,
            mode,
            clients: count,
            rate: run.messages / run.seconds,
            primaryPerMessage: primary,
            workersPerMessage: receive,
          });
          console.log(
            [
              String(workers).padStart(7),
              mode.padEnd(6),
              String(count).padStart(7),
              (run.messages / run.seconds).toFixed(0).padStart(8),
              percentile(sorted, 50).toFixed(1).padStart(8),
              percentile(sorted, 99).toFixed(1).padStart(8),
              `${(primary + receive).toFixed(0)} (${primary.toFixed(0)} + ${receive.toFixed(0)})`.padStart(
                38,
              ),
              (run.clientMicros / messages).toFixed(0).padStart(19),
            ].join(' '),
          );
        }
      }
    } finally {
      await server.stop();
    }
  }
  project(rows);
}

/**
 * With cores to spare, each process may use one: one process (--workers 1) is bound by its own
 * CPU per message; a group by the smaller of N workers sharing the receive work and the primary
 * alone doing the queue and delivery.
 */
function project(rows: Row[]): void {
  console.log('with cores to spare (the generator elsewhere), each process bound by one core:');
  for (const row of rows) {
    const single = row.workers === 1;
    const bound = single
      ? 1e6 / (row.primaryPerMessage + row.workersPerMessage)
      : Math.min(
          (row.workers * 1e6) / Math.max(1, row.workersPerMessage),
          1e6 / Math.max(1, row.primaryPerMessage),
        );
    const receiveBound = single
      ? ''
      : `  (workers' bound ${((row.workers * 1e6) / Math.max(1, row.workersPerMessage)).toFixed(0)}, primary's ${(1e6 / Math.max(1, row.primaryPerMessage)).toFixed(0)})`;
    console.log(
      `  --workers ${row.workers} ${row.mode} ${row.clients} clients: at most ${bound.toFixed(0)} msgs/s${receiveBound}`,
    );
    if (!single) {
      // The same CPU per message with more workers: where the primary becomes the limit.
      const more = [4, 8, 16].map((n) => {
        const at = Math.min(
          (n * 1e6) / Math.max(1, row.workersPerMessage),
          1e6 / Math.max(1, row.primaryPerMessage),
        );
        return `${n}: ${at.toFixed(0)}`;
      });
      console.log(`    with more workers at these costs: ${more.join(', ')} msgs/s`);
    }
  }
}

const serveIndex = process.argv.indexOf('--serve-workers');
if (process.argv[1] === fileURLToPath(import.meta.url) && serveIndex >= 0)
  await serveEngine(Number(process.argv[serveIndex + 1]));
