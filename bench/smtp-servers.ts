// The servers of bench/smtp.ts: the engine and a plain smtp-server (the baseline), each in a child
// process started from this file, a private Postfix, and a trivial Node TLS server that only does
// the mutual-TLS handshake (the limit of new connections); all with the same certificates.
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer as createTlsServer } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { SMTPServer } from 'smtp-server';
import { Engine } from '../src/engine/engine.js';
import type { EngineLog } from '../src/engine/log.js';
import { adaptSmtpServer } from '../src/engine/receive/smtp-server-adapter.js';
import {
  createCertificateAuthority,
  issueCertificate,
  type IssuedCertificate,
} from '../src/pki/lab.js';
import { lab } from '../test/support/lab.js';
import { startPostfix } from '../test/support/postfix.js';
import { certificate, runtimeConfig, trustAnchor } from '../test/support/runtime-config.js';

export type ServerKind = 'engine' | 'baseline' | 'postfix';
export const KINDS: readonly ServerKind[] = ['baseline', 'engine', 'postfix'];
/** `handshake`: a new connection that only does the mutual-TLS handshake (no SMTP). */
export type Mode = 'new' | 'reuse' | 'resume' | 'handshake';
export interface Identity {
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
  /** The new/ directory the server delivers bob@treyresearch.net's mail into. */
  maildir?: string;
  cpu?: { user: number; system: number }; // µs so far
  /** Mail accepted and not yet delivered into the Maildir, after waiting for it to drain. */
  backlog?: number;
}

/** How long a server may take to deliver what it accepted before the next row starts. */
export const DRAIN_TIMEOUT_MS = 60_000;

/** Resolves with what is still pending once pending() is 0, or after the bound. */
async function drained(pending: () => Promise<number> | number): Promise<number> {
  const deadline = Date.now() + DRAIN_TIMEOUT_MS;
  for (;;) {
    const left = await pending();
    if (left === 0 || Date.now() > deadline) return left;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const silent: EngineLog = { log: () => undefined };

/** The certificates of a run: the test lab's RSA ones, or ECDSA P-256 made here (--ecdsa). */
interface BenchPki {
  adatumRoot: IssuedCertificate;
  adatumMail: IssuedCertificate;
  treyRoot: IssuedCertificate;
  treyMail: IssuedCertificate;
}

let pkiCache: BenchPki | undefined;
/** How a benchmarked server process starts: under tsx, writing CPU profiles with BENCH_PROFILE. */
export function serverExecArgv(): string[] {
  const profiles = process.env.BENCH_PROFILE;
  return [
    '--import',
    'tsx',
    ...(profiles === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${profiles}`]),
  ];
}

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
  /** The new/ directory of bob@treyresearch.net, where there is one. */
  maildir?: string;
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
    // runtimeConfig's delivery.maildir is "mail", under the state directory.
    maildir: join(stateDir, 'mail', 'treyresearch.net', 'bob', 'new'),
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
  adaptSmtpServer(server, { greetAtOnce: true }); // as the engine does, so the ratio shows policy and queue only
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

/**
 * The bare mutual-TLS handshake, as the baseline's TLS is set up but TLS 1.3 only: a client
 * certificate requested and verified against the partner's CA; then one byte and the end.
 */
async function serveHandshake(): Promise<NodeServerHandle> {
  const { treyMail, adatumRoot } = pki();
  const server = createTlsServer(
    {
      key: treyMail.keyPem,
      cert: treyMail.certPem,
      ca: [adatumRoot.certPem],
      requestCert: true,
      rejectUnauthorized: false,
      minVersion: 'TLSv1.3',
    },
    (socket) => {
      // Written once the client's certificate is verified: the client waits for it.
      socket.on('error', () => undefined); // the client goes away as soon as it has the byte
      socket.end(socket.authorized ? '1' : '0');
    },
  );
  server.on('connection', (socket: import('node:net').Socket) => socket.setNoDelay(true));
  server.on('tlsClientError', () => undefined);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('not listening');
  return {
    port: address.port,
    pending: () => 0,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

type NodeKind = 'engine' | 'baseline' | 'handshake';

async function serve(kind: NodeKind): Promise<void> {
  const server =
    kind === 'engine'
      ? await serveEngine()
      : kind === 'baseline'
        ? await serveBaseline()
        : await serveHandshake();
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
  send({
    port: server.port,
    client: adatumMail,
    serverCa: treyRoot.certPem,
    ...(server.maildir === undefined ? {} : { maildir: server.maildir }),
  });
}

export interface Server {
  readonly port: number;
  /** The client certificate to present, and the CA of the server's certificate. */
  readonly client: Identity;
  readonly serverCa: string;
  /** The new/ directory its mail is delivered into; none for the baseline, which keeps nothing. */
  readonly maildir: string | undefined;
  /** CPU time of the server so far (µs): its process, or every process of a Postfix instance. */
  cpu(): Promise<{ user: number; system: number }>;
  /** Waits until what it accepted is in its Maildir (bounded); resolves with what is left. */
  idle(): Promise<number>;
  stop(): Promise<void>;
}

/** The engine, the baseline or the handshake server, in a child process (this one runs the clients). */
class NodeServer implements Server {
  private constructor(
    private readonly child: ChildProcess,
    readonly port: number,
    readonly client: Identity,
    readonly serverCa: string,
    readonly maildir: string | undefined,
  ) {}

  static async start(kind: NodeKind): Promise<NodeServer> {
    const child = fork(fileURLToPath(import.meta.url), ['--serve', kind], {
      execArgv: [
        ...serverExecArgv(),
        // BENCH_NODE_ARGS: more flags for the Node servers (--trace-deopt, --perf-basic-prof, ...).
        ...(process.env.BENCH_NODE_ARGS ?? '').split(' ').filter((arg) => arg !== ''),
      ],
    });
    if (process.env.BENCH_PROFILE !== undefined)
      console.log(`${kind}: CPU profile of pid ${child.pid} in ${process.env.BENCH_PROFILE}`);
    const ready = await new Promise<ServerReply>((resolve, reject) => {
      child.once('message', resolve);
      child.once('exit', (code) => reject(new Error(`server exited with ${code}`)));
    });
    const { port, client, serverCa, maildir } = ready;
    if (port === undefined || client === undefined || serverCa === undefined) {
      throw new Error('the server did not say where it listens');
    }
    return new NodeServer(child, port, client, serverCa, maildir);
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
    maildir: join(postfix.maildir, 'new'),
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
export function startServer(kind: ServerKind, rowSeconds: number): Promise<Server> {
  return kind === 'postfix' ? startPostfixServer(12 * rowSeconds + 900) : NodeServer.start(kind);
}

/** The trivial TLS server of the handshake rows. */
export function startHandshakeServer(): Promise<Server> {
  return NodeServer.start('handshake');
}

const serveIndex = process.argv.indexOf('--serve');
if (process.argv[1] === fileURLToPath(import.meta.url) && serveIndex >= 0)
  await serve(process.argv[serveIndex + 1] as NodeKind);
