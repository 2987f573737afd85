// One list of secret field names (src/secret-fields.ts) for the log and for plans: every schema
// property whose name looks secret is on it or says why not; the log redacts each name and the
// plan text prints each as (sensitive), in any case and at any depth the renderer shows.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { pinoLog } from '../../src/engine/log.js';
import type { EngineState, ObjectState } from '../../src/model.js';
import { computePlan } from '../../src/reconcile/plan.js';
import { renderPlanText } from '../../src/reconcile/render/text.js';
import { runtimeConfigSchemas } from '../../src/runtime-config-schema.js';
import { isSecretField, NOT_SECRET_FIELDS, SECRET_FIELDS } from '../../src/secret-fields.js';

const LOOKS_SECRET = /key|token|secret|passw|private|credential|authoriz|^auth|bearer|cookie/i;

/** Every property name a schema document declares, at any depth. */
function propertyNames(node: unknown, names = new Set<string>()): Set<string> {
  if (Array.isArray(node)) for (const item of node) propertyNames(item, names);
  else if (node !== null && typeof node === 'object') {
    const properties = (node as { properties?: unknown }).properties;
    if (properties !== null && typeof properties === 'object') {
      for (const name of Object.keys(properties)) names.add(name);
    }
    for (const value of Object.values(node)) propertyNames(value, names);
  }
  return names;
}

function allSchemaPropertyNames(): Set<string> {
  const directory = new URL('../../schemas/', import.meta.url);
  const names = new Set<string>();
  for (const file of readdirSync(directory).filter((f) => f.endsWith('.json'))) {
    propertyNames(JSON.parse(readFileSync(new URL(file, directory), 'utf8')), names);
  }
  const { runtimeConfig, referenced } = runtimeConfigSchemas();
  propertyNames([runtimeConfig, ...referenced], names);
  return names;
}

describe('secret field names', () => {
  it('cover every schema property whose name looks secret, or say why it holds none', () => {
    const names = allSchemaPropertyNames();
    assert.ok(names.has('keyPem') && names.has('tokenFile'), 'the walk reaches the runtime config');
    const uncovered = [...names]
      .filter((name) => LOOKS_SECRET.test(name))
      .filter((name) => !isSecretField(name) && !NOT_SECRET_FIELDS.includes(name));
    assert.deepEqual(uncovered, [], 'add each to SECRET_FIELDS or NOT_SECRET_FIELDS');
    for (const name of NOT_SECRET_FIELDS) assert.equal(isSecretField(name), false, name);
  });

  it('are matched as the last segment of a path, in any case', () => {
    for (const name of SECRET_FIELDS) {
      assert.ok(isSecretField(name));
      assert.ok(isSecretField(`spec.admin.${name}`));
      assert.ok(isSecretField(name.toUpperCase()));
      assert.equal(isSecretField(`${name}Hint`), false);
      assert.equal(isSecretField(`spec.${name}.fingerprint`), false);
    }
  });

  it('are redacted by the log, at the top level and one level down', () => {
    const lines: string[] = [];
    const log = pinoLog({ write: (line) => lines.push(line), format: 'json' });
    for (const [index, name] of SECRET_FIELDS.entries()) {
      log.log('info', 'test.secret', {
        [name]: `TOP-SECRET-${index}`,
        nested: { [name]: `NESTED-SECRET-${index}` },
      });
    }
    const text = lines.join('');
    assert.doesNotMatch(text, /TOP-SECRET|NESTED-SECRET/);
    assert.equal(text.match(/\[redacted\]/g)?.length, SECRET_FIELDS.length * 2);
  });

  it('are printed as (sensitive) by the plan, whatever a Plan carries', () => {
    const spec = Object.fromEntries(SECRET_FIELDS.map((name, i) => [name, `PLAN-SECRET-${i}`]));
    const desired: ObjectState = {
      kind: 'Certificate',
      name: 'mail',
      spec: { fingerprint: 'AA', nested: { ...spec }, ...spec },
    };
    const engine: EngineState = {
      formatVersion: 1,
      generation: 1,
      appliedAt: null,
      source: null,
      hostname: 'mail.adatum.com',
      objects: [],
      listeners: [],
      queues: [],
    };
    const text = renderPlanText(computePlan([desired], engine));
    assert.doesNotMatch(text, /PLAN-SECRET/);
    for (const name of SECRET_FIELDS) assert.match(text, new RegExp(`${name}: \\(sensitive\\)`));
  });
});
