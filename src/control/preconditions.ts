// Request preconditions that are not part of a body: the engine identity a plan was made against
// travels in a header on POST /v1/apply and /v1/rollback (as If-Match names the version a
// change expects), and the engine refuses the change as a stale plan when it is another engine.
export const ENGINE_ID_HEADER = 'domsec-engine-id';

/** The header's value, or undefined when absent or not one token. */
export function engineIdOf(
  headers: Record<string, string | string[] | undefined>,
): string | undefined {
  const value = headers[ENGINE_ID_HEADER];
  return typeof value === 'string' && /^[0-9a-f-]{1,64}$/.test(value) ? value : undefined;
}
