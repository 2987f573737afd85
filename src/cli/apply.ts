// domsec apply: plan, show, confirm (or --auto-approve), then hot-reload the engine; or apply a
// saved plan (apply FILE) exactly, refused when the engine moved since it was made. Weakening
// changes need --approve-weakening as well when nobody is at a terminal to confirm them.
import { rm, stat } from 'node:fs/promises';
import type { Command } from 'commander';
import { ControlError, type ControlClient } from '../control/client.js';
import type { ApplyResult, Plan } from '../model.js';
import { applyReconciliation, planLoaded } from '../reconcile/reconcile.js';
import { judgePlan, passGate } from '../reconcile/gate.js';
import { describeConfig } from '../objects.js';
import { readSavedPlan, SavedPlanError } from '../reconcile/saved-plan.js';
import { approvalFor, refusedError } from './approval.js';
import { CliError, commandAction, EXIT } from './errors.js';
import { fileOption, loadOrFail, manifestPaths } from './manifests.js';
import { formatOption, jsonText, processOutput, type Output, type OutputFormat } from './output.js';
import { progressStep } from './progress.js';
import {
  addTargetOptions,
  connectEngine,
  engineNamedUpFront,
  type TargetOptions,
} from './target.js';
import { describeStalePlan } from '../stale-plan.js';

export interface ApplyOptions extends TargetOptions {
  file: string[];
  autoApprove: boolean;
  approveWeakening: boolean;
  /** A plan saved by `plan --out`: applied as it is, the manifests are not read. */
  planFile?: string;
  /** json: no plan text and no prompt; one object at the end (needs --auto-approve). */
  output?: OutputFormat;
  /** List new objects' default fields in the plan shown instead of counting them. */
  showDefaults?: boolean;
}

export async function applyCommand(options: ApplyOptions, out: Output): Promise<number> {
  requireUnattendedJson(options);
  if (options.planFile !== undefined) {
    const exitCode = await applySavedPlan(options.planFile, options, out);
    return deletePlan(options.planFile, exitCode, out);
  }
  // An engine named up front is asked for its state while the manifests load.
  const named = await engineNamedUpFront(options);
  const fetched = named?.state();
  fetched?.catch(() => undefined); // awaited below; never an unhandled rejection meanwhile
  const load = await loadOrFail(options.file, out);
  const client = named ?? (await connectEngine(options, load.config));
  const step = progressStep();
  const reconciliation = await step('Planning against the running engine', () =>
    planLoaded(load, client, options.file, fetched),
  );
  const plan = reconciliation.plan;
  if (plan === undefined) throw new CliError('the manifests have errors; nothing was planned');
  const outcome = await judgePlan(plan, gateOptions(options, out));
  if (outcome.status === 'unchanged') return reportUnchanged(plan, options, out);
  if (outcome.status === 'refused') throw refusedError(outcome, 'apply');
  return reportApplied(
    await refusals(
      step(`Applying ${plan.changes.length} change(s)`, () =>
        applyReconciliation(reconciliation, client),
      ),
    ),
    plan,
    options,
    out,
  );
}

/**
 * A saved plan applies exactly its configuration, but is judged again here against what the
 * engine runs: a plan file edited by hand cannot carry a weakening change marked harmless.
 */
async function applySavedPlan(file: string, options: ApplyOptions, out: Output): Promise<number> {
  // `apply examples/adatum` is the manifests' directory given without -f, not a plan file.
  const isDirectory = await stat(file).then(
    (found) => found.isDirectory(),
    () => false,
  );
  if (isDirectory)
    throw new CliError(
      `${file} is a directory, not a plan saved by plan --out: did you mean -f ${file}?`,
    );
  let saved;
  try {
    saved = await readSavedPlan(file);
  } catch (error) {
    if (error instanceof SavedPlanError) throw new CliError(error.message);
    throw error;
  }
  const client: ControlClient = await connectEngine(options, saved.config);
  const actual = await client.state();
  // Bound to the engine first: another one at the same generation number is no less stale.
  if (saved.engineId === undefined && actual.engineId !== undefined)
    throw new CliError(
      `stale plan: ${file} names no engine (saved by an older domsec); make a new one with plan --out ${file}`,
    );
  if (saved.engineId !== actual.engineId)
    throw new CliError(
      `stale plan: ${file} was made against engine ${saved.engineId ?? '-'}, this is engine ${actual.engineId ?? '-'} (another state directory); make a new one with plan --out ${file}`,
    );
  if (actual.generation !== saved.plan.baseGeneration)
    throw staleError(saved.plan, actual.generation);
  const outcome = await passGate({
    desired: describeConfig(saved.config),
    actual,
    ...gateOptions(options, out),
  });
  if (outcome.status === 'unchanged') return reportUnchanged(outcome.plan, options, out);
  if (outcome.status === 'refused') throw refusedError(outcome, 'apply');
  return reportApplied(
    await refusals(
      progressStep()(`Applying ${outcome.plan.changes.length} change(s)`, () =>
        client.apply(saved.config, saved.plan.baseGeneration, saved.engineId),
      ),
      file,
    ),
    outcome.plan,
    options,
    out,
  );
}

