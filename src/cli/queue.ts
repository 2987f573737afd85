// domsec queue list | show ID | retry [DOMAIN] | suspend DOMAIN | resume DOMAIN: the engine's
// queues, like Exchange's Queue Viewer and its Suspend-Queue / Resume-Queue.
import type { Command } from 'commander';
import type { ControlClient } from '../control/client.js';
import { CliError, commandAction } from './errors.js';
import { fileOption } from './manifests.js';
import { formatOption, jsonText, processOutput, type Output, type OutputFormat } from './output.js';
import { addTargetOptions, connectEngineFor, type TargetOptions } from './target.js';

export async function queueList(
  client: ControlClient,
  out: Output,
  json: boolean,
): Promise<number> {
  const { queues } = await client.queues();
  if (json) {
    out.stdout(jsonText({ queues }));
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

export async function queueShow(
  client: ControlClient,
  out: Output,
  id: string,
  format: OutputFormat = 'text',
): Promise<number> {
  const { messages } = await client.queues();
  const message = messages.find((m) => m.id === id);
  if (message === undefined) throw new CliError(`no queued message ${id}`);
  out.stdout(format === 'json' ? jsonText({ message }) : renderMessage(message));
  return 0;
}

/** One message as `key: value` lines; nested values (recipients) as indented blocks. */
function renderMessage(message: object): string {
  const lines: string[] = [];
  const walk = (value: unknown, indent: string, key: string) => {
    if (Array.isArray(value)) {
      lines.push(`${indent}${key}:${value.length === 0 ? ' -' : ''}`);
      for (const item of value as unknown[]) walk(item, `${indent}  `, '-');
    } else if (value !== null && typeof value === 'object') {
      lines.push(`${indent}${key}:`);
      for (const [k, v] of Object.entries(value)) walk(v, `${indent}  `, k);
    } else {
      lines.push(
        `${indent}${key}${key === '-' ? '' : ':'} ${value === null ? '-' : String(value)}`,
      );
    }
  };
  for (const [key, value] of Object.entries(message)) walk(value, '', key);
  return `${lines.join('\n')}\n`;
}

export async function queueRetry(
  client: ControlClient,
  out: Output,
  domain?: string,
  format: OutputFormat = 'text',
): Promise<number> {
  const { retried, suspended = [] } = await client.retry(domain);
  if (format === 'json') {
    out.stdout(jsonText({ domain: domain ?? null, retried, suspended }));
    return 0;
  }
  if (domain !== undefined && suspended.length > 0) {
    // Retrying a held queue would defeat the hold: say so, and how to lift it.
    out.stdout(
      `The queue for ${suspended.join(', ')} is suspended: nothing retried. ` +
        `Resume it with: domsec queue resume ${suspended.join(' ')}\n`,
    );
    return 0;
  }
  out.stdout(
    `Retrying ${retried} message(s)${domain === undefined ? '' : ` for ${domain}`} now.\n`,
  );
  if (suspended.length > 0)
    out.stdout(`Suspended, not retried: ${suspended.join(', ')} (domsec queue resume DOMAIN).\n`);
  return 0;
}

export async function queueSuspend(
  client: ControlClient,
  out: Output,
  domain: string,
  format: OutputFormat = 'text',
): Promise<number> {
  const result = await client.suspend(domain);
  out.stdout(
    format === 'json'
      ? jsonText({ ...result })
      : result.suspended
        ? `Suspended the queue for ${result.domain} (${result.messages} message(s) held; ` +
          'mail keeps arriving and waits, and still expires).\n'
        : `The queue for ${result.domain} was already suspended (${result.messages} message(s) held).\n`,
  );
  return 0;
}

export async function queueResume(
  client: ControlClient,
  out: Output,
  domain: string,
  format: OutputFormat = 'text',
): Promise<number> {
  const result = await client.resume(domain);
  out.stdout(
    format === 'json'
      ? jsonText({ ...result })
      : result.resumed
        ? `Resumed the queue for ${result.domain}: delivering ${result.retried} message(s) now.\n`
        : `The queue for ${result.domain} is not suspended: nothing to resume.\n`,
  );
  return 0;
}

/** The queue command group; every subcommand finds its engine like status does. */
export function register(program: Command, out: Output = processOutput()): void {
  const queue = program
    .command('queue')
    .description('inspect, retry, suspend and resume the engine queues');
  const withTarget = (command: Command) => addTargetOptions(command.addOption(fileOption()));
  withTarget(queue.command('list').description('queues by next-hop domain'))
    .addOption(formatOption())
    .action(
      commandAction(async (o: TargetOptions & { file?: string[]; output: OutputFormat }) =>
        queueList(await connectEngineFor(o), out, o.output === 'json'),
      ),
    );
  withTarget(queue.command('show <id>').description('one queued message'))
    .addOption(formatOption())
    .action(
      commandAction(
        async (id: string, o: TargetOptions & { file?: string[]; output: OutputFormat }) =>
          queueShow(await connectEngineFor(o), out, id, o.output),
      ),
    );
  withTarget(queue.command('retry [domain]').description('retry now (one next-hop domain, or all)'))
    .addOption(formatOption())
    .action(
      commandAction(
        async (
          domain: string | undefined,
          o: TargetOptions & { file?: string[]; output: OutputFormat },
        ) => queueRetry(await connectEngineFor(o), out, domain, o.output),
      ),
    );
  withTarget(
    queue
      .command('suspend <domain>')
      .description(
        'hold delivery to a next-hop domain (kept across restarts; mail waits, still expires)',
      ),
  )
    .addOption(formatOption())
    .action(
      commandAction(
        async (domain: string, o: TargetOptions & { file?: string[]; output: OutputFormat }) =>
          queueSuspend(await connectEngineFor(o), out, domain, o.output),
      ),
    );
  withTarget(
    queue
      .command('resume <domain>')
      .description("lift a suspension and deliver the domain's mail at once"),
  )
    .addOption(formatOption())
    .action(
      commandAction(
        async (domain: string, o: TargetOptions & { file?: string[]; output: OutputFormat }) =>
          queueResume(await connectEngineFor(o), out, domain, o.output),
      ),
    );
}
