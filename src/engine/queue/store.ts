// The queue's files: bodies in data/, one control record per next-hop domain in control/, each
// written durably (body and staged records fsync'ed, then the records renamed, control/ fsync'ed),
// and the recovery scan at open that drops crash leftovers and quarantines torn files (queue.ts).
// A large body is written into data/ as it arrives (BodyFile) and committed the same way.
import {
  copyFile,
  mkdir,
  open,
  readdir,
  readFile,
  rename,
  stat,
  unlink,
  type FileHandle,
} from 'node:fs/promises';
import { join } from 'node:path';
import type { EngineLog } from '../log.js';
import type { SpooledBody } from '../message-sink.js';
import { messageOfEntry, parseControlRecord, type ControlRecord } from './record.js';
import { DirectorySyncs } from './directory-syncs.js';

const TEMPORARY = '.tmp';

/**
 * A body written into data/<message>.eml as it arrives. It is no part of the queue until commit()
 * gives it control records: a crash before that leaves an orphan body, which recover() removes.
 */
export class BodyFile implements SpooledBody {
  private written = 0;
  private closed: Promise<void> | undefined;
  private gone = false;

  private constructor(
    readonly message: string,
    readonly path: string,
    private readonly handle: FileHandle,
  ) {}

  /** Creates the file (never over an existing one). */
  static async create(message: string, path: string): Promise<BodyFile> {
    return new BodyFile(message, path, await open(path, 'wx', 0o600));
  }

  get size(): number {
    return this.written;
  }

  async write(chunks: readonly Buffer[]): Promise<void> {
    if (this.gone) throw new Error('the body was discarded');
    let pending = chunks.filter((chunk) => chunk.length > 0);
    while (pending.length > 0) {
      const { bytesWritten } = await this.handle.writev(pending, this.written);
      this.written += bytesWritten;
      pending = unwritten(pending, bytesWritten);
    }
  }

  /** fsync'ed and closed: the data is durable (its directory entry is synced by the caller). */
  async finish(): Promise<void> {
    if (this.gone) throw new Error('the body was discarded');
    try {
      await this.handle.sync();
    } finally {
      await this.close();
    }
  }

  /** Closes and removes the file; a second call does nothing. */
  async discard(): Promise<void> {
    if (this.gone) return;
    this.gone = true;
    await this.close().catch(() => undefined);
    await removeFile(this.path);
  }

  private close(): Promise<void> {
    this.closed ??= this.handle.close();
    return this.closed;
  }
}

/** The chunks after the first `written` bytes (a short writev); shared with the journal. */
export function unwritten(chunks: Buffer[], written: number): Buffer[] {
  let left = written;
  const rest: Buffer[] = [];
  for (const chunk of chunks) {
    if (left >= chunk.length) {
      left -= chunk.length;
      continue;
    }
    rest.push(left === 0 ? chunk : chunk.subarray(left));
    left = 0;
  }
  return rest;
}

export class QueueStore {
  readonly dataDir: string;
  readonly controlDir: string;
  readonly corruptDir: string;

  constructor(
    readonly directory: string,
    /** The queue's group commit of directory fsyncs, shared with its journal. */
    readonly syncs = new DirectorySyncs(),
  ) {
    this.dataDir = join(directory, 'data');
    this.controlDir = join(directory, 'control');
    this.corruptDir = join(directory, 'corrupt');
  }

  async prepare(): Promise<void> {
    for (const dir of [this.dataDir, this.controlDir, this.corruptDir]) {
      await mkdir(dir, { recursive: true, mode: 0o700 });
    }
    await this.syncs.sync(this.directory);
  }

  bodyPath(message: string): string {
    return join(this.dataDir, `${message}.eml`);
  }

  /**
   * Writes and fsyncs a new body and its directory entry; refuses to overwrite one. A write that
   * fails (ENOSPC half-way) removes what it created: a refused message leaves nothing behind.
   */
  private async writeBody(message: string, body: Buffer): Promise<void> {
    const path = this.bodyPath(message);
    const handle = await open(path, 'wx', 0o600);
    let written = false;
    try {
      // The directory entry exists once open() returns: its fsync need not wait for the data's.
      await Promise.all([
        handle.writeFile(body).then(() => handle.sync()),
        this.syncs.sync(this.dataDir),
      ]);
      written = true;
    } finally {
      await handle.close();
      if (!written) await removeFile(path).catch(() => undefined);
    }
  }

