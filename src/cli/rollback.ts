// domsec rollback GEN: re-apply a kept generation's configuration as a new generation.
import type { Command } from 'commander';
import { ControlError } from '../control/client.js';
import { CliError, commandAction, EXIT } from './errors.js';
import { fileOption } from './manifests.js';
import { processOutput, type Output } from './output.js';
import { addTargetOptions, connectEngineFor, type TargetOptions } from './target.js';

export async function rollbackCommand(
  generation: number,
  options: TargetOptions & { file?: string[] },
  out: Output,
): Promise<number> {
  const client = await connectEngineFor(options);
  try {
    const result = await client.rollback(generation);
    out.stdout(
      `Rolled back: the engine runs generation ${result.generation}, the configuration of generation ${generation}.\n`,
    );
    return EXIT.ok;
  } catch (error) {
    if (error instanceof ControlError && error.code === 'locked')
      throw new CliError(
        'the engine is locked by another apply in progress; try again when it ends',
      );
    throw error;
  }
}

export function register(program: Command, out: Output = processOutput()): void {
  addTargetOptions(
    program
      .command('rollback <generation>')
      .description('re-apply the configuration of a kept generation (see domsec history)')
      .addOption(fileOption()),
  ).action(
    commandAction(async (generation: string, o: TargetOptions & { file?: string[] }) => {
      if (!/^\d+$/.test(generation))
        throw new CliError(`${generation} is not a generation number (see domsec history)`);
      return rollbackCommand(Number(generation), o, out);
    }),
  );
}