/** JSON output is for programs: nobody reads a plan to confirm it, so it must be approved up front. */
export function requireUnattendedJson(options: {
  output?: OutputFormat;
  autoApprove: boolean;
}): void {
  if (options.output === 'json' && !options.autoApprove)
    throw new CliError('-o json prints no plan to confirm: pass --auto-approve as well');
}

function gateOptions(options: ApplyOptions, out: Output) {
  return {
    approval: approvalFor(options, out, 'apply', 'Apply these changes?'),
    // With -o json the plan is part of the one object printed at the end.
    print: (text: string) => (options.output === 'json' ? undefined : out.stdout(text)),
    color: out.color,
    showDefaults: options.showDefaults === true,
  };
}

/** The engine's refusals in the words a user acts on. */
async function refusals(apply: Promise<ApplyResult>, planFile?: string): Promise<ApplyResult> {
  try {
    return await apply;
  } catch (error) {
    if (error instanceof ControlError && error.code === 'stale-plan') {
      const again =
        planFile === undefined ? 'plan again' : `make a new one with plan --out ${planFile}`;
      // An engine before error.stale said it in its message only: that is quoted whole.
      const why = error.stale === undefined ? error.message : describeStalePlan(error.stale);
      throw new CliError(`stale plan: ${why}; ${again}`);
    }
    if (error instanceof ControlError && error.code === 'locked') {
      throw new CliError(
        `the engine is locked by another apply in progress; nothing was changed by this one, try again when it ends`,
      );
    }
    throw error;
  }
}

/**
 * A saved plan holds the private key: once the engine runs it (or already ran it) the file has
 * done its job and is deleted. A refused plan is kept, for its user to see why.
 */
async function deletePlan(file: string, exitCode: number, out: Output): Promise<number> {
  try {
    await rm(file);
    out.stderr(`Deleted ${file}: a saved plan holds the private key.\n`);
  } catch (error) {
    out.stderr(
      `domsec: could not delete ${file} (${(error as NodeJS.ErrnoException).code ?? 'error'}): it holds the private key, delete it yourself\n`,
    );
  }
  return exitCode;
}

function staleError(plan: Plan, generation: number): CliError {
  return new CliError(
    `stale plan: the plan was made against generation ${plan.baseGeneration}, the engine is now at ${generation}; make a new plan`,
  );
}

function reportApplied(
  result: ApplyResult,
  plan: Plan,
  options: ApplyOptions,
  out: Output,
): number {
  out.stdout(
    options.output === 'json'
      ? jsonText({
          applied: true,
          generation: result.generation,
          appliedAt: result.appliedAt,
          plan,
        })
      : `Apply complete: the engine runs generation ${result.generation}.\n`,
  );
  return EXIT.ok;
}

/** Nothing to change: the text plan already said "No changes"; JSON says it in the object. */
function reportUnchanged(plan: Plan, options: ApplyOptions, out: Output): number {
  if (options.output === 'json')
    out.stdout(jsonText({ applied: false, generation: plan.baseGeneration, plan }));
  return EXIT.ok;
}

export function register(program: Command, out: Output = processOutput()): void {
  addTargetOptions(
    program
      .command('apply [planfile]')
      .description(
        'apply the manifests to the running engine by hot reload, or exactly a plan saved by plan --out',
      )
      .addOption(fileOption()),
  )
    .addOption(formatOption())
    .option('--auto-approve', 'apply without asking')
    .option('--show-defaults', 'list the fields a new object holds at their default, not a count')
    .option(
      '--approve-weakening',
      'with --auto-approve, also apply changes that weaken domain security',
    )
    .action(
      commandAction(
        async (
          planFile: string | undefined,
          o: {
            file?: string[];
            server?: string;
            tokenFile?: string;
            autoApprove?: boolean;
            approveWeakening?: boolean;
            output: OutputFormat;
            showDefaults?: boolean;
          },
        ) => {
          if (planFile !== undefined && o.file !== undefined)
            throw new CliError('give either -f manifests or a saved plan file, not both');
          return applyCommand(
            {
              ...o,
              // A saved plan reads no manifests: nothing to say about ./manifests then.
              file:
                planFile === undefined
                  ? manifestPaths(o.file, { output: o.output, out })
                  : manifestPaths(o.file),
              autoApprove: o.autoApprove === true,
              approveWeakening: o.approveWeakening === true,
              ...(planFile === undefined ? {} : { planFile }),
            },
            out,
          );
        },
      ),
    );
}
