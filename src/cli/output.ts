// Where a command writes: standard output for results, standard error for diagnostics and progress.
export interface Output {
  stdout(text: string): void;
  stderr(text: string): void;
  /** Colour only on a terminal, and never when NO_COLOR is set. */
  color: boolean;
  interactive: boolean;
}

export function processOutput(): Output {
  return {
    stdout: (text) => process.stdout.write(text),
    stderr: (text) => process.stderr.write(text),
    color: process.stdout.isTTY === true && (process.env.NO_COLOR ?? '') === '',
    interactive: process.stdin.isTTY === true && process.stdout.isTTY === true,
  };
}
