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
} from '../model.js';
import { KINDS } from '../model.js';
import { securityImpact } from './security.js';

export function computePlan(desired: ObjectState[], actual: EngineState): Plan {
  const before = indexObjects(actual.objects);
  const after = indexObjects(desired);
  const changes: Change[] = [];

  for (const [key, object] of after) {
    const old = before.get(key);
    if (old === undefined) {
      changes.push(change(object.kind, object.name, 'create', null, object.spec, []));
      continue;
    }
    const fields = diffFields(old.spec, object.spec);
    if (fields.length > 0)
      changes.push(change(object.kind, object.name, 'update', old.spec, object.spec, fields));
  }
  for (const [key, object] of before) {
    if (!after.has(key))
      changes.push(change(object.kind, object.name, 'delete', object.spec, null, []));
  }

  changes.sort(
    (a, b) => KINDS.indexOf(a.kind) - KINDS.indexOf(b.kind) || a.name.localeCompare(b.name),
  );
  return {
    formatVersion: 1,
    baseGeneration: actual.generation,
    changes,
    domainSecureLists: domainSecureLists(actual.objects, desired),
    summary: {
      add: changes.filter((c) => c.action === 'create').length,
      change: changes.filter((c) => c.action === 'update').length,
      delete: changes.filter((c) => c.action === 'delete').length,
    },
  };
}

function change(
  kind: Kind,
  name: string,
  action: Change['action'],
  before: JsonObject | null,
  after: JsonObject | null,
  fields: FieldChange[],
): Change {
  const { impact, reasons } = securityImpact(kind, action, before, after);
  return { kind, name, action, before, after, fields, security: impact, reasons };
}

function indexObjects(objects: ObjectState[]): Map<string, ObjectState> {
  return new Map(objects.map((object) => [`${object.kind}/${object.name}`, object]));
}

/** Changed leaves as dotted paths; arrays compare as whole values (their order is meaningful). */
export function diffFields(before: JsonValue, after: JsonValue, path = ''): FieldChange[] {
  if (isObject(before) && isObject(after)) {
    const keys = [...new Set([...Object.keys(before), ...Object.keys(after)])].sort();
    return keys.flatMap((key) =>
      diffFields(before[key] ?? null, after[key] ?? null, path === '' ? key : `${path}.${key}`),
    );
  }
  if (JSON.stringify(before) === JSON.stringify(after)) return [];
  return [{ path, before, after }];
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
