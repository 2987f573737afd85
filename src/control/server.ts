// The engine's admin API: state, apply, queue inspection, retry, suspend and resume, /metrics and
// the status page.
// Bound to loopback unless configured otherwise; every request for data must carry the bearer
// token (compared in constant time); only the status page's static shell is served without it.
import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Engine } from '../engine/engine.js';
import { EngineBusyError, StaleGenerationError, UnknownGenerationError } from '../engine/engine.js';
import type { ApplyResult, RuntimeConfig } from '../model.js';
import { describeConfig } from '../objects.js';
import { nextHopDomainOf } from '../engine/queue/suspended.js';
import type { EngineLog } from '../engine/log.js';
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
  type ApplyRequest,
  type ErrorCode,
  type ErrorResponse,
  type HistoryResponse,
  type KeptGenerationResponse,
  type OverviewResponse,
  type QueueHoldRequest,
  type QueueResponse,
  type ResumeResponse,
  type RetryRequest,
  type RetryResponse,
  type SuspendResponse,
  type RollbackRequest,
  type StatusReport,
} from './protocol.js';

const MAX_BODY = 64 * 1024 * 1024; // a configuration with tens of thousands of partners fits

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
  ) {
    super(message);
  }
}

export async function startControlServer(options: ControlServerOptions): Promise<ControlServer> {
  const expected = digest(options.token);
  const server: Server = createServer((request, response) => {
    handle(request, response).catch((error: unknown) => {
      const failure =
        error instanceof HttpError
          ? error
          : new HttpError(500, 'internal', (error as Error).message);
      if (failure.status === 500)
        options.log.log('error', 'control.error', { error: failure.message });
      if (failure.status === 401) response.setHeader('www-authenticate', 'Bearer');
      // A refused request's body is not read (an unauthenticated or oversize upload costs
      // nothing): the connection ends with the answer.
      if (!request.complete) response.setHeader('connection', 'close');
      send(response, failure.status, {
        error: { code: failure.code, message: failure.message },
      } satisfies ErrorResponse);
    });
  });

  async function handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    if (servePage(request, response)) return;
    const header = request.headers.authorization ?? '';
    const presented = header.startsWith('Bearer ') ? header.slice(7) : '';
    if (!timingSafeEqual(digest(presented), expected)) {
      throw new HttpError(401, 'unauthorized', 'a valid bearer token is required');
    }
    const path = new URL(request.url ?? '/', 'http://admin').pathname;
    const route = `${request.method ?? 'GET'} ${path}`;
    const engine = options.engine;
    const kept = new RegExp(`^GET ${API_PREFIX}/history/(\\d{1,15})$`).exec(route);
    if (kept !== null && options.keptConfig !== undefined) {
      const generation = Number(kept[1]);
      const config = await options.keptConfig(generation);
      if (config === undefined)
        throw new HttpError(404, 'not-found', `generation ${generation} is not kept`);
      return send(response, 200, {
        formatVersion: 1,
        generation,
        objects: describeConfig(config),
      } satisfies KeptGenerationResponse);
    }
    switch (route) {
      case 'GET /metrics': {
        const metrics = await engine.metrics.text();
        return sendText(response, 200, metrics.contentType, metrics.body);
      }
      case `GET ${API_PREFIX}/overview`:
        return send(response, 200, overview(engine) satisfies OverviewResponse);
      case `GET ${API_PREFIX}/state`:
        return send(response, 200, engine.state());
      case `POST ${API_PREFIX}/apply`: {
        const body = (await readJson(request)) as ApplyRequest;
        if (typeof body !== 'object' || body === null || typeof body.config !== 'object') {
          throw new HttpError(400, 'bad-request', 'expected {"config": {...}}');
        }
        return send(
          response,
          200,
          await applying(
            engine.metrics.timeApply(() =>
              engine.apply(body.config, body.baseGeneration, {
                engineId: engineIdOf(request.headers),
              }),
            ),
          ),
        );
      }
      case `GET ${API_PREFIX}/history`:
        return send(response, 200, {
          formatVersion: 1,
          generation: engine.currentGeneration,
          entries: engine.history(),
        } satisfies HistoryResponse);
      case `POST ${API_PREFIX}/rollback`: {
        const body = (await readJson(request)) as RollbackRequest;
        if (!Number.isInteger(body.generation))
          throw new HttpError(400, 'bad-request', 'expected {"generation": N}');
        return send(
          response,
          200,
          await applying(
            engine.metrics.timeApply(() =>
              engine.rollback(body.generation, body.baseGeneration, {
                engineId: engineIdOf(request.headers),
              }),
            ),
          ),
        );
      }
      case `GET ${API_PREFIX}/status`:
        return send(response, 200, engine.reconcileStatus());
      case `POST ${API_PREFIX}/status`: {
        const body = (await readJson(request)) as StatusReport;
        if (!['applied', 'unchanged', 'invalid', 'failed'].includes(body.outcome))
          throw new HttpError(
            400,
            'bad-request',
            'expected {"outcome": "applied|unchanged|invalid|failed", ...}',
          );
        const durationMs = typeof body.durationMs === 'number' ? body.durationMs : undefined;
        engine.metrics.reconciled(body.outcome, durationMs);
        return send(
          response,
          200,
          await engine.reportReconcile({
            outcome: body.outcome,
            generation: Number(body.generation),
            error: typeof body.error === 'string' ? body.error : null,
            reconciler: String(body.reconciler),
          }),
        );
      }
      case `GET ${API_PREFIX}/queues`:
        return send(response, 200, {
          queues: engine.state().queues,
          messages: engine.queuedMessages(),
        } satisfies QueueResponse);
      case `POST ${API_PREFIX}/queues/retry`: {
        const body = (await readJson(request)) as RetryRequest;
        const domain =
          body.domain === undefined || body.domain === null ? undefined : domainOf(body.domain);
        // Suspended queues are not retried: the answer names them, so the operator sees why.
        const suspended = engine
          .suspendedQueues()
          .filter((held) => domain === undefined || held === domain);
        return send(response, 200, {
          retried: engine.retry(domain),
          ...(suspended.length === 0 ? {} : { suspended }),
        } satisfies RetryResponse);
      }
      case `POST ${API_PREFIX}/queues/suspend`: {
        const domain = domainOf(((await readJson(request)) as QueueHoldRequest).domain);
        const suspended = await engine.suspendQueue(domain);
        const queue = engine.state().queues.find((q) => q.nextHopDomain === domain);
        return send(response, 200, {
          domain,
          suspended,
          messages: queue?.messageCount ?? 0,
        } satisfies SuspendResponse);
      }
      case `POST ${API_PREFIX}/queues/resume`: {
        const domain = domainOf(((await readJson(request)) as QueueHoldRequest).domain);
        return send(response, 200, {
          domain,
          ...(await engine.resumeQueue(domain)),
        } satisfies ResumeResponse);
      }
      default:
        request.resume();
        throw new HttpError(404, 'not-found', `no route ${route}`);
    }
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    url: `http://${host}:${address.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** The engine's apply failures as the API's error codes. */
async function applying(result: Promise<ApplyResult>): Promise<ApplyResult> {
  try {
    return await result;
  } catch (error) {
    if (error instanceof EngineBusyError) throw new HttpError(423, 'locked', error.message);
    if (error instanceof StaleGenerationError)
      throw new HttpError(409, 'stale-plan', error.message);
    if (error instanceof UnknownGenerationError)
      throw new HttpError(404, 'not-found', error.message);
    throw new HttpError(422, 'apply-failed', (error as Error).message);
  }
}

/** A request's next-hop domain, lower-cased; 400 when it is not a domain name. */
function domainOf(domain: unknown): string {
  try {
    return nextHopDomainOf(domain);
  } catch (error) {
    throw new HttpError(
      400,
      'bad-request',
      `expected {"domain": "example.com"}: ${(error as Error).message}`,
    );
  }
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

async function readJson(request: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  if (Number(request.headers['content-length']) > MAX_BODY)
    throw new HttpError(413, 'too-large', `request body over ${MAX_BODY} bytes`);
  for await (const chunk of request) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY)
      throw new HttpError(413, 'too-large', `request body over ${MAX_BODY} bytes`);
    chunks.push(chunk as Buffer);
  }
  if (size === 0) return {};
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new HttpError(400, 'bad-request', 'the body is not JSON');
  }
}

/** The status page's shell, script and style: static, no data, so no token. True when served. */
function servePage(request: IncomingMessage, response: ServerResponse): boolean {
  if (request.method !== 'GET') return false;
  const path = new URL(request.url ?? '/', 'http://admin').pathname;
  const page: Record<string, [string, string]> = {
    [STATUS_PATH]: ['text/html; charset=utf-8', STATUS_HTML],
    [STATUS_SCRIPT_PATH]: ['text/javascript; charset=utf-8', STATUS_SCRIPT],
    [STATUS_STYLE_PATH]: ['text/css; charset=utf-8', STATUS_STYLE],
  };
  const found = page[path];
  if (found === undefined) return false;
  request.resume();
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
