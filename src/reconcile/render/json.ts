// The machine plan: the Plan object itself, versioned by formatVersion (docs/plan-format.md).
import type { Plan } from '../../model.js';

export function renderPlanJson(plan: Plan): string {
  return `${JSON.stringify(plan, null, 2)}\n`;
}
