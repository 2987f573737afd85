// domsec status: the engine's reconcile status as its reconciler (watch) last reported it: Ready,
// or the last attempt's error, in the manner of a Kubernetes object's status.
import type { Command } from 'commander';
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
    `Ready:                  ${status.lastAttemptOutcome === null ? 'Unknown (no reconciler has reported)' : status.ready ? 'True' : 'False'}`,
    `Generation:             ${status.generation}`,
    `lastAppliedGeneration:  ${status.lastAppliedGeneration ?? '-'}`,
    `lastAttempt:            ${status.lastAttemptOutcome ?? '-'} at ${status.lastAttemptAt ?? '-'}`,
    `lastAttemptError:       ${status.lastAttemptError ?? '-'}`,
    `Reconciler:             ${status.reconciler ?? '-'}`,
  ];
  out.stdout(`${lines.join('\n')}\n`);
  return EXIT.ok;
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
