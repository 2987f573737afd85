// What the engine last saw of each partner's domain security, per direction: the last verified
// certificate (subject, fingerprint, expiry) and the last refusal. Fed by the engine's events
// (a subscriber of EngineEvents), read by the status page and by /metrics.
import type { EngineEvent } from './events.js';
import { domainName } from '../domain-name.js';

export type PartnerDirection = 'send' | 'receive';

export interface SeenCertificate {
  subject: string;
  fingerprint: string;
  /** ISO time; null when the event did not say. */
  notAfter: string | null;
  /** When it was verified (ISO). */
  at: string;
}

export interface PartnerRefusal {
  reason: string;
  at: string;
  subject: string | null;
  fingerprint: string | null;
}

export interface PartnerDirectionHealth {
  /** The outcome of the latest verification: secured, or failing with the refusal's reason. */
  result: 'secured' | 'failing';
  lastVerified: SeenCertificate | null;
  lastRefusal: PartnerRefusal | null;
}

type Key = `${PartnerDirection} ${string}`;

export class PartnerHealth {
  private readonly seen = new Map<Key, PartnerDirectionHealth>();

  constructor(private readonly clock: () => Date = () => new Date()) {}

  /** The EngineEvents subscriber: picks the events that verify or refuse a partner. */
  observe(event: EngineEvent): void {
    switch (event.type) {
      case 'send.partner-verified':
        return this.verified('send', event.partner, event);
      case 'send.partner-refused':
        return this.refused('send', event.partner, { ...event, subject: event.subject ?? null });
      case 'partner.refused':
        return this.refused('receive', event.partner, {
          ...event,
          subject: null,
          fingerprint: null,
        });
      case 'queue.accepted': {
        const by = event.domainSecured;
        if (by === null) return;
        return this.verified('receive', by.partner, {
          subject: by.certificateSubject,
          fingerprint: by.certificateFingerprint,
          notAfter: by.certificateNotAfter ?? null,
        });
      }
      default:
        return;
    }
  }

  /** The health of one partner in one direction; undefined before any session with it. */
  get(partner: string, direction: PartnerDirection): PartnerDirectionHealth | undefined {
    return this.seen.get(healthKey(direction, partner));
  }

  /** Every partner seen, for the certificate expiry gauges. */
  entries(): { partner: string; direction: PartnerDirection; health: PartnerDirectionHealth }[] {
    return [...this.seen].map(([key, health]) => {
      const [direction, partner] = key.split(' ') as [PartnerDirection, string];
      return { partner, direction, health };
    });
  }

  /** Partners no longer configured are forgotten, so the page and the gauges follow the config. */
  retain(partners: ReadonlySet<string>): void {
    for (const key of this.seen.keys()) {
      if (!partners.has(key.slice(key.indexOf(' ') + 1))) this.seen.delete(key);
    }
  }

  private verified(
    direction: PartnerDirection,
    partner: string,
    certificate: { subject: string; fingerprint: string; notAfter: string | null },
  ): void {
    const previous = this.get(partner, direction);
    this.seen.set(healthKey(direction, partner), {
      result: 'secured',
      lastVerified: {
        subject: text(certificate.subject) ?? '',
        fingerprint: text(certificate.fingerprint) ?? '',
        notAfter: isoTime(certificate.notAfter),
        at: this.clock().toISOString(),
      },
      lastRefusal: previous?.lastRefusal ?? null,
    });
  }

  private refused(
    direction: PartnerDirection,
    partner: string,
    refusal: { reason: string; subject: string | null; fingerprint: string | null },
  ): void {
    const previous = this.get(partner, direction);
    this.seen.set(healthKey(direction, partner), {
      result: 'failing',
      lastVerified: previous?.lastVerified ?? null,
      lastRefusal: {
        reason: text(refusal.reason) ?? 'refused',
        at: this.clock().toISOString(),
        subject: text(refusal.subject),
        fingerprint: text(refusal.fingerprint),
      },
    });
  }
}

function text(value: unknown): string | null {
  return typeof value === 'string' && value !== '' ? value : null;
}

/** X509Certificate.validTo ("Nov 25 09:00:00 2027 GMT") or ISO, as ISO; null when unreadable. */
function isoTime(value: unknown): string | null {
  if (typeof value !== 'string') return null;
  const time = Date.parse(value);
  return Number.isNaN(time) ? null : new Date(time).toISOString();
}

/** Partners by canonical domain (a log field may carry any spelling; the engine logs canonical). */
function healthKey(direction: PartnerDirection, partner: string): `${PartnerDirection} ${string}` {
  return `${direction} ${domainName(partner) ?? partner}`;
}
