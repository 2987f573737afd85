// The receive side's benchmark: 4 KB messages with a client certificate over STARTTLS to a real
// Engine, a plain smtp-server with the same TLS (the baseline) and, when it is installed, a private
// Postfix with smtpd_tls_req_ccert = yes (smtp-servers.ts), all side by side, taking turns row by
// row; the clients are in smtp-load.ts, the delivery watch in delivery-watch.ts.
//
// node --import tsx bench/smtp.ts [--seconds 4] [--rounds 1] [--only engine|baseline|postfix[,...]]
//   [--mode new|reuse|resume] [--clients 1,8,32] [--client-context per-connection|shared] [--ecdsa]
//   [--generators K] [--postfix-set name=value]... [--latency [--latency-rate 100]] [--no-watch]
//   [--warmup 3000]
// --workers 1,2 [--mode new|reuse] [--clients 32]: the engine alone with each number of receive
// processes, CPU per message summed over them, and the rate cores to spare allow (smtp-workers.ts).
// --generators K splits the clients over K processes (one by default, which tops out near one
// core's worth of TLS handshakes: about 420 new connections a second here).
// --warmup N: before the rows, N messages on new connections from 8 clients to each Node server
// (3,000 by default, at most a minute; 0 for none): V8 optimizes the engine's per-connection code
// only after several hundred to a few thousand connections, and a row without that spends part of
// its time in the interpreter (seen as V8's compiler threads busy through a whole row).
// BENCH_PROFILE=<dir> writes the Node servers' CPU profiles there (each server names its pid, each
// row its time window; bench/cpu-profile-top.ts sums up a profile's self time in a window).
//
// Each row: msgs/s, and the time from sending to the 250 (p50, p99); "new/ p50, p99" is the time
// from the client's 250 to the message's file in the server's Maildir new/, as a separate process
// sees it (inotify; it reads each new file's first bytes for the tag in its Subject; --no-watch
// leaves it out). The baseline keeps no mail: "-". After each row the servers get to deliver what
// they accepted: "drain" is how long that took, and the last column of the summary counts it in
// (messages over load time plus drain time).
// With --mode new (the default runs it), a "handshake" row at each client count does only the
// TLS 1.3 handshake with the client certificate against a trivial Node TLS server (same keys and
// client contexts, a new connection each), and the summary gives each server's rate of new
// connections as a share of that limit.
// --latency (alone, or beside --mode/--clients) sends 1,000 messages per server from 8 clients on
// kept connections at --latency-rate messages a second (100: far from saturating), the 8 together
// every 80 ms and quiet in between, and prints p50/p99/max of 250 → new/; the goal: the engine
// delivers every message within 50 ms of its 250 (mail left waiting for the next burst misses it).
// Last, each server's CPU per message beside the load generator's, and the rate their sum allows
// on this machine's cores: the bound on any ratio once every core is busy (32 new connections).
// TMPDIR places every server's files (the engine's state directory, Postfix's queue and
// Maildir). On a machine whose /tmp sees heavy file churn (test suites), ext4 without a journal
// spent 0.3-0.9 ms of CPU creating a file there, skipping recently deleted inodes, against
// 0.02-0.03 ms in a quiet directory: Postfix (two new files per message) pays that twice as often
// as the engine (one), which flatters the engine's ratio.
import { availableParallelism, loadavg } from 'node:os';
import { postfixInstalled } from '../test/support/postfix.js';
import { deliveryLatencies, startDeliveryWatch, type DeliveryWatch } from './delivery-watch.js';
import { runLargeMessages } from './smtp-large.js';
import { runWorkerRows } from './smtp-workers.js';
import { load, SHARED_CONTEXTS, type Run } from './smtp-load.js';
import {
  DRAIN_TIMEOUT_MS,
  KINDS,
  startHandshakeServer,
  startServer,
  type Mode,
  type Server,
  type ServerKind,
} from './smtp-servers.js';
import { monotonicMs } from './tagged-message.js';

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