  /** A body for a new message, written into data/ as it arrives (see BodyFile). */
  openBody(message: string): Promise<BodyFile> {
    return BodyFile.create(message, this.bodyPath(message));
  }

  /** A BodyFile made durable: its data and its directory entry (fsync'ed at the same time). */
  private async finishBody(body: BodyFile): Promise<void> {
    await Promise.all([body.finish(), this.syncs.sync(this.dataDir)]);
  }

  /**
   * Commits a new message: its body (written now, or a BodyFile written as it arrived) and its
   * control records are fsync'ed at the same time, and only once all of them are durable are the
   * records renamed into place (the commit point) and control/ fsync'ed. A crash before that
   * leaves temporary records and an orphan body, both removed by recover(); so a record never
   * exists without its complete body. On failure nothing of the message is left behind and the
   * error is rethrown.
   */
  async commit(
    message: string,
    body: Buffer | BodyFile,
    records: readonly ControlRecord[],
  ): Promise<void> {
    const [bodyWritten, ...staged] = await Promise.allSettled([
      Buffer.isBuffer(body) ? this.writeBody(message, body) : this.finishBody(body),
      ...records.map((record) => this.stageControl(record)),
    ]);
    const failure = [bodyWritten, ...staged].find((result) => result?.status === 'rejected');
    if (failure !== undefined) {
      await Promise.all(records.map((record) => removeFile(this.temporaryPath(record.id)))).catch(
        () => undefined,
      );
      // A body we did not create (EEXIST) is not ours to remove; a BodyFile always is.
      if (!Buffer.isBuffer(body)) await body.discard().catch(() => undefined);
      else if (bodyWritten?.status === 'fulfilled')
        await this.removeBody(message).catch(() => undefined);
      throw (failure as PromiseRejectedResult).reason;
    }
    try {
      await this.publishControls(records);
    } catch (error) {
      // Not acknowledged: take back what was committed so the client's retry is no duplicate.
      for (const record of records) await this.removeControl(record.id).catch(() => undefined);
      await this.removeBody(message).catch(() => undefined);
      throw error;
    }
  }

  /**
   * Removes what a move from the journal left half-done (a crash before the journal's M record):
   * the journal still has the message, and commits it again.
   */
  async discard(message: string, ids: readonly string[]): Promise<void> {
    let removed = false;
    for (const id of ids) {
      removed = (await removeFile(this.controlPath(id))) || removed;
      removed = (await removeFile(this.temporaryPath(id))) || removed;
    }
    removed = (await removeFile(this.bodyPath(message))) || removed;
    if (removed)
      await Promise.all([this.syncs.sync(this.controlDir), this.syncs.sync(this.dataDir)]);
  }

  readBody(message: string): Promise<Buffer> {
    return readFile(this.bodyPath(message));
  }

  async removeBody(message: string): Promise<void> {
    await removeFile(this.bodyPath(message));
  }

  /** Creates or replaces a control record atomically; durable when this resolves. */
  async writeControl(record: ControlRecord): Promise<void> {
    await this.stageControl(record);
    await this.publishControls([record]);
  }

  private controlPath(id: string): string {
    return join(this.controlDir, `${id}.json`);
  }

  private temporaryPath(id: string): string {
    return `${this.controlPath(id)}${TEMPORARY}`;
  }

  /** Writes a record under its temporary name and fsyncs it; not yet part of the queue. */
  private async stageControl(record: ControlRecord): Promise<void> {
    const handle = await open(this.temporaryPath(record.id), 'w', 0o600);
    try {
      await handle.writeFile(`${JSON.stringify(record, null, 1)}\n`);
      await handle.sync();
    } finally {
      await handle.close();
    }
  }

  /** Renames staged records into place; one (shared) fsync of control/ makes them all durable. */
  private async publishControls(records: readonly ControlRecord[]): Promise<void> {
    await Promise.all(
      records.map((record) => rename(this.temporaryPath(record.id), this.controlPath(record.id))),
    );
    await this.syncs.sync(this.controlDir);
  }

  /** Durable before the body goes: a crash in between leaves an orphan body, never a record without one. */
  async removeControl(id: string): Promise<void> {
    await removeFile(this.controlPath(id));
    await this.syncs.sync(this.controlDir);
  }

