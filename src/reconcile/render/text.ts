// The human plan: `+` create, `~` update (each field before -> after), `-/+` replace, `-` delete,
// weakening changes marked `!` and listed again under Security, who may relay, Exchange's two
// lists, warnings, a summary line.
// Reads the Plan; computes nothing.
import type { Change, JsonValue, Plan, RelayPermission } from '../../model.js';
import { SENSITIVE } from '../../objects.js';
import { isSecretField } from '../../secret-fields.js';

export interface TextStyle {
  color: boolean;
  /** List the fields a created or deleted object holds at their default (the plan marks them). */
  showDefaults?: boolean;
}

const SYMBOL = { create: '+', update: '~', replace: '-/+', delete: '-' } as const;
const COLOR = {
  create: '\x1b[32m',
  update: '\x1b[33m',
  replace: '\x1b[35m',
  delete: '\x1b[31m',
  weakens: '\x1b[1;31m',
  reset: '\x1b[0m',
};

export function renderPlanText(plan: Plan, style: TextStyle = { color: false }): string {
  const paint = (code: string, text: string) =>
    style.color ? `${code}${text}${COLOR.reset}` : text;
  if (plan.changes.length === 0)
    return `No changes. The engine matches the manifests.\n${renderWarnings(plan, paint).join('\n')}`;

  const lines: string[] = [
    `Engine generation ${plan.baseGeneration}. domsec will perform these changes:`,
    '',
  ];
  let kind = '';
  for (const change of plan.changes) {
    if (change.kind !== kind) {
      kind = change.kind;
      lines.push(`${kind}:`);
    }
    const mark = change.security === 'weakens' ? paint(COLOR.weakens, '!') : ' ';
    lines.push(
      paint(COLOR[change.action], `${mark} ${SYMBOL[change.action]} ${change.kind}/${change.name}`),
    );
    lines.push(
      ...describeChange(change, style.showDefaults === true).map((line) => `      ${line}`),
    );
  }

  const weakening = plan.changes.filter((c) => c.security === 'weakens');
  if (weakening.length > 0) {
    lines.push('', paint(COLOR.weakens, 'Security: these changes weaken domain security:'));
    for (const change of weakening)
      lines.push(`  ! ${change.kind}/${change.name}: ${change.reasons.join('; ')}`);
  }
  const relay = plan.relay ?? [];
  if (relay.length > 0) {
    lines.push('', 'Relay: these clients may send mail to any domain through us:');
    for (const permission of relay) lines.push(describeRelay(permission, paint));
  }

  const lists = plan.domainSecureLists;
  const listLines = [
    ...listDelta('TLSSendDomainSecureList', lists.tlsSendDomainSecureList),
    ...listDelta('TLSReceiveDomainSecureList', lists.tlsReceiveDomainSecureList),
  ];
  if (listLines.length > 0) lines.push('', 'Exchange view (Set-TransportConfig):', ...listLines);

  if (plan.warnings.length > 0) lines.push('', ...renderWarnings(plan, paint).slice(0, -1));

  const { add, change, replace, delete: remove } = plan.summary;
  const replaced = replace > 0 ? ` ${replace} to replace,` : '';
  lines.push('', `Plan: ${add} to add, ${change} to change,${replaced} ${remove} to delete.`);
  return `${lines.join('\n')}\n`;
}

/** The Warnings section, ending with an empty string (a final newline once joined). */
function renderWarnings(plan: Plan, paint: (code: string, text: string) => string): string[] {
  if (plan.warnings.length === 0) return [];
  return [
    paint(COLOR.update, 'Warnings:'),
    ...plan.warnings.map((w) => `  ${w.kind}/${w.name}: ${w.message}`),
    '',
  ];
}

