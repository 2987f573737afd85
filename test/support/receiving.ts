// A ReceiveListener for one test on 127.0.0.1:0, serving one generation, with a sink that keeps
// what it is handed (or fails as told) and a log that keeps its entries; closed when the test ends.
import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import { parseBinding } from '../../src/engine/addresses.js';
import type { Generation } from '../../src/engine/generation.js';
import { memoryLog } from '../../src/engine/log.js';
import type { IncomingMessage, MessageSink } from '../../src/engine/message-sink.js';
import { ProtocolLog } from '../../src/engine/protocol-log.js';
import { ReceiveListener } from '../../src/engine/receive.js';

/** Keeps every message it accepts; set `failure` to have it refuse as a full disk would. */
export class MemorySink implements MessageSink {
  readonly messages: IncomingMessage[] = [];
  failure: Error | undefined;

  accept(message: IncomingMessage): Promise<string[]> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    this.messages.push(message);
    return Promise.resolve([`Q${this.messages.length}`]);
  }
}

export interface Receiving {
  listener: ReceiveListener;
  port: number;
  sink: MemorySink;
  /** The sink's messages. */
  messages: IncomingMessage[];
  log: ReturnType<typeof memoryLog>;
}

export interface ReceivingOptions {
  /** Where the protocol log is written; none by default. */
  protocolDirectory?: string | null;
  closeTimeout?: number;
}

export async function receiving(
  t: TestContext,
  generation: Generation,
  options: ReceivingOptions = {},
): Promise<Receiving> {
  const sink = new MemorySink();
  const log = memoryLog();
  const protocolLog = new ProtocolLog(options.protocolDirectory ?? null);
  const listener = new ReceiveListener({
    binding: parseBinding('127.0.0.1:0'),
    generation: () => generation,
    sink,
    log,
    protocolLog,
    closeTimeout: options.closeTimeout ?? 500,
  });
  await listener.listen();
  t.after(async () => {
    await listener.close();
    await protocolLog.close();
  });
  const port = listener.address()?.port;
  assert.ok(port !== undefined && port > 0);
  return { listener, port, sink, messages: sink.messages, log };
}

/** The reason of the first partner refusal the log kept. */
export function refusedReason(log: Receiving['log']): string {
  return String(log.entries.find((e) => e.event === 'partner.refused')?.fields.reason);
}