/** The goals: engine throughput over Postfix's, per connection mode. */
const GOAL: Partial<Record<Mode, number>> = { new: 1.5, reuse: 1.2 };
/** The latency goal: on an idle machine, every message in new/ within this long of its 250. */
const LATENCY_GOAL_MS = 50;
const LATENCY_MESSAGES = 1_000;
const LATENCY_CLIENTS = 8;

type RowKind = ServerKind | 'handshake';

const WARMUP_MESSAGES = 3_000;
const WARMUP_LIMIT_MS = 60_000;

/** `messages` on new connections from 8 clients, in rounds of 2 s, for at most a minute. */
async function warmUp(server: Server, messages: number): Promise<void> {
  const deadline = performance.now() + WARMUP_LIMIT_MS;
  for (let sent = 0; sent < messages && performance.now() < deadline;) {
    sent += (await load(server, 'new', 8, 2)).messages;
  }
  await server.idle();
}

function loadAverage(): string {
  return loadavg()
    .map((value) => value.toFixed(2))
    .join(' ');
}

function flag(args: string[], name: string): string | undefined {
  const index = args.indexOf(name);
  return index >= 0 ? args[index + 1] : undefined;
}

const ms = (value: number): string => (Number.isNaN(value) ? '-' : value.toFixed(1));

/** What the delivery watch makes of a row: 250 → new/ latencies (sorted) and what it missed. */
interface Delivery {
  sorted: number[];
  unseen: number;
  late: number;
}

async function delivered(
  watch: DeliveryWatch,
  server: Server,
  run: Run,
): Promise<Delivery | undefined> {
  const watched = server.maildir !== undefined && watch.directories.includes(server.maildir);
  if (!watched || run.accepted.length === 0) return undefined;
  const deliveries = await watch.collect(run.accepted.length);
  const { latencies, unseen } = deliveryLatencies(run.accepted, deliveries.seen);
  return { sorted: latencies.sort((a, b) => a - b), unseen, late: deliveries.late };
}

function deliveryNote(delivery: Delivery | undefined): string {
  if (delivery === undefined) return '';
  return [
    delivery.unseen > 0 ? `  ${delivery.unseen} never seen in new/` : '',
    delivery.late > 0 ? `  ${delivery.late} seen only by the closing readdir` : '',
  ].join('');
}

