// TLS reporting results (RFC 8460 §4) per policy domain and UTC day, kept in the state directory:
// one small file per domain-day, tlsrpt/results/<YYYY-MM-DD>/<domain>.json, written whole
// (temporary name, fsync, rename). Sessions are counted in memory and written by flush() (the
// engine flushes every few seconds and on shutdown); a crash loses at most the counts since the
// last flush, never a file. Bounded: failure details per policy, policies per domain, domains per
// day; what is over a bound is still counted in the summary, only its detail goes.
import { mkdir, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileDurably } from '../../durable-file.js';
import { isCanonicalDomainName, type DomainName } from '../../domain-name.js';

export const RESULT_TYPES = [
  'starttls-not-supported',
  'certificate-host-mismatch',
  'certificate-expired',
  'certificate-not-trusted',
  'validation-failure',
  'tlsa-invalid',
  'dnssec-invalid',
  'dane-required',
  'sts-policy-fetch-error',
  'sts-policy-invalid',
  'sts-webpki-invalid',
] as const;
export type ResultType = (typeof RESULT_TYPES)[number];
export type PolicyType = 'tlsa' | 'sts' | 'no-policy-found';

/** One SMTP session's outcome under a policy domain's TLS policy. */
export interface SessionResult {
  policyDomain: DomainName;
  policyType: PolicyType;
  /** The TLSA records (presentation form) or the MTA-STS policy's lines; empty for no-policy-found. */
  policyStrings: readonly string[];
  /** MTA-STS mx patterns. */
  mxHost: readonly string[];
  result: 'success' | ResultType;
  sendingMtaIp?: string | undefined;
  receivingMxHostname?: string | undefined;
  receivingIp?: string | undefined;
  /** Free text for failure-reason-code (short; cut at 256). */
  reason?: string | undefined;
}

export interface FailureDetail {
  resultType: ResultType;
  sendingMtaIp?: string;
  receivingMxHostname?: string;
  receivingIp?: string;
  failureReasonCode?: string;
  count: number;
}

export interface PolicyResults {
  policyType: PolicyType;
  policyStrings: string[];
  mxHost: string[];
  success: number;
  failure: number;
  failures: FailureDetail[];
}

export interface DomainDay {
  version: 1;
  domain: DomainName;
  /** UTC day, YYYY-MM-DD. */
  day: string;
  policies: PolicyResults[];
}

export const LIMITS = {
  failureDetailsPerPolicy: 100,
  policiesPerDomain: 16,
  domainsPerDay: 10_000,
  policyStrings: 64,
  stringLength: 512,
} as const;

const DAY = /^\d{4}-\d{2}-\d{2}$/;

/** The UTC day of a time, YYYY-MM-DD. */
export function utcDay(at: Date): string {
  return at.toISOString().slice(0, 10);
}

export function resultsDirectory(stateDirectory: string): string {
  return join(stateDirectory, 'tlsrpt', 'results');
}

const cut = (text: string) => text.slice(0, LIMITS.stringLength);

export class TlsResults {
  private readonly days = new Map<string, Map<DomainName, DomainDay>>();
  private readonly dirty = new Set<string>();
  private flushing: Promise<void> = Promise.resolve();
  /** Sessions not kept because a day had too many domains already. */
  overflow = 0;

  constructor(
    private readonly stateDirectory: string,
    private readonly now: () => Date = () => new Date(),
  ) {}

  /** Counts one session (in memory; flush() writes it). */
  async record(result: SessionResult): Promise<void> {
    const day = utcDay(this.now());
    let domains = this.days.get(day);
    if (domains === undefined) {
      domains = new Map();
      this.days.set(day, domains);
    }
    let entry = domains.get(result.policyDomain);
    if (entry === undefined) {
      // A day written before (an engine restarted today) goes on from its file.
      entry = (await readDomainDay(this.stateDirectory, day, result.policyDomain)) ?? {
        version: 1,
        domain: result.policyDomain,
        day,
        policies: [],
      };
      // The read may have raced with another record of the same domain.
      entry = domains.get(result.policyDomain) ?? entry;
      if (!domains.has(result.policyDomain) && domains.size >= LIMITS.domainsPerDay) {
        this.overflow += 1;
        return;
      }
      domains.set(result.policyDomain, entry);
    }
    addResult(entry, result);
    this.dirty.add(`${day}/${result.policyDomain}`);
  }

  /** Writes every domain-day changed since the last flush; days before today leave memory. */
  flush(): Promise<void> {
    const run = this.flushing.then(() => this.flushNow());
    this.flushing = run.catch(() => undefined);
    return run;
  }

