// The CLI's one error class and its exit codes: every failure a command reports reaches main.ts
// as a CliError and leaves with its code there, as one line; anything else is one line too.
import { ControlError } from '../control/client.js';

export const EXIT = { ok: 0, error: 1, changes: 2 } as const;

export class CliError extends Error {
  override name = 'CliError';
  constructor(
    message: string,
    readonly exitCode: number = EXIT.error,
  ) {
    super(message);
  }
}

/**
 * A command action for commander: the exit code it returns becomes the process's. main.ts keeps
 * an exit code set here (`process.exitCode ??= ...`) and maps thrown errors itself.
 */
export function commandAction<A extends unknown[]>(
  action: (...args: A) => Promise<number>,
): (...args: A) => Promise<void> {
  return async (...args: A) => {
    process.exitCode = await action(...args);
  };
}

/**
 * Any failure as the one line the user reads and the exit code. A CliError or an admin API error
 * says what to do; anything else is a bug or an environment problem: its message only, and its
 * stack when DOMSEC_DEBUG=1.
 */
export function describeFailure(
  error: unknown,
  debug = (process.env.DOMSEC_DEBUG ?? '') === '1',
): { text: string; exitCode: number } {
  if (error instanceof CliError)
    return { text: `domsec: ${error.message}\n`, exitCode: error.exitCode };
  if (error instanceof ControlError)
    return { text: `domsec: ${error.message}\n`, exitCode: EXIT.error };
  const message = error instanceof Error ? error.message : String(error);
  const firstLine = message.split('\n', 1)[0] ?? '';
  if (debug && error instanceof Error && error.stack !== undefined)
    return { text: `domsec: unexpected failure: ${error.stack}\n`, exitCode: EXIT.error };
  return {
    text: `domsec: unexpected failure: ${firstLine} (DOMSEC_DEBUG=1 shows where)\n`,
    exitCode: EXIT.error,
  };
}
