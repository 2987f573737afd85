// examples/kubernetes as `kubectl kustomize` renders it, read for what an attacker in the cluster
// or in the pod would use: the probes ask /healthz and /readyz and nothing else (no token sent, no
// redirect followed, against the real admin API too); the admin token is in no rendered object,
// argument or environment; the admin API's port is offered by no Service; and every field the
// restricted Pod Security Standard forbids is absent from the rendered pod.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cp, readFile, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import yaml from 'js-yaml';
import { runtimeConfig } from '../support/runtime-config.js';
import { startEngine, type RunningEngine } from '../support/engine.js';
import { lab } from '../support/lab.js';
import { tempDir, type TempDir } from '../support/tmp.js';

const run = promisify(execFile);
const REPOSITORY = fileURLToPath(new URL('../../', import.meta.url));
const EXAMPLE = join(REPOSITORY, 'examples', 'kubernetes');
const KUBECTL = process.env.KUBECTL ?? 'kubectl';
const NODES = ['node-a', 'node-b'] as const;
const PROBES = ['startupProbe', 'livenessProbe', 'readinessProbe'] as const;

async function kubectlMissing(): Promise<string | undefined> {
  try {
    const { stdout } = await run(KUBECTL, ['version', '--client', '-o', 'json'], {
      timeout: 20_000,
    });
    const version = (JSON.parse(stdout) as { kustomizeVersion?: string }).kustomizeVersion ?? '';
    return Number(/^v(\d+)/.exec(version)?.[1] ?? 0) >= 5
      ? undefined
      : `${KUBECTL} embeds kustomize ${version || 'of no known version'}, v5 is needed`;
  } catch (error) {
    return `${KUBECTL} is not installed (${(error as NodeJS.ErrnoException).code ?? 'error'})`;
  }
}

const missing = await kubectlMissing();
if (missing !== undefined) console.log(`# skipping the Kubernetes attack test: ${missing}`);

/* eslint-disable @typescript-eslint/no-explicit-any -- rendered YAML, read field by field */
type K8sObject = { kind: string; metadata: { name: string }; spec?: any; data?: any };
type Container = Record<string, any>;
/* eslint-enable @typescript-eslint/no-explicit-any */

/** Every key anywhere in a value, with its path (to find a field wherever it is nested). */
function keysOf(value: unknown, path = ''): string[] {
  if (Array.isArray(value)) return value.flatMap((item, i) => keysOf(item, `${path}[${i}]`));
  if (value === null || typeof value !== 'object') return [];
  return Object.entries(value).flatMap(([key, inner]) => [
    `${path}.${key}`,
    ...keysOf(inner, `${path}.${key}`),
  ]);
}

/** The probe command's node -e program. */
function probeProgram(container: Container, probe: string): string[] {
  const command = container[probe]?.exec?.command as string[] | undefined;
  assert.ok(command, `${probe} is an exec probe`);
  assert.equal(command[0], 'node');
  return command.slice(1);
}

/** Runs a probe's program against an address instead of 127.0.0.1:8025: its exit code. */
async function runProbe(args: string[], address: string): Promise<number> {
  const aimed = args.map((arg) => arg.replaceAll('127.0.0.1:8025', address));
  return run(process.execPath, aimed, { timeout: 10_000 }).then(
    () => 0,
    (error: { code?: number }) => error.code ?? -1,
  );
}

