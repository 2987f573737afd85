// The engine's admin API: state, apply, queue inspection, retry, suspend and resume, /metrics and
// the status page.
// Bound to loopback unless configured otherwise; every request for data must carry the bearer
// token (compared in constant time); only the status page's static shell and the two probes
// (/healthz, /readyz: a status code and a fixed body, no data) are served without it.
import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  EngineBusyError,
  nextHopDomainOf,
  StaleGenerationError,
  UnknownGenerationError,
  type Engine,
  type EngineLog,
} from '../engine/index.js';
import type { ApplyResult, RuntimeConfig } from '../model.js';
import { describeConfig } from '../objects.js';
import { overview } from './overview.js';
import { engineIdOf } from './preconditions.js';
import {
  STATUS_CSP,
  STATUS_HTML,
  STATUS_PATH,
  STATUS_SCRIPT,
  STATUS_SCRIPT_PATH,
  STATUS_STYLE,
  STATUS_STYLE_PATH,
} from './status-page.js';
import {
  API_PREFIX,
  type ErrorCode,
  type ErrorResponse,
  type HistoryResponse,
  type KeptGenerationResponse,
  type OverviewResponse,
  type QueueResponse,
  type ResumeResponse,
  type RetryResponse,
  type SuspendResponse,
} from './protocol.js';
import {
  fieldProblem,
  readBody,
  validators,
  type BodyProblem,
  type BodyTypes,
} from './request-body.js';
import type { BodyRoute } from './request-schemas.js';
import { formatEndpoint } from '../units.js';
import type { StalePlan } from '../stale-plan.js';

export interface ControlServerOptions {
  engine: Engine;
  host: string;
  port: number;
  token: string;
  log: EngineLog;
  /**
   * A kept generation's configuration (GET /v1/history/GEN, which rollback plans from); without
   * it that route answers 404 and rollback refuses.
   */
  keptConfig?: (generation: number) => Promise<RuntimeConfig | undefined>;
}

export interface ControlServer {
  readonly url: string;
  close(): Promise<void>;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: ErrorCode,
    message: string,
    /** For a body that does not decode: the wrong field's JSON pointer and what was expected. */
    readonly field?: { pointer: string; expected: string },
    /** For a stale plan: why, as fields. */
    readonly stale?: StalePlan,
    /** For 405: the methods the path answers. */
    readonly allow?: string,
  ) {
    super(message);
  }

  static of(problem: BodyProblem): HttpError {
    return new HttpError(
      problem.status,
      problem.code,
      problem.message,
      problem.field === undefined
        ? undefined
        : { pointer: problem.field, expected: problem.expected ?? '' },
    );
  }
}

/** What a route answers: JSON, or text of a content type (/metrics). */
type Reply =
  { status: number; json: unknown } | { status: number; contentType: string; text: string };

interface RouteContext<B> {
  request: IncomingMessage;
  options: ControlServerOptions;
  /** The path's parameters, by name (`:generation` in the path). */
  params: Readonly<Record<string, string>>;
  /** The request body decoded against the route's schema; undefined for a route without one. */
  body: B;
}

/**
 * One admin API route. `decode` names the request-body schema (request-schemas.ts) the body is
 * decoded against before `handle` runs; a route without it reads no body. Every route requires the
 * bearer token: authentication comes before the table is consulted.
 */
export interface Route<B = unknown> {
  method: 'GET' | 'POST';
  /** The path; a segment `:name` is a parameter, matched by PARAMETERS[name]. */
  path: string;
  decode?: BodyRoute;
  handle(context: RouteContext<B>): Promise<Reply> | Reply;
}

/** What each path parameter may be. */
const PARAMETERS: Readonly<Record<string, string>> = { generation: '\\d{1,15}' };

function route<R extends BodyRoute>(
  spec: { method: 'POST'; path: string; decode: R } & {
    handle(context: RouteContext<BodyTypes[R]>): Promise<Reply> | Reply;
  },
): Route;
function route(spec: {
  method: 'GET' | 'POST';
  path: string;
  handle(context: RouteContext<undefined>): Promise<Reply> | Reply;
}): Route;
function route(spec: Route<never>): Route {
  return spec as Route;
}

const json = (json: unknown, status = 200): Reply => ({ status, json });

