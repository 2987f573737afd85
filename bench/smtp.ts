// Load generator for the receive side: 4 KB messages with a client certificate over STARTTLS to a
// real Engine, a plain smtp-server with the same TLS (the baseline) and, when it is installed, a
// private Postfix with smtpd_tls_req_ccert = yes; all side by side, taking turns row by row.
//
// node --import tsx bench/smtp.ts [--seconds 4] [--rounds 1] [--only engine|baseline|postfix[,...]]
//   [--mode new|reuse] [--clients 1,8,32] [--client-context per-connection|shared] [--ecdsa]
//   [--generators K] [--postfix-set name=value]...
// --generators K splits the clients over K processes (one by default, which tops out near one
// core's worth of TLS handshakes: about 420 new connections a second here).
// BENCH_PROFILE=<dir> writes the Node servers' CPU profiles there. After each row the servers get
// to deliver what they accepted into their Maildirs: "drain" is how long that took, and the last
// column of the summary counts it in (messages over load time plus drain time).
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { createSecureContext, type SecureContext } from 'node:tls';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import { SMTPServer } from 'smtp-server';
import { Engine } from '../src/engine/engine.js';
import type { EngineLog } from '../src/engine/log.js';
import { greetWithoutDelay } from '../src/engine/receive/limits.js';
import { lab } from '../test/support/lab.js';
import { postfixInstalled, startPostfix } from '../test/support/postfix.js';
import { certificate, runtimeConfig, trustAnchor } from '../test/support/runtime-config.js';
import {
  createCertificateAuthority,
  issueCertificate,
  type IssuedCertificate,
} from '../src/pki/lab.js';

type ServerKind = 'engine' | 'baseline' | 'postfix';
const KINDS: readonly ServerKind[] = ['baseline', 'engine', 'postfix'];
type Mode = 'new' | 'reuse';
interface Identity {
  certPem: string;
  keyPem: string;
}
interface ServerRequest {
  kind: 'cpu' | 'idle';
}
interface ServerReply {
  port?: number;
  /** The lab of the server process: the client's certificate and the CA of the server's. */
  client?: Identity;
  serverCa?: string;
  cpu?: { user: number; system: number }; // µs so far
  /** Mail accepted and not yet delivered into the Maildir, after waiting for it to drain. */
  backlog?: number;
}

/** How long a server may take to deliver what it accepted before the next row starts. */
const DRAIN_TIMEOUT_MS = 60_000;

