// What the tests that run a document as written (README.md's tour, docs/tutorial.md) share: a
// copy of the checkout as a clone has it after `npm ci`, the environment a user's shell has, and
// the engines and processes such a run starts.
import { appendFileSync } from 'node:fs';
import { cp, readdir, readFile, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPOSITORY = fileURLToPath(new URL('../..', import.meta.url));

/**
 * Copies the repository to `checkout` as a clone has it after `npm ci`: its files and dist/, the
 * repository's node_modules linked; never .git, generated state, nor what `skip` names (a path
 * relative to the repository, split at `/`).
 */
export async function copyCheckout(
  checkout: string,
  skip: (inside: string[]) => boolean = () => false,
): Promise<void> {
  const skipped = new Set(['.git', 'node_modules', 'var', 'lab', 'test-output']);
  await cp(REPOSITORY, checkout, {
    recursive: true,
    filter: (source) => {
      const inside = source.slice(REPOSITORY.length).split('/');
      return !(skipped.has(inside[0] ?? '') || skip(inside));
    },
  });
  await symlink(join(REPOSITORY, 'node_modules'), join(checkout, 'node_modules'));
}

/** This process's environment as a user's shell would have it: no npm_ or DOMSEC_ variables. */
export function userEnvironment(): Record<string, string> {
  const env: Record<string, string> = { NO_COLOR: '1' };
  for (const [name, value] of Object.entries(process.env))
    if (value !== undefined && !/^(npm_|DOMSEC_)/i.test(name)) env[name] = value;
  return env;
}

/**
 * The engine serving `state` (relative to the checkout), once it said it is ready: its PID from the
 * state's lock file; its admin token goes to the suite's secret ledger, so that the suite fails if
 * any output shows it.
 */
export async function startedEngine(
  checkout: string,
  state: string,
  origin: string,
): Promise<number> {
  const lock = JSON.parse(await readFile(join(checkout, state, 'lock'), 'utf8')) as { pid: number };
  if (!Number.isInteger(lock.pid) || lock.pid <= 0) throw new Error(`${state}/lock names no PID`);
  const token = (
    await readFile(join(checkout, state, 'admin.token'), 'utf8').catch(() => '')
  ).trim();
  const ledger = process.env.DOMSEC_SECRET_LEDGER;
  if (ledger !== undefined && ledger !== '' && token.length >= 16)
    appendFileSync(join(ledger, `${process.pid}.txt`), `token - ${origin} ${token}\n`);
  return lock.pid;
}

/** The children of a process, from /proc. */
export async function childrenOf(pid: number): Promise<number[]> {
  const found: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '');
    // pid (comm) state ppid ...: comm may hold spaces, so read after its closing parenthesis.
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    if (ppid === pid) found.push(Number(entry));
  }
  return found;
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
