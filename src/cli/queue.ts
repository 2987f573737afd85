// domsec queue list | show ID | retry [DOMAIN]: the engine's queues, like Exchange's Queue Viewer.
import type { Output } from './output.js';
import { CliError } from './errors.js';
import type { ControlClient } from '../control/client.js';

export async function queueList(
  client: ControlClient,
  out: Output,
  json: boolean,
): Promise<number> {
  const { queues } = await client.queues();
  if (json) {
    out.stdout(`${JSON.stringify({ formatVersion: 1, queues }, null, 2)}\n`);
    return 0;
  }
  if (queues.length === 0) {
    out.stdout('No queued messages.\n');
    return 0;
  }
  for (const queue of queues) {
    out.stdout(
      `${queue.nextHopDomain}  messages=${queue.messageCount}  status=${queue.status}` +
        `  next-retry=${queue.nextRetryAt ?? '-'}\n  last-error: ${queue.lastError ?? '-'}\n`,
    );
  }
  return 0;
}

export async function queueShow(client: ControlClient, out: Output, id: string): Promise<number> {
  const { messages } = await client.queues();
  const message = messages.find((m) => m.id === id);
  if (message === undefined) throw new CliError(`no queued message ${id}`);
  out.stdout(`${JSON.stringify(message, null, 2)}\n`);
  return 0;
}

export async function queueRetry(
  client: ControlClient,
  out: Output,
  domain?: string,
): Promise<number> {
  const { retried } = await client.retry(domain);
  out.stdout(
    `Retrying ${retried} message(s)${domain === undefined ? '' : ` for ${domain}`} now.\n`,
  );
  return 0;
}
