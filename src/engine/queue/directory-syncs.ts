// fsync on a directory makes renames and unlinks in it durable (POSIX; Windows cannot open one).
// Group commit of directory fsyncs, per owner (a queue's store and journal share one; local
// delivery has its own): callers that arrive while a sync of the same directory runs share the
// next one, which starts after it (the running one may predate their change). Under load one
// fsync then covers many messages; none is acknowledged before its own entry is durable.
import { open } from 'node:fs/promises';

export class DirectorySyncs {
  private readonly syncs = new Map<string, { running: Promise<void>; next?: Promise<void> }>();

  /** Resolves once a sync of the directory that started after this call has finished. */
  sync(path: string): Promise<void> {
    if (process.platform === 'win32') return Promise.resolve();
    const current = this.syncs.get(path);
    if (current === undefined) {
      const running = fsyncDirectory(path).finally(() => this.advance(path, running));
      this.syncs.set(path, { running });
      return running;
    }
    current.next ??= current.running.catch(() => undefined).then(() => fsyncDirectory(path));
    return current.next;
  }

  /** The running sync is done: the queued one (if any) becomes the running one. */
  private advance(path: string, finished: Promise<void>): void {
    const current = this.syncs.get(path);
    if (current === undefined || current.running !== finished) return;
    if (current.next === undefined) {
      this.syncs.delete(path);
      return;
    }
    const running = current.next;
    this.syncs.set(path, { running });
    running.then(
      () => this.advance(path, running),
      () => this.advance(path, running),
    );
  }
}

async function fsyncDirectory(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
