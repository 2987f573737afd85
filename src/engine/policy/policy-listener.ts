// Our MTA-STS policy (RFC 8461 §3.3) over HTTPS, when the Organization names a listener
// (mtaSts.listen): GET /.well-known/mta-sts.txt with Host mta-sts.<accepted domain> answers the
// policy file `dns records` prints (ourStsPolicyFile: one text, so the published id is its hash),
// as text/plain, with the Organization's certificate; everything else is 404. The listener set
// binds it while preparing a generation and swaps policy and certificate when that generation
// commits: a hot reload changes what is served without a restart.
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { domainName, type DomainName } from '../../domain-name.js';
import { ourStsPolicyFile } from '../../published-records.js';
import { formatEndpoint } from '../../units.js';
import { parseBinding } from '../addresses.js';
import type { Generation } from '../generation.js';
import type { EngineLog } from '../log.js';

export const POLICY_PATH = '/.well-known/mta-sts.txt';

/** A client that has not finished its TLS handshake by then is disconnected. */
export const HANDSHAKE_TIMEOUT_MS = 10_000;

/**
 * What one listener holds at most. A policy is a few hundred bytes fetched once per max_age by
 * each sender, so a client that dribbles its request head (slowloris) or body is cut off soon,
 * and connections beyond the cap are closed at once instead of holding file descriptors.
 */
export interface PolicyListenerLimits {
  /** Open connections; one more is closed as it arrives. */
  maxConnections: number;
  /** From the first byte of a request to the end of its head. */
  headersTimeoutMs: number;
  /** From the first byte of a request to the end of its body (not below headersTimeoutMs). */
  requestTimeoutMs: number;
  /** How often those two are checked (Node's connectionsCheckingInterval, 30 s by default). */
  checkIntervalMs: number;
}

export const POLICY_LISTENER_LIMITS: PolicyListenerLimits = {
  maxConnections: 256,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 10_000,
  checkIntervalMs: 1_000,
};

/** What a generation serves: the policy file and the host names it is served for. */
export interface ServedPolicy {
  policy: string;
  hosts: ReadonlySet<DomainName>;
}

/** The policy a generation serves, or undefined when it declares none. */
export function servedPolicy(generation: Generation): ServedPolicy | undefined {
  const policy = ourStsPolicyFile(generation.config.organization.spec);
  if (policy === undefined) return undefined;
  const hosts = new Set<DomainName>();
  for (const domain of generation.acceptedDomains) {
    const host = domainName(`mta-sts.${domain}`);
    if (host !== undefined) hosts.add(host);
  }
  return { policy, hosts };
}

/**
 * The host a request names (its Host header without a port), in canonical form; undefined when
 * it names none or not a domain (an IP literal, garbage): such a request is answered 404.
 */
export function requestedHost(header: string | undefined): DomainName | undefined {
  if (header === undefined || header.length > 300) return undefined;
  const withoutPort = /^([^:[\]]+)(?::\d{1,5})?$/.exec(header);
  return withoutPort?.[1] === undefined ? undefined : domainName(withoutPort[1]);
}

/** The answer to one request; pure, so that hostile requests can be judged without a socket. */
export function answer(
  served: ServedPolicy | undefined,
  request: { method: string | undefined; url: string | undefined; host: string | undefined },
): { status: 200; body: string } | { status: 404 } {
  if (served === undefined || request.method !== 'GET' || request.url !== POLICY_PATH)
    return { status: 404 };
  const host = requestedHost(request.host);
  if (host === undefined || !served.hosts.has(host)) return { status: 404 };
  return { status: 200, body: served.policy };
}

interface Staged {
  generation: Generation;
  /** The listener bound for it, when it wants another address than the one listening. */
  started: { key: string; server: Server } | undefined;
  key: string | undefined;
}

export class PolicyListener {
  private server: Server | undefined;
  private key: string | undefined;
  private served: ServedPolicy | undefined;
  private staged: Staged | undefined;
  private readonly closing: Promise<void>[] = [];

  private readonly limits: PolicyListenerLimits;

  constructor(
    private readonly log: EngineLog,
    /** Tests: shorter limits. */
    limits: Partial<PolicyListenerLimits> = {},
  ) {
    this.limits = { ...POLICY_LISTENER_LIMITS, ...limits };
  }

