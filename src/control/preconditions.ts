// Request preconditions that are not part of a body: the engine identity a plan was made against
// travels in a header on POST /v1/apply and /v1/rollback (as If-Match names the version a
// change expects), and the engine refuses the change as a stale plan when it is another engine.
export const ENGINE_ID_HEADER = 'domsec-engine-id';

/**
 * The header's value: undefined when absent (no identity check asked for), an engine id when it
 * is one, and a refusal when it is present and is none (repeated, or not an id): a check the
 * client asked for is never skipped because it was spelled wrong.
 */
export function engineIdOf(
  headers: Record<string, string | string[] | undefined>,
): { ok: true; engineId: string | undefined } | { ok: false; reason: string } {
  const value = headers[ENGINE_ID_HEADER];
  if (value === undefined) return { ok: true, engineId: undefined };
  if (typeof value === 'string' && /^[0-9a-f-]{1,64}$/.test(value)) {
    return { ok: true, engineId: value };
  }
  return {
    ok: false,
    reason: `${ENGINE_ID_HEADER} is not an engine id (up to 64 of 0-9, a-f and -): the plan's engine cannot be checked`,
  };
}
