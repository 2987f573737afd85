// domsec export crds: the manifest kinds as Kubernetes CustomResourceDefinitions
// (apiextensions.k8s.io/v1), their openAPIV3Schema generated from schemas/ and made structural.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Command } from 'commander';
import { stringify } from 'yaml';
import { kindSchemas, type SchemaNode } from '../config/schema-documents.js';
import { API_VERSION, KINDS, type Kind } from '../model.js';
import { CliError } from './errors.js';
import { formatOption, jsonText, type OutputFormat } from './output.js';

const [GROUP = 'domsec.io', VERSION = 'v1alpha1'] = API_VERSION.split('/');

/** Formats the API server knows; others are left out rather than passed on as noise. */
const KUBERNETES_FORMATS = new Set([
  'int32',
  'int64',
  'float',
  'double',
  'byte',
  'date',
  'date-time',
  'hostname',
  'ipv4',
  'ipv6',
  'cidr',
  'uri',
  'email',
  'uuid',
]);

/** Keywords a structural schema may carry (value validations and documentation). */
const KEPT = new Set([
  'type',
  'title',
  'description',
  'default',
  'enum',
  'minimum',
  'maximum',
  'minItems',
  'maxItems',
  'minLength',
  'maxLength',
  'required',
]);

/**
 * The node as a structural schema: every node typed; no $ref, definitions, oneOf/anyOf/allOf
 * (domsec's own validation keeps enforcing those), no uniqueItems: true; `additionalProperties`
 * only where there are no `properties` (the API server prunes unknown fields instead);
 * `const` as a one-value enum.
 */
export function structural(node: SchemaNode, path = 'spec'): Record<string, unknown> {
  if (node.type === undefined || Array.isArray(node.type)) {
    throw new Error(`schemas/: ${path} needs one type to become a structural schema`);
  }
  const result: Record<string, unknown> = {};
  for (const [keyword, value] of Object.entries(node)) {
    if (KEPT.has(keyword)) result[keyword] = value;
  }
  if (node.const !== undefined) result.enum = [node.const];
  if (typeof node.pattern === 'string') Object.assign(result, kubernetesPattern(node));
  if (node.format !== undefined && KUBERNETES_FORMATS.has(node.format)) result.format = node.format;
  if (node.properties !== undefined) {
    result.properties = Object.fromEntries(
      Object.entries(node.properties).map(([name, child]) => [
        name,
        structural(child, `${path}.${name}`),
      ]),
    );
  } else if (typeof node.additionalProperties === 'object') {
    result.additionalProperties = structural(node.additionalProperties, `${path}.*`);
  }
  if (node.items !== undefined) result.items = structural(node.items, `${path}[]`);
  return result;
}

const LENGTH_LOOKAHEAD = '(?=[^/]{1,253}$)';

/**
 * The API server checks patterns with Go's RE2, which has no lookaround: the length lookahead of
 * the host name patterns becomes maxLength, and a pattern with any other lookaround is left out
 * (domsec's own validation still applies it).
 */
function kubernetesPattern(node: SchemaNode): { pattern?: string; maxLength?: number } {
  const pattern = node.pattern ?? '';
  const withoutLength = pattern.split(LENGTH_LOOKAHEAD).join('');
  if (/\(\?<?[=!]/.test(withoutLength)) return {};
  return withoutLength === pattern
    ? { pattern }
    : { pattern: withoutLength, maxLength: Math.min(node.maxLength ?? 253, 253) };
}

/** Lower-case plural, as resource names are: partnerdomains, trustanchors. */
export function plural(kind: Kind): string {
  // eslint-disable-next-line no-restricted-syntax -- a kind name, not a domain
  const lower = kind.toLowerCase();
  // English plurals: tlspolicies, as Kubernetes spells networkpolicies.
  return lower.endsWith('y') ? `${lower.slice(0, -1)}ies` : `${lower}s`;
}

export interface CustomResourceDefinition {
  apiVersion: 'apiextensions.k8s.io/v1';
  kind: 'CustomResourceDefinition';
  metadata: { name: string };
  spec: Record<string, unknown>;
}

export function customResourceDefinitions(): CustomResourceDefinition[] {
  const { specs } = kindSchemas();
  return KINDS.map((kind) => ({
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${plural(kind)}.${GROUP}` },
    spec: {
      group: GROUP,
      names: {
        kind,
        listKind: `${kind}List`,
        plural: plural(kind),
        // eslint-disable-next-line no-restricted-syntax -- a kind name, not a domain
        singular: kind.toLowerCase(),
        categories: ['domsec'],
      },
      scope: 'Namespaced',
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          schema: {
            openAPIV3Schema: {
              type: 'object',
              description: specs[kind].description,
              required: ['spec'],
              properties: {
                apiVersion: { type: 'string' },
                kind: { type: 'string' },
                // The API server owns metadata; a CRD may only constrain name.
                metadata: { type: 'object' },
                spec: structural(specs[kind]),
                status: {
                  type: 'object',
                  description: 'Reported by the reconciler; not part of a manifest.',
                  'x-kubernetes-preserve-unknown-fields': true,
                },
              },
            },
          },
          subresources: { status: {} },
        },
      ],
    },
  }));
}

/**
 * All CRDs as one multi-document YAML stream, or one file per kind in a directory. With -o json:
 * one object, `{ formatVersion, customResourceDefinitions }`, or with a directory the files
 * written, `{ formatVersion, written }` (the files stay YAML, as kubectl apply takes them).
 */
export async function exportCrds(
  outDir?: string,
  format: OutputFormat = 'text',
): Promise<string | undefined> {
  const crds = customResourceDefinitions();
  const header = '# Generated by `domsec export crds` from schemas/: do not edit.\n';
  if (outDir === undefined) {
    if (format === 'json') return jsonText({ customResourceDefinitions: crds });
    return `${header}${crds.map((crd) => stringify(crd, { lineWidth: 0 })).join('---\n')}`;
  }
  const written: string[] = [];
  try {
    await mkdir(outDir, { recursive: true });
    for (const crd of crds) {
      const path = join(outDir, `${crd.metadata.name}.yaml`);
      await writeFile(path, header + stringify(crd, { lineWidth: 0 }));
      written.push(path);
    }
  } catch (cause) {
    throw new CliError(`cannot write CRDs to ${outDir}: ${(cause as Error).message}`);
  }
  return format === 'json' ? jsonText({ written }) : undefined;
}

export function register(program: Command): void {
  const exporter = program.command('export').description('write domsec kinds in other formats');
  exporter
    .command('crds')
    .description(
      'Kubernetes CustomResourceDefinitions (apiextensions.k8s.io/v1) generated from schemas/',
    )
    .option('--out-dir <dir>', 'one file per kind in this directory, instead of standard output')
    .addOption(formatOption())
    .action(async (options: { outDir?: string; output: OutputFormat }) => {
      const text = await exportCrds(options.outDir, options.output);
      if (text !== undefined) process.stdout.write(text);
    });
}