/** Resolves with what is still pending once pending() is 0, or after the bound. */
async function drained(pending: () => Promise<number> | number): Promise<number> {
  const deadline = Date.now() + DRAIN_TIMEOUT_MS;
  for (;;) {
    const left = await pending();
    if (left === 0 || Date.now() > deadline) return left;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const MESSAGE = (() => {
  const head = 'From: alice@adatum.com\r\nTo: bob@treyresearch.net\r\nSubject: bench\r\n\r\n';
  const line = `${'x'.repeat(76)}\r\n`;
  return head + line.repeat(Math.ceil((4096 - head.length) / line.length));
})();

// ---------------------------------------------------------------------------------------------
// Server side (child process)

const silent: EngineLog = { log: () => undefined };

/** The certificates of a run: the test lab's RSA ones, or ECDSA P-256 made here (--ecdsa). */
interface BenchPki {
  adatumRoot: IssuedCertificate;
  adatumMail: IssuedCertificate;
  treyRoot: IssuedCertificate;
  treyMail: IssuedCertificate;
}

let pkiCache: BenchPki | undefined;
function pki(): BenchPki {
  if (pkiCache !== undefined) return pkiCache;
  if (process.env.BENCH_KEY_TYPE !== 'ecdsa-p256') return (pkiCache = lab());
  const root = (commonName: string) =>
    createCertificateAuthority({ commonName, keyType: 'ecdsa-p256', pathLength: 0 });
  const adatumRoot = root('Adatum EC Root');
  const treyRoot = root('Trey EC Root');
  const leaf = (authority: typeof adatumRoot, host: string, domain: string) =>
    issueCertificate(authority, {
      commonName: host,
      dnsNames: [host, domain],
      keyType: 'ecdsa-p256',
    });
  pkiCache = {
    adatumRoot,
    treyRoot,
    adatumMail: leaf(adatumRoot, 'mail.adatum.com', 'adatum.com'),
    treyMail: leaf(treyRoot, 'mail.treyresearch.net', 'treyresearch.net'),
  };
  return pkiCache;
}

interface NodeServerHandle {
  port: number;
  /** Messages accepted and not yet delivered (the baseline keeps none). */
  pending: () => number;
  close: () => Promise<void>;
}

async function serveEngine(): Promise<NodeServerHandle> {
  const stateDir = await mkdtemp(join(tmpdir(), 'domsec-bench-'));
  const engine = await Engine.open({ stateDir, log: silent });
  const result = await engine.apply(
    runtimeConfig({
      receiveConnector: { remoteIPRanges: ['0.0.0.0/0'], bindings: ['127.0.0.1:0'] },
      certificates: [certificate('mail', pki().treyMail)],
      organization: { certificate: 'mail' },
      trustAnchors: [trustAnchor('adatum-root', pki().adatumRoot)],
    }),
  );
  const port = engine.state().listeners[0]?.port;
  if (port === undefined || port === null)
    throw new Error(`no listener: ${JSON.stringify(result)}`);
  return {
    port,
    pending: () => engine.queuedMessages().length,
    close: async () => {
      await engine.close();
      await rm(stateDir, { recursive: true, force: true });
    },
  };
}

async function serveBaseline(): Promise<NodeServerHandle> {
  const { treyMail, adatumRoot } = pki();
  const server = new SMTPServer({
    secure: false,
    key: treyMail.keyPem,
    cert: treyMail.certPem,
    ca: [adatumRoot.certPem],
    requestCert: true,
    rejectUnauthorized: false,
    minVersion: 'TLSv1.2',
    disabledCommands: ['AUTH'],
    disableReverseLookup: true,
    logger: false,
    onData(stream, _session, callback) {
      stream.on('data', () => undefined);
      stream.on('end', () => callback(null, 'Ok'));
    },
  });
  greetWithoutDelay(server); // as the engine does, so the ratio shows policy and queue only
  server.server.on('connection', (socket: import('node:net').Socket) => socket.setNoDelay(true));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.server.address();
  if (address === null || typeof address === 'string') throw new Error('not listening');
  return {
    port: address.port,
    pending: () => 0,
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

async function serve(kind: 'engine' | 'baseline'): Promise<void> {
  const server = kind === 'engine' ? await serveEngine() : await serveBaseline();
  const send = (reply: ServerReply) => process.send?.(reply);
  process.on('message', (request: ServerRequest) => {
    if (request.kind === 'cpu') {
      const usage = process.cpuUsage();
      send({ cpu: { user: usage.user, system: usage.system } });
    } else {
      void drained(server.pending).then((backlog) => send({ backlog }));
    }
  });
  process.on('disconnect', () => {
    void server.close().then(() => process.exit(0));
  });
  const { adatumMail, treyRoot } = pki();
  send({ port: server.port, client: adatumMail, serverCa: treyRoot.certPem });
}

// ---------------------------------------------------------------------------------------------
// Client side (this process)

interface Server {
  readonly port: number;
  /** The client certificate to present, and the CA of the server's certificate. */
  readonly client: Identity;
  readonly serverCa: string;
  /** CPU time of the server so far (µs): its process, or every process of a Postfix instance. */
  cpu(): Promise<{ user: number; system: number }>;
  /** Waits until what it accepted is in its Maildir (bounded); resolves with what is left. */
  idle(): Promise<number>;
  stop(): Promise<void>;
}

/** The engine or the baseline, in a child process (this one runs the clients). */
class NodeServer implements Server {
  private constructor(
    private readonly child: ChildProcess,
    readonly port: number,
    readonly client: Identity,
    readonly serverCa: string,
  ) {}

  static async start(kind: 'engine' | 'baseline'): Promise<NodeServer> {
    const child = fork(fileURLToPath(import.meta.url), ['--serve', kind], {
      execArgv: [
        '--import',
        'tsx',
        ...(process.env.BENCH_PROFILE === undefined
          ? []
          : ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROFILE}`]),
      ],
    });
    const ready = await new Promise<ServerReply>((resolve, reject) => {
      child.once('message', resolve);
      child.once('exit', (code) => reject(new Error(`server exited with ${code}`)));
    });
    const { port, client, serverCa } = ready;
    if (port === undefined || client === undefined || serverCa === undefined) {
      throw new Error('the server did not say where it listens');
    }
    return new NodeServer(child, port, client, serverCa);
  }

  cpu(): Promise<{ user: number; system: number }> {
    return new Promise((resolve) => {
      this.child.once('message', (reply: ServerReply) =>
        resolve(reply.cpu ?? { user: 0, system: 0 }),
      );
      this.child.send({ kind: 'cpu' } satisfies ServerRequest);
    });
  }

  idle(): Promise<number> {
    return new Promise((resolve) => {
      this.child.once('message', (reply: ServerReply) => resolve(reply.backlog ?? 0));
      this.child.send({ kind: 'idle' } satisfies ServerRequest);
    });
  }

  async stop(): Promise<void> {
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.child.disconnect();
    await exited;
  }
}

/**
 * Postfix as treyresearch.net with the same certificates: STARTTLS mandatory, a client certificate
 * required and verified (smtpd_tls_req_ccert = yes). 250 comes after cleanup(8) fsync()s the queue
 * file, as always in Postfix; virtual(8) then delivers into a Maildir (fsync before rename), as
 * the engine delivers into its Maildir after its 250. Everything else is Postfix's default.
 */
async function startPostfixServer(lifetimeSeconds: number): Promise<Server> {
  const { treyMail, adatumRoot, adatumMail, treyRoot } = pki();
  const postfix = await startPostfix({
    hostname: 'mail.treyresearch.net',
    mailboxDomains: ['treyresearch.net'],
    certificate: treyMail,
    clientCa: adatumRoot.certPem,
    listeners: { smtpd: { tls: 'mutual' } },
    // Postfix's default (no TLS lines in the log, no TLS details in Received).
    settings: {
      smtpd_tls_loglevel: '0',
      smtpd_tls_received_header: 'no',
      ...postfixSettings(),
    },
    lifetimeSeconds,
  });
  const port = postfix.ports.smtpd;
  if (port === undefined) throw new Error('postfix did not say where it listens');
  return {
    port,
    client: adatumMail,
    serverCa: treyRoot.certPem,
    cpu: () => postfix.cpu(),
    idle: () => drained(async () => (await postfix.queue()).length),
    stop: async () => {
      // What became of the accepted mail: delivered by virtual(8), or still in Postfix's queue.
      const delivered = await readdir(join(postfix.maildir, 'new')).catch(() => []);
      const queued = await postfix.queue();
      console.log(
        `postfix: ${delivered.length} messages delivered to its Maildir, ${queued.length} still queued`,
      );
      await postfix.stop();
    },
  };
}

/** --postfix-set name=value (repeatable): main.cf settings on top, to try Postfix tunings. */
function postfixSettings(): Record<string, string> {
  const settings: Record<string, string> = {};
  const args = process.argv;
  for (let index = args.indexOf('--postfix-set'); index >= 0;) {
    const [name, ...value] = (args[index + 1] ?? '').split('=');
    if (name === undefined || name === '' || value.length === 0) {
      throw new Error('--postfix-set wants name=value');
    }
    settings[name] = value.join('=');
    index = args.indexOf('--postfix-set', index + 1);
  }
  return settings;
}

/** rowSeconds bounds how long a Postfix master may outlive this process if it dies. */
function startServer(kind: ServerKind, rowSeconds: number): Promise<Server> {
  return kind === 'postfix' ? startPostfixServer(12 * rowSeconds + 900) : NodeServer.start(kind);
}

/**
 * --client-context shared: one TLS context per identity, as an MTA keeps its SSL_CTX. The default
 * makes one per connection (the key and certificates parsed again each time, about 0.9 ms of the
 * load generator's CPU per new connection): the load that reproduces the Postfix figures the
 * goals were set against. With shared contexts the generator leaves the servers more CPU.
 */
const SHARED_CONTEXTS = process.argv.includes('--client-context')
  ? process.argv[process.argv.indexOf('--client-context') + 1] === 'shared'
  : false;
const contexts = new Map<string, SecureContext>();
function clientContext(identity: Identity, ca: string): SecureContext {
  const key = `${identity.certPem}\n${ca}`;
  let context = contexts.get(key);
  if (context === undefined) {
    context = createSecureContext({ ca: [ca], key: identity.keyPem, cert: identity.certPem });
    contexts.set(key, context);
  }
  return context;
}

function connection(port: number, identity: Identity, ca: string): SMTPConnection {
  return new SMTPConnection({
    host: '127.0.0.1',
    port,
    name: 'mail.adatum.com',
    servername: 'mail.treyresearch.net',
    requireTLS: true,
    connectionTimeout: 10_000,
    greetingTimeout: 10_000,
    socketTimeout: 30_000,
    tls: SHARED_CONTEXTS
      ? { secureContext: clientContext(identity, ca) }
      : { ca: [ca], key: identity.keyPem, cert: identity.certPem },
  });
}

const call = <T>(run: (done: (error: Error | null | undefined, value?: T) => void) => void) =>
  new Promise<T | undefined>((resolve, reject) =>
    run((error, value) => (error ? reject(error) : resolve(value))),
  );

async function open(port: number, identity: Identity, ca: string): Promise<SMTPConnection> {
  const client = connection(port, identity, ca);
  // A failed handshake is only reported as an 'error' event, never to connect()'s callback.
  const failed = new Promise<never>((_, reject) => client.on('error', reject));
  failed.catch(() => undefined);
  await Promise.race([failed, call<undefined>((done) => client.connect(done))]);
  return client;
}

async function sendOne(client: SMTPConnection): Promise<void> {
  const envelope = { from: 'alice@adatum.com', to: ['bob@treyresearch.net'] };
  await call((done) => client.send(envelope, MESSAGE, done));
}

interface Run {
  messages: number;
  seconds: number;
  latencies: number[];
  cpuMicros: number;
  systemMicros: number;
  /** CPU time of this process (the load generator) during the row, µs. */
  clientMicros: number;
}

/** What one generator does: `clients` clients sending until the deadline; the latencies (ms). */
async function generate(
  target: { port: number; client: Identity; serverCa: string },
  mode: Mode,
  clients: number,
  deadline: number,
): Promise<number[]> {
  const latencies: number[] = [];
  const worker = async () => {
    let reused: SMTPConnection | undefined;
    while (Date.now() < deadline) {
      const begin = performance.now();
      if (mode === 'new') {
        const client = await open(target.port, target.client, target.serverCa);
        await sendOne(client);
        client.quit();
      } else {
        reused ??= await open(target.port, target.client, target.serverCa);
        await sendOne(reused);
      }
      latencies.push(performance.now() - begin);
    }
    reused?.quit();
  };
  await Promise.all(Array.from({ length: clients }, worker));
  return latencies;
}

interface GeneratorRequest {
  target: { port: number; client: Identity; serverCa: string };
  mode: Mode;
  clients: number;
  deadline: number;
}
interface GeneratorReply {
  latencies: number[];
  cpuMicros: number;
}

/** --generators K: the clients split over K processes, so one core does not cap the load. */
const GENERATORS = process.argv.includes('--generators')
  ? Math.max(1, Number(process.argv[process.argv.indexOf('--generators') + 1]) || 1)
  : 1;

/** Runs one share of the clients in a child process (same file, --generate). */
function generateElsewhere(request: GeneratorRequest): Promise<GeneratorReply> {
  const child = fork(fileURLToPath(import.meta.url), ['--generate', ...process.argv.slice(2)], {
    execArgv: ['--import', 'tsx'],
  });
  return new Promise((resolve, reject) => {
    child.once('message', (reply: GeneratorReply) => {
      child.disconnect();
      resolve(reply);
    });
    child.once('exit', (code) => reject(new Error(`a load generator exited with ${code}`)));
    child.send(request);
  });
}

async function load(server: Server, mode: Mode, clients: number, seconds: number): Promise<Run> {
  const target = { port: server.port, client: server.client, serverCa: server.serverCa };
  const processes = Math.min(GENERATORS, clients);
  const shares = Array.from(
    { length: processes },
    (_, index) => Math.floor(clients / processes) + (index < clients % processes ? 1 : 0),
  );
  const cpuBefore = await server.cpu();
  const clientBefore = process.cpuUsage();
  const started = performance.now();
  const deadline = Date.now() + seconds * 1000;
  let results: GeneratorReply[];
  if (shares.length === 1) {
    results = [{ latencies: await generate(target, mode, clients, deadline), cpuMicros: 0 }];
  } else {
    results = await Promise.all(
      shares.map((share) => generateElsewhere({ target, mode, clients: share, deadline })),
    );
  }
  const elapsed = (performance.now() - started) / 1000;
  const own = process.cpuUsage(clientBefore);
  const cpuAfter = await server.cpu();
  const systemMicros = cpuAfter.system - cpuBefore.system;
  const cpuMicros = cpuAfter.user - cpuBefore.user + systemMicros;
  const latencies = results.flatMap((result) => result.latencies);
  return {
    messages: latencies.length,
    seconds: elapsed,
    latencies,
    cpuMicros,
    systemMicros,
    clientMicros:
      (shares.length === 1 ? own.user + own.system : 0) +
      results.reduce((sum, result) => sum + result.cpuMicros, 0),
  };
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

/** Issue 4's goals: engine throughput over Postfix's, per connection mode. */
const GOAL: Record<Mode, number> = { new: 1.5, reuse: 1.2 };

function loadAverage(): string {
  return loadavg()
    .map((value) => value.toFixed(2))
    .join(' ');
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
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
        const goal =
          other === 'postfix'
            ? ` (${GOAL[mode]}x: ${ratio >= GOAL[mode] ? 'met' : 'not met'})`
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

const serveIndex = process.argv.indexOf('--serve');
if (serveIndex >= 0) await serve(process.argv[serveIndex + 1] as 'engine' | 'baseline');
else if (process.argv.includes('--generate')) {
  process.once('message', (request: GeneratorRequest) => {
    const before = process.cpuUsage();
    void generate(request.target, request.mode, request.clients, request.deadline).then(
      (latencies) => {
        const used = process.cpuUsage(before);
        process.send?.({ latencies, cpuMicros: used.user + used.system } satisfies GeneratorReply);
      },
    );
  });
} else await main();
