// The engine's durable files in the state directory, through one module: the configuration a
// restart comes back to (applied-config.json, owner-only: it holds the private key) and the
// reconcile status record (reconcile-status.json, state-status.ts says what it means). Both are
// written atomically (durable-file.ts).
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileDurably } from '../../durable-file.js';
import type { ReconcileReport, ReconcileStatus, RuntimeConfig } from '../../model.js';
import type { EngineLog } from '../log.js';
import {
  EMPTY_STATUS,
  readStatusRecord,
  recordAttempt,
  recordReport,
  viewStatus,
  type Attempt,
  type StatusRecord,
} from '../state-status.js';

const APPLIED_FILE = 'applied-config.json';
const STATUS_FILE = 'reconcile-status.json';

export class StatusStore {
  private status: StatusRecord = EMPTY_STATUS;

  private constructor(
    private readonly stateDir: string,
    private readonly log: EngineLog,
  ) {}

  /** Reads the saved status; none (or an unreadable one, logged) starts empty. */
  static async open(stateDir: string, log: EngineLog): Promise<StatusStore> {
    const store = new StatusStore(stateDir, log);
    try {
      const saved = readStatusRecord(
        JSON.parse(await readFile(join(stateDir, STATUS_FILE), 'utf8')),
      );
      if (saved !== undefined) store.status = saved;
    } catch (error) {
      // None yet, or unreadable: the status starts empty, which is what it says anyway.
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') {
        log.log('warn', 'engine.status-unreadable', { error: (error as Error).message });
      }
    }
    return store;
  }

  /** The record as it stands (in memory: always the latest, saved or not). */
  get record(): StatusRecord {
    return this.status;
  }

  /** An attempt from any source, saved. */
  recordAttempt(attempt: Attempt): Promise<void> {
    return this.save(recordAttempt(this.status, attempt, new Date()));
  }

  /** A reconciler's report (its attempt and heartbeat), saved. */
  recordReport(report: ReconcileReport): Promise<void> {
    return this.save(recordReport(this.status, report, new Date()));
  }

  /** Ready (or why not), from the record and what runs now. */
  view(actual: { generation: number; engineId: string; drift: string[] }): ReconcileStatus {
    return viewStatus(this.status, actual, new Date());
  }

  /** Kept across restarts: `domsec status` after a restart still says what the last attempt did. */
  private async save(next: StatusRecord): Promise<void> {
    this.status = next;
    try {
      await writeFileDurably(join(this.stateDir, STATUS_FILE), JSON.stringify(next));
    } catch (error) {
      // The status in memory is right; only a restart would forget it.
      this.log.log('warn', 'engine.status-unsaved', { error: (error as Error).message });
    }
  }

  /** The configuration saved by the last apply, as it was saved; undefined when none was. */
  async readApplied(): Promise<RuntimeConfig | undefined> {
    try {
      return JSON.parse(await readFile(join(this.stateDir, APPLIED_FILE), 'utf8')) as RuntimeConfig;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
  }

  /** Written atomically and readable by the owner only: it holds the private key. */
  async writeApplied(config: RuntimeConfig): Promise<void> {
    await writeFileDurably(join(this.stateDir, APPLIED_FILE), JSON.stringify(config));
  }
}
