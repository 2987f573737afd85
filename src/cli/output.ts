// Where a command writes: standard output for results, standard error for diagnostics and progress.
import { Option } from 'commander';
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

/**
 * A reader that went away (`domsec plan | head -1`) ends the command quietly, as a pipe's writer
 * dies of SIGPIPE in C programs: exit at once with the status so far (0 unless set), no stack.
 * Errors on standard error are dropped: there is nowhere left to report them.
 */
export function quietOnBrokenPipe(): void {
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') process.exit(Number(process.exitCode ?? 0));
    throw error;
  });
  process.stderr.on('error', () => undefined);
}

/** `-o text|json`, as every command that prints a result takes it. */
export function formatOption(): Option {
  return new Option('-o, --output <format>', 'output format')
    .choices(['text', 'json'])
    .default('text');
}