/** The admin API, every route of it (the status page's static files are outside, public). */
export const ROUTES: readonly Route[] = [
  route({
    method: 'GET',
    path: '/metrics',
    handle: async ({ options }) => {
      const metrics = await options.engine.metrics.text();
      return { status: 200, contentType: metrics.contentType, text: metrics.body };
    },
  }),
  route({
    method: 'GET',
    path: `${API_PREFIX}/overview`,
    handle: ({ options }) => json(overview(options.engine) satisfies OverviewResponse),
  }),
  route({
    method: 'GET',
    path: `${API_PREFIX}/state`,
    handle: ({ options }) => json(options.engine.state()),
  }),
  route({
    method: 'POST',
    path: `${API_PREFIX}/apply`,
    decode: 'apply',
    handle: async ({ request, options: { engine }, body: { config, baseGeneration } }) => {
      const engineId = engineIdFrom(request);
      return json(
        await applying(
          engine.metrics.timeApply(() => engine.apply(config, baseGeneration, { engineId })),
        ),
      );
    },
  }),
  route({
    method: 'GET',
    path: `${API_PREFIX}/history`,
    handle: ({ options: { engine } }) =>
      json({
        formatVersion: 1,
        generation: engine.currentGeneration,
        entries: engine.history(),
      } satisfies HistoryResponse),
  }),
  route({
    method: 'GET',
    path: `${API_PREFIX}/history/:generation`,
    handle: async ({ options, params }) => {
      const generation = Number(params.generation);
      const config =
        options.keptConfig === undefined ? undefined : await options.keptConfig(generation);
      if (config === undefined)
        throw new HttpError(404, 'not-found', `generation ${generation} is not kept`);
      return json({
        formatVersion: 1,
        generation,
        objects: describeConfig(config),
      } satisfies KeptGenerationResponse);
    },
  }),
  route({
    method: 'POST',
    path: `${API_PREFIX}/rollback`,
    decode: 'rollback',
    handle: async ({ request, options: { engine }, body: { generation, baseGeneration } }) => {
      const engineId = engineIdFrom(request);
      return json(
        await applying(
          engine.metrics.timeApply(() => engine.rollback(generation, baseGeneration, { engineId })),
        ),
      );
    },
  }),
  route({
    method: 'GET',
    path: `${API_PREFIX}/status`,
    handle: ({ options }) => json(options.engine.reconcileStatus()),
  }),
  route({
    method: 'POST',
    path: `${API_PREFIX}/status`,
    decode: 'status',
    handle: async ({ options: { engine }, body: report }) => {
      engine.metrics.reconciled(report.outcome, report.durationMs);
      return json(
        await engine.reportReconcile({
          outcome: report.outcome,
          generation: report.generation,
          error: report.error,
          reconciler: report.reconciler,
        }),
      );
    },
  }),
  route({
    method: 'GET',
    path: `${API_PREFIX}/queues`,
    handle: ({ options: { engine } }) =>
      json({
        queues: engine.state().queues,
        messages: engine.queuedMessages(),
      } satisfies QueueResponse),
  }),
  route({
    method: 'POST',
    path: `${API_PREFIX}/queues/retry`,
    decode: 'retry',
    handle: ({ options: { engine }, body }) => {
      const asked = body.domain;
      const domain = asked === undefined || asked === null ? undefined : domainOf(asked);
      // Suspended queues are not retried: the answer names them, so the operator sees why.
      const suspended = engine
        .suspendedQueues()
        .filter((held) => domain === undefined || held === domain);
      return json({
        retried: engine.retry(domain),
        ...(suspended.length === 0 ? {} : { suspended }),
      } satisfies RetryResponse);
    },
  }),
  route({
    method: 'POST',
    path: `${API_PREFIX}/queues/suspend`,
    decode: 'suspend',
    handle: async ({ options: { engine }, body }) => {
      const domain = domainOf(body.domain);
      const suspended = await engine.suspendQueue(domain);
      const queue = engine.state().queues.find((q) => q.nextHopDomain === domain);
      return json({
        domain,
        suspended,
        messages: queue?.messageCount ?? 0,
      } satisfies SuspendResponse);
    },
  }),
  route({
    method: 'POST',
    path: `${API_PREFIX}/queues/resume`,
    decode: 'resume',
    handle: async ({ options: { engine }, body }) => {
      const domain = domainOf(body.domain);
      return json({ domain, ...(await engine.resumeQueue(domain)) } satisfies ResumeResponse);
    },
  }),
];

/** A route's path as a pattern: its parameters captured by name, the rest literal. */
function pathPattern(path: string): RegExp {
  const source = path
    .split('/')
    .map((segment) => {
      if (!segment.startsWith(':')) return segment.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      const name = segment.slice(1);
      const pattern = PARAMETERS[name];
      if (pattern === undefined) throw new RangeError(`route parameter ${name} has no pattern`);
      return `(?<${name}>${pattern})`;
    })
    .join('/');
  return new RegExp(`^${source}$`);
}

