// domsec apply: plan, show, confirm (or --auto-approve), then hot-reload the engine. Weakening
// changes need --approve-weakening as well when nobody is at a terminal to confirm them.
import { createInterface } from 'node:readline/promises';
import { applyReconciliation, planLoaded } from '../reconcile/reconcile.js';
import { renderPlanText } from '../reconcile/render/text.js';
import { CliError, EXIT } from './errors.js';
import { loadOrFail } from './manifests.js';
import type { Output } from './output.js';
import { connectEngine, type TargetOptions } from './target.js';

export interface ApplyOptions extends TargetOptions {
  file: string[];
  autoApprove: boolean;
  approveWeakening: boolean;
}

export async function applyCommand(options: ApplyOptions, out: Output): Promise<number> {
  const load = await loadOrFail(options.file, out);
  const client = await connectEngine(options, load.config);
  const reconciliation = await planLoaded(load, client);
  const plan = reconciliation.plan;
  if (plan === undefined) throw new CliError('the manifests have errors; nothing was planned');
  out.stdout(renderPlanText(plan, { color: out.color }));
  if (plan.changes.length === 0) return EXIT.ok;

  const weakening = plan.changes.filter((c) => c.security === 'weakens');
  if (!options.autoApprove) {
    if (!out.interactive) {
      throw new CliError(
        'refusing to apply without confirmation: no terminal; pass --auto-approve to apply unattended',
      );
    }
    if (!(await confirm('Apply these changes? Only "yes" is accepted: ')))
      throw new CliError('Apply cancelled.');
  } else if (weakening.length > 0 && !options.approveWeakening) {
    const names = weakening.map((c) => `${c.kind}/${c.name} (${c.reasons.join('; ')})`).join(', ');
    throw new CliError(
      `refusing to apply changes that weaken domain security without --approve-weakening: ${names}`,
    );
  }
  const result = await applyReconciliation(reconciliation, client);
  out.stdout(`Apply complete: the engine runs generation ${result.generation}.\n`);
  return EXIT.ok;
}

async function confirm(question: string): Promise<boolean> {
  const prompt = createInterface({ input: process.stdin, output: process.stdout });
  try {
    return (await prompt.question(question)).trim() === 'yes';
  } finally {
    prompt.close();
  }
}
