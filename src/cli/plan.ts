// domsec plan: what apply would change in the running engine. --detailed-exitcode: 0 none, 2 some.
// --out FILE saves the plan with the configuration it applies, for `domsec apply FILE`.
import type { Command } from 'commander';
import { planLoaded } from '../reconcile/reconcile.js';
import { renderPlanJson } from '../reconcile/render/json.js';
import { renderPlanText } from '../reconcile/render/text.js';
import { savedPlan, writeSavedPlan } from '../reconcile/saved-plan.js';
import { CliError, commandAction, EXIT } from './errors.js';
import { fileOption, loadOrFail, manifestPaths } from './manifests.js';
import { formatOption, processOutput, type Output } from './output.js';
import { progressStep } from './progress.js';
import {
  addTargetOptions,
  connectEngine,
  engineNamedUpFront,
  type TargetOptions,
} from './target.js';

export interface PlanOptions extends TargetOptions {
  file: string[];
  output: 'text' | 'json';
  detailedExitcode: boolean;
  /** List each created or deleted object's default fields instead of counting them. */
  showDefaults?: boolean;
  /** Save the plan and its configuration here (mode 0600: it holds the private key). */
  out?: string;
}

export async function planCommand(options: PlanOptions, out: Output): Promise<number> {
  // An engine named up front is asked for its state while the manifests load.
  const named = await engineNamedUpFront(options);
  const fetched = named?.state();
  fetched?.catch(() => undefined); // awaited below; never an unhandled rejection meanwhile
  const load = await loadOrFail(options.file, out);
  const client = named ?? (await connectEngine(options, load.config));
  const reconciliation = await progressStep()('Planning against the running engine', () =>
    planLoaded(load, client, options.file, fetched),
  );
  const { plan, config } = reconciliation;
  if (plan === undefined || config === undefined)
    throw new CliError('the manifests have errors; nothing was planned');
  out.stdout(
    options.output === 'json'
      ? renderPlanJson(plan)
      : renderPlanText(plan, { color: out.color, showDefaults: options.showDefaults === true }),
  );
  if (options.out !== undefined) {
    await writeSavedPlan(options.out, savedPlan(plan, config, reconciliation.state?.engineId));
    out.stderr(
      `Saved the plan to ${options.out} (mode 0600: it contains the private key). ` +
        `Apply exactly this plan with: domsec apply ${options.out}\n`,
    );
  }
  return options.detailedExitcode && plan.changes.length > 0 ? EXIT.changes : EXIT.ok;
}

export function register(program: Command, out: Output = processOutput()): void {
  addTargetOptions(
    program
      .command('plan')
      .description('show what apply would change in the running engine')
      .addOption(fileOption()),
  )
    .addOption(formatOption())
    .option('--out <file>', 'save the plan (and the configuration it applies) for `apply FILE`')
    .option('--detailed-exitcode', 'exit 2 when there are changes, 0 when none')
    .option('--show-defaults', 'list the fields a new object holds at their default, not a count')
    .action(
      commandAction(
        async (o: {
          file?: string[];
          server?: string;
          tokenFile?: string;
          output: 'text' | 'json';
          out?: string;
          detailedExitcode?: boolean;
          showDefaults?: boolean;
        }) =>
          planCommand(
            {
              ...o,
              file: manifestPaths(o.file, { output: o.output, out }),
              detailedExitcode: o.detailedExitcode === true,
              showDefaults: o.showDefaults === true,
            },
            out,
          ),
      ),
    );
}
