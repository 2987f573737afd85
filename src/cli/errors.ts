// The CLI's one error class and its exit codes (DESIGN.md "CLI contract"): every failure a
// command reports reaches main.ts as a CliError and leaves with its code there.
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
