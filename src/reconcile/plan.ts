// Planning: desired objects x the engine's actual state -> a Plan of typed changes, each with the
// fields that change and its security impact. Pure: no I/O, no printing (renderers do that).
import type {
  Change,
  DomainSecureListChanges,
  EngineState,
  FieldChange,
  JsonObject,
  JsonValue,
  Kind,
  ObjectState,
  Plan,
  PlanWarning,
  RelayPermission,
} from '../model.js';
import { KINDS } from '../model.js';
import { securityImpact } from './security.js';
import { defaultFields, schemaDefaults, type SpecDefaults } from './spec-defaults.js';
import { certificateExpiry, EXPIRY_WARNING_DAYS } from '../certificate-expiry.js';
import { domainName } from '../domain-name.js';
import { bindingOnLoopback, relayReach } from '../relay-ranges.js';

export interface PlanOptions {
  /** The time certificate expiry is judged against. */
  now?: Date;
  /** A certificate expiring within this many days is warned about. */
  expiryWarningDays?: number;
  /** Each kind's schema defaults (default: schemas/), marked on created and deleted objects. */
  defaults?: SpecDefaults;
}

export function computePlan(
  desired: ObjectState[],
  actual: EngineState,
  options: PlanOptions = {},
): Plan {
  const before = indexObjects(actual.objects);
  const after = indexObjects(desired);
  const failed = failedListeners(actual);
  const changes: Change[] = [];
  const defaults = options.defaults ?? schemaDefaults();
  const withDefaults = (planned: Change): Change => {
    const spec = planned.after ?? planned.before;
    if (spec !== null) planned.defaults = defaultFields(planned.kind, spec, defaults);
    return planned;
  };

  for (const [key, object] of after) {
    const old = before.get(key);
    if (old === undefined) {
      changes.push(withDefaults(change(object.kind, object.name, 'create', null, object.spec, [])));
      continue;
    }
    const fields = diffFields(old.spec, object.spec).filter(
      // An engine that does not report its key's digest is not changed by our reporting it.
      (f) => !(object.kind === 'Certificate' && f.path === KEY_DIGEST && f.before === null),
    );
    const replaceReasons = [
      ...(object.kind === 'ReceiveConnector' && fields.some((f) => f.path === 'bindings')
        ? ['bindings change: its listeners are rebound']
        : []),
      ...(failed.get(object.name) ?? []),
    ];
    const action = replaceReasons.length > 0 ? 'replace' : 'update';
    if (fields.length > 0 || replaceReasons.length > 0) {
      const planned = change(object.kind, object.name, action, old.spec, object.spec, fields);
      if (action === 'replace') planned.replaceReasons = replaceReasons;
      changes.push(planned);
    }
  }
  for (const [key, object] of before) {
    if (!after.has(key))
      changes.push(withDefaults(change(object.kind, object.name, 'delete', object.spec, null, [])));
  }

  judgeRenamedOrganization(changes);
  const tlsa = judgeTlsaRecord(changes, actual.objects, desired);
  changes.sort(
    (a, b) =>
      KINDS.indexOf(a.kind) - KINDS.indexOf(b.kind) ||
      (a.name < b.name ? -1 : a.name > b.name ? 1 : 0),
  );
  return {
    formatVersion: 1,
    baseGeneration: actual.generation,
    changes,
    domainSecureLists: domainSecureLists(actual.objects, desired),
    relay: relayPermissions(desired),
    warnings: [...warnings(changes, desired, actual, options), ...tlsa],
    summary: {
      add: changes.filter((c) => c.action === 'create').length,
      change: changes.filter((c) => c.action === 'update').length,
      replace: changes.filter((c) => c.action === 'replace').length,
      delete: changes.filter((c) => c.action === 'delete').length,
    },
  };
}

/** Receive connectors whose listener the engine reports as not listening: drift to repair. */
function failedListeners(actual: EngineState): Map<string, string[]> {
  const failed = new Map<string, string[]>();
  for (const listener of actual.listeners) {
    if (listener.listening) continue;
    const why = `listener ${listener.binding} is not listening${listener.error === undefined ? '' : ` (${listener.error})`}`;
    for (const connector of listener.connectors)
      failed.set(connector, [...(failed.get(connector) ?? []), why]);
  }
  return failed;
}

