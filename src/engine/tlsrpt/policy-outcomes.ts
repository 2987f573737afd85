// The send sessions' TLS policy outcomes since the engine started, per policy domain, for
// /metrics and the status page: success, or the failure by the result type TLS reporting names
// (RFC 8460 §4.3). Bounded: the first MAX_POLICY_DOMAINS domains seen keep their own counts, any
// later one is counted under `other`, so a sender to many domains cannot grow the label set.
import type { EngineEvent } from '../events.js';
import type { PolicyType, ResultType } from './results.js';

export const MAX_POLICY_DOMAINS = 100;

/** The domain label of every domain beyond the cap. */
export const OTHER_DOMAINS = 'other';

export type PolicyResult = 'success' | ResultType;

export interface PolicyOutcome {
  domain: string;
  policyType: PolicyType;
  result: PolicyResult;
  sessions: number;
}

/** One domain's outcomes as the status page shows them. */
export interface DomainPolicyOutcomes {
  domain: string;
  /** The policy types its sessions ran under (tlsa, sts, no-policy-found). */
  policyTypes: PolicyType[];
  successful: number;
  failed: number;
  /** Failed sessions by result type, most first. */
  failures: { result: ResultType; sessions: number }[];
}

export class PolicyOutcomes {
  /** domain → policy type → result → sessions. */
  private readonly counts = new Map<string, Map<PolicyType, Map<PolicyResult, number>>>();

  constructor(private readonly maxDomains = MAX_POLICY_DOMAINS) {}

  /** The EngineEvents subscriber: counts `send.tls-result`, ignores every other event. */
  observe(event: EngineEvent): void {
    if (event.type !== 'send.tls-result') return;
    const key =
      this.counts.has(event.domain) || this.counts.size < this.maxDomains
        ? event.domain
        : OTHER_DOMAINS;
    let byType = this.counts.get(key);
    if (byType === undefined) {
      byType = new Map();
      this.counts.set(key, byType);
    }
    let byResult = byType.get(event.policyType);
    if (byResult === undefined) {
      byResult = new Map();
      byType.set(event.policyType, byResult);
    }
    byResult.set(event.result, (byResult.get(event.result) ?? 0) + 1);
  }

  /** Every count, by domain, policy type and result, in that order. */
  outcomes(): PolicyOutcome[] {
    const outcomes: PolicyOutcome[] = [];
    for (const [domain, byType] of this.counts)
      for (const [policyType, byResult] of byType)
        for (const [result, sessions] of byResult)
          outcomes.push({ domain, policyType, result, sessions });
    return outcomes.sort(
      (a, b) =>
        compare(a.domain, b.domain) ||
        compare(a.policyType, b.policyType) ||
        compare(a.result, b.result),
    );
  }

  /** Per domain (`other` last): sessions that succeeded, failed, and the failures by type. */
  byDomain(): DomainPolicyOutcomes[] {
    const domains = new Map<string, DomainPolicyOutcomes>();
    for (const { domain, policyType, result, sessions } of this.outcomes()) {
      let view = domains.get(domain);
      if (view === undefined) {
        view = { domain, policyTypes: [], successful: 0, failed: 0, failures: [] };
        domains.set(domain, view);
      }
      if (!view.policyTypes.includes(policyType)) view.policyTypes.push(policyType);
      if (result === 'success') {
        view.successful += sessions;
        continue;
      }
      view.failed += sessions;
      const known = view.failures.find((failure) => failure.result === result);
      if (known === undefined) view.failures.push({ result, sessions });
      else known.sessions += sessions;
    }
    for (const view of domains.values())
      view.failures.sort((a, b) => b.sessions - a.sessions || compare(a.result, b.result));
    const other = domains.get(OTHER_DOMAINS);
    domains.delete(OTHER_DOMAINS);
    return [...domains.values(), ...(other === undefined ? [] : [other])];
  }
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
