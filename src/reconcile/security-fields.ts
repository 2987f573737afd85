// Every field of every kind, as the engine reports it (src/objects.ts), with the comparison that
// judges its change, and what creating or deleting an object means. A field missing here is
// treated as weakening when it changes; test/reconcile/security-fields.test.ts fails on one.
import type { JsonObject, JsonValue, Kind } from '../model.js';
import { parseHostPort } from '../units.js';
import { isLoopback } from './loopback.js';
import {
  addressCoverage,
  anyChangeWeakens,
  list,
  looserWhenOn,
  neutral,
  ordered,
  stricterWhenOn,
  widensWhenAdded,
  type Classification,
  type Verdict,
} from './security-comparisons.js';

export interface FieldRule extends Classification {
  /** Dotted path in the observable spec (what GET /v1/state reports). */
  path: string;
  /** Also classifies every path below it: a map or a list of objects compared whole. */
  whole?: boolean;
  /** Manifest fields (schemas/) the engine reports as this field, when their names differ. */
  from?: string[];
}

export interface KindRules {
  fields: FieldRule[];
  created: { rule: string; judge: (spec: JsonObject) => Verdict[] };
  deleted: { rule: string; judge: (spec: JsonObject) => Verdict[] };
}

const nothing = (rule: string) => ({ rule: `neutral: ${rule}`, judge: () => [] });

const field = (path: string, classification: Classification, extra: Partial<FieldRule> = {}) => ({
  path,
  ...classification,
  ...extra,
});

const get = (spec: JsonObject, path: string): JsonValue | undefined => {
  let value: JsonValue | undefined = spec;
  for (const key of path.split('.')) {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
    value = value[key];
  }
  return value;
};

const on = (spec: JsonObject, path: string) => get(spec, path) === true;

/** What each protective setting of a partner is called when it is gained or lost. */
const PARTNER_PROTECTIONS: [string, string][] = [
  ['domainSecure.send', 'domain security for sending'],
  ['domainSecure.receive', 'domain security for receiving'],
  ['requireHeaderFromDomain', 'the From: header domain check'],
];

const adminListen: Classification = {
  rule: 'moving beyond loopback weakens (the admin API becomes reachable from the network), back to loopback strengthens',
  compare: (before, after) => {
    const local = (value: JsonValue | undefined) => {
      const parsed = typeof value === 'string' ? parseHostPort(value) : undefined;
      // The schema's default is loopback; an unreadable address is taken as exposed.
      return value === undefined ? true : parsed !== undefined && isLoopback(parsed.host);
    };
    if (local(before) && !local(after))
      return [
        { impact: 'weakens', reason: `admin API exposed beyond loopback on ${String(after)}` },
      ];
    if (!local(before) && local(after))
      return [{ impact: 'strengthens', reason: 'admin API back on loopback' }];
    return [];
  },
};

/** Mail for added address spaces may now leave through a connector that does not require TLS. */
const sendAddressSpaces: Classification = {
  rule: 'on a connector without required TLS an added space weakens (its mail may leave in the clear); on one with required TLS a removed space weakens (its mail falls to another connector)',
  compare: (before, after, specs) => {
    const was = list(before);
    const will = list(after);
    const added = will.filter((space) => !was.includes(space));
    const removed = was.filter((space) => !will.includes(space));
    const verdicts: Verdict[] = [];
    if (added.length > 0 && specs.after.requireTls !== true)
      verdicts.push({
        impact: 'weakens',
        reason: `address spaces added to a connector without required TLS: ${added.join(', ')}`,
      });
    if (removed.length > 0 && specs.before.requireTls === true)
      verdicts.push({
        impact: 'weakens',
        reason: `address spaces removed from a connector with required TLS: ${removed.join(', ')}`,
      });
    return verdicts;
  },
};

/**
 * A domain no longer accepted is no longer ours: MAIL FROM in it, refused from clients that may
 * not relay (Exchange's authoritative-domain sender check), is accepted from anyone.
 */
const acceptedDomains: Classification = {
  rule: 'a removed domain weakens (senders claiming it, refused from outside before, are accepted); an added one strengthens (its senders are refused from outside)',
  compare: (before, after) => {
    const was = list(before);
    const will = list(after);
    const removed = was.filter((domain) => !will.includes(domain));
    const added = will.filter((domain) => !was.includes(domain));
    return [
      ...(removed.length > 0
        ? [
            {
              impact: 'weakens' as const,
              reason: `senders in ${removed.join(', ')} accepted from outside (no longer accepted domains)`,
            },
          ]
        : []),
      ...(added.length > 0
        ? [
            {
              impact: 'strengthens' as const,
              reason: `senders in ${added.join(', ')} refused from outside (accepted domains)`,
            },
          ]
        : []),
    ];
  },
};