interface Pooled {
  messages: number;
  seconds: number;
  drain: number;
  /** CPU time of the server and of the load generator over the rows (µs). */
  serverMicros: number;
  clientMicros: number;
  latencies: number[];
  deliveries: number[] | undefined;
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  // --size 25MB [--clients 32]: one large message per client at once, memory and MB/s instead.
  if (args.includes('--size')) {
    await runLargeMessages(args);
    return;
  }
  if (args.includes('--workers')) {
    await runWorkerRows(args);
    return;
  }
  const seconds = Number(flag(args, '--seconds') ?? 4) || 4;
  if (args.includes('--ecdsa')) process.env.BENCH_KEY_TYPE = 'ecdsa-p256'; // the servers inherit it
  const postfix = await postfixInstalled();
  const onlyFlag = flag(args, '--only');
  const only = args.includes('--only') ? (onlyFlag ?? '').split(',') : undefined;
  for (const kind of only ?? []) {
    if (!KINDS.includes(kind as ServerKind))
      throw new Error(`--only ${kind}: not one of ${KINDS.join('|')}`);
  }
  if (only?.includes('postfix') === true && !postfix) {
    throw new Error('--only postfix: postfix is not installed (apt-get install -y postfix)');
  }
  const kinds = KINDS.filter((kind) =>
    only === undefined ? kind !== 'postfix' || postfix : only.includes(kind),
  );
  const rounds = Number(flag(args, '--rounds') ?? 1) || 1;
  const latency = args.includes('--latency');
  const latencyRate = Number(flag(args, '--latency-rate') ?? 100) || 100;
  const rowsWanted = !latency || args.includes('--mode') || args.includes('--clients');
  const modeFlag = flag(args, '--mode');
  const modes: Mode[] = !rowsWanted
    ? []
    : modeFlag !== undefined
      ? [modeFlag as Mode]
      : ['new', 'reuse'];
  const clientsFlag = flag(args, '--clients');
  const counts = clientsFlag !== undefined ? clientsFlag.split(',').map(Number) : [1, 8, 32];
  const watching = !args.includes('--no-watch');
  const warmup = Number(flag(args, '--warmup') ?? WARMUP_MESSAGES);
  console.log(
    `4 KB messages, client certificate over STARTTLS, ${process.env.BENCH_KEY_TYPE ?? 'rsa-2048'} keys, ${SHARED_CONTEXTS ? 'shared' : 'per-connection'} client TLS contexts, ${seconds} s per row (Node ${process.version})`,
  );
  if (only === undefined && !postfix) console.log('postfix is not installed: no Postfix rows');
  // The bench's own processes soon count in the load average: whether the machine was idle is
  // read before it starts them.
  const loadBefore = loadavg()[0] ?? 0;
  console.log(`load average before: ${loadAverage()}`);
  // Every round's measurements of a row, pooled: rate = messages / seconds over all rounds.
  const pooled = new Map<string, Pooled>();
  // All servers run side by side and take turns row by row, each starting idle (what it accepted
  // is delivered), so that load from elsewhere on a shared machine falls on all of them alike.
  const servers = new Map<RowKind, Server>();
  let watch: DeliveryWatch | undefined;
  let watchedMessages = 0;
  try {
    if (modes.includes('new')) {
      const handshakes = await startHandshakeServer();
      servers.set('handshake', handshakes);
      await load(handshakes, 'handshake', 4, 1);
    }
    for (const kind of kinds) {
      const server = await startServer(kind, seconds * kinds.length * rounds);
      servers.set(kind, server);
      await load(server, 'reuse', 4, 1); // warm-up: JIT, session caches, Postfix's processes
      // The engine's code run once per connection or message reaches V8's optimizing tier only
      // after several hundred of them: without this, a short row measures the interpreter.
      // Postfix, compiled ahead, needs no more than the above.
      if (kind !== 'postfix' && modes.some((mode) => mode !== 'reuse'))
        await warmUp(server, warmup);
      await server.idle();
    }
    // After the warm-up, which made the Maildirs.
    const maildirs = [...servers.values()].flatMap((server) => server.maildir ?? []);
    watch = await startDeliveryWatch(watching ? maildirs : []);
    if (modes.length > 0) {
      console.log(
        'server    mode   clients   msgs/s   p50 ms   p99 ms  new/ p50  new/ p99   server CPU µs/msg (of which system)   drain   client CPU µs/msg',
      );
    }
    for (let round = 1; round <= rounds && modes.length > 0; round += 1) {
      if (rounds > 1) console.log(`round ${round} of ${rounds}`);
      for (const mode of modes) {
        for (const clients of counts) {
          for (const [kind, server] of servers) {
            if (kind === 'handshake' && mode !== 'new') continue; // its row goes with the new ones
            const rowMode: Mode = kind === 'handshake' ? 'handshake' : mode;
            const loadStarted = monotonicMs();
            const run = await load(server, rowMode, clients, seconds);
            if (process.env.BENCH_PROFILE !== undefined)
              console.log(
                `profile window: ${kind} ${rowMode} ${clients}: ${loadStarted.toFixed(0)}-${monotonicMs().toFixed(0)}`,
              );
            const drainStarted = performance.now();
            const backlog = await server.idle();
            const drainSeconds = (performance.now() - drainStarted) / 1000;
            const delivery = await delivered(watch, server, run);
            if (delivery !== undefined) watchedMessages += run.accepted.length;
            const sorted = [...run.latencies].sort((a, b) => a - b);
            const key = `${kind} ${mode} ${clients}`;
            const sum = pooled.get(key) ?? {
              messages: 0,
              seconds: 0,
              drain: 0,
              serverMicros: 0,
              clientMicros: 0,
              latencies: [],
              deliveries: delivery === undefined ? undefined : [],
            };
            sum.messages += run.messages;
            sum.seconds += run.seconds;
            sum.drain += drainSeconds;
            sum.serverMicros += run.cpuMicros;
            sum.clientMicros += run.clientMicros;
            sum.latencies.push(...run.latencies);
            sum.deliveries?.push(...(delivery?.sorted ?? []));
            pooled.set(key, sum);
            console.log(
              [
                kind.padEnd(9),
                rowMode.padEnd(6),
                String(clients).padStart(7),
                (run.messages / run.seconds).toFixed(0).padStart(8),
                percentile(sorted, 50).toFixed(1).padStart(8),
                percentile(sorted, 99).toFixed(1).padStart(8),
                ms(percentile(delivery?.sorted ?? [], 50)).padStart(9),
                ms(percentile(delivery?.sorted ?? [], 99)).padStart(9),
                (run.cpuMicros / Math.max(1, run.messages)).toFixed(0).padStart(19),
                `(system ${(run.systemMicros / Math.max(1, run.messages)).toFixed(0)})`.padEnd(14),
                `${drainSeconds.toFixed(2)} s`.padStart(8),
                `${(run.clientMicros / Math.max(1, run.messages)).toFixed(0)}`.padStart(10),
                backlog === 0
                  ? ''
                  : `  ${backlog} still undelivered after ${DRAIN_TIMEOUT_MS / 1000} s`,
                deliveryNote(delivery),
              ]
                .join(' ')
                .trimEnd(),
            );
          }
        }
      }
    }
    if (latency) {
      const mailServers = [...servers].filter(([kind]) => kind !== 'handshake');
      watchedMessages += await latencyRows(mailServers, watch, latencyRate, loadBefore);
    }
    const { cpuMicros } = await watch.collect(0);
    if (watchedMessages > 0)
      console.log(
        `delivery watch: ${(cpuMicros / watchedMessages).toFixed(0)} µs of CPU per message (its own process)`,
      );
  } finally {
    await watch?.stop();
    for (const server of servers.values()) await server.stop();
  }
  console.log(`load average after: ${loadAverage()}`);
  summary(pooled, kinds, modes, counts, rounds);
}