describe('examples/kubernetes from an attacker in the cluster', { skip: missing }, () => {
  let dir: TempDir;
  const rendered = new Map<string, { objects: K8sObject[]; text: string }>();

  before(async () => {
    dir = await tempDir('domsec-kubernetes-attack-');
    const example = join(dir.path, 'kubernetes');
    await cp(EXAMPLE, example, { recursive: true });
    await writeFile(
      join(example, 'base', 'manifests', 'treyresearch-root.crt'),
      lab().treyRoot.certPem,
    );
    for (const path of [...NODES.map((node) => `nodes/${node}`), 'site', 'flux']) {
      const { stdout } = await run(KUBECTL, ['kustomize', join(example, path)], {
        timeout: 60_000,
        maxBuffer: 16 * 1024 * 1024,
      });
      rendered.set(path, { objects: yaml.loadAll(stdout) as K8sObject[], text: stdout });
    }
  });
  after(async () => {
    await dir?.remove();
  });

  const objects = (name: string) => rendered.get(`nodes/${name}`)?.objects ?? [];
  const pod = (name: string) => {
    const sets = objects(name).filter((o) => o.kind === 'StatefulSet');
    assert.equal(sets.length, 1);
    return sets[0]?.spec.template.spec as Container;
  };
  const containers = (name: string): Container[] => [
    ...(pod(name).initContainers ?? []),
    ...(pod(name).containers ?? []),
    ...(pod(name).ephemeralContainers ?? []),
  ];

  for (const name of NODES) {
    describe(name, () => {
      it('probes only /healthz and /readyz on loopback, sends no token and follows no redirect', async () => {
        assert.equal(containers(name).length, 1, 'one container: nothing else shares the loopback');
        const container = containers(name)[0] as Container;
        const seen: string[] = [];
        const server = createServer((request, response) => {
          seen.push(
            `${request.method} ${request.url} ${request.headers.authorization === undefined ? '' : 'with authorization'}`.trim(),
          );
          // An admin API that sends the prober elsewhere: it must not go.
          if (request.url !== '/v1/state') response.writeHead(302, { location: '/v1/state' }).end();
          else response.writeHead(200).end('{"secret":true}');
        });
        await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
        const address = `127.0.0.1:${(server.address() as AddressInfo).port}`;
        try {
          for (const probe of PROBES) {
            const program = probeProgram(container, probe);
            const text = program.join(' ');
            assert.match(text, /http:\/\/127\.0\.0\.1:8025\/(healthz|readyz)'/, probe);
            assert.equal(
              [...text.matchAll(/https?:\/\//g)].length,
              1,
              `${probe} asks one URL: ${text}`,
            );
            for (const field of ['httpGet', 'tcpSocket', 'grpc'])
              assert.equal(container[probe][field], undefined, `${probe}.${field}`);
            seen.length = 0;
            assert.equal(await runProbe(program, address), 1, `${probe}: a 302 is not success`);
            const path = probe === 'readinessProbe' ? '/readyz' : '/healthz';
            assert.deepEqual(seen, [`GET ${path}`], `${probe} asked exactly ${path}`);
          }
        } finally {
          server.closeAllConnections();
          await new Promise((resolve) => server.close(resolve));
        }
      });

      it('passes its probes against the real admin API without the token, readiness only once applied', async () => {
        const state = await tempDir('domsec-kubernetes-probe-');
        let running: RunningEngine | undefined;
        try {
          running = await startEngine(state.path);
          const address = new URL(running.control.url).host;
          const container = containers(name)[0] as Container;
          const code = (probe: string) => runProbe(probeProgram(container, probe), address);
          assert.equal(await code('livenessProbe'), 0);
          assert.equal(await code('readinessProbe'), 1, 'no generation yet');
          await running.client.apply(runtimeConfig());
          assert.equal(await code('readinessProbe'), 0);
          assert.equal(await code('startupProbe'), 0);
          for (const probe of PROBES)
            assert.ok(!probeProgram(container, probe).join(' ').includes(running.token));
        } finally {
          await running?.stop();
          await state.remove();
        }
      });

      it('holds the admin token in no object, argument or environment, and offers the admin port nowhere', () => {
        const text = rendered.get(`nodes/${name}`)?.text ?? '';
        assert.doesNotMatch(text, /DOMSEC_TOKEN|admin\.token|Bearer|tokenFile/);
        for (const container of containers(name)) {
          assert.equal(container.env, undefined, 'no environment');
          assert.equal(container.envFrom, undefined, 'no environment from objects');
          const args = [...(container.command ?? []), ...(container.args ?? [])] as string[];
          for (const flag of ['--token', '--token-file', '--admin'])
            assert.ok(!args.includes(flag), `no ${flag} in the arguments`);
          for (const port of container.ports ?? [])
            assert.notEqual(port.containerPort, 8025, 'the admin port is not a container port');
        }
        const organizations = objects(name)
          .filter((o) => o.kind === 'ConfigMap')
          .flatMap((o) => Object.values((o.data ?? {}) as Record<string, string>))
          .flatMap((file) => yaml.loadAll(file) as ({ kind?: string; spec?: Container } | null)[])
          .filter((doc) => doc?.kind === 'Organization');
        assert.equal(organizations.length, 1);
        const admin = organizations[0]?.spec?.admin as { listen?: string; tokenFile?: string };
        assert.match(admin.listen ?? '127.0.0.1:8025', /^(127\.\d+\.\d+\.\d+|\[::1\]):\d+$/);
        assert.equal(admin.tokenFile, undefined, 'the token stays in the state volume');
        for (const service of objects(name).filter((o) => o.kind === 'Service'))
          for (const port of service.spec.ports as { port: number; targetPort: unknown }[]) {
            assert.equal(port.port, 25, `${service.metadata.name} offers SMTP only`);
            assert.equal(port.targetPort, 'smtp');
          }
      });

      it('renders no field the restricted Pod Security Standard forbids', () => {
        const spec = pod(name);
        const keys = keysOf(spec);
        for (const forbidden of [
          'hostNetwork',
          'hostPID',
          'hostIPC',
          'hostUsers',
          'hostPath',
          'hostPort',
          'shareProcessNamespace',
          'procMount',
          'windowsOptions',
          'appArmorProfile',
        ])
          assert.ok(
            !keys.some((key) => key.endsWith(`.${forbidden}`)),
            `${forbidden}: ${keys.filter((k) => k.endsWith(forbidden)).join(', ')}`,
          );
        const allowedVolumes = new Set([
          'name',
          'configMap',
          'secret',
          'emptyDir',
          'persistentVolumeClaim',
          'projected',
          'downwardAPI',
          'csi',
          'ephemeral',
        ]);
        for (const volume of spec.volumes as Record<string, unknown>[])
          for (const type of Object.keys(volume))
            assert.ok(allowedVolumes.has(type), `volume type ${type}`);
        const podContext = spec.securityContext as Container;
        assert.equal(podContext.runAsNonRoot, true);
        assert.ok(podContext.runAsUser > 0 && podContext.runAsGroup > 0 && podContext.fsGroup > 0);
        assert.ok(!(podContext.supplementalGroups ?? []).includes(0), 'no root group');
        assert.ok(['RuntimeDefault', 'Localhost'].includes(podContext.seccompProfile?.type));
        for (const sysctl of podContext.sysctls ?? [])
          assert.ok(
            [
              'kernel.shm_rmid_forced',
              'net.ipv4.ip_local_port_range',
              'net.ipv4.ip_unprivileged_port_start',
              'net.ipv4.tcp_syncookies',
              'net.ipv4.ping_group_range',
            ].includes(sysctl.name),
            `unsafe sysctl ${sysctl.name}`,
          );
        for (const container of containers(name)) {
          const context = container.securityContext as Container;
          assert.equal(context.allowPrivilegeEscalation, false);
          assert.notEqual(context.privileged, true);
          assert.equal(context.readOnlyRootFilesystem, true);
          assert.deepEqual(context.capabilities?.drop, ['ALL']);
          assert.deepEqual(context.capabilities?.add ?? [], [], 'no capability added');
          assert.notEqual(context.runAsUser, 0);
          assert.notEqual(context.runAsNonRoot, false);
          assert.equal(context.seccompProfile?.type ?? 'RuntimeDefault', 'RuntimeDefault');
          assert.equal(context.seLinuxOptions, undefined);
        }
        assert.equal(spec.automountServiceAccountToken, false);
      });

      it('runs the image as the same numeric user, exposing the SMTP port only', async () => {
        const containerfile = await readFile(join(REPOSITORY, 'Containerfile'), 'utf8');
        const user = /^USER (\d+):(\d+)$/m.exec(containerfile);
        assert.ok(user, 'a numeric USER');
        assert.equal(Number(user[1]), pod(name).securityContext.runAsUser);
        assert.notEqual(Number(user[1]), 0);
        assert.deepEqual(
          [...containerfile.matchAll(/^EXPOSE (.+)$/gm)].map((m) => m[1]),
          ['2525'],
        );
        assert.doesNotMatch(containerfile, /^ENV .*TOKEN/m);
        assert.doesNotMatch(containerfile, /--admin|0\.0\.0\.0:8025/);
      });
    });
  }
});
