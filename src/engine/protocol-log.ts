// The SMTP protocol log: one CSV line per event in Exchange's field order, one file per
// connector and UTC day, for connectors with protocolLogging: verbose. Never bodies or AUTH data.
import { mkdirSync, createWriteStream, type WriteStream } from 'node:fs';
import { join } from 'node:path';

export type ProtocolEvent = '+' | '-' | '>' | '<' | '*';

export interface ProtocolLogEntry {
  connector: string;
  sessionId: string;
  sequence: number;
  /** "ip:port" */
  local: string;
  remote: string;
  /** + connect, - disconnect, > sent, < received, * information */
  event: ProtocolEvent;
  data: string;
  context?: string;
}

export const PROTOCOL_LOG_FIELDS =
  'date-time,connector-id,session-id,sequence-number,local-endpoint,remote-endpoint,event,data,context';

export interface ProtocolLogOptions {
  /** Hears about files that cannot be written (the log never throws into a session). */
  onError?: (error: Error) => void;
  /** The clock, for tests. */
  now?: () => Date;
}

interface OpenFile {
  day: string;
  stream: WriteStream;
  /** After an error the file is left alone until the next day: one report, not one per line. */
  failed: boolean;
}

export class ProtocolLog {
  private readonly files = new Map<string, OpenFile>();
  /** Yesterday's files, still flushing. */
  private readonly ending = new Set<Promise<void>>();
  private directoryReady = false;
  private directoryFailedOn: string | undefined;
  private closed = false;

  private readonly onError: (error: Error) => void;
  private readonly now: () => Date;

  /** directory null disables the log. */
  constructor(
    private readonly directory: string | null,
    options: ProtocolLogOptions = {},
  ) {
    this.onError =
      options.onError ?? ((error) => process.stderr.write(`protocol log: ${error.message}\n`));
    this.now = options.now ?? (() => new Date());
  }

  /** Appends one line when enabled (the connector's protocolLogging is verbose). */
  write(entry: ProtocolLogEntry, enabled: boolean): void {
    if (!enabled || this.directory === null || this.closed) return;
    const now = this.now();
    const line = [
      now.toISOString(),
      entry.connector,
      entry.sessionId,
      String(entry.sequence),
      entry.local,
      entry.remote,
      entry.event,
      entry.data,
      entry.context ?? '',
    ]
      .map(csvField)
      .join(',');
    this.file(entry.connector, now)?.write(`${line}\n`);
  }

  /** Flushes and closes every open file; later writes are dropped. */
  async close(): Promise<void> {
    this.closed = true;
    const open = [...this.files.values()];
    this.files.clear();
    await Promise.all([...open.map(({ stream }) => endStream(stream)), ...this.ending]);
  }

  private file(connector: string, now: Date): WriteStream | undefined {
    const day = now.toISOString().slice(0, 10).replaceAll('-', '');
    const current = this.files.get(connector);
    if (current?.day === day) return current.failed ? undefined : current.stream;
    if (current !== undefined) {
      this.files.delete(connector);
      const ending = endStream(current.stream);
      this.ending.add(ending);
      void ending.then(() => this.ending.delete(ending));
    }
    if (this.directory === null || this.directoryFailedOn === day) return undefined;
    try {
      if (!this.directoryReady) {
        mkdirSync(this.directory, { recursive: true, mode: 0o750 });
        this.directoryReady = true;
      }
    } catch (error) {
      this.onError(error as Error);
      this.directoryFailedOn = day; // tried again tomorrow, not on every line
      return undefined;
    }
    const path = join(this.directory, `${fileSafe(connector)}-${day}.log`);
    const stream = createWriteStream(path, { flags: 'a', mode: 0o640 });
    const file: OpenFile = { day, stream, failed: false };
    stream.on('error', (error) => {
      if (!file.failed) this.onError(error);
      file.failed = true;
    });
    // Exchange starts each file with its field list; a reader can find it again after appends.
    stream.write(`#Fields: ${PROTOCOL_LOG_FIELDS}\n`);
    this.files.set(connector, file);
    return stream;
  }
}

/** RFC 4180 quoting; line breaks become spaces so that one event stays one line. */
function csvField(value: string): string {
  const flat = value.replace(/[\r\n]+/g, ' ');
  return /[",]/.test(flat) ? `"${flat.replaceAll('"', '""')}"` : flat;
}

function fileSafe(name: string): string {
  return name.replace(/[^A-Za-z0-9._-]/g, '_');
}

function endStream(stream: WriteStream): Promise<void> {
  return new Promise((resolve) => {
    if (stream.closed || stream.destroyed) return resolve();
    stream.once('close', () => resolve());
    stream.end();
  });
}
