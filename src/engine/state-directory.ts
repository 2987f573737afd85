// The state directory checked and made before the engine takes it: a refusal in one line for a
// path that is a file, a dangling link, on a virtual file system (/proc, /sys) or not creatable.
import { access, constants, lstat, mkdir, readlink, stat, statfs } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';

export class StateDirectoryError extends Error {
  override name = 'StateDirectoryError';
}

/**
 * File systems made by the kernel that never keep what is written to them (statfs f_type, from
 * linux/magic.h): /proc, /sys, /sys/kernel/debug and tracing, cgroups, devpts, bpf, configfs.
 */
const VIRTUAL_FILE_SYSTEMS = new Map<number, string>([
  [0x9fa0, 'proc'],
  [0x62656572, 'sysfs'],
  [0x64626720, 'debugfs'],
  [0x74726163, 'tracefs'],
  [0x63677270, 'cgroup2'],
  [0x27e0eb, 'cgroup'],
  [0x1cd1, 'devpts'],
  [0xcafe4a11, 'bpf'],
  [0x62656570, 'configfs'],
  [0x73636673, 'securityfs'],
]);

/**
 * The absolute path of the state directory, made (mode 0700) when missing. Never mkdir's
 * `recursive` here: Node's recursive mkdir takes ENOENT for "parent missing" and tries the parent
 * again, and under /proc the parent exists while mkdir keeps answering ENOENT, so it spins at
 * 100% CPU for ever. Each missing component is made once, and any failure is the answer.
 */
export async function prepareStateDirectory(given: string): Promise<string> {
  const path = resolve(given);
  const found = await inspect(path, given);
  if (found === 'directory') {
    await refuseVirtual(path, given);
    try {
      await access(path, constants.W_OK | constants.X_OK);
    } catch (error) {
      throw refusal(given, `is not writable by this user (${codeOf(error)})`);
    }
    return path;
  }

  // Missing: find the nearest ancestor that exists, check it, then make each component below it.
  const missing = [path];
  let ancestor = dirname(path);
  for (;;) {
    const kind = await inspect(ancestor, given);
    if (kind === 'directory') break;
    missing.unshift(ancestor);
    const parent = dirname(ancestor);
    if (parent === ancestor)
      throw refusal(given, 'cannot be created: no directory above it exists');
    ancestor = parent;
  }
  await refuseVirtual(ancestor, given);
  for (const component of missing) {
    try {
      await mkdir(component, { mode: 0o700 });
    } catch (error) {
      // Made meanwhile by someone else: fine when it is a directory now.
      if (codeOf(error) === 'EEXIST' && (await inspect(component, given)) === 'directory') continue;
      throw refusal(given, `cannot be created: mkdir ${component} failed (${codeOf(error)})`);
    }
  }
  return path;
}

/** 'directory' (a link to one included), 'missing', or the refusal for anything else. */
async function inspect(path: string, given: string): Promise<'directory' | 'missing'> {
  let link;
  try {
    link = await lstat(path);
  } catch (error) {
    // ENOTDIR: an ancestor is not a directory, which the walk up to it then names.
    if (codeOf(error) === 'ENOENT' || codeOf(error) === 'ENOTDIR') return 'missing';
    throw refusal(given, `cannot be read: ${path} (${codeOf(error)})`);
  }
  let target = link;
  if (link.isSymbolicLink()) {
    try {
      target = await stat(path);
    } catch (error) {
      const to = await readlink(path).catch(() => '?');
      if (codeOf(error) === 'ENOENT')
        throw refusal(given, `${subject(path, given)}is a dangling symbolic link (to ${to})`);
      throw refusal(
        given,
        `${subject(path, given)}is a symbolic link that cannot be followed (${codeOf(error)})`,
      );
    }
  }
  if (!target.isDirectory())
    throw refusal(
      given,
      `${subject(path, given)}is ${target.isFile() ? 'a file' : 'not a directory'}`,
    );
  return 'directory';
}

async function refuseVirtual(path: string, given: string): Promise<void> {
  let type: number;
  try {
    type = (await statfs(path)).type;
  } catch {
    return; // statfs unsupported here: the mkdir and the engine's first writes still answer
  }
  const name = VIRTUAL_FILE_SYSTEMS.get(type);
  if (name !== undefined)
    throw refusal(given, `is on ${name}, a virtual file system that cannot keep a queue`);
}

/** "" when the path checked is the state directory itself, else "its ancestor X ". */
function subject(path: string, given: string): string {
  return path === resolve(given) ? '' : `(its ancestor ${path}) `;
}

function refusal(given: string, why: string): StateDirectoryError {
  return new StateDirectoryError(`the state directory ${given} ${why}`);
}

function codeOf(error: unknown): string {
  return (error as NodeJS.ErrnoException).code ?? (error as Error).message;
}
