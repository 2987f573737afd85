// Load generator for the receive side: 4 KB messages with a client certificate over STARTTLS to a
// real Engine and to a plain smtp-server with the same TLS (the baseline), in child processes.
// Run by hand: node --import tsx bench/smtp.ts [--seconds 4] [--only engine|baseline]
// [--mode new|reuse] [--ecdsa]; BENCH_PROFILE=<dir> writes the servers' CPU profiles there.
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import { SMTPServer } from 'smtp-server';
import { Engine } from '../src/engine/engine.js';
import type { EngineLog } from '../src/engine/log.js';
import { greetWithoutDelay } from '../src/engine/receive/limits.js';
import { lab } from '../test/support/lab.js';
import { certificate, runtimeConfig, trustAnchor } from '../test/support/runtime-config.js';
import {
  createCertificateAuthority,
  issueCertificate,
  type IssuedCertificate,
} from '../src/pki/lab.js';

type ServerKind = 'engine' | 'baseline';
type Mode = 'new' | 'reuse';
interface Identity {
  certPem: string;
  keyPem: string;
}
interface ServerRequest {
  kind: 'cpu';
}
interface ServerReply {
  port?: number;
  /** The lab of the server process: the client's certificate and the CA of the server's. */
  client?: Identity;
  serverCa?: string;
  cpu?: { user: number; system: number }; // µs so far
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

async function serveEngine(): Promise<{ port: number; close: () => Promise<void> }> {
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
    close: async () => {
      await engine.close();
      await rm(stateDir, { recursive: true, force: true });
    },
  };
}

async function serveBaseline(): Promise<{ port: number; close: () => Promise<void> }> {
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
  return { port: address.port, close: () => new Promise((resolve) => server.close(resolve)) };
}

async function serve(kind: ServerKind): Promise<void> {
  const server = kind === 'engine' ? await serveEngine() : await serveBaseline();
  const send = (reply: ServerReply) => process.send?.(reply);
  process.on('message', (request: ServerRequest) => {
    if (request.kind === 'cpu') {
      const usage = process.cpuUsage();
      send({ cpu: { user: usage.user, system: usage.system } });
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

class Server {
  private constructor(
    private readonly child: ChildProcess,
    readonly port: number,
    readonly client: Identity,
    readonly serverCa: string,
  ) {}

  static async start(kind: ServerKind): Promise<Server> {
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
    return new Server(child, port, client, serverCa);
  }

  cpu(): Promise<{ user: number; system: number }> {
    return new Promise((resolve) => {
      this.child.once('message', (reply: ServerReply) =>
        resolve(reply.cpu ?? { user: 0, system: 0 }),
      );
      this.child.send({ kind: 'cpu' } satisfies ServerRequest);
    });
  }

  async stop(): Promise<void> {
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.child.disconnect();
    await exited;
  }
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
    tls: { ca: [ca], key: identity.keyPem, cert: identity.certPem },
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
}

async function load(server: Server, mode: Mode, clients: number, seconds: number): Promise<Run> {
  const latencies: number[] = [];
  const cpuBefore = await server.cpu();
  const started = performance.now();
  const deadline = started + seconds * 1000;
  const worker = async () => {
    let reused: SMTPConnection | undefined;
    while (performance.now() < deadline) {
      const begin = performance.now();
      if (mode === 'new') {
        const client = await open(server.port, server.client, server.serverCa);
        await sendOne(client);
        client.quit();
      } else {
        reused ??= await open(server.port, server.client, server.serverCa);
        await sendOne(reused);
      }
      latencies.push(performance.now() - begin);
    }
    reused?.quit();
  };
  await Promise.all(Array.from({ length: clients }, worker));
  const elapsed = (performance.now() - started) / 1000;
  const cpuAfter = await server.cpu();
  const systemMicros = cpuAfter.system - cpuBefore.system;
  const cpuMicros = cpuAfter.user - cpuBefore.user + systemMicros;
  return { messages: latencies.length, seconds: elapsed, latencies, cpuMicros, systemMicros };
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const seconds = Number(args[args.indexOf('--seconds') + 1] ?? 4) || 4;
  if (args.includes('--ecdsa')) process.env.BENCH_KEY_TYPE = 'ecdsa-p256'; // the servers inherit it
  const onlyIndex = args.indexOf('--only');
  const kinds: ServerKind[] =
    onlyIndex >= 0 ? [args[onlyIndex + 1] as ServerKind] : ['baseline', 'engine'];
  const modeIndex = args.indexOf('--mode');
  const modes: Mode[] = modeIndex >= 0 ? [args[modeIndex + 1] as Mode] : ['new', 'reuse'];
  console.log(
    `4 KB messages, client certificate over STARTTLS, ${process.env.BENCH_KEY_TYPE ?? 'rsa-2048'} keys, ${seconds} s per row (Node ${process.version})`,
  );
  console.log(
    'server    mode   clients   msgs/s   p50 ms   p99 ms   server CPU µs/msg (of which system)',
  );
  const rows = new Map<string, number>();
  for (const kind of kinds) {
    const server = await Server.start(kind);
    try {
      await load(server, 'reuse', 4, 1); // warm-up: JIT, session caches
      for (const mode of modes) {
        for (const clients of [1, 8, 32]) {
          const run = await load(server, mode, clients, seconds);
          const sorted = [...run.latencies].sort((a, b) => a - b);
          const rate = run.messages / run.seconds;
          rows.set(`${kind} ${mode} ${clients}`, rate);
          console.log(
            [
              kind.padEnd(9),
              mode.padEnd(6),
              String(clients).padStart(7),
              rate.toFixed(0).padStart(8),
              percentile(sorted, 50).toFixed(1).padStart(8),
              percentile(sorted, 99).toFixed(1).padStart(8),
              (run.cpuMicros / Math.max(1, run.messages)).toFixed(0).padStart(19),
              `(system ${(run.systemMicros / Math.max(1, run.messages)).toFixed(0)})`,
            ].join(' '),
          );
        }
      }
    } finally {
      await server.stop();
    }
  }
  if (kinds.length === 2) {
    console.log('\nengine / baseline throughput');
    for (const mode of modes) {
      for (const clients of [1, 8, 32]) {
        const engine = rows.get(`engine ${mode} ${clients}`) ?? NaN;
        const baseline = rows.get(`baseline ${mode} ${clients}`) ?? NaN;
        console.log(
          `${mode.padEnd(6)} ${String(clients).padStart(3)}  ${(engine / baseline).toFixed(2)}`,
        );
      }
    }
  }
}

const serveIndex = process.argv.indexOf('--serve');
if (serveIndex >= 0) await serve(process.argv[serveIndex + 1] as ServerKind);
else await main();
