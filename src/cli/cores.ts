// How many cores this process may use: serve's default number of receive workers. The CPUs it
// may run on (os.availableParallelism: affinity, taskset, cpusets), and no more than a CPU quota
// of its control group allows (a container's CPU limit, cgroup v2 cpu.max or v1 cfs quota),
// which Node's count does not see: a pod limited to 2 CPUs on a 64-core node runs 2 workers.
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { posix } from 'node:path';

const CGROUP_ROOT = '/sys/fs/cgroup';

/** At least 1: the CPUs this process may run on, bounded by its control groups' CPU quotas. */
export function usableCores(root = CGROUP_ROOT, self = '/proc/self/cgroup'): number {
  const cpus = availableParallelism();
  const quota = cgroupQuota(root, self);
  return Math.max(1, quota === undefined ? cpus : Math.min(cpus, Math.ceil(quota)));
}

/**
 * The smallest CPU quota (in CPUs) of the process's control group and its ancestors, or
 * undefined when none is set or none can be read (then the CPU count stands alone).
 */
export function cgroupQuota(root = CGROUP_ROOT, self = '/proc/self/cgroup'): number | undefined {
  const membership = read(self);
  if (membership === undefined) return undefined;
  let smallest: number | undefined;
  const keep = (cpus: number | undefined): void => {
    if (cpus !== undefined && (smallest === undefined || cpus < smallest)) smallest = cpus;
  };
  for (const line of membership.split('\n')) {
    // "0::/path" (v2) or "4:cpu,cpuacct:/path" (v1)
    const [, controllers, path] = /^[0-9]+:([^:]*):(\/.*)$/.exec(line.trim()) ?? [];
    if (path === undefined) continue;
    if (controllers === '')
      for (const dir of ancestors(root, path)) keep(cpuMax(read(posix.join(dir, 'cpu.max'))));
    else if (controllers?.split(',').includes('cpu'))
      for (const mount of ['cpu', 'cpu,cpuacct'])
        for (const dir of ancestors(posix.join(root, mount), path))
          keep(
            cfsQuota(
              read(posix.join(dir, 'cpu.cfs_quota_us')),
              read(posix.join(dir, 'cpu.cfs_period_us')),
            ),
          );
  }
  return smallest;
}

/** cgroup v2 cpu.max: "max 100000" (no quota) or "<quota> <period>" in µs. */
export function cpuMax(text: string | undefined): number | undefined {
  const [quota, period = '100000'] = (text ?? '').trim().split(/\s+/);
  return ratio(quota, period);
}

/** cgroup v1: cfs_quota_us is -1 when no quota is set. */
function cfsQuota(quota: string | undefined, period: string | undefined): number | undefined {
  return ratio(quota?.trim(), period?.trim());
}

function ratio(quota: string | undefined, period: string | undefined): number | undefined {
  if (quota === undefined || period === undefined) return undefined;
  if (!/^[0-9]+$/.test(quota) || !/^[0-9]+$/.test(period)) return undefined;
  const q = Number(quota);
  const p = Number(period);
  return q > 0 && p > 0 ? q / p : undefined;
}

/** The group's directory and those above it, up to the root (a quota above binds too). */
function ancestors(root: string, path: string): string[] {
  const dirs: string[] = [];
  let at = posix.normalize(path);
  for (;;) {
    dirs.push(posix.join(root, at));
    if (at === '/' || at === '.') return dirs;
    at = posix.dirname(at);
  }
}

function read(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}
