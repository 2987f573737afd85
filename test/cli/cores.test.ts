// serve's default number of receive workers: the CPUs the process may run on, bounded by the CPU
// quota of its control group and every group above it (cgroup v2 cpu.max, v1 cfs quota), read
// from a control-group tree laid out on disk as the kernel shows it.
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { cgroupQuota, cpuMax, usableCores } from '../../src/cli/cores.js';
import { tempDir } from '../support/tmp.js';

/**
 * Lays `files` out under a new directory (`self` as /proc/self/cgroup, `fs/` as /sys/fs/cgroup)
 * and calls `check` with the two paths the readers take; removes the directory after.
 */
async function inTree(
  files: Record<string, string>,
  check: (root: string, self: string) => void,
): Promise<void> {
  const dir = await tempDir('domsec-cgroup-');
  try {
    for (const [path, text] of Object.entries(files)) {
      await mkdir(dirname(join(dir.path, path)), { recursive: true });
      await writeFile(join(dir.path, path), text);
    }
    check(join(dir.path, 'fs'), join(dir.path, 'self'));
  } finally {
    await dir.remove();
  }
}

describe('usable cores', () => {
  it('reads a cgroup v2 quota, the smallest of the group and its ancestors', async () => {
    await inTree(
      {
        self: '0::/kubepods/pod1/ctr\n',
        'fs/cpu.max': 'max 100000\n',
        'fs/kubepods/cpu.max': '800000 100000\n',
        'fs/kubepods/pod1/cpu.max': '150000 100000\n',
        'fs/kubepods/pod1/ctr/cpu.max': 'max 100000\n',
      },
      (root, self) => {
        assert.equal(cgroupQuota(root, self), 1.5);
        assert.equal(usableCores(root, self), Math.min(2, availableParallelism()));
      },
    );
  });

  it('reads a cgroup v1 cfs quota, and -1 as none', async () => {
    await inTree(
      {
        self: '12:pids:/x\n4:cpu,cpuacct:/docker/abc\n0::/\n',
        'fs/cpu,cpuacct/docker/abc/cpu.cfs_quota_us': '50000\n',
        'fs/cpu,cpuacct/docker/abc/cpu.cfs_period_us': '100000\n',
        'fs/cpu,cpuacct/docker/cpu.cfs_quota_us': '-1\n',
        'fs/cpu,cpuacct/docker/cpu.cfs_period_us': '100000\n',
      },
      (root, self) => {
        assert.equal(cgroupQuota(root, self), 0.5);
        // Half a CPU still runs one process.
        assert.equal(usableCores(root, self), 1);
      },
    );
  });

  it('stands on the CPU count when no quota is set or nothing can be read', async () => {
    await inTree({ self: '0::/\n', 'fs/cpu.max': 'max 100000\n' }, (root, self) => {
      assert.equal(cgroupQuota(root, self), undefined);
      assert.equal(usableCores(root, self), availableParallelism());
      assert.equal(usableCores(join(root, 'none'), join(root, 'none')), availableParallelism());
    });
  });

  it('takes no cpu.max text for a quota it is not', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 30 }), (text) => {
        const cpus = cpuMax(text);
        const match = /^\s*([0-9]+)(?:\s+([0-9]+))?\s*$/.exec(text);
        if (match === null || Number(match[1]) === 0 || Number(match[2] ?? '1') === 0)
          assert.equal(cpus, undefined, JSON.stringify(text));
        else assert.equal(cpus, Number(match[1]) / Number(match[2] ?? '100000'));
      }),
      { numRuns: 1000 },
    );
    assert.equal(cpuMax('200000 100000'), 2);
    assert.equal(cpuMax('max 100000'), undefined);
    assert.equal(cpuMax('-1 100000'), undefined);
  });

  it('reads any control-group membership and cpu.max text as a quota or none, never more', async () => {
    const line = fc.oneof(
      fc.string({ maxLength: 40 }),
      fc.constantFrom('0::/', '0::/a/b', '4:cpu,cpuacct:/x', '1:cpu:/', '0::/../..', '2:cpuset:/y'),
    );
    const text = fc.oneof(
      fc.string({ maxLength: 20 }),
      fc.constantFrom(
        'max 100000\n',
        '0 100000',
        '150000 100000\n',
        '-1',
        '1 0',
        '99999999999999999999 1',
      ),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(line, { maxLength: 4 }), text, text, async (lines, max, quota) => {
        await inTree(
          {
            self: lines.join('\n'),
            'fs/cpu.max': max,
            'fs/a/b/cpu.max': max,
            'fs/cpu,cpuacct/x/cpu.cfs_quota_us': quota,
            'fs/cpu,cpuacct/x/cpu.cfs_period_us': '100000',
          },
          (root, self) => {
            const cpus = cgroupQuota(root, self);
            assert.ok(cpus === undefined || (Number.isFinite(cpus) && cpus > 0), String(cpus));
            const cores = usableCores(root, self);
            assert.ok(Number.isInteger(cores) && cores >= 1 && cores <= availableParallelism());
          },
        );
      }),
      { numRuns: 150 },
    );
  });
});