/** The --latency rows: 1,000 messages per server at a modest pace; returns how many were watched. */
async function latencyRows(
  servers: [RowKind, Server][],
  watch: DeliveryWatch,
  rate: number,
  idleBefore: number,
): Promise<number> {
  console.log(
    `\n250 → new/: ${LATENCY_MESSAGES} messages per server, ${LATENCY_CLIENTS} clients on kept connections, ${rate} msgs/s in all`,
  );
  console.log(
    'server    msgs/s  250 p50/p99 ms   new/ p50 ms   p99 ms   max ms   over 50 ms   load average',
  );
  let watched = 0;
  for (const [kind, server] of servers) {
    const run = await load(server, 'reuse', LATENCY_CLIENTS, 0, {
      messages: LATENCY_MESSAGES,
      rate,
    });
    const backlog = await server.idle();
    const delivery = await delivered(watch, server, run);
    if (delivery !== undefined) watched += run.accepted.length;
    const sorted = [...run.latencies].sort((a, b) => a - b);
    const deliveries = delivery?.sorted ?? [];
    const over = deliveries.filter((value) => value > LATENCY_GOAL_MS).length;
    console.log(
      [
        kind.padEnd(9),
        (run.messages / run.seconds).toFixed(0).padStart(6),
        `${ms(percentile(sorted, 50))}/${ms(percentile(sorted, 99))}`.padStart(15),
        ms(percentile(deliveries, 50)).padStart(13),
        ms(percentile(deliveries, 99)).padStart(8),
        ms(deliveries.at(-1) ?? NaN).padStart(8),
        (delivery === undefined ? '-' : String(over + delivery.unseen)).padStart(12),
        `  ${loadAverage()}`,
        backlog === 0 ? '' : `  ${backlog} still undelivered after ${DRAIN_TIMEOUT_MS / 1000} s`,
        deliveryNote(delivery),
      ]
        .join(' ')
        .trimEnd(),
    );
    if (kind === 'engine' && delivery !== undefined) {
      const met = over === 0 && delivery.unseen === 0;
      console.log(
        `engine: every message in new/ within ${LATENCY_GOAL_MS} ms of its 250: ${met ? 'met' : `not met (${over + delivery.unseen} of ${run.accepted.length} later or never)`}${idleBefore < 1 ? '' : ` (not an idle machine: a load average of ${idleBefore.toFixed(2)} before the bench)`}`,
      );
    }
  }
  return watched;
}

