// The receive workers of a `domsec serve --workers N` process, found through Linux /proc, for the
// attack tests that kill, stop and inspect them from outside.
import { readdir, readFile } from 'node:fs/promises';

/** The processes whose parent is `pid`. */
export async function childrenOf(pid: number): Promise<number[]> {
  const children: number[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const stat = await readFile(`/proc/${name}/stat`, 'utf8').catch(() => '');
    // pid (comm) state ppid ...: comm may hold spaces, so read after its closing parenthesis.
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    if (ppid === pid) children.push(Number(name));
  }
  return children;
}

/** The receive workers of a serve process: its node children running worker-main. */
export async function workersOf(pid: number): Promise<number[]> {
  const workers: number[] = [];
  for (const child of await childrenOf(pid)) {
    const cmdline = await readFile(`/proc/${child}/cmdline`, 'utf8').catch(() => '');
    if (cmdline.includes('worker-main')) workers.push(child);
  }
  return workers.sort((a, b) => a - b);
}

/** Every process running worker-main whose environment names this state directory. */
export async function workersOfState(state: string): Promise<number[]> {
  const found: number[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const cmdline = await readFile(`/proc/${name}/cmdline`, 'utf8').catch(() => '');
    if (!cmdline.includes('worker-main')) continue;
    const environ = await readFile(`/proc/${name}/environ`, 'utf8').catch(() => '');
    if (environ.split('\0').includes(`DOMSEC_WORKER_STATE=${state}`)) found.push(Number(name));
  }
  return found;
}

/** The environment a process was started with, as NAME=value strings. */
export async function environmentOf(pid: number): Promise<string[]> {
  return (await readFile(`/proc/${pid}/environ`, 'utf8')).split('\0').filter((e) => e !== '');
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The state of a process as /proc tells it (R, S, T stopped, Z zombie...); undefined: gone. */
export async function processState(pid: number): Promise<string | undefined> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  return stat?.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
}
