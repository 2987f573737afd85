// domsec status: the engine's reconcile status, one record for every source of change (apply,
// watch, rollback, serve): Ready or why not (drift included), what was applied last and by whom,
// and the reconciler reporting now, in the manner of a Kubernetes object's status.
import type { Command } from 'commander';
import type { ReconcileStatus } from '../model.js';
import { commandAction, EXIT } from './errors.js';
import { fileOption } from './manifests.js';
import { formatOption, processOutput, type Output } from './output.js';
import { addTargetOptions, connectEngineFor, type TargetOptions } from './target.js';

export async function statusCommand(
  options: TargetOptions & { file?: string[]; output: 'text' | 'json' },
  out: Output,
): Promise<number> {
  const status = await (await connectEngineFor(options)).status();
  if (options.output === 'json') {
    out.stdout(`${JSON.stringify(status, null, 2)}\n`);
    return EXIT.ok;
  }
  const lines = [
    `Ready:                  ${status.ready ? 'True' : 'False'}${status.reason == null ? '' : ` (${status.reason})`}`,
    `Engine:                 ${status.engineId ?? '-'}`,
    `Generation:             ${status.generation}`,
    `lastAppliedGeneration:  ${status.lastAppliedGeneration ?? '-'}${status.lastAppliedBy == null ? '' : ` by ${status.lastAppliedBy}`}${status.lastAppliedAt == null ? '' : ` at ${status.lastAppliedAt}`}`,
    `lastAttempt:            ${status.lastAttemptOutcome ?? '-'}${status.lastAttemptBy == null ? '' : ` by ${status.lastAttemptBy}`} at ${status.lastAttemptAt ?? '-'}`,
    `lastAttemptError:       ${status.lastAttemptError ?? '-'}`,
    `Reconciler:             ${reconcilerLine(status)}`,
  ];
  out.stdout(`${lines.join('\n')}\n`);
  return EXIT.ok;
}

/** The reconciler reporting now, or the last one and since when it has been silent. */
function reconcilerLine(status: ReconcileStatus): string {
  if (status.reconciler !== null)
    return `${status.reconciler} (reported ${status.reconcilerReportedAt ?? '?'}, expected again before ${status.reconcilerExpiresAt ?? '?'})`;
  if (status.lastReconciler == null) return '-';
  return `- (${status.lastReconciler} stopped reporting: last report ${status.reconcilerReportedAt ?? '?'})`;
}

export function register(program: Command, out: Output = processOutput()): void {
  addTargetOptions(
    program
      .command('status')
      .description("the engine's reconcile status: Ready, last applied generation, last error")
      .addOption(fileOption()),
  )
    .addOption(formatOption())
    .action(
      commandAction(async (o: TargetOptions & { file?: string[]; output: 'text' | 'json' }) =>
        statusCommand(o, out),
      ),
    );
}