/**
 * The lowest cost wins among connectors of the same address space, whatever their TLS: a cheaper
 * connector without required TLS, or a dearer one with it, may move a space's mail to a
 * connector that sends it in the clear. Which connectors share a space is not judged here.
 */
const sendCost: Classification = {
  rule: 'lowered on a connector without required TLS, or raised on one with it, weakens (mail for a space they share may move to a connector that does not require TLS); otherwise neutral',
  compare: (before, after, specs) => {
    const was = typeof before === 'number' ? before : undefined;
    const will = typeof after === 'number' ? after : undefined;
    if (was === will) return [];
    if (was === undefined || will === undefined) {
      const reason = `cost changed from ${String(before)} to ${String(after)}, not comparable: treated as weakening`;
      return [{ impact: 'weakens', reason }];
    }
    if (will < was && specs.after.requireTls !== true)
      return [
        {
          impact: 'weakens',
          reason: `cost lowered to ${will} on a connector without required TLS: it may now carry mail another connector sent with required TLS`,
        },
      ];
    if (will > was && specs.before.requireTls === true)
      return [
        {
          impact: 'weakens',
          reason: `cost raised to ${will} on a connector with required TLS: its mail may move to a connector without it`,
        },
      ];
    return [];
  },
};

const authMechanisms: Classification = {
  rule: 'losing `tls` weakens (no STARTTLS, no client certificate), gaining it strengthens',
  compare: (before, after) => {
    const was = before === undefined ? true : list(before).includes('tls');
    const will = after === undefined ? true : list(after).includes('tls');
    if (was && !will) return [{ impact: 'weakens', reason: 'TLS authentication withdrawn' }];
    if (!was && will) return [{ impact: 'strengthens', reason: 'TLS authentication offered' }];
    return [];
  },
};

const partnerDomain: Classification = {
  rule: 'a change weakens when the old domain had protection: it loses it (the new domain gains it)',
  compare: (before, _after, specs) =>
    PARTNER_PROTECTIONS.filter(([path]) => on(specs.before, path)).map(([, what]) => ({
      impact: 'weakens',
      reason: `${String(before)} loses ${what} (the partner's domain changes)`,
    })),
};

/** What the domains no TlsPolicy covers get. */
const TLS_POLICY_DEFAULTS = { dane: 'optional', mtaSts: 'optional', requireTls: false };

/** Ways a TLS policy is looser (weakens) or stricter than what uncovered domains get. */
function againstTlsDefaults(spec: JsonObject): { looser: string[]; stricter: string[] } {
  const looser: string[] = [];
  const stricter: string[] = [];
  for (const key of ['dane', 'mtaSts'] as const) {
    const value = get(spec, key) ?? TLS_POLICY_DEFAULTS[key];
    if (value === 'require') stricter.push(`${key}: require`);
    else if (value !== 'optional') looser.push(`${key}: ${String(value)}`);
  }
  if (on(spec, 'requireTls')) stricter.push('requireTls');
  return { looser, stricter };
}

/**
 * Domains added to a policy looser than the default lose enforcement they had (or may have had
 * from another policy); domains removed from a stricter one fall back to less.
 */
const tlsPolicyAddressSpaces: Classification = {
  rule: 'on a policy looser than the default (dane or mtaSts disable) an added space weakens; on one stricter (require, requireTls) a removed space weakens',
  compare: (before, after, specs) => {
    const was = list(before);
    const will = list(after);
    const added = will.filter((space) => !was.includes(space));
    const removed = was.filter((space) => !will.includes(space));
    const verdicts: Verdict[] = [];
    const { looser } = againstTlsDefaults(specs.after);
    const { stricter } = againstTlsDefaults(specs.before);
    if (added.length > 0 && looser.length > 0)
      verdicts.push({
        impact: 'weakens',
        reason: `${added.join(', ')} now under ${looser.join(', ')}`,
      });
    if (removed.length > 0 && stricter.length > 0)
      verdicts.push({
        impact: 'weakens',
        reason: `${removed.join(', ')} no longer under ${stricter.join(', ')}`,
      });
    return verdicts;
  },
};

