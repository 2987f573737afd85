// A ReceiveListener for one test on 127.0.0.1:0, serving one generation, with a sink that keeps
// what it is handed and a log that keeps its entries; closed when the test ends.
import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import { parseBinding } from '../../src/engine/addresses.js';
import type { Generation } from '../../src/engine/generation.js';
import { memoryLog } from '../../src/engine/log.js';
import type { IncomingMessage, MessageSink } from '../../src/engine/message-sink.js';
import { ProtocolLog } from '../../src/engine/protocol-log.js';
import { ReceiveListener } from '../../src/engine/receive.js';

export interface Receiving {
  port: number;
  messages: IncomingMessage[];
  log: ReturnType<typeof memoryLog>;
}

export async function receiving(t: TestContext, generation: Generation): Promise<Receiving> {
  const messages: IncomingMessage[] = [];
  const sink: MessageSink = {
    accept: (message) => {
      messages.push(message);
      return Promise.resolve([`Q${messages.length}`]);
    },
  };
  const log = memoryLog();
  const protocolLog = new ProtocolLog(null);
  const listener = new ReceiveListener({
    binding: parseBinding('127.0.0.1:0'),
    generation: () => generation,
    sink,
    log,
    protocolLog,
    closeTimeout: 500,
  });
  await listener.listen();
  t.after(async () => {
    await listener.close();
    await protocolLog.close();
  });
  const port = listener.address()?.port;
  assert.ok(port !== undefined);
  return { port, messages, log };
}

/** The reason of the first partner refusal the log kept. */
export function refusedReason(log: Receiving['log']): string {
  return String(log.entries.find((e) => e.event === 'partner.refused')?.fields.reason);
}