const COMPILED = ROUTES.map((entry) => ({ entry, pattern: pathPattern(entry.path) }));

/** The route for a method and path, or why there is none: 404 for the path, 405 for the method. */
function findRoute(method: string, path: string): { entry: Route; params: Record<string, string> } {
  const allowed: string[] = [];
  for (const { entry, pattern } of COMPILED) {
    const match = pattern.exec(path);
    if (match === null) continue;
    if (entry.method === method) return { entry, params: { ...match.groups } };
    allowed.push(entry.method);
  }
  if (allowed.length === 0) throw new HttpError(404, 'not-found', `no route ${method} ${path}`);
  throw new HttpError(
    405,
    'method-not-allowed',
    `${path} answers ${allowed.join(', ')}, not ${method}`,
    undefined,
    undefined,
    [...new Set(allowed)].join(', '),
  );
}

/**
 * What one client may hold of the admin server before it is authenticated: a request head within
 * 10 s, the whole request within 60 s (an apply's body comes over loopback in well under that),
 * both checked every second (Node checks every 30 s), and at most 256 connections at once.
 */
const ADMIN_SERVER_LIMITS = {
  headersTimeout: 10_000,
  requestTimeout: 60_000,
  connectionsCheckingInterval: 1_000,
} as const;
const ADMIN_MAX_CONNECTIONS = 256;

