// The receive side's benchmark: 4 KB messages with a client certificate over STARTTLS to a real
// Engine, a plain smtp-server with the same TLS (the baseline) and, when it is installed, a private
// Postfix with smtpd_tls_req_ccert = yes (smtp-servers.ts), all side by side, taking turns row by
// row; the clients are in smtp-load.ts.
//
// node --import tsx bench/smtp.ts [--seconds 4] [--rounds 1] [--only engine|baseline|postfix[,...]]
//   [--mode new|reuse|resume] [--clients 1,8,32] [--client-context per-connection|shared] [--ecdsa]
//   [--generators K] [--postfix-set name=value]...
// --generators K splits the clients over K processes (one by default, which tops out near one
// core's worth of TLS handshakes: about 420 new connections a second here).
// BENCH_PROFILE=<dir> writes the Node servers' CPU profiles there. After each row the servers get
// to deliver what they accepted into their Maildirs: "drain" is how long that took, and the last
// column of the summary counts it in (messages over load time plus drain time).
import { loadavg } from 'node:os';
import { postfixInstalled } from '../test/support/postfix.js';
import { runLargeMessages } from './smtp-large.js';
import { load, SHARED_CONTEXTS } from './smtp-load.js';
import {
  DRAIN_TIMEOUT_MS,
  KINDS,
  startServer,
  type Mode,
  type Server,
  type ServerKind,
} from './smtp-servers.js';

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

/** The goals: engine throughput over Postfix's, per connection mode. */
const GOAL: Partial<Record<Mode, number>> = { new: 1.5, reuse: 1.2 };

function loadAverage(): string {
  return loadavg()
    .map((value) => value.toFixed(2))
    .join(' ');
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  // --size 25MB [--clients 32]: one large message per client at once, memory and MB/s instead.
  if (args.includes('--size')) {
    await runLargeMessages(args);
    return;
  }
  const seconds = Number(args[args.indexOf('--seconds') + 1] ?? 4) || 4;
  if (args.includes('--ecdsa')) process.env.BENCH_KEY_TYPE = 'ecdsa-p256'; // the servers inherit it
  const onlyIndex = args.indexOf('--only');
  const postfix = await postfixInstalled();
  const only = onlyIndex >= 0 ? (args[onlyIndex + 1] ?? '').split(',') : undefined;
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
  const rounds = Number(args[args.indexOf('--rounds') + 1] ?? 1) || 1;
  const modeIndex = args.indexOf('--mode');
  const modes: Mode[] = modeIndex >= 0 ? [args[modeIndex + 1] as Mode] : ['new', 'reuse'];
  const clientsIndex = args.indexOf('--clients');
  const counts =
    clientsIndex >= 0 ? (args[clientsIndex + 1] ?? '').split(',').map(Number) : [1, 8, 32];
  console.log(
    `4 KB messages, client certificate over STARTTLS, ${process.env.BENCH_KEY_TYPE ?? 'rsa-2048'} keys, ${SHARED_CONTEXTS ? 'shared' : 'per-connection'} client TLS contexts, ${seconds} s per row (Node ${process.version})`,
  );
  if (only === undefined && !postfix) console.log('postfix is not installed: no Postfix rows');
  console.log(`load average before: ${loadAverage()}`);
  console.log(
    'server    mode   clients   msgs/s   p50 ms   p99 ms   server CPU µs/msg (of which system)   drain   client CPU µs/msg',
  );
  // Every round's measurements of a row, pooled: rate = messages / seconds over all rounds.
  const pooled = new Map<
    string,
    { messages: number; seconds: number; drain: number; latencies: number[] }
  >();
  // All servers run side by side and take turns row by row, each starting idle (what it accepted
  // is delivered), so that load from elsewhere on a shared machine falls on all of them alike.
  const servers = new Map<ServerKind, Server>();
  try {
    for (const kind of kinds) {
      const server = await startServer(kind, seconds * kinds.length * rounds);
      servers.set(kind, server);
      await load(server, 'reuse', 4, 1); // warm-up: JIT, session caches, Postfix's processes
      await server.idle();
    }
    for (let round = 1; round <= rounds; round += 1) {
      if (rounds > 1) console.log(`round ${round} of ${rounds}`);
      for (const mode of modes) {
        for (const clients of counts) {
          for (const [kind, server] of servers) {
            const run = await load(server, mode, clients, seconds);
            const drainStarted = performance.now();
            const backlog = await server.idle();
            const drainSeconds = (performance.now() - drainStarted) / 1000;
            const sorted = [...run.latencies].sort((a, b) => a - b);
            const row = {
              rate: run.messages / run.seconds,
              p50: percentile(sorted, 50),
              p99: percentile(sorted, 99),
            };
            const key = `${kind} ${mode} ${clients}`;
            const sum = pooled.get(key) ?? { messages: 0, seconds: 0, drain: 0, latencies: [] };
            sum.messages += run.messages;
            sum.seconds += run.seconds;
            sum.drain += drainSeconds;
            sum.latencies.push(...run.latencies);
            pooled.set(key, sum);
            console.log(
              [
                kind.padEnd(9),
                mode.padEnd(6),
                String(clients).padStart(7),
                row.rate.toFixed(0).padStart(8),
                row.p50.toFixed(1).padStart(8),
                row.p99.toFixed(1).padStart(8),
                (run.cpuMicros / Math.max(1, run.messages)).toFixed(0).padStart(19),
                `(system ${(run.systemMicros / Math.max(1, run.messages)).toFixed(0)})`.padEnd(14),
                `${drainSeconds.toFixed(2)} s`.padStart(8),
                `${(run.clientMicros / Math.max(1, run.messages)).toFixed(0)}`.padStart(10),
                backlog === 0
                  ? ''
                  : `  ${backlog} still undelivered after ${DRAIN_TIMEOUT_MS / 1000} s`,
              ]
                .join(' ')
                .trimEnd(),
            );
          }
        }
      }
    }
  } finally {
    for (const server of servers.values()) await server.stop();
  }
  console.log(`load average after: ${loadAverage()}`);
  const rows = new Map<string, { rate: number; sustained: number; p50: number; p99: number }>();
  for (const [key, sum] of pooled) {
    const sorted = [...sum.latencies].sort((a, b) => a - b);
    rows.set(key, {
      rate: sum.messages / sum.seconds,
      sustained: sum.messages / (sum.seconds + sum.drain),
      p50: percentile(sorted, 50),
      p99: percentile(sorted, 99),
    });
  }
  for (const other of ['baseline', 'postfix'] as const) {
    if (!kinds.includes('engine') || !kinds.includes(other)) continue;
    console.log(`\nengine / ${other}${rounds > 1 ? ` (${rounds} rounds pooled)` : ''}`);
    console.log(
      [
        'mode'.padEnd(6),
        'clients'.padStart(7),
        ' engine msgs/s p50/p99 ms'.padEnd(27),
        ` ${other} msgs/s p50/p99 ms`.padEnd(27),
        `engine/${other}${other === 'postfix' ? ' (goal)' : ''}`.padEnd(30),
        'until delivered: msgs/s and ratio',
      ].join(' '),
    );
    const cell = (row: { rate: number; p50: number; p99: number } | undefined) =>
      row === undefined
        ? '-'.padEnd(27)
        : `${row.rate.toFixed(0).padStart(8)} ${`${row.p50.toFixed(1)}/${row.p99.toFixed(1)}`.padEnd(18)}`;
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
}

await main();
