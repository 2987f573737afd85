// What verification decides about a chain without the clock (tls/verify.ts computes it): kept on
// the generation's partner, so it goes with the generation that it was decided against.

/** A certificate on the path to the anchor, as far as its validity check needs it. */
export interface PathValidity {
  subject: string;
  notBefore: number;
  notAfter: number;
}

/**
 * For one chain against one partner in one role: the path to an anchor (undefined: none, with the
 * refusal), then the first key, purpose, name or OpenSSL refusal, which counts only once every
 * certificate on the path is valid.
 */
export type ChainFacts = { subject: string; fingerprint: string; names: string[] } & (
  | { path: undefined; refusal: string }
  | {
      path: PathValidity[];
      refusal: string | undefined;
      issuer: string;
      /** The anchor's CRL that was consulted, whose freshness is judged per call. */
      revocation?: { issuer: string; nextUpdate: number | undefined };
    }
);

/** Chains remembered per partner (least recently used first out): a partner uses one or two. */
export const MAX_CHAINS_PER_PARTNER = 64;
