// The one gate every path that changes the running generation passes (apply, a saved plan,
// watch, rollback, serve at start): the plan against what the engine runs, its security impact
// judged, weakening changes only with --approve-weakening, the plan and any refusal printed.
import type { Change, EngineState, ObjectState, Plan, RuntimeConfig } from '../model.js';
import { describeConfig } from '../objects.js';
import { computePlan } from './plan.js';
import { renderPlanText } from './render/text.js';

/** Who approves the plan. */
export type Approval =
  /** A person at a terminal reads the plan, its Security section included, and confirms it. */
  | { kind: 'terminal'; confirm: () => Promise<boolean> }
  /** Nobody reads it first (--auto-approve, watch, serve): weakening needs approving up front. */
  | { kind: 'unattended'; approveWeakening: boolean }
  /** Nobody can: no terminal and no --auto-approve. */
  | { kind: 'refused'; reason: string };

export interface GateRequest {
  /** The objects the change makes the engine run (describeConfig of the configuration). */
  desired: ObjectState[];
  /** What the engine reports it runs now; the plan's baseGeneration is its generation. */
  actual: EngineState;
  approval: Approval;
  print: (text: string) => void;
  color?: boolean;
  /** List new objects' default fields instead of counting them (`--show-defaults`). */
  showDefaults?: boolean;
}

export type GateOutcome =
  | { status: 'unchanged'; plan: Plan }
  | { status: 'approved'; plan: Plan }
  | {
      status: 'refused';
      plan: Plan;
      /** Why, for callers to word it: no one to ask, the user said no, weakening unapproved. */
      refusal: 'unconfirmed' | 'cancelled' | 'weakening';
      message: string;
    };

/**
 * Plans, prints and judges. An approved outcome is to be applied with plan.baseGeneration as the
 * engine's precondition, so nothing applied since the plan was judged is overwritten unseen.
 */
export function passGate(request: GateRequest): Promise<GateOutcome> {
  return judgePlan(computePlan(request.desired, request.actual), request);
}

/** The same gate for a plan already computed against the engine (apply and watch plan first). */
export async function judgePlan(
  plan: Plan,
  { approval, print, color, showDefaults }: Omit<GateRequest, 'desired' | 'actual'>,
): Promise<GateOutcome> {
  print(renderPlanText(plan, { color: color ?? false, showDefaults: showDefaults === true }));
  if (plan.changes.length === 0) return { status: 'unchanged', plan };
  switch (approval.kind) {
    case 'refused':
      return { status: 'refused', plan, refusal: 'unconfirmed', message: approval.reason };
    case 'terminal':
      return (await approval.confirm())
        ? { status: 'approved', plan }
        : { status: 'refused', plan, refusal: 'cancelled', message: 'cancelled' };
    case 'unattended': {
      const weakening = weakeningChanges(plan);
      if (weakening.length === 0 || approval.approveWeakening) return { status: 'approved', plan };
      const message = weakeningRefusal(weakening);
      return { status: 'refused', plan, refusal: 'weakening', message };
    }
  }
}

/**
 * The changes that need --approve-weakening. None for the first configuration of an empty
 * engine (generation 0): there is nothing running that a change could weaken.
 */
export function weakeningChanges(plan: Plan): Change[] {
  if (plan.baseGeneration === 0) return [];
  return plan.changes.filter((change) => change.security === 'weakens');
}

/** The refusal, naming each weakening change and why. */
export function weakeningRefusal(weakening: Change[]): string {
  const listed = weakening.map((c) => `${c.kind}/${c.name} (${c.reasons.join('; ')})`);
  return `changes that weaken domain security need --approve-weakening: ${listed.join(', ')}`;
}

/**
 * What an engine that has not started yet will run once it resumes its saved configuration:
 * what serve -f judges manifests against at start (no listeners or queues reported yet).
 */
export function savedGenerationState(config: RuntimeConfig, generation: number): EngineState {
  return {
    formatVersion: 1,
    generation,
    appliedAt: null,
    source: config.source ?? null,
    hostname: config.organization.spec.hostname,
    objects: describeConfig(config),
    listeners: [],
    queues: [],
  };
}
