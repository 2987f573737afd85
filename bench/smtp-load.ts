// The load generator of bench/smtp.ts: clients sending 4 KB messages over STARTTLS with a client
// certificate, on a new connection each time or one kept, in this process or split over several.
import { fork } from 'node:child_process';
import { createSecureContext, TLSSocket, type SecureContext } from 'node:tls';
import { fileURLToPath } from 'node:url';
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import { MESSAGE, type Identity, type Mode, type Server } from './smtp-servers.js';

/**
 * --client-context shared: one TLS context per identity, as an MTA keeps its SSL_CTX. The default
 * makes one per connection (the key and certificates parsed again each time, about 0.9 ms of the
 * load generator's CPU per new connection): the load that reproduces the Postfix figures the
 * goals were set against. With shared contexts the generator leaves the servers more CPU.
 */
export const SHARED_CONTEXTS = process.argv.includes('--client-context')
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

/**
 * --mode resume: a new connection per message that resumes the TLS session of an earlier one (as
 * Postfix's smtp client does with its session cache): the last ticket each client received.
 */
function connection(
  port: number,
  identity: Identity,
  ca: string,
  session?: Buffer,
): SMTPConnection {
  const tls = SHARED_CONTEXTS
    ? { secureContext: clientContext(identity, ca) }
    : { ca: [ca], key: identity.keyPem, cert: identity.certPem };
  return new SMTPConnection({
    host: '127.0.0.1',
    port,
    name: 'mail.adatum.com',
    servername: 'mail.treyresearch.net',
    requireTLS: true,
    connectionTimeout: 10_000,
    greetingTimeout: 10_000,
    socketTimeout: 30_000,
    tls: session === undefined ? tls : { ...tls, session },
  });
}

const call = <T>(run: (done: (error: Error | null | undefined, value?: T) => void) => void) =>
  new Promise<T | undefined>((resolve, reject) =>
    run((error, value) => (error ? reject(error) : resolve(value))),
  );

/** A client's last TLS session, and how many of its connections resumed one. */
interface Tickets {
  last?: Buffer;
  resumed?: number;
}

/** The TLS socket under a connection (nodemailer keeps it as _socket after STARTTLS). */
function tlsSocketOf(client: SMTPConnection): TLSSocket | undefined {
  const socket = (client as unknown as { _socket?: unknown })._socket;
  return socket instanceof TLSSocket ? socket : undefined;
}

async function open(
  port: number,
  identity: Identity,
  ca: string,
  tickets?: Tickets,
): Promise<SMTPConnection> {
  const client = connection(port, identity, ca, tickets?.last);
  // A failed handshake is only reported as an 'error' event, never to connect()'s callback.
  const failed = new Promise<never>((_, reject) => client.on('error', reject));
  failed.catch(() => undefined);
  await Promise.race([failed, call<undefined>((done) => client.connect(done))]);
  if (tickets !== undefined) {
    // By now (EHLO answered over TLS) the server's TLS 1.3 tickets have arrived.
    const socket = tlsSocketOf(client);
    tickets.last = socket?.getSession() ?? tickets.last;
    tickets.resumed = (tickets.resumed ?? 0) + (socket?.isSessionReused() === true ? 1 : 0);
  }
  return client;
}

async function sendOne(client: SMTPConnection): Promise<void> {
  const envelope = { from: 'alice@adatum.com', to: ['bob@treyresearch.net'] };
  await call((done) => client.send(envelope, MESSAGE, done));
}

export interface Run {
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
    const tickets: Tickets = {};
    while (Date.now() < deadline) {
      const begin = performance.now();
      if (mode === 'new' || mode === 'resume') {
        const client = await open(
          target.port,
          target.client,
          target.serverCa,
          mode === 'resume' ? tickets : undefined,
        );
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

/** A process for one share of the clients (same file, --generate), once it is ready. */
async function startGenerator(): Promise<(request: GeneratorRequest) => Promise<GeneratorReply>> {
  const child = fork(fileURLToPath(import.meta.url), ['--generate', ...process.argv.slice(2)], {
    execArgv: ['--import', 'tsx'],
  });
  const exited = new Promise<never>((_, reject) =>
    child.once('exit', (code) => reject(new Error(`a load generator exited with ${code}`))),
  );
  exited.catch(() => undefined);
  await Promise.race([new Promise((resolve) => child.once('message', resolve)), exited]);
  return (request) =>
    Promise.race([
      new Promise<GeneratorReply>((resolve) => {
        child.once('message', (reply: GeneratorReply) => {
          child.disconnect();
          resolve(reply);
        });
        child.send(request);
      }),
      exited,
    ]);
}

export async function load(
  server: Server,
  mode: Mode,
  clients: number,
  seconds: number,
): Promise<Run> {
  const target = { port: server.port, client: server.client, serverCa: server.serverCa };
  const processes = Math.min(GENERATORS, clients);
  const shares = Array.from(
    { length: processes },
    (_, index) => Math.floor(clients / processes) + (index < clients % processes ? 1 : 0),
  );
  const cpuBefore = await server.cpu();
  const clientBefore = process.cpuUsage();
  // Started (tsx and all) before the clock does.
  const generators = shares.length === 1 ? [] : await Promise.all(shares.map(startGenerator));
  const started = performance.now();
  const deadline = Date.now() + seconds * 1000;
  let results: GeneratorReply[];
  if (shares.length === 1) {
    results = [{ latencies: await generate(target, mode, clients, deadline), cpuMicros: 0 }];
  } else {
    results = await Promise.all(
      generators.map((run, index) => run({ target, mode, clients: shares[index] ?? 0, deadline })),
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

if (process.argv[1] === fileURLToPath(import.meta.url) && process.argv.includes('--generate')) {
  process.send?.({ ready: true });
  process.once('message', (request: GeneratorRequest) => {
    const before = process.cpuUsage();
    void generate(request.target, request.mode, request.clients, request.deadline).then(
      (latencies) => {
        const used = process.cpuUsage(before);
        process.send?.({ latencies, cpuMicros: used.user + used.system } satisfies GeneratorReply);
      },
    );
  });
}
