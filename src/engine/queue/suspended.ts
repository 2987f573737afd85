// The next-hop domains an operator suspended (Exchange's Suspend-Queue), kept in suspended.json in
// the queue directory: operational state that survives a restart, never part of any manifest.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileDurably } from '../../durable-file.js';
import type { EngineLog } from '../log.js';
import { parseDomainName, type DomainName } from '../../domain-name.js';

export const SUSPENDED_FILE = 'suspended.json';

interface SuspendedFile {
  formatVersion: 1;
  domains: string[];
}

/**
 * A next-hop domain as the queue keys it (canonical, domain-name.ts), from an operator's spelling;
 * RangeError when it is not a domain name.
 */
export function nextHopDomainOf(domain: unknown): DomainName {
  const parsed = parseDomainName(typeof domain === 'string' ? domain.trim() : '');
  if (!parsed.ok)
    throw new RangeError(`not a domain name: ${JSON.stringify(domain)} (${parsed.reason})`);
  return parsed.name;
}

export class SuspendedDomains {
  /** Writes of the file, one after another: the last one wins on disk as in memory. */
  private writing: Promise<void> = Promise.resolve();

  private constructor(
    private readonly directory: string,
    private readonly domains: Set<DomainName>,
  ) {}

  /** The domains saved by an earlier run; none when there is no file. */
  static async load(directory: string, log: EngineLog): Promise<SuspendedDomains> {
    const path = join(directory, SUSPENDED_FILE);
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT')
        return new SuspendedDomains(directory, new Set());
      throw error;
    }
    try {
      const saved = JSON.parse(text) as SuspendedFile;
      if (saved.formatVersion !== 1 || !Array.isArray(saved.domains))
        throw new Error('unknown format');
      return new SuspendedDomains(directory, new Set(saved.domains.map(nextHopDomainOf)));
    } catch (error) {
      // Written durably, so this is damage, not a torn write: say so loudly and hold nothing.
      log.log('error', 'queue.suspended-unreadable', { path, error: (error as Error).message });
      return new SuspendedDomains(directory, new Set());
    }
  }

  get size(): number {
    return this.domains.size;
  }

  has(domain: DomainName): boolean {
    return this.domains.has(domain);
  }

  /** Sorted. */
  list(): DomainName[] {
    return [...this.domains].sort();
  }

  /** False when it already was; resolves once the file is durable (a failed write undoes it). */
  async add(domain: DomainName): Promise<boolean> {
    if (this.domains.has(domain)) return false;
    this.domains.add(domain);
    await this.save(() => this.domains.delete(domain));
    return true;
  }

  /** False when it was not suspended; otherwise as add(). */
  async remove(domain: DomainName): Promise<boolean> {
    if (!this.domains.delete(domain)) return false;
    await this.save(() => this.domains.add(domain));
    return true;
  }

  private async save(undo: () => void): Promise<void> {
    const text = JSON.stringify({ formatVersion: 1, domains: this.list() } satisfies SuspendedFile);
    // Durable with its rename (the directory is synced): a power cut cannot undo a suspend.
    const write = this.writing.then(() =>
      writeFileDurably(join(this.directory, SUSPENDED_FILE), text),
    );
    this.writing = write.catch(() => undefined);
    try {
      await write;
    } catch (error) {
      undo();
      throw error;
    }
  }
}