  private async flushNow(): Promise<void> {
    const pending = [...this.dirty];
    this.dirty.clear();
    try {
      for (const key of pending) {
        const [day = '', domain = ''] = key.split('/');
        const entry = this.days.get(day)?.get(domain as DomainName);
        if (entry === undefined) continue;
        const directory = join(resultsDirectory(this.stateDirectory), day);
        await mkdir(directory, { recursive: true, mode: 0o700 });
        await writeFileDurably(join(directory, `${domain}.json`), `${JSON.stringify(entry)}\n`);
      }
    } catch (error) {
      // Not written: tried again at the next flush.
      for (const key of pending) this.dirty.add(key);
      throw error;
    }
    const today = utcDay(this.now());
    for (const day of [...this.days.keys()])
      if (day < today && ![...this.dirty].some((key) => key.startsWith(`${day}/`)))
        this.days.delete(day);
  }
}

/** Adds one session to a domain-day (pure but for the entry it changes). */
export function addResult(entry: DomainDay, result: SessionResult): void {
  const policyStrings = result.policyStrings.slice(0, LIMITS.policyStrings).map(cut);
  const mxHost = result.mxHost.slice(0, LIMITS.policyStrings).map(cut);
  const key = JSON.stringify([result.policyType, policyStrings, mxHost]);
  let policy = entry.policies.find(
    (known) => JSON.stringify([known.policyType, known.policyStrings, known.mxHost]) === key,
  );
  if (policy === undefined) {
    if (entry.policies.length >= LIMITS.policiesPerDomain) {
      // The last slot takes what is over: counted, under the policy it last saw.
      policy = entry.policies[entry.policies.length - 1];
    } else {
      policy = {
        policyType: result.policyType,
        policyStrings,
        mxHost,
        success: 0,
        failure: 0,
        failures: [],
      };
      entry.policies.push(policy);
    }
  }
  if (policy === undefined) return;
  if (result.result === 'success') {
    policy.success += 1;
    return;
  }
  policy.failure += 1;
  const detail: Omit<FailureDetail, 'count'> = {
    resultType: result.result,
    ...(result.sendingMtaIp === undefined ? {} : { sendingMtaIp: cut(result.sendingMtaIp) }),
    ...(result.receivingMxHostname === undefined
      ? {}
      : { receivingMxHostname: cut(result.receivingMxHostname) }),
    ...(result.receivingIp === undefined ? {} : { receivingIp: cut(result.receivingIp) }),
    ...(result.reason === undefined ? {} : { failureReasonCode: result.reason.slice(0, 256) }),
  };
  const same = policy.failures.find(
    (known) =>
      known.resultType === detail.resultType &&
      known.sendingMtaIp === detail.sendingMtaIp &&
      known.receivingMxHostname === detail.receivingMxHostname &&
      known.receivingIp === detail.receivingIp &&
      known.failureReasonCode === detail.failureReasonCode,
  );
  if (same !== undefined) same.count += 1;
  else if (policy.failures.length < LIMITS.failureDetailsPerPolicy)
    policy.failures.push({ ...detail, count: 1 });
}

/** The file of a domain-day, or undefined when there is none; a damaged file throws. */
export async function readDomainDay(
  stateDirectory: string,
  day: string,
  domain: DomainName,
): Promise<DomainDay | undefined> {
  if (!DAY.test(day)) throw new Error(`${JSON.stringify(day)} is not a day (YYYY-MM-DD)`);
  let text: string;
  try {
    text = await readFile(join(resultsDirectory(stateDirectory), day, `${domain}.json`), 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  const parsed = JSON.parse(text) as DomainDay;
  if (
    parsed.version !== 1 ||
    parsed.domain !== domain ||
    parsed.day !== day ||
    !Array.isArray(parsed.policies)
  )
    throw new Error(`tlsrpt results ${day}/${domain}.json are not this domain-day's`);
  return parsed;
}

/** The days with results, oldest first. */
export async function resultDays(stateDirectory: string): Promise<string[]> {
  return (await listOrNone(resultsDirectory(stateDirectory)))
    .filter((name) => DAY.test(name))
    .sort();
}

/** The domains with results on a day, sorted. */
export async function resultDomains(stateDirectory: string, day: string): Promise<DomainName[]> {
  if (!DAY.test(day)) throw new Error(`${JSON.stringify(day)} is not a day (YYYY-MM-DD)`);
  return (await listOrNone(join(resultsDirectory(stateDirectory), day)))
    .filter((name) => name.endsWith('.json'))
    .map((name) => name.slice(0, -'.json'.length))
    .filter(isCanonicalDomainName)
    .sort();
}

async function listOrNone(directory: string): Promise<string[]> {
  try {
    return await readdir(directory);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
}
