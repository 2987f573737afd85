// The MTA-STS policies of recipient domains, kept in <state>/mta-sts/ until their max_age
// (RFC 8461 §5.1): the `_mta-sts` TXT id says when to fetch again, a policy in use is refreshed
// before it expires (§10.2), and a failed fetch or a missing record keeps an unexpired policy, so
// an attacker who blocks the look-up cannot remove it.
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileDurably } from '../../durable-file.js';
import type { DomainName } from '../../domain-name.js';
import {
  fetchStsPolicy,
  StsFetchError,
  type StsFetchFailure,
  type StsFetchOptions,
} from './mta-sts-fetch.js';
import { mxPattern, parseStsRecord, type StsPolicy } from './mta-sts-policy.js';
import { DnsLookupError } from './resolver.js';

interface CachedPolicy {
  formatVersion: 1;
  domain: string;
  id: string;
  fetchedAt: string;
  policy: StsPolicy;
}

export interface StsLookup {
  /** The policy in force, or undefined: the domain has none (as far as we can tell). */
  policy: StsPolicy | undefined;
  /** Where it came from. */
  source: 'fetched' | 'cache' | 'none';
  /** What went wrong on the way (a fetch failed, the record does not parse), for logs and probe. */
  problems: string[];
  /** The steps, for probe. */
  steps: string[];
  /** The domain publishes a policy (its TXT id) that could not be fetched or read: TLS reporting. */
  failure?: StsFetchFailure;
}

/** A policy in use is fetched again at least this often, though its id stays the same. */
export const REFRESH_AFTER_MS = 86_400_000;

export class StsPolicyCache {
  constructor(
    private readonly directory: string,
    private readonly now: () => number = Date.now,
  ) {}

  /** The policy in force for the domain, looked up (and fetched) through `fetch`'s resolver. */
  async lookup(domain: DomainName, fetch: StsFetchOptions): Promise<StsLookup> {
    const steps: string[] = [];
    const problems: string[] = [];
    const cached = await this.read(domain);
    const live = cached !== undefined && this.unexpired(cached) ? cached : undefined;
    if (live !== undefined)
      steps.push(
        `cached policy id ${live.id} (mode ${live.policy.mode}) until ${this.expiry(live).toISOString()}`,
      );
    const keep = (why: string): StsLookup => {
      if (live === undefined) {
        steps.push(`${why}; no cached policy: no MTA-STS`);
        return { policy: undefined, source: 'none', problems, steps };
      }
      steps.push(`${why}; the cached policy stays in force`);
      return { policy: live.policy, source: 'cache', problems, steps };
    };

    let id: string;
    try {
      const answer = await fetch.resolver.txt(`_mta-sts.${domain}`);
      const record = parseStsRecord(answer.records);
      if (!record.ok)
        return keep(
          `TXT _mta-sts.${domain}: ${answer.status === 'answer' ? record.reason : answer.status}`,
        );
      id = record.value.id;
      steps.push(`TXT _mta-sts.${domain}: id ${id}`);
    } catch (error) {
      if (!(error instanceof DnsLookupError)) throw error;
      problems.push(error.message);
      return keep(`TXT look-up failed (${error.message})`);
    }
    if (live !== undefined && live.id === id && !this.due(live)) {
      steps.push("the id is the cached policy's: not fetched again");
      return { policy: live.policy, source: 'cache', problems, steps };
    }
    if (live !== undefined && live.id === id)
      // RFC 8461 §10.2: a policy in use is refreshed before it expires, so that an attacker who
      // blocks the look-ups once it has cannot remove it; a failed refresh keeps it.
      steps.push('the cached policy is due for a refresh');
    try {
      const policy = await fetchStsPolicy(domain, fetch);
      steps.push(
        `fetched https://mta-sts.${domain}/.well-known/mta-sts.txt: mode ${policy.mode}, mx ${policy.mx.join(' ')}, max_age ${policy.maxAge}`,
      );
      try {
        await this.write(domain, {
          formatVersion: 1,
          domain,
          id,
          fetchedAt: new Date(this.now()).toISOString(),
          policy,
        });
      } catch (error) {
        // The policy holds for this delivery; the next one fetches it again.
        problems.push(
          `the policy could not be kept in ${this.directory}: ${(error as Error).message}`,
        );
      }
      return { policy, source: 'fetched', problems, steps };
    } catch (error) {
      const message = (error as Error).message;
      problems.push(message);
      const failure = error instanceof StsFetchError ? error.failure : 'sts-policy-fetch-error';
      return { ...keep(`policy fetch failed (${message})`), failure };
    }
  }

  /** Fetched again, the id unchanged, once half its max_age (at most a day) has passed. */
  private due(cached: CachedPolicy): boolean {
    const refreshMs = Math.min(cached.policy.maxAge * 500, REFRESH_AFTER_MS);
    return this.now() - Date.parse(cached.fetchedAt) >= refreshMs;
  }

  private unexpired(cached: CachedPolicy): boolean {
    return this.expiry(cached).getTime() > this.now();
  }

  private expiry(cached: CachedPolicy): Date {
    return new Date(Date.parse(cached.fetchedAt) + cached.policy.maxAge * 1000);
  }

  private file(domain: DomainName): string {
    // A canonical name is letters, digits, hyphens and dots: safe as a file name.
    return join(this.directory, `${domain}.json`);
  }

  /** The kept policy, or undefined when there is none or it does not read back whole. */
  private async read(domain: DomainName): Promise<CachedPolicy | undefined> {
    let text: string;
    try {
      text = await readFile(this.file(domain), 'utf8');
    } catch {
      return undefined;
    }
    try {
      const value = JSON.parse(text) as Partial<CachedPolicy>;
      const policy = value.policy;
      if (
        value.formatVersion !== 1 ||
        value.domain !== domain ||
        typeof value.id !== 'string' ||
        typeof value.fetchedAt !== 'string' ||
        Number.isNaN(Date.parse(value.fetchedAt)) ||
        policy === undefined ||
        !['enforce', 'testing', 'none'].includes(policy.mode) ||
        !Array.isArray(policy.mx) ||
        !policy.mx.every((p) => typeof p === 'string' && mxPattern(p) === p) ||
        typeof policy.maxAge !== 'number'
      )
        return undefined;
      return value as CachedPolicy;
    } catch {
      return undefined;
    }
  }

  private async write(domain: DomainName, cached: CachedPolicy): Promise<void> {
    await mkdir(this.directory, { recursive: true, mode: 0o700 });
    await writeFileDurably(this.file(domain), `${JSON.stringify(cached, null, 2)}\n`, 0o644);
  }
}
