// Once a day per policy domain, the day's aggregate report to each rua of the domain's TLSRPT
// record. A cycle (the engine runs one every few minutes; tests call cycle() with their clock)
// reports each finished UTC day not yet done: it looks the record up, builds the report once
// (its report-id is kept in tlsrpt/reports/<day>/<domain>.json, so a retry sends the same report),
// and sends it to every rua not yet done. A send that fails, or a look-up that gets no answer, is
// tried again next cycle; after `maxAgeDays` the report is abandoned with an error in the log, never
// dropped without a word. A domain without a record is done with nothing sent.
import { mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileDurably } from '../../durable-file.js';
import type { DomainName } from '../../domain-name.js';
import type { EngineLog } from '../log.js';
import { signReportMessage } from './dkim.js';
import type { ReportUri, TlsRptLookup } from './record.js';
import {
  buildReport,
  dayRange,
  gzipReport,
  newReportId,
  reportMessage,
  type Submitter,
} from './report.js';
import {
  readDomainDay,
  resultDays,
  resultDomains,
  resultsDirectory,
  type TlsResults,
} from './results.js';
import { postReport, type HttpsReportOptions } from './send.js';

export interface ReportState {
  version: 1;
  reportId: string;
  /** The rua URIs the report went to. */
  delivered: string[];
  /**
   * The mailto: rua it was not mailed to for want of a DKIM key (RFC 8460 §3: a recipient ignores
   * an unsigned report): done, not retried. Absent in states written before it.
   */
  notMailed?: string[];
  /** not-mailed: every rua was a mailto: one and none could be signed. */
  outcome: 'pending' | 'sent' | 'no-record' | 'abandoned' | 'not-mailed';
  attempts: number;
  lastError?: string;
}

export interface ReportQueue {
  /** Queues a message durably (our own queue); resolves once it is. */
  accept(message: { from: string; recipients: string[]; body: Buffer }): Promise<unknown>;
}

export interface ReportSchedulerOptions {
  stateDirectory: string;
  results: TlsResults;
  now: () => Date;
  lookup: (domain: DomainName) => Promise<TlsRptLookup>;
  submitter: Submitter;
  queue: ReportQueue;
  https?: HttpsReportOptions;
  log: EngineLog;
  /** A report still not sent this many days after its day is abandoned (logged as an error). */
  maxAgeDays?: number;
  /** A day is reported this long after its end (late counts are flushed by then). */
  graceMs?: number;
  /** Results and report states of days older than this are removed (default 31). */
  keepDays?: number;
}

export interface CycleSummary {
  sent: number;
  failed: number;
  noRecord: number;
  abandoned: number;
}

