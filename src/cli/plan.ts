// domsec plan: what apply would change in the running engine. --detailed-exitcode: 0 none, 2 some.
import { planLoaded } from '../reconcile/reconcile.js';
import { renderPlanJson } from '../reconcile/render/json.js';
import { renderPlanText } from '../reconcile/render/text.js';
import { CliError, EXIT } from './errors.js';
import type { Output } from './output.js';
import { connectEngine, type TargetOptions } from './target.js';
import { loadOrFail } from './manifests.js';

export interface PlanOptions extends TargetOptions {
  file: string[];
  output: 'text' | 'json';
  detailedExitcode: boolean;
}

export async function planCommand(options: PlanOptions, out: Output): Promise<number> {
  const load = await loadOrFail(options.file, out);
  const client = await connectEngine(options, load.config);
  const reconciliation = await planLoaded(load, client);
  const plan = reconciliation.plan;
  if (plan === undefined) throw new CliError('the manifests have errors; nothing was planned');
  out.stdout(
    options.output === 'json' ? renderPlanJson(plan) : renderPlanText(plan, { color: out.color }),
  );
  return options.detailedExitcode && plan.changes.length > 0 ? EXIT.changes : EXIT.ok;
}
