// One engine per state directory: an exclusive flock(2) on <state>/lock, held by a small child
// process (util-linux flock(1), then cat on a pipe from us) so that the kernel releases it when
// we die, kill -9 included. The holder's PID is written into the file for the engine refused.
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';

export const LOCK_FILE = 'lock';

/** flock(1)'s exit code when another process holds the lock (--conflict-exit-code). */
const CONFLICT = 75;
/** The shell's exit code when a command is not found. */
const NOT_FOUND = 127;
const ACQUIRE_TIMEOUT_MS = 10_000;
/** How long a lock held after its engine died is waited for (see acquire). */
const LEFTOVER_WAIT_MS = 5_000;

/**
 * Run by sh with the lock file as $1. Node cannot flock(2) itself and an addon cannot be built
 * here, so: fd 9 opens the file (appending: the holder's record is never truncated by a
 * contender), flock(1) locks that open file and exits (the lock belongs to the open file, which
 * sh keeps), and sh becomes cat, which holds fd 9 until our end of its stdin closes. Terminal
 * and service-manager signals are ignored (inherited across exec) so that a Ctrl-C or systemd's
 * SIGTERM to the whole group cannot drop the lock while the engine is still draining.
 */
const SCRIPT = [
  "trap '' HUP INT TERM",
  'exec 9>>"$1" || exit 73',
  `command -v flock >/dev/null 2>&1 || exit ${NOT_FOUND}`,
  `flock --exclusive --nonblock --conflict-exit-code ${CONFLICT} 9 || exit $?`,
  'echo locked',
  'exec cat >/dev/null',
].join('\n');

/** Who holds a state directory, as the holder wrote it into the lock file. */
export interface StateLockHolder {
  pid: number;
  hostname: string;
  /** When the holding process started (ISO time). */
  startedAt: string;
}

/** Another engine holds the state directory. */
export class StateLockedError extends Error {
  override name = 'StateLockedError';
  constructor(
    message: string,
    readonly holder: StateLockHolder | undefined,
  ) {
    super(message);
  }
}

/** The lock could not be taken at all (flock missing, the file not openable). */
export class StateLockError extends Error {
  override name = 'StateLockError';
}

export interface StateLockOptions {
  /** Called once if the lock is lost while held (its child process died): stop at once. */
  onLost: (reason: string) => void;
}

type LockChild = ChildProcessByStdio<Writable, Readable, Readable>;

export class StateLock {
  private released = false;

  private constructor(
    readonly file: string,
    private readonly child: LockChild,
    private readonly exited: Promise<void>,
  ) {}

  /**
   * Takes the lock or refuses: at once when another engine holds it (never waits for one to
   * stop). When the engine that wrote itself into the file is gone from this host and the lock
   * is still held, what holds it is what that engine left (its receive workers ending, its
   * holder process): that is waited for, up to LEFTOVER_WAIT_MS, so a restart right after a
   * kill -9 (a service manager's) starts instead of failing.
   */
  static async acquire(stateDir: string, options: StateLockOptions): Promise<StateLock> {
    const deadline = Date.now() + LEFTOVER_WAIT_MS;
    for (;;) {
      try {
        return await StateLock.acquireOnce(stateDir, options);
      } catch (error) {
        if (!(error instanceof StateLockedError) || !leftBehind(error.holder)) throw error;
        if (Date.now() >= deadline)
          throw new StateLockedError(
            `${error.message} (PID ${error.holder?.pid ?? '?'} is gone: processes it started still hold the lock, its receive workers perhaps)`,
            error.holder,
          );
        await new Promise((done) => setTimeout(done, 50));
      }
    }
  }

