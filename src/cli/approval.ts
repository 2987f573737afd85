// How a command that changes the running generation (apply, rollback) gets its plan approved:
// a person at a terminal types "yes", or --auto-approve (with --approve-weakening for weakening
// changes), or nobody, and the command refuses. The gate itself is src/reconcile/gate.ts.
import { createInterface } from 'node:readline/promises';
import type { Approval, GateOutcome } from '../reconcile/gate.js';
import { CliError } from './errors.js';
import type { Output } from './output.js';

export interface ApprovalOptions {
  autoApprove: boolean;
  approveWeakening: boolean;
}

/** verb: what the command does ("apply", "roll back"); question: what a terminal is asked. */
export function approvalFor(
  options: ApprovalOptions,
  out: Output,
  verb: string,
  question: string,
): Approval {
  if (options.autoApprove)
    return { kind: 'unattended', approveWeakening: options.approveWeakening };
  if (out.interactive)
    return { kind: 'terminal', confirm: () => confirm(`${question} Only "yes" is accepted: `) };
  return {
    kind: 'refused',
    reason: `refusing to ${verb} without confirmation: no terminal; pass --auto-approve to ${verb} unattended`,
  };
}

/** A refused gate as the CLI error the user reads (exit code 1). */
/** A refused gate as the CLI error the user reads (exit code 1); cancelled: "Apply cancelled." */
export function refusedError(
  outcome: Extract<GateOutcome, { status: 'refused' }>,
  verb: string,
): CliError {
  switch (outcome.refusal) {
    case 'cancelled':
      return new CliError(`${verb.charAt(0).toUpperCase()}${verb.slice(1)} cancelled.`);
    case 'unconfirmed': // approvalFor worded it: "refusing to VERB without confirmation: ..."
      return new CliError(outcome.message);
    case 'weakening':
      return new CliError(`refusing to ${verb}: ${outcome.message}`);
  }
}

async function confirm(question: string): Promise<boolean> {
  const prompt = createInterface({ input: process.stdin, output: process.stdout });
  try {
    return (await prompt.question(question)).trim() === 'yes';
  } finally {
    prompt.close();
  }
}