function warnings(
  changes: Change[],
  desired: ObjectState[],
  actual: EngineState,
  options: PlanOptions,
): PlanWarning[] {
  const found: PlanWarning[] = [];
  const now = options.now ?? new Date();
  for (const object of desired) {
    if (object.kind !== 'Certificate' || typeof object.spec.notAfter !== 'string') continue;
    const expiry = certificateExpiry(
      new Date(object.spec.notAfter),
      now,
      options.expiryWarningDays ?? EXPIRY_WARNING_DAYS,
    );
    if (expiry.state === 'expired') {
      found.push({
        code: 'certificate-expired',
        kind: object.kind,
        name: object.name,
        message: `expired on ${object.spec.notAfter}`,
      });
    } else if (expiry.state === 'expiring') {
      found.push({
        code: 'certificate-expiring',
        kind: object.kind,
        name: object.name,
        message: `expires in ${expiry.days} day(s), on ${object.spec.notAfter}`,
      });
    }
  }
  for (const change of changes) {
    if (change.kind !== 'PartnerDomain' || change.action !== 'delete') continue;
    const domain = domainName(String(change.before?.domain ?? ''));
    const queued = actual.queues
      .filter((q) => domain !== undefined && domainName(q.nextHopDomain) === domain)
      .reduce((sum, q) => sum + q.messageCount, 0);
    if (queued > 0) {
      found.push({
        code: 'queued-mail',
        kind: change.kind,
        name: change.name,
        message: `${queued} message(s) queued for ${domain} stay queued and go out under whatever configuration covers ${domain} next, no longer as a domain-secure partner`,
      });
    }
  }
  return found;
}

function change(
  kind: Kind,
  name: string,
  action: Change['action'],
  before: JsonObject | null,
  after: JsonObject | null,
  fields: FieldChange[],
): Change {
  const { impact, reasons } = securityImpact({ kind, action, before, after, fields });
  return { kind, name, action, before, after, fields, security: impact, reasons };
}

/**
 * There is one Organization: a new name with the old one gone is the same organization renamed,
 * so the created one is judged field by field against the deleted one (admin.listen moved
 * beyond loopback by a rename is still weakening).
 */
function judgeRenamedOrganization(changes: Change[]): void {
  const created = changes.find((c) => c.kind === 'Organization' && c.action === 'create');
  const deleted = changes.find((c) => c.kind === 'Organization' && c.action === 'delete');
  if (created?.after == null || deleted?.before == null) return;
  const { impact, reasons } = securityImpact({
    kind: 'Organization',
    action: 'update',
    before: deleted.before,
    after: created.after,
    fields: diffFields(deleted.before, created.after),
  });
  created.security = impact;
  created.reasons = reasons;
}

/** The Certificate field holding the data of a TLSA 3 1 1 record of its key (objects.ts). */
const KEY_DIGEST = 'spkiSha256';

/**
 * Our TLSA record (DANE-EE 3 1 1, `dns records`) is the digest of the Organization certificate's
 * key: a plan that changes that key (a new key in the certificate, or another certificate named)
 * makes the published record stop matching, and DANE senders would refuse us until the new one
 * is published. When the Organization says it publishes one (`publishesTlsa`), that change
 * weakens, saying which record to publish first; otherwise a new key is an ordinary change. Against an engine that
 * does not report its key's digest nothing can be compared: a warning says so.
 */
function judgeTlsaRecord(
  changes: Change[],
  actual: ObjectState[],
  desired: ObjectState[],
): PlanWarning[] {
  const organizationCertificate = (objects: ObjectState[]) => {
    const organization = objects.find((o) => o.kind === 'Organization');
    const name = organization?.spec.certificate;
    const certificate = objects.find((o) => o.kind === 'Certificate' && o.name === name);
    return organization === undefined || certificate === undefined
      ? undefined
      : { organization, certificate };
  };
  const before = organizationCertificate(actual);
  const after = organizationCertificate(desired);
  if (before === undefined || after === undefined) return [];
  // Only a published record can stop matching; rotating a key nobody pinned is routine.
  if (after.organization.spec.publishesTlsa !== true) return [];
  const was = before.certificate.spec[KEY_DIGEST];
  const will = after.certificate.spec[KEY_DIGEST];
  // Another certificate named: the Organization's change; the same one: the Certificate's.
  const target =
    before.certificate.name === after.certificate.name
      ? changes.find(
          (c) =>
            c.kind === 'Certificate' && c.name === after.certificate.name && c.action !== 'delete',
        )
      : changes.find((c) => c.kind === 'Organization' && c.action !== 'delete');
  if (target === undefined || typeof will !== 'string') return [];
  const hostname = String(after.organization.spec.hostname);
  const record = `_25._tcp.${hostname}. IN TLSA 3 1 1 ${will}`;
  if (typeof was !== 'string') {
    return [
      {
        code: 'tlsa-not-compared',
        kind: target.kind,
        name: target.name,
        message: `the engine does not report the key of Certificate/${before.certificate.name}: cannot compare it with our TLSA record; if the key changes, publish the next TLSA record first: ${record}`,
      },
    ];
  }
  if (was === will) return [];
  target.security = 'weakens';
  target.reasons.push(
    `our key changes: the TLSA 3 1 1 record of the running key (${was}) no longer matches; publish the next TLSA record first: ${record}`,
  );
  return [];
}

