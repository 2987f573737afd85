// The settle window: a change is taken once every file watch reads has been quiet for the window,
// by events (each one starts the window again) and by the files' looks on disk, so that a write
// no event reported (a second chunk, a missed inotify event) starts it again too.
import { differences, type FileLooks } from './watched-files.js';

export interface SettleWindowOptions {
  windowMs: number;
  /** Looks at every file watch reads now. */
  look: () => Promise<FileLooks>;
  /** Called once the files have been quiet for the window, with their looks at its end. */
  settled: (looks: FileLooks) => void;
  /** Reports a failure to look (then the window starts again). */
  failed: (error: Error) => void;
}

export class SettleWindow {
  private timer: NodeJS.Timeout | undefined;
  /** The looks after the last change seen; the window closes only when nothing differs. */
  private baseline: FileLooks | undefined;
  /** The look under way, and whether a change arrived since it started. */
  private looking: Promise<void> | undefined;
  private lookAgain = false;
  /** Counts changes, so that a check knows whether one arrived while it looked. */
  private changes = 0;
  private closed = false;

  constructor(private readonly options: SettleWindowOptions) {}

  /** Whether a change is waiting for its window to end. */
  get open(): boolean {
    return this.timer !== undefined;
  }

  /** A change was seen: the window starts again from now. */
  change(): void {
    if (this.closed) return;
    this.changes++;
    this.arm();
    this.refreshBaseline();
  }

  close(): void {
    this.closed = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** One look at a time: a burst of events is looked at once more after the look under way. */
  private refreshBaseline(): void {
    if (this.looking !== undefined) {
      this.lookAgain = true;
      return;
    }
    this.looking = this.options
      .look()
      .then(
        (looks) => void (this.baseline = looks),
        () => void (this.baseline = undefined),
      )
      .finally(() => {
        this.looking = undefined;
        if (this.lookAgain && !this.closed) {
          this.lookAgain = false;
          this.refreshBaseline();
        }
      });
  }

  private arm(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.expire(), this.options.windowMs);
  }

  private async expire(): Promise<void> {
    const seen = this.changes;
    while (this.looking !== undefined) await this.looking;
    let now: FileLooks;
    try {
      now = await this.options.look();
    } catch (error) {
      this.options.failed(error as Error);
      if (!this.closed && seen === this.changes) this.change();
      return;
    }
    if (this.closed || seen !== this.changes) return; // a change meanwhile armed the window again
    if (this.baseline === undefined || differences(this.baseline, now).length > 0) {
      // Something changed that no event reported: another window, from these looks.
      this.baseline = now;
      this.arm();
      return;
    }
    this.timer = undefined;
    this.baseline = undefined;
    this.options.settled(now);
  }
}