/** A row of the summary, over every round: rates, 250 latency and 250 → new/ latency (ms). */
interface SummaryRow {
  rate: number;
  sustained: number;
  p50: number;
  p99: number;
  new50: number;
  new99: number;
  /** CPU per message (µs): the server's, the load generator's. */
  serverCpu: number;
  clientCpu: number;
}

/** The tables after the rows: engine against each other server, and shares of the handshake limit. */
function summary(
  pooled: Map<string, Pooled>,
  kinds: ServerKind[],
  modes: Mode[],
  counts: number[],
  rounds: number,
): void {
  const rows = new Map<string, SummaryRow>();
  for (const [key, sum] of pooled) {
    const sorted = [...sum.latencies].sort((a, b) => a - b);
    const deliveries = [...(sum.deliveries ?? [])].sort((a, b) => a - b);
    rows.set(key, {
      rate: sum.messages / sum.seconds,
      sustained: sum.messages / (sum.seconds + sum.drain),
      p50: percentile(sorted, 50),
      p99: percentile(sorted, 99),
      new50: percentile(deliveries, 50),
      new99: percentile(deliveries, 99),
      serverCpu: sum.serverMicros / Math.max(1, sum.messages),
      clientCpu: sum.clientMicros / Math.max(1, sum.messages),
    });
  }
  const pooledNote = rounds > 1 ? ` (${rounds} rounds pooled)` : '';
  for (const other of ['baseline', 'postfix'] as const) {
    if (!kinds.includes('engine') || !kinds.includes(other) || modes.length === 0) continue;
    console.log(`\nengine / ${other}${pooledNote}`);
    console.log(
      [
        'mode'.padEnd(6),
        'clients'.padStart(7),
        ' engine msgs/s p50/p99 ms, new/'.padEnd(37),
        ` ${other} msgs/s p50/p99 ms, new/`.padEnd(37),
        `engine/${other}${other === 'postfix' ? ' (goal)' : ''}`.padEnd(30),
        'until delivered: msgs/s and ratio',
      ].join(' '),
    );
    const cell = (row: SummaryRow | undefined) =>
      row === undefined
        ? '-'.padEnd(37)
        : `${row.rate.toFixed(0).padStart(8)} ${`${row.p50.toFixed(1)}/${row.p99.toFixed(1)}, ${ms(row.new50)}/${ms(row.new99)}`.padEnd(28)}`;
    for (const mode of modes) {
      for (const clients of counts) {
        const engine = rows.get(`engine ${mode} ${clients}`);
        const them = rows.get(`${other} ${mode} ${clients}`);
        const ratio = (engine?.rate ?? NaN) / (them?.rate ?? NaN);
        const wanted = GOAL[mode];
        const goal =
          other === 'postfix' && wanted !== undefined
            ? ` (${wanted}x: ${ratio >= wanted ? 'met' : 'not met'})`
            : '';
        // Counting the time after the row until everything accepted was in the Maildir too.
        const sustained = `${(engine?.sustained ?? NaN).toFixed(0)} vs ${(them?.sustained ?? NaN).toFixed(0)}: ${((engine?.sustained ?? NaN) / (them?.sustained ?? NaN)).toFixed(2)}`;
        console.log(
          `${mode.padEnd(6)} ${String(clients).padStart(7)} ${cell(engine)} ${cell(them)} ${`${ratio.toFixed(2)}${goal}`.padEnd(30)} ${sustained}`,
        );
      }
    }
  }
  cpuCeilings(rows, kinds, modes, counts, pooledNote);
  if (!modes.includes('new')) return;
  console.log(
    `\nnew connections a second as a share of the bare mutual-TLS handshake (TLS 1.3, client certificate, a new connection each, one Node process)${pooledNote}`,
  );
  console.log(['clients', 'handshakes/s', ...kinds.map((kind) => kind.padStart(9))].join(' '));
  for (const clients of counts) {
    const limit = rows.get(`handshake new ${clients}`)?.rate ?? NaN;
    const shares = kinds.map((kind) => {
      const rate = rows.get(`${kind} new ${clients}`)?.rate ?? NaN;
      return `${((100 * rate) / limit).toFixed(0)}%`.padStart(9);
    });
    console.log([String(clients).padStart(7), limit.toFixed(0).padStart(12), ...shares].join(' '));
  }
}