function indexObjects(objects: ObjectState[]): Map<string, ObjectState> {
  return new Map(objects.map((object) => [`${object.kind}/${object.name}`, object]));
}

/** Changed leaves as dotted paths; arrays compare as whole values (their order is meaningful). */
export function diffFields(before: JsonValue, after: JsonValue, path = ''): FieldChange[] {
  const changes: FieldChange[] = [];
  collectChanges(before, after, path, changes);
  return changes;
}

function collectChanges(
  before: JsonValue,
  after: JsonValue,
  path: string,
  changes: FieldChange[],
): void {
  if (isObject(before) && isObject(after)) {
    const keys = Object.keys(before);
    for (const key of Object.keys(after)) if (!Object.hasOwn(before, key)) keys.push(key);
    keys.sort();
    for (const key of keys) {
      collectChanges(
        before[key] ?? null,
        after[key] ?? null,
        path === '' ? key : `${path}.${key}`,
        changes,
      );
    }
    return;
  }
  if (!sameJson(before, after)) changes.push({ path, before, after });
}

/** Deep equality of JSON values, as comparing their JSON texts would judge it. */
function sameJson(a: JsonValue, b: JsonValue): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    return a.every((item, index) => sameJson(item, b[index] ?? null));
  }
  const keys = Object.keys(a);
  // Key order is part of the JSON text; objects built from the same schema agree on it.
  const other = Object.keys(b);
  if (keys.length !== other.length) return false;
  return keys.every(
    (key, index) => key === other[index] && sameJson(a[key] ?? null, b[key] ?? null),
  );
}

function isObject(value: JsonValue): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function domainSecureLists(actual: ObjectState[], desired: ObjectState[]): DomainSecureListChanges {
  const list = (objects: ObjectState[], direction: 'send' | 'receive') =>
    new Set(
      objects
        .filter((o) => o.kind === 'PartnerDomain')
        .filter((o) => (o.spec.domainSecure as JsonObject | undefined)?.[direction] === true)
        .map((o) => String(o.spec.domain)),
    );
  const delta = (direction: 'send' | 'receive') => {
    const was = list(actual, direction);
    const will = list(desired, direction);
    return {
      add: [...will].filter((d) => !was.has(d)).sort(),
      remove: [...was].filter((d) => !will.has(d)).sort(),
    };
  };
  return { tlsSendDomainSecureList: delta('send'), tlsReceiveDomainSecureList: delta('receive') };
}

/**
 * Who may relay once the plan is applied, by coverage of each connector's ranges: a reviewer sees
 * a relay open to the Internet apart from one open to loopback, which `relay permitted` alone
 * does not tell. Validate refuses the first (DS019); this is what the engine would be told.
 */
function relayPermissions(desired: ObjectState[]): RelayPermission[] {
  const strings = (value: JsonValue | undefined) =>
    Array.isArray(value) ? value.map((item) => String(item)) : [];
  return desired
    .filter((o) => o.kind === 'ReceiveConnector' && o.spec.permitRelay === true)
    .map((connector): RelayPermission => {
      const exposedBindings = strings(connector.spec.bindings).filter(
        (binding) => !bindingOnLoopback(binding),
      );
      const reach = relayReach(strings(connector.spec.remoteIPRanges));
      return {
        connector: connector.name,
        exposedBindings,
        reach:
          exposedBindings.length === 0
            ? 'loopback'
            : reach.beyond.length > 0
              ? 'beyond-private-networks'
              : reach.private.length > 0
                ? 'private-networks'
                : 'loopback',
        loopback: reach.loopback,
        privateNetworks: reach.private,
        beyondPrivateNetworks: reach.beyond,
      };
    })
    .sort((a, b) => (a.connector < b.connector ? -1 : a.connector > b.connector ? 1 : 0));
}
