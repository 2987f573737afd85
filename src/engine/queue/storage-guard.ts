// Refuses mail early while the queue cannot keep it: once a write failed for lack of storage, MAIL
// FROM is answered 452 4.3.1 until the queue directory has free space and is writable again, so
// clients do not send whole messages that would be refused after their data (RFC 5321 §4.2.3).
import { constants } from 'node:fs';
import { access, statfs } from 'node:fs/promises';
import type { EngineLog } from '../log.js';

/** Write failures that mean the queue's storage is short, not that one message is bad. */
export const STORAGE_FAILURE_CODES: ReadonlySet<string> = new Set([
  'ENOSPC',
  'EDQUOT',
  'EROFS',
  'EACCES',
  'EPERM',
]);

export interface StorageGuardOptions {
  /** The queue directory: its file system's free space and its write access are checked. */
  directory: string;
  log: EngineLog;
  /** Free octets (for an unprivileged writer) below which storage still counts as short. */
  reserveBytes?: number;
  /** How long one check's answer holds (ms): a flood of MAIL FROM costs one statfs a second. */
  recheckMs?: number;
  now?: () => number;
}

/** Enough for a typical message, its control records and their staging copies. */
export const DEFAULT_STORAGE_RESERVE = 1024 * 1024;
const DEFAULT_RECHECK_MS = 1_000;

interface StorageCheck {
  at: number;
  short: boolean;
}

/**
 * Idle (and free of any file system call) until a storage failure is noted; from then on
 * `isShort()` looks at the directory at most once per `recheckMs` and clears itself as soon as
 * there is space and write access again. A quota (EDQUOT) is invisible to statfs: the guard then
 * lets the next transaction try, and its failure at the end of DATA sets the guard again.
 */
export class StorageGuard {
  private readonly reserve: number;
  private readonly recheckMs: number;
  private readonly now: () => number;
  private tripped = false;
  private last: StorageCheck | undefined;
  private checking: Promise<boolean> | undefined;
  /** Failures noted so far: a check that began before the latest one cannot clear it. */
  private failures = 0;

  constructor(private readonly options: StorageGuardOptions) {
    this.reserve = options.reserveBytes ?? DEFAULT_STORAGE_RESERVE;
    this.recheckMs = options.recheckMs ?? DEFAULT_RECHECK_MS;
    this.now = options.now ?? Date.now;
  }

  /** A write to the queue failed for lack of storage: short until a check says otherwise. */
  noteFailure(code: string | undefined): void {
    // The failure itself is the freshest check there is: the next MAIL FROM is refused at once.
    this.last = { at: this.now(), short: true };
    this.failures += 1;
    if (this.tripped) return;
    this.tripped = true;
    this.options.log.log('warn', 'queue.storage-short', {
      directory: this.options.directory,
      error: code,
    });
  }

  /** True while MAIL FROM must be answered 452 4.3.1; resolves at once while storage is fine. */
  isShort(): Promise<boolean> {
    if (!this.tripped) return Promise.resolve(false);
    const last = this.last;
    if (last !== undefined && this.now() - last.at < this.recheckMs)
      return Promise.resolve(last.short);
    this.checking ??= this.check().finally(() => {
      this.checking = undefined;
    });
    return this.checking;
  }

  /** A failure was noted and no check has cleared it yet: MAIL FROM then asks isShort(). */
  get suspected(): boolean {
    return this.tripped;
  }

  private async check(): Promise<boolean> {
    const { directory } = this.options;
    const failures = this.failures;
    let short: boolean;
    let free: number | undefined;
    let reason: string | undefined;
    try {
      const stats = await statfs(directory);
      free = stats.bavail * stats.bsize;
      await access(directory, constants.W_OK);
      short = free < this.reserve;
      if (short) reason = `${free} octets free, under the reserve of ${this.reserve}`;
    } catch (error) {
      // Not writable (EROFS, EACCES) or gone: short all the same, and said why.
      short = true;
      reason = (error as Error).message;
    }
    if (failures !== this.failures) return true; // a write failed meanwhile: that answer stands
    this.last = { at: this.now(), short };
    if (!short && this.tripped) {
      this.tripped = false;
      this.options.log.log('info', 'queue.storage-recovered', { directory, free });
    } else if (short) {
      this.options.log.log('debug', 'queue.storage-still-short', { directory, reason });
    }
    return short;
  }
}