  /** Binds the generation's listener when it names one that is not listening; throws when it cannot. */
  async prepare(generation: Generation): Promise<void> {
    const listen = generation.config.organization.spec.mtaSts?.listen;
    const key =
      listen === undefined
        ? undefined
        : (() => {
            const binding = parseBinding(listen);
            return formatEndpoint(binding.host, binding.port);
          })();
    let started: Staged['started'];
    if (key !== undefined && (key !== this.key || this.address() === null)) {
      const server = this.createServer(generation);
      const { host, port } = parseBinding(key);
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          server.off('error', reject);
          resolve();
        });
      });
      started = { key, server };
    }
    this.staged = { generation, started, key };
  }

  /** Closes what prepare bound for a generation that will not be committed. */
  async abort(generation: Generation): Promise<void> {
    const staged = this.staged;
    if (staged?.generation !== generation) return;
    this.staged = undefined;
    if (staged.started !== undefined) await closeServer(staged.started.server);
  }

  /** The generation committed: its listener (new or kept) serves its policy and certificate. */
  install(generation: Generation): void {
    const staged = this.staged;
    if (staged?.generation !== generation) return;
    this.staged = undefined;
    if (staged.started !== undefined || staged.key === undefined) {
      if (this.server !== undefined) this.closing.push(closeServer(this.server));
      this.server = staged.started?.server;
      this.key = staged.started?.key;
    } else {
      this.server?.setSecureContext(secureOptions(generation));
    }
    this.served = servedPolicy(generation);
    if (staged.started !== undefined) {
      this.log.log('info', 'mta-sts.listening', { listen: staged.started.key });
    }
  }

  /** Where the policy listener listens; null when none is. */
  address(): { address: string; port: number } | null {
    const address = this.server?.address();
    return address === undefined || address === null || typeof address === 'string'
      ? null
      : { address: (address as AddressInfo).address, port: (address as AddressInfo).port };
  }

  async close(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    this.key = undefined;
    await Promise.all([server === undefined ? undefined : closeServer(server), ...this.closing]);
  }

  private createServer(generation: Generation): Server {
    // handshakeTimeout: the idle timeout below starts only once TLS is up; a client that connects
    // and never finishes the handshake would otherwise hold its socket for Node's default 120 s.
    const { limits } = this;
    const server = createServer(
      {
        ...secureOptions(generation),
        handshakeTimeout: HANDSHAKE_TIMEOUT_MS,
        headersTimeout: limits.headersTimeoutMs,
        requestTimeout: Math.max(limits.requestTimeoutMs, limits.headersTimeoutMs),
        // Without it Node looks at those timeouts every 30 s: a dribbling client got 40 s.
        connectionsCheckingInterval: limits.checkIntervalMs,
      },
      (request, response) => this.respond(request, response),
    );
    // A policy is a few hundred bytes: nothing a client does should hold a socket for long.
    server.maxConnections = limits.maxConnections;
    // Connections over the cap are closed at accept; told at most once a minute, with the count.
    let dropped = 0;
    let toldAt = 0;
    server.on('drop', () => {
      dropped += 1;
      const now = Date.now();
      if (now - toldAt < 60_000) return;
      this.log.log('warn', 'mta-sts.connections-dropped', {
        dropped,
        maxConnections: limits.maxConnections,
      });
      dropped = 0;
      toldAt = now;
    });
    server.keepAliveTimeout = 5_000;
    server.maxHeadersCount = 50;
    server.setTimeout(15_000, (socket) => socket.destroy());
    server.on('tlsClientError', () => undefined);
    return server;
  }

  private respond(request: IncomingMessage, response: ServerResponse): void {
    const result = answer(this.served, {
      method: request.method,
      url: request.url,
      host: request.headers.host,
    });
    if (result.status === 404) {
      response.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' });
      response.end('not found\n');
      return;
    }
    response.writeHead(200, {
      'content-type': 'text/plain; charset=utf-8',
      'content-length': Buffer.byteLength(result.body, 'utf8'),
    });
    response.end(result.body);
  }
}

function secureOptions(generation: Generation): { key: string; cert: string } {
  const { spec } = generation.certificate;
  return { key: spec.keyPem, cert: [spec.certPem, ...spec.chainPem].join('\n') };
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}