function describeChange(change: Change, showDefaults: boolean): string[] {
  if (change.action === 'update' || change.action === 'replace') {
    return [
      ...(change.replaceReasons ?? []).map((reason) => `# replaced: ${reason}`),
      ...change.fields.map(
        (field) =>
          `${field.path}: ${showField(field.path, field.before)} -> ${showField(field.path, field.after)}`,
      ),
    ];
  }
  const spec = change.action === 'create' ? change.after : change.before;
  if (spec === null) return [];
  const defaults = new Set(change.defaults ?? []);
  const lines = Object.entries(spec)
    .filter(([key]) => !defaults.has(key))
    .flatMap(([key, value]) => fieldBlock(key, key, value));
  if (defaults.size === 0) return lines;
  if (!showDefaults) {
    const sign = change.action === 'create' ? '+' : '-';
    lines.push(`${sign} ${defaults.size} default${defaults.size === 1 ? '' : 's'}`);
    return lines;
  }
  for (const key of defaults) {
    const block = fieldBlock(key, key, spec[key] ?? null);
    if (block[0] !== undefined) block[0] = `${block[0]}  # default`;
    lines.push(...block);
  }
  return lines;
}

/** A field as YAML reads: scalars and lists of scalars on its line, objects as indented blocks. */
function fieldBlock(path: string, label: string, value: JsonValue | null): string[] {
  if (isSecretField(path) && value !== null) return [`${label}: ${SENSITIVE}`];
  if (Array.isArray(value) && value.some((item) => item !== null && typeof item === 'object')) {
    return [`${label}:`, ...value.flatMap((item, index) => listItem(`${path}.${index}`, item))];
  }
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    const entries = Object.entries(value);
    if (entries.length === 0) return [`${label}: {}`];
    return [
      `${label}:`,
      ...entries.flatMap(([key, inner]) =>
        fieldBlock(`${path}.${key}`, key, inner).map((line) => `  ${line}`),
      ),
    ];
  }
  return [`${label}: ${flow(value)}`];
}

/** One item of a list of objects: `- ` before its first field, its other fields aligned. */
function listItem(path: string, item: JsonValue): string[] {
  const inner =
    item !== null && typeof item === 'object' && !Array.isArray(item)
      ? Object.entries(item).flatMap(([key, value]) => fieldBlock(`${path}.${key}`, key, value))
      : fieldBlock(path, '', item).map((line) => line.replace(/^: /, ''));
  return inner.map((line, at) => (at === 0 ? `  - ${line}` : `    ${line}`));
}

/** A scalar, or a list of scalars as `[a, b]`. */
function flow(value: JsonValue | null): string {
  if (Array.isArray(value)) return `[${value.map((item) => flow(item)).join(', ')}]`;
  return show(value);
}

const REACH = {
  loopback: 'loopback only',
  'private-networks': 'private networks',
  'beyond-private-networks': 'beyond private networks: an open relay',
} as const;

function describeRelay(
  permission: RelayPermission,
  paint: (code: string, text: string) => string,
): string {
  const ranges = [
    ...permission.loopback,
    ...permission.privateNetworks,
    ...permission.beyondPrivateNetworks,
  ];
  const where =
    permission.exposedBindings.length === 0
      ? ' (every binding is on loopback)'
      : ` on ${permission.exposedBindings.join(', ')}`;
  const reach = `(${REACH[permission.reach]})`;
  const line = `  ReceiveConnector/${permission.connector}: ${ranges.join(', ') || '(none)'}${where} ${reach}`;
  return permission.reach === 'beyond-private-networks' ? paint(COLOR.weakens, line) : line;
}

function listDelta(name: string, delta: { add: string[]; remove: string[] }): string[] {
  return [
    ...delta.add.map((domain) => `  ${name} += ${domain}`),
    ...delta.remove.map((domain) => `  ${name} -= ${domain}`),
  ];
}

function showField(path: string, value: JsonValue | null): string {
  // Fields that hold secrets (secret-fields.ts) are never printed, whatever the Plan carries.
  return isSecretField(path) && value !== null ? SENSITIVE : show(value);
}

function show(value: JsonValue | null): string {
  if (value === null) return '(none)';
  if (typeof value === 'string') return value;
  return JSON.stringify(value);
}