/**
 * CPU per message, and the rate it allows when the bench has the machine to itself: the load
 * generator runs on the same cores as the servers, so once they are all busy (32 clients with
 * new connections) a server's rate is cores / (its CPU + the generator's CPU) per message, and a
 * ratio between two servers is bounded by the ratio of those sums, whatever each server saves
 * on its own. Read beside the rates: CPU time counts less of the noise of a shared machine.
 */
function cpuCeilings(
  rows: Map<string, SummaryRow>,
  kinds: ServerKind[],
  modes: Mode[],
  counts: number[],
  pooledNote: string,
): void {
  const cores = availableParallelism();
  const shown: RowKind[] = [...kinds, ...(modes.includes('new') ? (['handshake'] as const) : [])];
  if (modes.length === 0) return;
  console.log(
    `\nCPU µs per message, server + load generator, and the msgs/s that allows on ${cores} cores (${cores} × 10^6 / sum)${pooledNote}`,
  );
  console.log(
    [
      'mode'.padEnd(6),
      'clients'.padStart(7),
      ...shown.map((kind) => `${kind} µs, ceiling`.padStart(24)),
      ...(kinds.includes('engine') && kinds.includes('postfix')
        ? ['  engine/postfix ceilings']
        : []),
    ].join(' '),
  );
  for (const mode of modes) {
    for (const clients of counts) {
      const ceiling = (kind: RowKind) => {
        const row = rows.get(`${kind} ${kind === 'handshake' ? 'new' : mode} ${clients}`);
        return row === undefined
          ? undefined
          : { row, rate: (cores * 1e6) / (row.serverCpu + row.clientCpu) };
      };
      const cells = shown.map((kind) => {
        if (kind === 'handshake' && mode !== 'new') return '-'.padStart(24);
        const found = ceiling(kind);
        return found === undefined
          ? '-'.padStart(24)
          : `${found.row.serverCpu.toFixed(0)} + ${found.row.clientCpu.toFixed(0)}, ${found.rate.toFixed(0)}`.padStart(
              24,
            );
      });
      const engine = ceiling('engine');
      const postfix = ceiling('postfix');
      const ratio =
        engine === undefined || postfix === undefined
          ? ''
          : `  ${(engine.rate / postfix.rate).toFixed(2)} (servers alone ${(postfix.row.serverCpu / engine.row.serverCpu).toFixed(2)})`;
      console.log([mode.padEnd(6), String(clients).padStart(7), ...cells].join(' ') + ratio);
    }
  }
}

await main();
