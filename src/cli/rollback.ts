// domsec rollback GEN: re-apply a kept generation's configuration as a new generation, through
// the same gate as apply: the plan from what runs now to the kept configuration is shown, and
// needs a terminal's "yes" or --auto-approve (and --approve-weakening when it weakens).
import type { Command } from 'commander';
import { ControlError } from '../control/client.js';
import { passGate } from '../reconcile/gate.js';
import { approvalFor, refusedError, type ApprovalOptions } from './approval.js';
import { CliError, commandAction, EXIT } from './errors.js';
import { fileOption } from './manifests.js';
import { requireUnattendedJson } from './apply.js';
import { formatOption, jsonText, processOutput, type Output, type OutputFormat } from './output.js';
import { addTargetOptions, connectEngineFor, type TargetOptions } from './target.js';

export type RollbackOptions = TargetOptions &
  ApprovalOptions & { file?: string[]; output?: OutputFormat };

export async function rollbackCommand(
  generation: number,
  options: RollbackOptions,
  out: Output,
): Promise<number> {
  requireUnattendedJson(options);
  const json = options.output === 'json';
  const client = await connectEngineFor(options);
  try {
    const [actual, kept] = await Promise.all([client.state(), client.keptGeneration(generation)]);
    if (!json) out.stdout(`Rollback to the configuration of generation ${generation}:\n`);
    const outcome = await passGate({
      desired: kept.objects,
      actual,
      approval: approvalFor(
        options,
        out,
        'roll back',
        `Roll back to the configuration of generation ${generation}?`,
      ),
      print: (text) => (json ? undefined : out.stdout(text)),
      color: out.color,
    });
    if (outcome.status === 'refused') throw refusedError(outcome, 'roll back');
    // Refused by the engine if anything was applied since the plan was judged.
    const result = await client.rollback(generation, outcome.plan.baseGeneration, actual.engineId);
    out.stdout(
      json
        ? jsonText({
            rolledBackTo: generation,
            generation: result.generation,
            appliedAt: result.appliedAt,
            plan: outcome.plan,
          })
        : `Rolled back: the engine runs generation ${result.generation}, the configuration of generation ${generation}.\n`,
    );
    return EXIT.ok;
  } catch (error) {
    if (error instanceof ControlError && error.code === 'locked')
      throw new CliError(
        'the engine is locked by another apply in progress; try again when it ends',
      );
    if (error instanceof ControlError && error.code === 'stale-plan')
      throw new CliError(`the engine moved while the rollback was planned (${error.message})`);
    throw error;
  }
}

export function register(program: Command, out: Output = processOutput()): void {
  addTargetOptions(
    program
      .command('rollback <generation>')
      .description('re-apply the configuration of a kept generation (see domsec history)')
      .addOption(fileOption()),
  )
    .addOption(formatOption())
    .option('--auto-approve', 'roll back without asking')
    .option(
      '--approve-weakening',
      'with --auto-approve, also roll back when that weakens domain security',
    )
    .action(
      commandAction(
        async (
          generation: string,
          o: TargetOptions & {
            file?: string[];
            autoApprove?: boolean;
            approveWeakening?: boolean;
            output: OutputFormat;
          },
        ) => {
          if (!/^\d+$/.test(generation))
            throw new CliError(`${generation} is not a generation number (see domsec history)`);
          return rollbackCommand(
            Number(generation),
            {
              ...o,
              autoApprove: o.autoApprove === true,
              approveWeakening: o.approveWeakening === true,
            },
            out,
          );
        },
      ),
    );
}
