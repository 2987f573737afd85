// examples/kubernetes as a cluster would get it: `kubectl kustomize` renders every overlay, and
// the objects are checked for what the deployment relies on (one pod per node with its own
// volume, port 25 keeping client addresses, probes reaching the loopback admin API, a security
// context the restricted Pod Security Standard admits, the disruption budget over every node,
// Flux deploying each overlay); the manifests in the generated ConfigMaps pass `domsec validate`
// in the layout the kubelet mounts them in.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { cp, mkdir, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join, posix } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import yaml from 'js-yaml';
import { issueCertificate } from '../../src/pki/lab.js';
import { domsec } from '../support/cli.js';
import { lab } from '../support/lab.js';
import { freePort } from '../support/ports.js';
import { tempDir, type TempDir } from '../support/tmp.js';
import { KubeletVolume } from './kubelet-volume.js';

const run = promisify(execFile);
const REPOSITORY = fileURLToPath(new URL('../../', import.meta.url));
const EXAMPLE = join(REPOSITORY, 'examples', 'kubernetes');
const NODES = ['node-a', 'node-b'] as const;
const KUBECTL = process.env.KUBECTL ?? 'kubectl';

/** Why the render cannot run here (no kubectl, or one whose kustomize is older than v5), or undefined. */
async function kubectlMissing(): Promise<string | undefined> {
  try {
    const { stdout } = await run(KUBECTL, ['version', '--client', '-o', 'json'], {
      timeout: 20_000,
    });
    const version = (JSON.parse(stdout) as { kustomizeVersion?: string }).kustomizeVersion ?? '';
    const major = Number(/^v(\d+)/.exec(version)?.[1] ?? 0);
    return major >= 5
      ? undefined
      : `${KUBECTL} embeds kustomize ${version || 'of no known version'}; kubectl 1.27 or later (kustomize v5) is needed`;
  } catch (error) {
    return `${KUBECTL} is not installed (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}): install kubectl 1.27 or later, or set KUBECTL`;
  }
}

const missing = await kubectlMissing();
if (missing !== undefined) console.log(`# skipping the Kubernetes render test: ${missing}`);

// The parts of the objects the assertions read; anything else stays unknown.
interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  spec?: any; // eslint-disable-line @typescript-eslint/no-explicit-any -- parsed YAML, checked field by field below
  data?: Record<string, string>;
}

async function render(directory: string): Promise<K8sObject[]> {
  const { stdout } = await run(KUBECTL, ['kustomize', directory], {
    timeout: 60_000,
    maxBuffer: 16 * 1024 * 1024,
  });
  return yaml.loadAll(stdout) as K8sObject[];
}

function one(objects: K8sObject[], kind: string, name?: string): K8sObject {
  const found = objects.filter(
    (o) => o.kind === kind && (name === undefined || o.metadata.name === name),
  );
  assert.equal(
    found.length,
    1,
    `one ${kind}${name === undefined ? '' : ` ${name}`}: ${found.length}`,
  );
  return found[0] as K8sObject;
}

/** Whether every label of the selector is on the pod. */
function selects(selector: Record<string, string>, labels: Record<string, string>): boolean {
  return Object.entries(selector).every(([key, value]) => labels[key] === value);
}

/** The value after a flag in the container's arguments, every time it is given. */
function flagValues(args: string[], flag: string): string[] {
  return args.flatMap((arg, index) => (arg === flag ? [args[index + 1] ?? ''] : []));
}