const TLS_POLICY_RULES: KindRules = {
  fields: [
    field('addressSpaces', tlsPolicyAddressSpaces, { whole: true }),
    field('dane', ordered('DANE', ['require', 'optional', 'disable'])),
    field('mtaSts', ordered('MTA-STS', ['require', 'optional', 'disable'])),
    field('requireTls', stricterWhenOn('required TLS')),
  ],
  created: {
    rule: 'weakens when looser than the default for its spaces (dane or mtaSts disable), strengthens when stricter (require, requireTls)',
    judge: (spec) => {
      const { looser, stricter } = againstTlsDefaults(spec);
      const spaces = list(spec.addressSpaces).join(', ');
      return [
        ...looser.map((what) => ({ impact: 'weakens' as const, reason: `${what} for ${spaces}` })),
        ...stricter.map((what) => ({
          impact: 'strengthens' as const,
          reason: `${what} for ${spaces}`,
        })),
      ];
    },
  },
  deleted: {
    rule: 'weakens when it was stricter than the default (require, requireTls): its domains fall back to less; strengthens when it was looser',
    judge: (spec) => {
      const { looser, stricter } = againstTlsDefaults(spec);
      const spaces = list(spec.addressSpaces).join(', ');
      return [
        ...stricter.map((what) => ({
          impact: 'weakens' as const,
          reason: `${what} no longer for ${spaces} (policy deleted)`,
        })),
        ...looser.map((what) => ({
          impact: 'strengthens' as const,
          reason: `${what} no longer for ${spaces} (policy deleted)`,
        })),
      ];
    },
  },
};

