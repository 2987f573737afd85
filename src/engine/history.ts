// The engine's last applied generations, kept on disk as <state>/history/<generation>.json (mode
// 0600: each holds the configuration with its private key) so `domsec rollback GEN` can re-apply
// one. Only the newest HISTORY_LIMIT are kept.
import { mkdir, readdir, readFile, rm } from 'node:fs/promises';
import { writeFileDurably } from '../durable-file.js';
import { join } from 'node:path';
import type { HistoryEntry, RuntimeConfig } from '../model.js';

export const HISTORY_LIMIT = 20;

interface HistoryFile {
  entry: HistoryEntry;
  config: RuntimeConfig;
}

export class GenerationHistory {
  private constructor(
    private readonly directory: string,
    private readonly records: HistoryEntry[], // oldest first
  ) {}

  static async open(directory: string): Promise<GenerationHistory> {
    await mkdir(directory, { recursive: true, mode: 0o700 });
    const records: HistoryEntry[] = [];
    for (const name of await readdir(directory)) {
      if (!/^\d+\.json$/.test(name)) continue; // leftovers of an interrupted write end in .tmp
      try {
        const file = JSON.parse(await readFile(join(directory, name), 'utf8')) as HistoryFile;
        records.push(file.entry);
      } catch {
        // An unreadable record is skipped rather than stopping the engine; it cannot be rolled back to.
        continue;
      }
    }
    records.sort((a, b) => a.generation - b.generation);
    return new GenerationHistory(directory, records);
  }

  /** Newest first. */
  entries(): HistoryEntry[] {
    return [...this.records].reverse().map((entry) => ({ ...entry }));
  }

  get latest(): number {
    return this.records.at(-1)?.generation ?? 0;
  }

  async record(entry: HistoryEntry, config: RuntimeConfig): Promise<void> {
    await writeFileDurably(
      this.file(entry.generation),
      JSON.stringify({ entry, config } satisfies HistoryFile),
    );
    this.records.push(entry);
    while (this.records.length > HISTORY_LIMIT) {
      const oldest = this.records.shift();
      if (oldest !== undefined) await rm(this.file(oldest.generation), { force: true });
    }
  }

  /** The configuration of a kept generation, or undefined when it is not (or no longer) kept. */
  async config(generation: number): Promise<RuntimeConfig | undefined> {
    if (!this.records.some((entry) => entry.generation === generation)) return undefined;
    const file = JSON.parse(await readFile(this.file(generation), 'utf8')) as HistoryFile;
    return file.config;
  }

  private file(generation: number): string {
    return join(this.directory, `${generation}.json`);
  }
}
