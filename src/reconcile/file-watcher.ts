// Change events for the files a watch reads, from chokidar, which cannot follow a watched root
// that is removed and recreated or a symbolic link swapped under it: a guard looks at the roots on
// an interval, makes the watcher again when one leads elsewhere, and retries while one is gone.
import { watch as watchFiles, type FSWatcher } from 'chokidar';
import { basename } from 'node:path';
import { isIgnoredName } from '../config/manifest-files.js';
import { differences, identify, isMissing, type FileLooks } from './watched-files.js';

/** Whether the watcher hears changes; when not, why (said in the status, Ready=False). */
export type WatchHealth = { watching: true } | { watching: false; reason: string };

export interface FileWatcherOptions {
  /** Absolute paths given with -f. */
  roots: readonly string[];
  /** How often the roots are looked at (and watching is retried while it cannot watch). */
  retryMs: number;
  /** A file changed; undefined when the watcher was made again and may have missed changes. */
  changed: (path: string | undefined) => void;
  /** Called when watching stops or starts again. */
  health: (health: WatchHealth) => void;
}

export class FileWatcher {
  private watcher: FSWatcher | undefined;
  /** The roots' identities (where each leads, which inode) when the watcher was made. */
  private identities: FileLooks = new Map();
  private following = new Set<string>();
  private state: WatchHealth = { watching: true };
  private readonly guard: NodeJS.Timeout;
  private checking: Promise<void> = Promise.resolve();
  private closed = false;

  private constructor(private readonly options: FileWatcherOptions) {
    this.guard = setInterval(() => this.check(), options.retryMs);
  }

  /** Starts watching; resolves once the first watcher is ready (or it cannot watch yet). */
  static async start(options: FileWatcherOptions): Promise<FileWatcher> {
    const watcher = new FileWatcher(options);
    await watcher.remake();
    return watcher;
  }

  get health(): WatchHealth {
    return this.state;
  }

  /** Also watch these files (the referenced ones, which may lie outside the roots). */
  follow(paths: readonly string[]): void {
    const wanted = new Set(paths);
    const added = paths.filter((path) => !this.following.has(path));
    const removed = [...this.following].filter((path) => !wanted.has(path));
    this.following = wanted;
    if (added.length > 0) this.watcher?.add(added);
    if (removed.length > 0) void this.watcher?.unwatch(removed);
  }

  /** Looks at the roots now (the guard does so on its interval). */
  check(): Promise<void> {
    this.checking = this.checking.then(() => this.checkRoots());
    return this.checking;
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.guard);
    await this.checking;
    await this.watcher?.close();
    this.watcher = undefined;
  }

  private async checkRoots(): Promise<void> {
    if (this.closed) return;
    const now = await identify(this.options.roots);
    if (this.watcher !== undefined && differences(this.identities, now).length === 0) return;
    await this.remake(now);
  }

  /** Makes the watcher (again): a root recreated or swapped is watched where it leads now. */
  private async remake(identities?: FileLooks): Promise<void> {
    const now = identities ?? (await identify(this.options.roots));
    await this.watcher?.close();
    this.watcher = undefined;
    this.identities = now;
    const gone = this.options.roots.filter((root) => isMissing(now.get(root)));
    if (gone.length > 0) {
      this.report({
        watching: false,
        reason: `cannot watch ${gone.join(', ')}: ${whyMissing(now.get(gone[0] ?? ''))}; retrying every ${this.options.retryMs} ms`,
      });
      return;
    }
    const watcher = watchFiles([...this.options.roots, ...this.following], {
      ignoreInitial: true,
      ignored: (path: string) => this.ignored(path),
      // Every event only starts the settle window again: chokidar's own waits (an unlink held
      // back in case the file comes back, a size polled until stable) would only add to it.
      atomic: false,
      awaitWriteFinish: false,
    });
    watcher.on('all', (_event, path) => this.options.changed(path));
    watcher.on('error', (error) => {
      // Forget the identities: the next look at the roots makes the watcher again.
      this.identities = new Map();
      this.report({
        watching: false,
        reason: `the watcher failed (${(error as Error).message}); retrying every ${this.options.retryMs} ms`,
      });
    });
    await new Promise<void>((resolve) => watcher.once('ready', () => resolve()));
    if (this.closed) {
      await watcher.close();
      return;
    }
    this.watcher = watcher;
    const resumed = !this.state.watching || identities !== undefined;
    this.report({ watching: true });
    // Whatever happened while nobody listened (or while the old watcher looked elsewhere).
    if (resumed) this.options.changed(undefined);
  }

  /**
   * Editors' temporary files are not watched (as the loader skips them); the names Kubernetes
   * gives a mounted volume's versions (`..data`, `..2026_12_06_...`) are, and so is every file
   * the manifests name, whatever its name.
   */
  private ignored(path: string): boolean {
    if (this.following.has(path) || this.options.roots.includes(path)) return false;
    const name = basename(path);
    return !name.startsWith('..') && isIgnoredName(name);
  }

  private report(health: WatchHealth): void {
    const same =
      health.watching === this.state.watching &&
      (health.watching || (!this.state.watching && health.reason === this.state.reason));
    this.state = health;
    if (!same) this.options.health(health);
  }
}

/** Why a root cannot be watched, in words. */
function whyMissing(look: string | undefined): string {
  const code = look?.replace(/^missing: /, '');
  return code === 'ENOENT' ? 'it does not exist' : `it cannot be read (${code ?? 'error'})`;
}
