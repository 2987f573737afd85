// How far a certificate is from its notAfter, judged once for validate (DS006, DS101) and for
// plan and apply (their expiry warnings), so both name the same day count for one certificate.

/** A certificate expiring within this many days is warned about. */
export const EXPIRY_WARNING_DAYS = 30;

const DAY = 86_400_000;

export type CertificateExpiry =
  | { state: 'expired' }
  /** days: the days it has left, counting a day begun as one (10 days less a minute is 10). */
  | { state: 'expiring' | 'valid'; days: number };

/**
 * notAfter is the last instant the certificate is valid (RFC 5280 4.1.2.5: inclusive), so it
 * is expired only after it; within warningDays of it, it is expiring.
 */
export function certificateExpiry(
  notAfter: Date,
  now: Date,
  warningDays: number = EXPIRY_WARNING_DAYS,
): CertificateExpiry {
  const left = notAfter.getTime() - now.getTime();
  if (left < 0) return { state: 'expired' };
  const days = Math.ceil(left / DAY);
  return { state: days <= warningDays ? 'expiring' : 'valid', days };
}
