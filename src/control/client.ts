// The admin API's client, used by the CLI (plan, apply, watch, queue).
import type {
  ApplyResult,
  EngineState,
  ReconcileReport,
  ReconcileStatus,
  RuntimeConfig,
} from '../model.js';
import {
  API_PREFIX,
  type ErrorCode,
  type ErrorResponse,
  type HistoryResponse,
  type KeptGenerationResponse,
  type QueueResponse,
  type ResumeResponse,
  type RetryResponse,
  type SuspendResponse,
} from './protocol.js';
import { ENGINE_ID_HEADER } from './preconditions.js';
import { decodeStalePlan, type StalePlan } from '../stale-plan.js';

export class ControlError extends Error {
  override name = 'ControlError';
  constructor(
    message: string,
    readonly code: ErrorCode | 'unreachable',
    /** For stale-plan: why, as the engine said it in fields; none from an older engine. */
    readonly stale?: StalePlan,
  ) {
    super(message);
  }
}

export class ControlClient {
  constructor(
    readonly url: string,
    private readonly token: string,
    private readonly timeoutMs = 60_000,
    /** Where the token came from (`DOMSEC_TOKEN`, a file), named when the engine refuses it. */
    private readonly tokenSource?: string,
  ) {}

  state(): Promise<EngineState> {
    return this.request<EngineState>('GET', '/state');
  }

  /** engineId: refused as a stale plan by any other engine (EngineState.engineId). */
  apply(config: RuntimeConfig, baseGeneration?: number, engineId?: string): Promise<ApplyResult> {
    return this.request<ApplyResult>('POST', '/apply', { config, baseGeneration }, engineId);
  }

  history(): Promise<HistoryResponse> {
    return this.request<HistoryResponse>('GET', '/history');
  }

  /** A kept generation's objects, so a rollback can be planned and judged before it is made. */
  keptGeneration(generation: number): Promise<KeptGenerationResponse> {
    return this.request<KeptGenerationResponse>('GET', `/history/${generation}`);
  }

  rollback(generation: number, baseGeneration?: number, engineId?: string): Promise<ApplyResult> {
    return this.request<ApplyResult>('POST', '/rollback', { generation, baseGeneration }, engineId);
  }

  status(): Promise<ReconcileStatus> {
    return this.request<ReconcileStatus>('GET', '/status');
  }

  reportStatus(report: ReconcileReport): Promise<ReconcileStatus> {
    return this.request<ReconcileStatus>('POST', '/status', report);
  }

  queues(): Promise<QueueResponse> {
    return this.request<QueueResponse>('GET', '/queues');
  }

  retry(domain?: string): Promise<RetryResponse> {
    return this.request<RetryResponse>(
      'POST',
      '/queues/retry',
      domain === undefined ? {} : { domain },
    );
  }

  /** Holds a next-hop domain's queue (Suspend-Queue). */
  suspend(domain: string): Promise<SuspendResponse> {
    return this.request<SuspendResponse>('POST', '/queues/suspend', { domain });
  }

  /** Lifts the hold and retries at once (Resume-Queue). */
  resume(domain: string): Promise<ResumeResponse> {
    return this.request<ResumeResponse>('POST', '/queues/resume', { domain });
  }

  private async request<T>(
    method: string,
    path: string,
    body?: unknown,
    engineId?: string,
  ): Promise<T> {
    let response: Response;
    try {
      response = await fetch(`${this.url.replace(/\/$/, '')}${API_PREFIX}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${this.token}`,
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
          ...(engineId === undefined ? {} : { [ENGINE_ID_HEADER]: engineId }),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (error) {
      const cause =
        (error as { cause?: { code?: string } }).cause?.code ?? (error as Error).message;
      throw new ControlError(`the engine at ${this.url} is unreachable (${cause})`, 'unreachable');
    }
    const text = await response.text();
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new ControlError(
        `the engine at ${this.url} answered ${response.status} without JSON`,
        'internal',
      );
    }
    if (!response.ok) {
      const error = (parsed as ErrorResponse).error;
      const message = error?.message ?? `HTTP ${response.status}`;
      // A refused token is most often the wrong one of several places a token can come from.
      if (error?.code === 'unauthorized' && this.tokenSource !== undefined)
        throw new ControlError(
          `the engine at ${this.url} refused the admin token from ${this.tokenSource}: ${message}`,
          'unauthorized',
        );
      throw new ControlError(message, error?.code ?? 'internal', decodeStalePlan(error?.stale));
    }
    return parsed as T;
  }
}
