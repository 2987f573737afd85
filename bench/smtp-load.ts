// The load generator of bench/smtp.ts: clients sending 4 KB messages over STARTTLS with a client
// certificate, on a new connection each time or one kept, or doing only the TLS handshake; as fast
// as they can or at a set pace; in this process or split over several.
import { fork } from 'node:child_process';
import { connect, createSecureContext, TLSSocket, type SecureContext } from 'node:tls';
import { fileURLToPath } from 'node:url';
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import type { Identity, Mode, Server } from './smtp-servers.js';
import { monotonicMs, nextTag, taggedMessage } from './tagged-message.js';

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
  const tls = tlsOptions(identity, ca);
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

/** The client side of TLS, as --client-context says: the SMTP rows' and the handshake rows'. */
function tlsOptions(
  identity: Identity,
  ca: string,
): { secureContext: SecureContext } | { ca: string[]; key: string; cert: string } {
  return SHARED_CONTEXTS
    ? { secureContext: clientContext(identity, ca) }
    : { ca: [ca], key: identity.keyPem, cert: identity.certPem };
}

/**
 * --mode handshake: a new TCP connection and a TLS 1.3 handshake with the client certificate, the
 * server's certificate verified as nodemailer does; done at the server's byte, which it writes
 * once it has the client's certificate (a TLS 1.3 client finishes before the server has it).
 */
async function handshake(port: number, identity: Identity, ca: string): Promise<void> {
  const socket = connect({
    host: '127.0.0.1',
    port,
    servername: 'mail.treyresearch.net',
    minVersion: 'TLSv1.3',
    ...tlsOptions(identity, ca),
  });
  socket.setNoDelay(true);
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('handshake timed out')), 10_000);
      socket.once('data', () => {
        clearTimeout(timer);
        resolve();
      });
      socket.once('error', (error) => {
        clearTimeout(timer);
        reject(error);
      });
    });
  } finally {
    socket.destroy();
  }
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

/** Sends one tagged message; resolves with its tag and when its 250 arrived (monotonicMs). */
async function sendOne(client: SMTPConnection): Promise<readonly [string, number]> {
  const envelope = { from: 'alice@adatum.com', to: ['bob@treyresearch.net'] };
  const tag = nextTag();
  await call((done) => client.send(envelope, taggedMessage(tag), done));
  return [tag, monotonicMs()];
}

/**
 * A set pace instead of as fast as they can: `messages` in all, `rate` a second over all clients,
 * each client on its own kept connection (opened before the clock starts). The clients send
 * together, a burst every clients/rate seconds and quiet in between: mail accepted during the
 * burst's first delivery and then left until something else wakes the server (a stalled
 * dispatcher) waits the whole quiet.
 */
export interface Pace {
  messages: number;
  rate: number;
}

export interface Run {
  messages: number;
  seconds: number;
  /** Each message's (or handshake's) time to its 250 (ms). */
  latencies: number[];
  /** Each message's tag and when its 250 arrived (monotonicMs), for the delivery watch. */
  accepted: (readonly [string, number])[];
  cpuMicros: number;
  systemMicros: number;
  /** CPU time of this process (the load generator) during the row, µs. */
  clientMicros: number;
}

interface Sent {
  latencies: number[];
  accepted: (readonly [string, number])[];
}

type Target = { port: number; client: Identity; serverCa: string };

/** What one generator does: `clients` clients sending until the deadline. */
async function generate(
  target: Target,
  mode: Mode,
  clients: number,
  deadline: number,
): Promise<Sent> {
  const sent: Sent = { latencies: [], accepted: [] };
  const worker = async () => {
    let reused: SMTPConnection | undefined;
    const tickets: Tickets = {};
    while (Date.now() < deadline) {
      const begin = performance.now();
      if (mode === 'handshake') {
        await handshake(target.port, target.client, target.serverCa);
      } else if (mode === 'new' || mode === 'resume') {
        const client = await open(
          target.port,
          target.client,
          target.serverCa,
          mode === 'resume' ? tickets : undefined,
        );
        sent.accepted.push(await sendOne(client));
        client.quit();
      } else {
        reused ??= await open(target.port, target.client, target.serverCa);
        sent.accepted.push(await sendOne(reused));
      }
      sent.latencies.push(performance.now() - begin);
    }
    reused?.quit();
  };
  await Promise.all(Array.from({ length: clients }, worker));
  return sent;
}

/** What one generator does at a pace: its clients' share of the messages, on kept connections. */
async function generatePaced(target: Target, clients: number, pace: Pace): Promise<Sent> {
  const sent: Sent = { latencies: [], accepted: [] };
  const connections = await Promise.all(
    Array.from({ length: clients }, () => open(target.port, target.client, target.serverCa)),
  );
  const period = (1000 * clients) / pace.rate; // each client's spacing, ms
  const started = performance.now();
  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
  await Promise.all(
    connections.map(async (client, index) => {
      const share = Math.floor(pace.messages / clients) + (index < pace.messages % clients ? 1 : 0);
      for (let sequence = 0; sequence < share; sequence += 1) {
        // Behind schedule (a slow reply), the next one goes at once: the pace is kept on average.
        await sleep(started + sequence * period - performance.now());
        const begin = performance.now();
        sent.accepted.push(await sendOne(client));
        sent.latencies.push(performance.now() - begin);
      }
      client.quit();
    }),
  );
  return sent;
}

interface GeneratorRequest {
  target: Target;
  mode: Mode;
  clients: number;
  deadline: number;
  pace?: Pace;
}
interface GeneratorReply extends Sent {
  cpuMicros: number;
}

function run(request: GeneratorRequest): Promise<Sent> {
  return request.pace === undefined
    ? generate(request.target, request.mode, request.clients, request.deadline)
    : generatePaced(request.target, request.clients, request.pace);
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

/** `seconds` of load (or, with a pace, as long as its messages take). */
export async function load(
  server: Server,
  mode: Mode,
  clients: number,
  seconds: number,
  pace?: Pace,
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
  // A share of the pace for each generator, in proportion to its clients.
  const paceOf = (share: number): Pace | undefined =>
    pace === undefined
      ? undefined
      : {
          messages: Math.round((pace.messages * share) / clients),
          rate: (pace.rate * share) / clients,
        };
  let results: GeneratorReply[];
  if (shares.length === 1) {
    const request = { target, mode, clients, deadline };
    results = [{ ...(await run({ ...request, pace: paceOf(clients) })), cpuMicros: 0 }];
  } else {
    results = await Promise.all(
      generators.map((start, index) => {
        const share = shares[index] ?? 0;
        return start({ target, mode, clients: share, deadline, pace: paceOf(share) });
      }),
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
    accepted: results.flatMap((result) => result.accepted),
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
    void run(request).then((sent) => {
      const used = process.cpuUsage(before);
      process.send?.({ ...sent, cpuMicros: used.user + used.system } satisfies GeneratorReply);
    });
  });
}
