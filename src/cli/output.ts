// Where a command writes: standard output for results, standard error for diagnostics and progress.
import { Option } from 'commander';
import { CliError } from './errors.js';
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

export type OutputFormat = 'text' | 'json';

/**
 * `-o text|json`, the one definition every command takes. Anything else is refused as one line
 * (a CliError: exit 1, no usage dump), so `-o xml` never falls back to text unnoticed.
 */
export function formatOption(): Option {
  return new Option('-o, --output <format>', 'output format: text or json (formatVersion 1)')
    .argParser(parseOutputFormat)
    .default('text');
}

export function parseOutputFormat(value: string): OutputFormat {
  if (value === 'text' || value === 'json') return value;
  throw new CliError(`-o ${value}: the output format is text or json`);
}

/** A JSON result on one line per object (watch's events) or indented (everything else). */
export function jsonText(value: object, oneLine = false): string {
  const body = { formatVersion: 1, ...value };
  return `${oneLine ? JSON.stringify(body) : JSON.stringify(body, null, 2)}\n`;
}