export class ReportScheduler {
  private running: Promise<CycleSummary> | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly options: ReportSchedulerOptions) {}

  /** One cycle; a cycle asked for while one runs is that one. */
  cycle(): Promise<CycleSummary> {
    this.running ??= this.cycleNow().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  /** Runs cycle() every intervalMs until stop(). */
  start(intervalMs: number): void {
    this.timer ??= setInterval(() => {
      this.cycle().catch((error: Error) =>
        this.options.log.log('error', 'tlsrpt.cycle-failed', { error: error.message }),
      );
    }, intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    await this.running?.catch(() => undefined);
  }

  private async cycleNow(): Promise<CycleSummary> {
    const { stateDirectory, results, now, log } = this.options;
    const summary: CycleSummary = { sent: 0, failed: 0, noRecord: 0, abandoned: 0 };
    await results.flush();
    const at = now().getTime();
    const grace = this.options.graceMs ?? 5 * 60_000;
    const maxAge = (this.options.maxAgeDays ?? 7) * 86_400_000;
    const keep = Math.max(this.options.keepDays ?? 31, (this.options.maxAgeDays ?? 7) + 1);
    for (const day of await resultDays(stateDirectory)) {
      const { end } = dayRange(day);
      if (end.getTime() + grace > at) continue;
      if (at - end.getTime() > keep * 86_400_000) {
        // Reported or abandoned long ago (keep > maxAgeDays): the state directory stays bounded.
        await rm(join(resultsDirectory(stateDirectory), day), { recursive: true, force: true });
        await rm(join(reportsDirectory(stateDirectory), day), { recursive: true, force: true });
        log.log('info', 'tlsrpt.day-removed', { day });
        continue;
      }
      for (const domain of await resultDomains(stateDirectory, day)) {
        // One domain's trouble (a damaged file, a full disk) is its own: the others go on.
        const outcome = await readState(stateDirectory, day, domain)
          .then((state) =>
            state !== undefined && state.outcome !== 'pending'
              ? ('done' as const)
              : this.report(day, domain, state, at - end.getTime() > maxAge),
          )
          .catch((error: Error) => {
            log.log('error', 'tlsrpt.report-failed', { domain, day, error: error.message });
            return 'failed' as const;
          });
        if (outcome === 'done' || outcome === 'not-mailed') continue;
        if (outcome === 'sent') summary.sent += 1;
        else if (outcome === 'no-record') summary.noRecord += 1;
        else if (outcome === 'abandoned') summary.abandoned += 1;
        else summary.failed += 1;
      }
    }
    return summary;
  }

  private async report(
    day: string,
    domain: DomainName,
    known: ReportState | undefined,
    tooOld: boolean,
  ): Promise<'sent' | 'no-record' | 'abandoned' | 'not-mailed' | 'failed'> {
    const { stateDirectory, log, submitter } = this.options;
    const results = await readDomainDay(stateDirectory, day, domain);
    if (results === undefined) return 'failed';
    const state: ReportState = known ?? {
      version: 1,
      reportId: newReportId(results),
      delivered: [],
      outcome: 'pending',
      attempts: 0,
    };
    state.attempts += 1;
    const save = () => writeState(stateDirectory, day, domain, state);
    if (tooOld) {
      state.outcome = 'abandoned';
      await save();
      log.log('error', 'tlsrpt.report-abandoned', {
        domain,
        day,
        reportId: state.reportId,
        delivered: state.delivered,
        lastError: state.lastError ?? null,
      });
      return 'abandoned';
    }
    let lookup: TlsRptLookup;
    try {
      lookup = await this.options.lookup(domain);
    } catch (error) {
      // No answer is not "no record": tried again next cycle.
      state.lastError = `_smtp._tls.${domain}: ${(error as Error).message}`;
      await save();
      log.log('warn', 'tlsrpt.lookup-failed', { domain, day, error: state.lastError });
      return 'failed';
    }
    if (lookup.kind === 'none') {
      state.outcome = 'no-record';
      await save();
      log.log('debug', 'tlsrpt.no-record', { domain, day, why: lookup.why });
      return 'no-record';
    }
    const report = buildReport(results, submitter, state.reportId);
    const gzipped = gzipReport(report);
    const failures: string[] = [];
    const unsigned: string[] = [];
    for (const uri of lookup.rua) {
      if (state.delivered.includes(uri.uri) || state.notMailed?.includes(uri.uri)) continue;
      if (uri.kind === 'mailto' && submitter.dkim === undefined) {
        // Unsigned, the recipient must ignore it: not sent, and not tried again every cycle.
        unsigned.push(uri.uri);
        continue;
      }
      try {
        await this.send(uri, results, state.reportId, gzipped);
        state.delivered.push(uri.uri);
        // Kept at once: a crash after this does not send it there again.
        await save();
        log.log('info', 'tlsrpt.report-sent', {
          domain,
          day,
          reportId: state.reportId,
          rua: uri.uri,
        });
      } catch (error) {
        failures.push(`${uri.uri}: ${(error as Error).message}`);
      }
    }
    if (unsigned.length > 0) {
      state.notMailed = [...(state.notMailed ?? []), ...unsigned];
      await save();
      log.log('warn', 'tlsrpt.report-not-mailed', {
        domain,
        day,
        reportId: state.reportId,
        rua: unsigned,
        reason: NOT_SIGNED,
      });
    }
    if (failures.length > 0) {
      state.lastError = failures.join('; ');
      await save();
      log.log('warn', 'tlsrpt.report-deferred', {
        domain,
        day,
        reportId: state.reportId,
        error: state.lastError,
      });
      return 'failed';
    }
    const notMailed = state.notMailed ?? [];
    const mailedNowhere = state.delivered.length === 0 && notMailed.length > 0;
    state.outcome = mailedNowhere ? 'not-mailed' : 'sent';
    // Kept where `tlsrpt show` reads it: which rua did not get the report, and why.
    if (notMailed.length > 0) state.lastError = `${notMailed.join(', ')}: ${NOT_SIGNED}`;
    else delete state.lastError;
    await save();
    return mailedNowhere ? 'not-mailed' : 'sent';
  }

  private async send(
    uri: ReportUri,
    results: Awaited<ReturnType<typeof readDomainDay>> & object,
    reportId: string,
    gzipped: Buffer,
  ): Promise<void> {
    if (uri.kind === 'https') {
      await postReport(uri.url, gzipped, this.options.https);
      return;
    }
    const { submitter, queue, now } = this.options;
    // RFC 8460 §3: a report by mail carries a DKIM signature of ours, or the recipient ignores it.
    if (submitter.dkim === undefined) throw new Error(NOT_SIGNED);
    const message = await reportMessage({
      submitter,
      results,
      reportId,
      gzipped,
      to: uri.address,
      now: now(),
    });
    const body = await signReportMessage(message, submitter.dkim);
    await queue.accept({ from: submitter.from, recipients: [uri.address], body });
  }
}

const NOT_SIGNED =
  'not mailed: reports by mail must be DKIM-signed (RFC 8460 §3) and the Organization has no tlsReporting.dkim';

export function reportsDirectory(stateDirectory: string): string {
  return join(stateDirectory, 'tlsrpt', 'reports');
}

export async function readState(
  stateDirectory: string,
  day: string,
  domain: DomainName,
): Promise<ReportState | undefined> {
  try {
    return JSON.parse(
      await readFile(join(reportsDirectory(stateDirectory), day, `${domain}.json`), 'utf8'),
    ) as ReportState;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

async function writeState(
  stateDirectory: string,
  day: string,
  domain: DomainName,
  state: ReportState,
): Promise<void> {
  const directory = join(reportsDirectory(stateDirectory), day);
  await mkdir(directory, { recursive: true, mode: 0o700 });
  await writeFileDurably(join(directory, `${domain}.json`), `${JSON.stringify(state)}\n`);
}
