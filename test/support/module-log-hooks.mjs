// Module resolution hooks (node:module register) that append every module URL a process resolves
// to the file DOMSEC_MODULE_LOG names: a test reads what a command loaded.
import { appendFileSync } from 'node:fs';

export async function resolve(specifier, context, nextResolve) {
  const result = await nextResolve(specifier, context);
  const log = process.env.DOMSEC_MODULE_LOG;
  if (log) appendFileSync(log, `${result.url}\n`);
  return result;
}
