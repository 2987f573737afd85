// When each bench message reached a Maildir: a process of its own watches the servers' new/
// directories (inotify, through fs.watch), reads the first bytes of each new file for the tag in
// its Subject and notes the time, so every server is timed alike and no server pays for it.
import { fork } from 'node:child_process';
import { closeSync, openSync, readdirSync, readSync, watch } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { messageTag, monotonicMs } from './tagged-message.js';

/** What the watch saw since the last collect. */
export interface Deliveries {
  /** Each tag's first sight in new/ (monotonicMs). */
  seen: Map<string, number>;
  /** Files found only by the closing readdir (an event lost): their time is that readdir's. */
  late: number;
  /** CPU time of the watch process since it was ready (µs). */
  cpuMicros: number;
}

export interface DeliveryWatch {
  /** The new/ directories watched. */
  readonly directories: readonly string[];
  /**
   * What was delivered since the last call, once `expected` tags are in or after a bound; a
   * readdir then picks up any file whose event was lost.
   */
  collect(expected: number): Promise<Deliveries>;
  stop(): Promise<void>;
}

/** How long collect waits for the last files of a row, after the server said it had delivered. */
const SETTLE_MS = 1_000;
/** A file's Subject is in its first bytes: the engine and Postfix add only a few header lines. */
const HEAD_BYTES = 2048;

interface CollectRequest {
  expected: number;
}
interface CollectReply {
  seen: [string, number][];
  late: number;
  cpuMicros: number;
}

/** Starts the watch over `directories` (which must exist); none needs no process. */
export async function startDeliveryWatch(directories: string[]): Promise<DeliveryWatch> {
  if (directories.length === 0) {
    return {
      directories,
      collect: () => Promise.resolve({ seen: new Map(), late: 0, cpuMicros: 0 }),
      stop: () => Promise.resolve(),
    };
  }
  const child = fork(fileURLToPath(import.meta.url), ['--watch-deliveries', ...directories], {
    execArgv: ['--import', 'tsx'],
  });
  const exited = new Promise<never>((_, reject) =>
    child.once('exit', (code) => reject(new Error(`the delivery watch exited with ${code}`))),
  );
  exited.catch(() => undefined);
  await Promise.race([new Promise((resolve) => child.once('message', resolve)), exited]);
  return {
    directories,
    collect: (expected) =>
      Promise.race([
        new Promise<Deliveries>((resolve) => {
          child.once('message', (reply: CollectReply) =>
            resolve({ seen: new Map(reply.seen), late: reply.late, cpuMicros: reply.cpuMicros }),
          );
          child.send({ expected } satisfies CollectRequest);
        }),
        exited,
      ]),
    stop: async () => {
      if (child.exitCode !== null) return;
      const gone = new Promise((resolve) => child.once('exit', resolve));
      child.disconnect();
      await gone;
    },
  };
}

/** 250 → new/ of each accepted message (ms), and how many were never seen there. */
export function deliveryLatencies(
  accepted: readonly (readonly [string, number])[],
  seen: ReadonlyMap<string, number>,
): { latencies: number[]; unseen: number } {
  const latencies: number[] = [];
  let unseen = 0;
  for (const [tag, at] of accepted) {
    const delivered = seen.get(tag);
    if (delivered === undefined) unseen += 1;
    else latencies.push(delivered - at);
  }
  return { latencies, unseen };
}

/** A directory's names; none once it is gone (a server that stopped removes its own). */
function list(directory: string): string[] {
  try {
    return readdirSync(directory);
  } catch {
    return [];
  }
}

/** The watch process: one inotify watch per directory; synchronous reads, it has nothing else to do. */
function watchDeliveries(directories: string[]): void {
  const names = new Set<string>();
  let fresh = new Map<string, number>();
  const head = Buffer.alloc(HEAD_BYTES);
  const note = (directory: string, name: string, at: number): void => {
    const path = join(directory, name);
    if (names.has(path)) return;
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch {
      return; // gone again (a 'rename' event is also a removal)
    }
    try {
      const length = readSync(fd, head, 0, HEAD_BYTES, 0);
      names.add(path);
      const tag = messageTag(head.subarray(0, length));
      if (tag !== undefined && !fresh.has(tag)) fresh.set(tag, at);
    } finally {
      closeSync(fd);
    }
  };
  for (const directory of directories) {
    for (const name of readdirSync(directory)) names.add(join(directory, name)); // earlier mail
    watch(directory, (_event, name) => {
      if (name !== null) note(directory, name, monotonicMs());
    }).on('error', (error) => {
      console.error(`delivery watch of ${directory}: ${error.message}`);
      process.exit(1);
    });
  }
  process.on('message', (request: CollectRequest) => {
    const deadline = Date.now() + SETTLE_MS;
    const reply = (): void => {
      if (fresh.size < request.expected && Date.now() < deadline) {
        setTimeout(reply, 10);
        return;
      }
      const before = fresh.size;
      const now = monotonicMs();
      for (const directory of directories)
        for (const name of list(directory)) note(directory, name, now);
      const usage = process.cpuUsage(ready);
      process.send?.({
        seen: [...fresh],
        late: fresh.size - before,
        cpuMicros: usage.user + usage.system,
      } satisfies CollectReply);
      fresh = new Map();
    };
    reply();
  });
  process.on('disconnect', () => process.exit(0));
  const ready = process.cpuUsage(); // the watching's cost, not tsx's start
  process.send?.({ ready: true });
}

const watchIndex = process.argv.indexOf('--watch-deliveries');
if (process.argv[1] === fileURLToPath(import.meta.url) && watchIndex >= 0)
  watchDeliveries(process.argv.slice(watchIndex + 1));