export async function startControlServer(options: ControlServerOptions): Promise<ControlServer> {
  const expected = digest(options.token);
  validators(); // schemas/ read and compiled now: a broken installation fails at start, not per call
  const server: Server = createServer(ADMIN_SERVER_LIMITS, (request, response) => {
    handle(request, response).catch((error: unknown) => {
      // A bug's text (a TypeError's, a stack) is logged, never answered.
      const failure =
        error instanceof HttpError ? error : new HttpError(500, 'internal', 'internal error');
      if (!(error instanceof HttpError))
        options.log.log('error', 'control.error', { error: (error as Error).message });
      if (failure.status === 401) response.setHeader('www-authenticate', 'Bearer');
      if (failure.allow !== undefined) response.setHeader('allow', failure.allow);
      // A refused request's body is not read (an unauthenticated or oversize upload costs
      // nothing): the connection ends with the answer.
      if (!request.complete) response.setHeader('connection', 'close');
      send(response, failure.status, {
        error: {
          code: failure.code,
          message: failure.message,
          ...(failure.field === undefined
            ? {}
            : { field: failure.field.pointer, expected: failure.field.expected }),
          ...(failure.stale === undefined ? {} : { stale: failure.stale }),
        },
      } satisfies ErrorResponse);
    });
  });

  async function handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const path = targetPath(request.url);
    if (path === undefined)
      throw new HttpError(400, 'bad-request', 'the request target is not a path');
    if (serveProbe(path, request, response, options)) return;
    if (servePage(path, request, response)) return;
    const header = request.headers.authorization ?? '';
    const presented = header.startsWith('Bearer ') ? header.slice(7) : '';
    if (!timingSafeEqual(digest(presented), expected)) {
      throw new HttpError(401, 'unauthorized', 'a valid bearer token is required');
    }
    const { entry, params } = findRoute(request.method ?? 'GET', path);
    let decoded: unknown;
    if (entry.decode === undefined) request.resume();
    else {
      const read = await readBody(entry.decode, request);
      if (!read.ok) throw HttpError.of(read.problem);
      decoded = read.value;
    }
    const reply = await entry.handle({ request, options, params, body: decoded });
    if ('json' in reply) send(response, reply.status, reply.json);
    else sendText(response, reply.status, reply.contentType, reply.text);
  }

  server.maxConnections = ADMIN_MAX_CONNECTIONS;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  return {
    url: `http://${formatEndpoint(address.address, address.port)}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** The engine a change was planned against, if the request names one; 400 when it is malformed. */
function engineIdFrom(request: IncomingMessage): string | undefined {
  const header = engineIdOf(request.headers);
  if (!header.ok) throw new HttpError(400, 'bad-request', header.reason);
  return header.engineId;
}

/** The engine's apply failures as the API's error codes. */
async function applying(result: Promise<ApplyResult>): Promise<ApplyResult> {
  try {
    return await result;
  } catch (error) {
    if (error instanceof EngineBusyError) throw new HttpError(423, 'locked', error.message);
    if (error instanceof StaleGenerationError)
      throw new HttpError(409, 'stale-plan', error.message, undefined, error.stale);
    if (error instanceof UnknownGenerationError)
      throw new HttpError(404, 'not-found', error.message);
    // A bug, not a refusal: its text is logged (500), not shown as the reason an apply failed.
    if (error instanceof TypeError || error instanceof ReferenceError) throw error;
    throw new HttpError(422, 'apply-failed', (error as Error).message);
  }
}

/** A request's next-hop domain in canonical form; 400 at /domain when it is not a domain name. */
function domainOf(domain: string): string {
  try {
    return nextHopDomainOf(domain);
  } catch (error) {
    const expected = 'a domain name such as example.com';
    throw HttpError.of(
      fieldProblem('/domain', `expected ${expected}: ${(error as Error).message}`, expected),
    );
  }
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

/**
 * The probes a supervisor asks without a token (a kubelet, a load balancer): /healthz answers 200
 * while the process serves HTTP at all; /readyz 200 while a generation runs and the reconcile
 * status is Ready and every receive connector listens (the manifests `serve -f` applied at start
 * count as its first reconcile; a refused or invalid save, a listener that stopped or a drain
 * under way make it 503). The body
 * is the same whatever the state: only the status code says anything.
 */
export const PROBES: Readonly<Record<string, (engine: Engine) => boolean>> = {
  '/healthz': () => true,
  '/readyz': (engine) =>
    engine.currentGeneration > 0 && engine.reconcileStatus().ready && accepting(engine),
};

/** Every receive connector of the running generation listens on all its bindings (not draining). */
function accepting(engine: Engine): boolean {
  return (engine.running()?.receiveConnectors ?? []).every((connector) =>
    connector.bindings.every(
      (binding) => engine.listenerAddress(formatEndpoint(binding.host, binding.port)) !== null,
    ),
  );
}

/** The path of a request target, or undefined when the target is not one (`//[`, `http://[::1`). */
function targetPath(target: string | undefined): string | undefined {
  const base = 'http://admin';
  return URL.canParse(target ?? '/', base) ? new URL(target ?? '/', base).pathname : undefined;
}

/**
 * A body sent with a request answered without the token is not read (an unauthenticated upload
 * costs nothing): the connection ends with the answer, as for a refused request. Without a body
 * the connection stays for the next request.
 */
function unreadBody(request: IncomingMessage, response: ServerResponse): void {
  const length = request.headers['content-length'];
  const body =
    request.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
  if (body) response.setHeader('connection', 'close');
  else request.resume();
}

/** The fixed body of every probe answer. */
export const PROBE_BODY = 'domsec\n';

/** A probe path asked with GET or HEAD (405 otherwise, still no data); true when answered. */
function serveProbe(
  path: string,
  request: IncomingMessage,
  response: ServerResponse,
  { engine, log }: ControlServerOptions,
): boolean {
  const probe = Object.hasOwn(PROBES, path) ? PROBES[path] : undefined;
  if (probe === undefined) return false;
  unreadBody(request, response);
  if (request.method !== 'GET' && request.method !== 'HEAD') {
    response.setHeader('allow', 'GET, HEAD');
    sendText(response, 405, 'text/plain; charset=utf-8', PROBE_BODY);
    return true;
  }
  let up: boolean;
  try {
    up = probe(engine);
  } catch (error) {
    // Fail closed: a probe that cannot tell says not ready, and the log says why.
    up = false;
    log.log('error', 'control.probe-failed', { path, error: (error as Error).message });
  }
  sendText(response, up ? 200 : 503, 'text/plain; charset=utf-8', PROBE_BODY);
  return true;
}

/** The status page's shell, script and style: static, no data, so no token. True when served. */
function servePage(path: string, request: IncomingMessage, response: ServerResponse): boolean {
  if (request.method !== 'GET') return false;
  const page: Record<string, [string, string]> = {
    [STATUS_PATH]: ['text/html; charset=utf-8', STATUS_HTML],
    [STATUS_SCRIPT_PATH]: ['text/javascript; charset=utf-8', STATUS_SCRIPT],
    [STATUS_STYLE_PATH]: ['text/css; charset=utf-8', STATUS_STYLE],
  };
  const found = page[path];
  if (found === undefined) return false;
  unreadBody(request, response);
  response.setHeader('content-security-policy', STATUS_CSP);
  response.setHeader('x-content-type-options', 'nosniff');
  response.setHeader('referrer-policy', 'no-referrer');
  sendText(response, 200, found[0], found[1]);
  return true;
}

function sendText(
  response: ServerResponse,
  status: number,
  contentType: string,
  text: string,
): void {
  response.writeHead(status, {
    'content-type': contentType,
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
  });
  response.end(text);
}

function send(response: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  response.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
  });
  response.end(text);
}