  /**
   * Replays the directories after a start or a crash: temporary files are dropped, records that
   * cannot be read, do not pass the check (record.ts), lost their body or name a body of another
   * size (a torn write) move to corrupt/ with the body (a copy of it while an intact record of the
   * message still names it), and bodies no record names are removed. Damage is logged, never
   * thrown: the engine starts with what it can trust.
   */
  async recover(log: EngineLog): Promise<ControlRecord[]> {
    const records: ControlRecord[] = [];
    // Messages a quarantined record names: their bodies go to corrupt/ too, never removed.
    const suspect = new Set<string>();
    for (const name of (await readdir(this.controlDir)).sort()) {
      const path = join(this.controlDir, name);
      if (name.endsWith(TEMPORARY)) {
        await unlink(path);
        continue;
      }
      if (!name.endsWith('.json')) continue;
      const parsed = await readFile(path, 'utf8').then(
        (text) => parseControlRecord(text, name.slice(0, -5)),
        (error: NodeJS.ErrnoException) => `unreadable: ${error.code ?? error.message}`,
      );
      if (typeof parsed === 'string') {
        await this.quarantine(name, parsed, log);
        const message = messageOfEntry(name.slice(0, -5));
        if (message !== undefined) suspect.add(message);
        continue;
      }
      records.push(parsed);
    }

    // Message id -> body size. A body is fsync'ed whole before its record exists, so a size that
    // differs from the record's can only come from outside (a torn or truncated file).
    const bodies = new Map<string, number>();
    for (const name of await readdir(this.dataDir)) {
      if (!name.endsWith('.eml')) continue;
      bodies.set(name.slice(0, -4), (await stat(join(this.dataDir, name))).size);
    }
    const kept: ControlRecord[] = [];
    for (const record of records) {
      const size = bodies.get(record.message);
      if (size === record.size) {
        kept.push(record);
        continue;
      }
      const reason =
        size === undefined
          ? `its body data/${record.message}.eml is missing`
          : `its body data/${record.message}.eml has ${size} bytes, the record says ${record.size}`;
      suspect.add(record.message);
      await this.quarantine(`${record.id}.json`, reason, log);
    }
    const named = new Set(kept.map((record) => record.message));
    let quarantined = false;
    for (const message of bodies.keys()) {
      if (suspect.has(message)) {
        // Kept beside its records for whoever investigates; never delivered for them. A body that
        // an intact record still names stays for that one, and a copy goes to corrupt/.
        const target = join(this.corruptDir, `${message}.eml.${Date.now()}`);
        if (named.has(message)) {
          await copyFile(this.bodyPath(message), target);
          log.log('error', 'queue.corrupt-body', { message, copiedTo: target });
        } else {
          await rename(this.bodyPath(message), target);
          log.log('error', 'queue.corrupt-body', { message, movedTo: target });
        }
        quarantined = true;
        continue;
      }
      if (named.has(message)) continue;
      // Written before its control record: the message was never acknowledged.
      await this.removeBody(message);
      log.log('info', 'queue.orphan-removed', { message });
    }
    await this.syncs.sync(this.controlDir);
    await this.syncs.sync(this.dataDir);
    if (quarantined) await this.syncs.sync(this.corruptDir);
    return kept;
  }

  /**
   * The control records in control/ now, read only (nothing is removed or moved): what a receive
   * worker that is gone committed there. One that cannot be read or checked is skipped here and
   * judged by the recovery at the next start.
   */
  async readRecords(): Promise<ControlRecord[]> {
    const records: ControlRecord[] = [];
    for (const name of await readdir(this.controlDir)) {
      if (!name.endsWith('.json')) continue;
      const text = await readFile(join(this.controlDir, name), 'utf8').catch(() => undefined);
      const parsed = text === undefined ? undefined : parseControlRecord(text, name.slice(0, -5));
      if (parsed !== undefined && typeof parsed !== 'string') records.push(parsed);
    }
    return records;
  }

  private async quarantine(name: string, reason: string, log: EngineLog): Promise<void> {
    const target = join(this.corruptDir, `${name}.${Date.now()}`);
    await rename(join(this.controlDir, name), target);
    await this.syncs.sync(this.corruptDir);
    log.log('error', 'queue.corrupt-control', { file: name, reason, movedTo: target });
  }
}

/** unlink, where a file already gone is no error (rm's force costs an lstat per call). */
async function removeFile(path: string): Promise<boolean> {
  try {
    await unlink(path);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    return false;
  }
}
