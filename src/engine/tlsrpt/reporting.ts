// TLS reporting as the engine runs it: the send sessions' `send.tls-result` events counted per
// policy domain and day (TlsResults, flushed every few seconds and at close), and the daily
// reports sent by a ReportScheduler cycle every few minutes. The submitter is our organization:
// its first accepted domain (else its host name) names it, postmaster there is the contact, and
// mailed reports come from the null sender's cousin tlsrpt-noreply@ that domain.
import { domainName, type DomainName } from '../../domain-name.js';
import type { EngineEvents } from '../events.js';
import type { Generation } from '../generation.js';
import type { EngineLog } from '../log.js';
import type { MessageSink } from '../message-sink.js';
import { PolicyResolver } from '../policy/resolver.js';
import { lookupTlsRpt } from './record.js';
import type { Submitter } from './report.js';
import { TlsResults } from './results.js';
import { ReportScheduler, type CycleSummary } from './schedule.js';
import { sessionResultOf } from './session-result.js';

export interface TlsReportingOptions {
  stateDirectory: string;
  events: EngineEvents;
  sink: Pick<MessageSink, 'accept'>;
  generation: () => Generation | undefined;
  log: EngineLog;
  /** Tests: the clock, and how often results are written and reports sent. */
  now?: () => Date;
  flushMs?: number;
  cycleMs?: number;
  /** Labs and tests: extra CAs for https: collectors. */
  extraCas?: readonly string[];
}

export function submitterOf(generation: Generation): Submitter {
  const domain: DomainName = [...generation.acceptedDomains].sort()[0] ?? generation.hostname;
  const dkim = generation.config.organization.spec.tlsReporting?.dkim;
  return {
    organizationName: domain,
    contactInfo: `postmaster@${domain}`,
    domain,
    from: `tlsrpt-noreply@${domain}`,
    ...(dkim === undefined
      ? {}
      : {
          dkim: {
            domain: (dkim.domain === undefined ? undefined : domainName(dkim.domain)) ?? domain,
            selector: dkim.selector,
            keyFile: dkim.keyFile,
          },
        }),
  };
}

export class TlsReporting {
  readonly results: TlsResults;
  readonly scheduler: ReportScheduler;
  private readonly unsubscribe: () => void;
  private readonly flushTimer: NodeJS.Timeout;

  constructor(private readonly options: TlsReportingOptions) {
    const now = options.now ?? (() => new Date());
    const { log } = options;
    this.results = new TlsResults(options.stateDirectory, now);
    const current = () => this.current();
    this.unsubscribe = options.events.subscribe((event) => {
      if (event.type !== 'send.tls-result') return;
      this.results
        .record(sessionResultOf(event))
        .catch((error: Error) =>
          log.log('error', 'tlsrpt.record-failed', { domain: event.domain, error: error.message }),
        );
    });
    this.flushTimer = setInterval(() => {
      this.results
        .flush()
        .catch((error: Error) => log.log('error', 'tlsrpt.flush-failed', { error: error.message }));
    }, options.flushMs ?? 10_000);
    this.flushTimer.unref();
    this.scheduler = new ReportScheduler({
      stateDirectory: options.stateDirectory,
      results: this.results,
      now,
      log,
      lookup: (domain) => {
        const generation = current();
        const { servers, validating } = generation.config.organization.spec.resolver;
        return lookupTlsRpt(
          new PolicyResolver({ servers, validating: validating === true }),
          domain,
        );
      },
      get submitter() {
        return submitterOf(current());
      },
      queue: {
        accept: (message) =>
          options.sink.accept({
            ...message,
            receivedAt: now(),
            connector: 'tlsrpt',
            remoteAddress: '',
          }),
      },
      // A lab's collectors are on loopback with the lab's CA; anywhere else they are not ours.
      https:
        options.extraCas === undefined
          ? {}
          : { extraCas: options.extraCas, allowInternalAddresses: true },
    });
    this.scheduler.start(options.cycleMs ?? 10 * 60_000);
  }

  private current(): Generation {
    const generation = this.options.generation();
    // No configuration applied yet: nothing to report as; the cycle fails and runs again.
    if (generation === undefined) throw new Error('no configuration is applied');
    return generation;
  }

  /** One report cycle now (tests; the timer runs them otherwise). */
  cycle(): Promise<CycleSummary> {
    return this.scheduler.cycle();
  }

  async close(): Promise<void> {
    this.unsubscribe();
    clearInterval(this.flushTimer);
    await this.scheduler.stop();
    await this.results.flush();
  }
}