  private static async acquireOnce(
    stateDir: string,
    options: StateLockOptions,
  ): Promise<StateLock> {
    const file = join(stateDir, LOCK_FILE);
    let child: LockChild;
    try {
      // Its own process group: a terminal's Ctrl-C does not reach it.
      child = spawn('sh', ['-c', SCRIPT, 'domsec-state-lock', file], {
        stdio: ['pipe', 'pipe', 'pipe'],
        detached: true,
      });
    } catch (error) {
      throw new StateLockError(`cannot lock ${file}: cannot run sh (${codeOf(error)})`);
    }
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<{ code: number | null; signal: string | null }>((done) =>
      child.once('close', (code, signal) => done({ code, signal })),
    );
    const spawnFailure = new Promise<Error>((done) => child.once('error', done));

    const outcome = await Promise.race([
      new Promise<'locked'>((done) => {
        let out = '';
        child.stdout.on('data', (chunk: Buffer) => {
          out += chunk.toString();
          if (out.includes('locked\n')) done('locked');
        });
      }),
      exited,
      spawnFailure,
      new Promise<'timeout'>((done) =>
        setTimeout(() => done('timeout'), ACQUIRE_TIMEOUT_MS).unref(),
      ),
    ]);
    if (outcome !== 'locked') {
      child.kill('SIGKILL');
      child.stdin.destroy();
      if (outcome === 'timeout')
        throw new StateLockError(
          `cannot lock ${file}: flock gave no answer in ${ACQUIRE_TIMEOUT_MS} ms`,
        );
      if (outcome instanceof Error)
        throw new StateLockError(`cannot lock ${file}: cannot run sh (${codeOf(outcome)})`);
      if (outcome.code === CONFLICT) {
        const holder = await readHolder(file);
        throw new StateLockedError(
          `the state directory ${stateDir} is in use by another domsec engine (${describeHolder(holder)}); stop that one first, or give this one its own state directory`,
          holder,
        );
      }
      if (outcome.code === NOT_FOUND)
        throw new StateLockError(
          `cannot lock ${file}: the flock command is missing; install util-linux (it provides flock(1), which the engine uses to hold its state directory)`,
        );
      const said = stderr.trim().split('\n').at(-1) ?? '';
      throw new StateLockError(
        `cannot lock ${file}: ${said === '' ? `flock exited with ${outcome.code ?? outcome.signal}` : said}`,
      );
    }

    const lock = new StateLock(
      file,
      child,
      exited.then(() => undefined),
    );
    // The child must not keep an engine's process alive on its own, nor its output pipes.
    child.unref();
    (child.stdout as Readable & { unref?: () => void }).unref?.();
    (child.stderr as Readable & { unref?: () => void }).unref?.();
    (child.stdin as Writable & { unref?: () => void }).unref?.();
    void exited.then(({ code, signal }) => {
      if (!lock.released)
        options.onLost(
          `the process holding the state lock ${file} (PID ${child.pid ?? '?'}) ended (${signal ?? `exit ${code}`})`,
        );
    });
    // A broken pipe once the child is gone is reported by the 'close' above, not thrown.
    child.stdin.on('error', () => undefined);
    await writeFile(file, `${JSON.stringify(currentHolder())}\n`);
    return lock;
  }

  /** PID of the process that holds the lock for us (tests kill it to see the engine stop). */
  get holderPid(): number | undefined {
    return this.child.pid;
  }

  /**
   * Our end of the holder's pipe. A process that inherits it (a receive worker) keeps the lock
   * held for as long as it lives, even after we died: the group is covered as one.
   */
  get pipe(): Writable {
    return this.child.stdin;
  }

  /** Lets go: our end of the pipe closes, cat exits, the kernel drops the lock. */
  async release(): Promise<void> {
    if (this.released) return this.exited;
    this.released = true;
    this.child.stdin.end();
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 5_000);
    await this.exited;
    clearTimeout(timer);
  }
}

function currentHolder(): StateLockHolder {
  return {
    pid: process.pid,
    hostname: hostname(),
    startedAt: new Date(Date.now() - process.uptime() * 1000).toISOString(),
  };
}

/**
 * The holder as it wrote itself into the file. It writes right after it got the lock, so a
 * contender that came in between finds the file empty for a moment: read a few times.
 */
async function readHolder(file: string): Promise<StateLockHolder | undefined> {
  for (let attempt = 0; attempt < 10; attempt++) {
    try {
      const parsed = JSON.parse(await readFile(file, 'utf8')) as Partial<StateLockHolder>;
      if (typeof parsed.pid === 'number')
        return {
          pid: parsed.pid,
          hostname: String(parsed.hostname ?? '?'),
          startedAt: String(parsed.startedAt ?? '?'),
        };
    } catch {
      // empty or half-written: read again
    }
    await new Promise((done) => setTimeout(done, 20));
  }
  return undefined;
}

/** The recorded holder was an engine on this host that no longer runs. */
function leftBehind(holder: StateLockHolder | undefined): boolean {
  if (holder === undefined || holder.hostname !== hostname()) return false;
  if (holder.pid === process.pid) return false;
  try {
    process.kill(holder.pid, 0);
    return false;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

function describeHolder(holder: StateLockHolder | undefined): string {
  if (holder === undefined) return 'its PID is not recorded yet';
  const host = holder.hostname === hostname() ? '' : ` on ${holder.hostname}`;
  return `PID ${holder.pid}${host}, started ${holder.startedAt}`;
}

function codeOf(error: unknown): string {
  return (error as NodeJS.ErrnoException).code ?? (error as Error).message;
}