export const SECURITY_FIELDS: Record<Kind, KindRules> = {
  Organization: {
    fields: [
      field('hostname', neutral('the name we give in EHLO; what we accept does not depend on it')),
      field('acceptedDomains', acceptedDomains, { whole: true }),
      field('certificate', neutral('which of our certificates we present')),
      field('delivery.maildir', neutral('where local mail is written')),
      field('delivery.relay.host', neutral('the internal mailbox server')),
      field('delivery.relay.protocol', neutral('SMTP or LMTP to the internal server')),
      field('delivery.relay.tls', {
        ...ordered('TLS to the mailbox server', ['required', 'opportunistic', 'none']),
        // The reasons plans have always printed for this field.
        compare: (before, after, specs) =>
          ordered('TLS to the mailbox server', ['required', 'opportunistic', 'none'])
            .compare(before, after, specs)
            .map((verdict) => ({
              ...verdict,
              reason:
                verdict.impact === 'weakens'
                  ? `TLS to the mailbox server lowered to ${String(after)}`
                  : `TLS to the mailbox server raised to ${String(after)}`,
            })),
      }),
      field('queue.retry', neutral('the retry schedule'), { whole: true }),
      field('queue.expireAfter', neutral('how long mail waits')),
      field('queue.delayNotice', neutral('when a delay notice goes')),
      field('resolver.servers', neutral('certificates, not DNS answers, prove a partner'), {
        whole: true,
      }),
      field(
        'resolver.validating',
        stricterWhenOn('DNSSEC validation by the resolver (DANE applies only with it)'),
      ),
      field('resolver.static', neutral('lab routes; certificates, not routes, prove a partner'), {
        whole: true,
      }),
      field(
        'mtaSts.mode',
        // No mtaSts at all publishes no policy: removing it lowers the mode to none.
        ordered('our published MTA-STS policy', ['enforce', 'testing', 'none'], 'none'),
      ),
      field(
        'mtaSts.mx',
        widensWhenAdded('MTA-STS mx patterns', 'senders accept TLS to another host as ours'),
        { whole: true },
      ),
      field('mtaSts.maxAge', neutral('how long senders keep our policy')),
      field(
        'publishesTlsa',
        stricterWhenOn('the check of our key against our published TLSA record'),
      ),
      field('mtaSts.listen', neutral('where our public policy is served')),
      field('admin.listen', adminListen),
      field('admin.tokenFile', neutral('where the token is read from')),
      field(
        'allowInternalPolicyHosts',
        looserWhenOn(
          'MTA-STS policy hosts at internal addresses fetched from (a domain can aim our requests at our own services)',
          'MTA-STS policy hosts at internal addresses refused again',
        ),
      ),
      field('tlsReporting.dkim.selector', neutral('which key signs the TLS reports we send')),
      field('tlsReporting.dkim.domain', neutral('which of our domains signs our TLS reports')),
      field('tlsReporting.dkim.keyFile', neutral('where the key of our TLS reports is read from')),
    ],
    // The first configuration is not gated; a renamed Organization is judged field by field
    // against the deleted one (plan.ts pairs them).
    created: nothing('the one Organization; a rename is compared with the old one field by field'),
    deleted: nothing('only ever replaced by another Organization, compared field by field'),
  },
  Certificate: {
    fields: [
      field('services', neutral('SMTP is the only service'), { whole: true }),
      field('fingerprint', neutral('the certificate we present, not one we accept'), {
        from: ['certFile'],
      }),
      field('notAfter', neutral('when our certificate expires (warned about in the plan)'), {
        from: ['certFile'],
      }),
      field('chainLength', neutral('the intermediates we send'), { from: ['chainFile'] }),
      field(
        'spkiSha256',
        neutral(
          'our key; the plan judges a new key of the Organization certificate against the TLSA record of the running one',
        ),
        { from: ['certFile'] },
      ),
      field('privateKey', neutral('our key, never shown'), { from: ['keyFile'] }),
    ],
    created: nothing('a certificate we may present'),
    deleted: nothing('a certificate we no longer present'),
  },
  TrustAnchor: {
    fields: [
      field(
        'system',
        looserWhenOn(
          "trusts the platform's public CA store",
          'no longer trusts the public CA store',
        ),
        {},
      ),
      field('fingerprint', anyChangeWeakens('another CA certificate is trusted'), {
        from: ['pemFile', 'pem'],
      }),
      field(
        'crl',
        {
          rule: 'removed weakens, added strengthens, replaced neutral (a newer list from the same CA, its signature checked at apply)',
          compare: (before, after) => {
            const was = before !== undefined && before !== null;
            const will = after !== undefined && after !== null;
            if (was && !will)
              return [{ impact: 'weakens', reason: 'certificate revocation list removed' }];
            if (!was && will)
              return [{ impact: 'strengthens', reason: 'certificate revocation list added' }];
            return [];
          },
        },
        { from: ['crlFile'] },
      ),
    ],
    created: {
      rule: 'with a CRL strengthens (revocation is checked for every chain through that CA); otherwise neutral (no partner trusts it until one names it)',
      judge: (spec) =>
        spec.crl === undefined || spec.crl === null
          ? []
          : [{ impact: 'strengthens', reason: 'certificate revocation list added' }],
    },
    deleted: {
      rule: 'with a CRL weakens (chains through that CA are no longer checked against it); otherwise neutral (partners that named it cannot any more)',
      judge: (spec) =>
        spec.crl === undefined || spec.crl === null
          ? []
          : [{ impact: 'weakens', reason: 'certificate revocation list removed' }],
    },
  },
  PartnerDomain: {
    fields: [
      field('domain', partnerDomain),
      field('domainSecure.send', stricterWhenOn('domain security for sending')),
      field('domainSecure.receive', stricterWhenOn('domain security for receiving')),
      field(
        'trustAnchors',
        widensWhenAdded('trust anchors', 'another CA may vouch for the partner'),
        { whole: true },
      ),
      field(
        'certificateNames',
        widensWhenAdded(
          'certificate names',
          'a certificate with that name, or any name below a wildcard, is accepted',
        ),
        { whole: true },
      ),
      field('certificateNameMatch', ordered('certificate name match', ['domain', 'subdomain'])),
      field(
        'clientCertificatePurpose',
        ordered('client certificate purpose', ['strict', 'standard']),
      ),
      field('remoteIPRanges', addressCoverage('remote IP ranges', true), { whole: true }),
      field('requireHeaderFromDomain', stricterWhenOn('the From: header domain check')),
    ],
    created: {
      rule: 'strengthens for each protection it brings (domain security in either direction, the From: check); otherwise neutral',
      judge: (spec) =>
        PARTNER_PROTECTIONS.filter(([path]) => on(spec, path)).map(([, what]) => ({
          impact: 'strengthens',
          reason: `${what} turned on`,
        })),
    },
    deleted: {
      rule: 'weakens for each protection it had: its domain loses domain security both ways',
      judge: (spec) =>
        PARTNER_PROTECTIONS.filter(([path]) => on(spec, path)).map(([, what]) => ({
          impact: 'weakens',
          reason: `${what} turned off (partner deleted)`,
        })),
    },
  },
  SendConnector: {
    fields: [
      field('addressSpaces', sendAddressSpaces, { whole: true }),
      field('cost', sendCost),
      field(
        'routing',
        neutral(
          'smart hosts are refused with domain security (DS001); certificates prove a partner',
        ),
        { whole: true },
      ),
      field('port', neutral("the next hops' port")),
      field('domainSecure', stricterWhenOn('domain security')),
      field('requireTls', stricterWhenOn('required TLS')),
      field('maxMessageSize', neutral('a size limit')),
      field('protocolLogging', neutral('what is logged, not what is accepted')),
    ],
    created: {
      rule: 'without required TLS weakens (mail for its spaces may leave in the clear, where it went by another connector or not at all); otherwise neutral',
      judge: (spec) =>
        spec.requireTls === true
          ? []
          : [
              {
                impact: 'weakens',
                reason: `mail for ${list(spec.addressSpaces).join(', ')} may leave without TLS`,
              },
            ],
    },
    deleted: {
      rule: 'with domain security or required TLS weakens (its mail falls to another, maybe looser, connector); otherwise neutral',
      judge: connectorDeleted,
    },
  },
  ReceiveConnector: {
    fields: [
      field('bindings', neutral('where it listens; who may connect is remoteIPRanges'), {
        whole: true,
      }),
      field('remoteIPRanges', addressCoverage('remote ranges', false), { whole: true }),
      field('authMechanisms', authMechanisms, { whole: true }),
      field('permitRelay', looserWhenOn('relay permitted', 'relay withdrawn')),
      field(
        'acceptAuthoritativeDomainSenders',
        looserWhenOn(
          'senders of our own accepted domains accepted from outside',
          'senders of our own accepted domains refused from outside',
        ),
      ),
      field('domainSecure', stricterWhenOn('domain security')),
      field('requireTls', stricterWhenOn('required TLS')),
      field('maxMessageSize', neutral('a size limit')),
      field('protocolLogging', neutral('what is logged, not what is accepted')),
      field('maxInboundConnection', neutral('a session limit')),
      field('maxInboundConnectionPerSource', neutral('a session limit')),
      field('connectionInactivityTimeout', neutral('a timeout')),
      field('stressInactivityTimeout', neutral('a timeout')),
      field('connectionTimeout', neutral('a timeout')),
      field('maxRecipientsPerMessage', neutral('a recipient limit')),
      field('maxHeaderSize', neutral('a size limit')),
    ],
    created: {
      rule: "weakens when it permits relay, accepts our own domains' senders from outside, or does not require TLS (it accepts clients that were refused, or served by a stricter connector); otherwise neutral",
      judge: (spec) => [
        ...(on(spec, 'permitRelay')
          ? [{ impact: 'weakens' as const, reason: 'relay permitted' }]
          : []),
        ...(on(spec, 'acceptAuthoritativeDomainSenders')
          ? [
              {
                impact: 'weakens' as const,
                reason: 'senders of our own accepted domains accepted from outside',
              },
            ]
          : []),
        ...(on(spec, 'requireTls')
          ? []
          : [{ impact: 'weakens' as const, reason: 'accepts clients without TLS' }]),
      ],
    },
    deleted: {
      rule: 'with domain security or required TLS weakens (its clients may reach a looser connector on the same binding); otherwise neutral (they are refused)',
      judge: connectorDeleted,
    },
  },
  TlsPolicy: TLS_POLICY_RULES,
};

/** The rule that classifies a changed path, or undefined: unclassified. */
export function ruleFor(kind: Kind, path: string): FieldRule | undefined {
  return SECURITY_FIELDS[kind].fields.find(
    (rule) => rule.path === path || (rule.whole === true && path.startsWith(`${rule.path}.`)),
  );
}

/** A deleted connector's protections go with it: domain security and required TLS. */
function connectorDeleted(spec: JsonObject): Verdict[] {
  return [
    ...(on(spec, 'domainSecure')
      ? [{ impact: 'weakens' as const, reason: 'domain security turned off (connector deleted)' }]
      : []),
    ...(on(spec, 'requireTls')
      ? [{ impact: 'weakens' as const, reason: 'required TLS turned off (connector deleted)' }]
      : []),
  ];
}
