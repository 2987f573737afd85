// domsec history: the engine's last applied generations, when, from where (Git revision).
import type { Command } from 'commander';
import { commandAction, EXIT } from './errors.js';
import { fileOption } from './manifests.js';
import { formatOption, processOutput, type Output } from './output.js';
import { addTargetOptions, connectEngineFor, type TargetOptions } from './target.js';

export async function historyCommand(
  options: TargetOptions & { file?: string[]; output: 'text' | 'json' },
  out: Output,
): Promise<number> {
  const history = await (await connectEngineFor(options)).history();
  if (options.output === 'json') {
    out.stdout(`${JSON.stringify(history, null, 2)}\n`);
    return EXIT.ok;
  }
  if (history.entries.length === 0) {
    out.stdout('No generation applied yet.\n');
    return EXIT.ok;
  }
  out.stdout('GENERATION  APPLIED AT                REVISION            SOURCE\n');
  for (const entry of history.entries) {
    const current = entry.generation === history.generation ? '*' : ' ';
    // As `git describe --dirty` marks it: the manifests applied were not exactly that commit.
    const commit = entry.source?.revision?.slice(0, 12);
    const revision =
      commit === undefined ? '-' : `${commit}${entry.source?.dirty === true ? '+dirty' : ''}`;
    const source = [
      entry.source?.description ?? '-',
      ...(entry.rollbackOf === undefined ? [] : [`(rollback to ${entry.rollbackOf})`]),
    ].join(' ');
    out.stdout(
      `${`${current}${entry.generation}`.padEnd(11)} ${entry.appliedAt.padEnd(25)} ${revision.padEnd(19)} ${source}\n`,
    );
  }
  return EXIT.ok;
}

export function register(program: Command, out: Output = processOutput()): void {
  addTargetOptions(
    program
      .command('history')
      .description('the last 20 applied generations (* marks the running one)')
      .addOption(fileOption()),
  )
    .addOption(formatOption())
    .action(
      commandAction(async (o: TargetOptions & { file?: string[]; output: 'text' | 'json' }) =>
        historyCommand(o, out),
      ),
    );
}