describe('examples/kubernetes rendered by kubectl kustomize', { skip: missing }, () => {
  let dir: TempDir;
  let example: string;
  const rendered = new Map<string, K8sObject[]>();
  const treyRoot = lab().treyRoot.certPem;

  before(async () => {
    dir = await tempDir('domsec-kubernetes-');
    // The example as a repository would hold it, with the partner's (public) root CA beside its
    // manifest: the lab makes one for the test, as `domsec certs lab` does for the story.
    example = join(dir.path, 'examples', 'kubernetes');
    await cp(EXAMPLE, example, { recursive: true });
    await writeFile(join(example, 'base', 'manifests', 'treyresearch-root.crt'), treyRoot);
    for (const path of [...NODES.map((node) => `nodes/${node}`), 'site', 'flux'])
      rendered.set(path, await render(join(example, path)));
  });
  after(async () => {
    await dir?.remove();
  });

  const node = (name: string) => rendered.get(`nodes/${name}`) ?? [];

  for (const name of NODES) {
    describe(name, () => {
      const statefulSet = () => one(node(name), 'StatefulSet');
      const pod = () => statefulSet().spec.template.spec;
      const container = () => {
        assert.equal(pod().containers.length, 1);
        return pod().containers[0];
      };

      it('is one StatefulSet of one pod whose state directory is a claimed volume', () => {
        const set = statefulSet();
        assert.equal(set.spec.replicas, 1);
        const claims = set.spec.volumeClaimTemplates as { metadata: { name: string }; spec: any }[]; // eslint-disable-line @typescript-eslint/no-explicit-any
        assert.equal(claims.length, 1);
        const claim = claims[0];
        assert.deepEqual(claim?.spec.accessModes, ['ReadWriteOnce']);
        const [state] = flagValues(container().args, '--state');
        const mount = container().volumeMounts.find(
          (m: { name: string }) => m.name === claim?.metadata.name,
        );
        assert.equal(mount?.mountPath, state, 'the claimed volume is the --state directory');
        assert.ok(
          !(pod().volumes as { name: string }[]).some((v) => v.name === claim?.metadata.name),
          'not shadowed by a pod volume',
        );
        const service = one(node(name), 'Service', set.spec.serviceName);
        assert.equal(service.spec.clusterIP, 'None', 'the governing Service is headless');
      });

      it('runs serve --watch on the mounted ConfigMaps, which exist, carry no hash and are not mounted with subPath', () => {
        const args = container().args as string[];
        assert.equal(args[0], 'serve');
        assert.ok(args.includes('--watch'));
        const watched = flagValues(args, '-f');
        assert.equal(watched.length, 2);
        for (const path of watched) {
          const mount = container().volumeMounts.find(
            (m: { mountPath: string }) => m.mountPath === path,
          );
          assert.ok(mount, `${path} is mounted`);
          assert.equal(mount.subPath, undefined, `${path}: a subPath mount never sees an update`);
          assert.equal(mount.readOnly, true);
          const volume = pod().volumes.find((v: { name: string }) => v.name === mount.name);
          const configMap = one(node(name), 'ConfigMap', volume?.configMap?.name);
          // Kustomize's hash suffix would make every change a new pod instead of a hot reload.
          assert.match(configMap.metadata.name, new RegExp(`^domsec-[a-z]+-${name}$`));
        }
      });

      it('mounts its own Secret read-only, unreadable by others, no subPath', () => {
        const keys = pod().volumes.filter((v: { secret?: unknown }) => v.secret !== undefined);
        assert.equal(keys.length, 1);
        assert.equal(keys[0].secret.secretName, `domsec-tls-${name}`);
        assert.equal(keys[0].secret.defaultMode & 0o007, 0, 'no permission for others');
        const mount = container().volumeMounts.find(
          (m: { name: string }) => m.name === keys[0].name,
        );
        assert.equal(mount.readOnly, true);
        assert.equal(mount.subPath, undefined);
      });

      it("offers port 25 through a Service that keeps client source addresses, to the receive connector's port", () => {
        const podLabels = statefulSet().spec.template.metadata.labels as Record<string, string>;
        const smtp = node(name).filter((o) => o.kind === 'Service' && o.spec.clusterIP !== 'None');
        assert.equal(smtp.length, 1);
        const service = smtp[0] as K8sObject;
        assert.equal(service.spec.externalTrafficPolicy, 'Local');
        assert.ok(['LoadBalancer', 'NodePort'].includes(service.spec.type));
        assert.deepEqual(
          service.spec.ports.map((p: { port: number }) => p.port),
          [25],
        );
        const target = service.spec.ports[0].targetPort;
        const port = container().ports.find(
          (p: { name: string; containerPort: number }) =>
            p.name === target || p.containerPort === target,
        );
        const manifests = Object.values(
          one(node(name), 'ConfigMap', `domsec-node-${name}`).data ?? {},
        ).join('\n---\n');
        const bindings = yaml
          .loadAll(manifests)
          .filter((d) => (d as { kind?: string } | null)?.kind === 'ReceiveConnector')
          .flatMap((d) => (d as { spec: { bindings: string[] } }).spec.bindings);
        assert.deepEqual(bindings, [`0.0.0.0:${port?.containerPort}`], 'the port the engine binds');
        // A non-root process with allowPrivilegeEscalation: false has no effective capability
        // (Kubernetes grants no ambient ones): below 1024 only the unprivileged-port sysctl helps.
        const sysctl = (pod().securityContext.sysctls ?? []).find(
          (s: { name: string }) => s.name === 'net.ipv4.ip_unprivileged_port_start',
        );
        assert.ok(
          port.containerPort >= Number(sysctl?.value ?? 1024),
          `port ${port.containerPort} is bindable without privileges`,
        );
        assert.ok(selects(service.spec.selector, podLabels), 'selects the pod');
        assert.equal(service.spec.selector['domsec.io/node'], name, 'and only this node');
      });

      it('probes /healthz and /readyz inside the container, on the admin address the manifests give', () => {
        const manifests = one(node(name), 'ConfigMap', `domsec-node-${name}`).data ?? {};
        const organization = yaml
          .loadAll(Object.values(manifests).join('\n---\n'))
          .find((d) => (d as { kind?: string } | null)?.kind === 'Organization') as {
          spec: { admin: { listen: string } };
        };
        const admin = organization.spec.admin.listen;
        assert.match(admin, /^127\.0\.0\.1:\d+$/, 'the admin API stays on loopback');
        const probes = {
          startupProbe: '/healthz',
          livenessProbe: '/healthz',
          readinessProbe: '/readyz',
        } as const;
        for (const [probe, path] of Object.entries(probes)) {
          const spec = container()[probe];
          assert.ok(spec, `${probe} is set`);
          assert.equal(
            spec.httpGet,
            undefined,
            `${probe}: an httpGet goes to the pod IP, not loopback`,
          );
          const command = (spec.exec.command as string[]).join(' ');
          assert.ok(
            command.includes(`http://${admin}${path}`),
            `${probe} asks ${path}: ${command}`,
          );
          assert.ok(spec.timeoutSeconds >= 1 && spec.periodSeconds >= 1);
        }
      });

      it('runs probe commands that pass on 200 only, and fail on 503, a refused connection or silence', async () => {
        const commands = ['livenessProbe', 'readinessProbe'].map(
          (probe) => container()[probe].exec.command as string[],
        );
        // A stand-in for the admin API: 200 on /healthz, 503 on /readyz, no answer on /hang.
        const server = createServer((request, response) => {
          if (request.url === '/hang') return;
          response.writeHead(request.url === '/healthz' ? 200 : 503).end('domsec\n');
        });
        await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
        const { port } = server.address() as AddressInfo;
        const closed = await freePort();
        const exitCode = async (command: string[], address: string, path?: string) => {
          const [program, ...args] = command.map((arg) => {
            const aimed = arg.replace('127.0.0.1:8025', address);
            return path === undefined ? aimed : aimed.replace(/\/(healthz|readyz)\b/, path);
          });
          assert.equal(program, 'node');
          const started = Date.now();
          const code = await run(process.execPath, args, { timeout: 10_000 }).then(
            () => 0,
            (error: { code?: number }) => error.code ?? -1,
          );
          return { code, ms: Date.now() - started };
        };
        try {
          const [liveness, readiness] = commands as [string[], string[]];
          assert.equal((await exitCode(liveness, `127.0.0.1:${port}`)).code, 0, '/healthz 200');
          assert.equal((await exitCode(readiness, `127.0.0.1:${port}`)).code, 1, '/readyz 503');
          assert.equal((await exitCode(readiness, `127.0.0.1:${closed}`)).code, 1, 'refused');
          const silent = await exitCode(readiness, `127.0.0.1:${port}`, '/hang');
          assert.equal(silent.code, 1, 'no answer');
          assert.ok(silent.ms < 3_000 + 1_000, `gave up after ${silent.ms} ms`);
        } finally {
          server.closeAllConnections();
          await new Promise((resolve) => server.close(resolve));
        }
      });

      it('runs as a user without privileges or capabilities, on a read-only root', () => {
        const podContext = pod().securityContext;
        assert.equal(podContext.runAsNonRoot, true);
        assert.ok(podContext.runAsUser > 0);
        assert.equal(podContext.seccompProfile.type, 'RuntimeDefault');
        const context = container().securityContext;
        assert.equal(context.readOnlyRootFilesystem, true);
        assert.equal(context.allowPrivilegeEscalation, false);
        assert.notEqual(context.privileged, true);
        assert.deepEqual(context.capabilities.drop, ['ALL']);
        // NET_BIND_SERVICE at most, which the restricted Pod Security Standard also allows.
        for (const added of context.capabilities.add ?? []) assert.equal(added, 'NET_BIND_SERVICE');
        assert.equal(pod().automountServiceAccountToken, false, 'no Kubernetes API token');
        assert.equal(pod().hostNetwork, undefined);
      });

      it('asks for resources, with a memory limit above the request', () => {
        const { requests, limits } = container().resources;
        assert.ok(requests.cpu && requests.memory && limits.memory);
        const mebibytes = (text: string) => Number(/^(\d+)Mi$/.exec(text)?.[1] ?? NaN);
        assert.ok(mebibytes(limits.memory) >= mebibytes(requests.memory));
        assert.ok(mebibytes(requests.memory) >= 256, 'the bench peak (132 MB) with room');
        assert.ok(pod().terminationGracePeriodSeconds >= 30, 'time to drain');
      });

      it("holds manifests that pass domsec validate in the kubelet's layout, with the node's Secret", async () => {
        const set = statefulSet();
        const root = join(dir.path, `pod-${name}`);
        const hostname = `mx-${name.slice(-1)}.adatum.com`;
        const issued = issueCertificate(lab().adatumRoot, {
          commonName: hostname,
          dnsNames: [hostname, 'adatum.com'],
        });
        const mounts = container().volumeMounts as { name: string; mountPath: string }[];
        for (const volume of set.spec.template.spec.volumes as {
          name: string;
          configMap?: { name: string };
          secret?: unknown;
        }[]) {
          const mount = mounts.find((m) => m.name === volume.name);
          assert.ok(mount);
          const at = join(root, mount.mountPath);
          if (volume.configMap !== undefined)
            await KubeletVolume.create(
              at,
              one(node(name), 'ConfigMap', volume.configMap.name).data ?? {},
            );
          else if (volume.secret !== undefined)
            await KubeletVolume.create(
              at,
              { 'tls.crt': issued.certPem, 'tls.key': issued.keyPem },
              0o440,
            );
          else await mkdir(at, { recursive: true });
        }
        const args = container().args as string[];
        const result = await domsec([
          'validate',
          ...flagValues(args, '-f').flatMap((path) => ['-f', join(root, path)]),
        ]);
        assert.equal(result.code, 0, `${result.stdout}${result.stderr}`);
        assert.match(result.stdout, /^Valid: 6 object\(s\) in 2 file\(s\), 1 warning\(s\)\./m);
        // The one warning: the kubelet gives a Secret's files the pod's fsGroup with group read
        // (0440), the only way a non-root engine reads them; no other user has that group.
        const warnings = result.stderr.split('\n').filter((line) => /\bDS\d{3}\b/.test(line));
        assert.equal(warnings.length, 1, result.stderr);
        assert.match(
          warnings[0] ?? '',
          /DS104 +warning: Certificate\/mx-.: keyFile is readable by group or others \(mode 0440\)/,
        );
        assert.ok(posix.isAbsolute(flagValues(args, '--state')[0] ?? ''));
      });
    });
  }

  it('gives each node its own name, hostname, Secret and pods', () => {
    const [a, b] = NODES.map((name) => ({
      names: node(name).map((o) => `${o.kind}/${o.metadata.name}`),
      pod: one(node(name), 'StatefulSet').spec.template.metadata.labels as Record<string, string>,
      selector: one(node(name), 'StatefulSet').spec.selector.matchLabels as Record<string, string>,
      hostname: /hostname: (\S+)/.exec(
        one(node(name), 'ConfigMap', `domsec-node-${name}`).data?.['node.yaml'] ?? '',
      )?.[1],
    }));
    assert.ok(a && b);
    assert.deepEqual(
      a.names.filter((n) => b.names.includes(n)),
      [],
      'no object of the same name',
    );
    assert.notEqual(a.hostname, b.hostname);
    assert.ok(
      !selects(a.selector, b.pod) && !selects(b.selector, a.pod),
      "no StatefulSet claims the other's pod",
    );
  });

  it('lets a disruption take one node at a time, over every node, in their namespace', () => {
    const site = rendered.get('site') ?? [];
    const budget = one(site, 'PodDisruptionBudget');
    assert.equal(budget.spec.maxUnavailable, 1);
    assert.equal(budget.spec.minAvailable, undefined);
    const namespace = one(site, 'Namespace').metadata.name;
    assert.equal(
      one(site, 'Namespace').metadata.labels?.['pod-security.kubernetes.io/enforce'],
      'restricted',
    );
    assert.equal(budget.metadata.namespace, namespace);
    for (const name of NODES) {
      const set = one(node(name), 'StatefulSet');
      assert.equal(set.metadata.namespace, namespace);
      assert.ok(selects(budget.spec.selector.matchLabels, set.spec.template.metadata.labels), name);
    }
  });

  it('deploys each overlay with a Flux Kustomization from one GitRepository, node-b after node-a', () => {
    const flux = rendered.get('flux') ?? [];
    const source = one(flux, 'GitRepository');
    assert.equal(source.apiVersion, 'source.toolkit.fluxcd.io/v1');
    const kustomizations = flux.filter((o) => o.kind === 'Kustomization');
    const byPath = new Map(kustomizations.map((k) => [k.spec.path as string, k]));
    for (const path of ['site', ...NODES.map((n) => `nodes/${n}`)]) {
      const found = byPath.get(`./examples/kubernetes/${path}`);
      assert.ok(found, `a Kustomization for ${path}`);
      assert.equal(found.apiVersion, 'kustomize.toolkit.fluxcd.io/v1');
      assert.deepEqual(found.spec.sourceRef, { kind: 'GitRepository', name: source.metadata.name });
      assert.equal(found.metadata.namespace, source.metadata.namespace);
      assert.ok(existsSync(join(REPOSITORY, found.spec.path as string, 'kustomization.yaml')));
      assert.equal(found.spec.wait, true, `${path}: Ready only once its objects are`);
    }
    for (const name of NODES)
      assert.equal(byPath.get(`./examples/kubernetes/nodes/${name}`)?.spec.prune, true);
    const after = (name: string) =>
      (byPath.get(`./examples/kubernetes/nodes/${name}`)?.spec.dependsOn as { name: string }[]).map(
        (d) => d.name,
      );
    assert.ok(after('node-b').includes('domsec-node-a'));
    assert.ok(!after('node-a').includes('domsec-node-b'));
  });
});
