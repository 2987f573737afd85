// Progress of long-running work on a terminal: a line saying what is being done and for how long,
// redrawn in place, then ticked off. Nothing at all when standard error is not a terminal or CI
// is set, so that pipelines, logs and CI output stay clean.

/** Runs one piece of work, showing it while it runs. */
export type Step = <T>(label: string, work: () => Promise<T> | T) => Promise<T>;

/** Runs the work and shows nothing: what every step is off a terminal. */
export const quietStep: Step = async (_label, work) => work();

export interface ProgressStream {
  isTTY?: boolean;
  write(text: string): unknown;
}

const FRAMES = ['|', '/', '-', '\\'];
const REDRAW_MS = 100;

/** Whether progress is shown on this stream: a terminal, and not in CI. */
export function showsProgress(
  stream: ProgressStream = process.stderr,
  env: NodeJS.ProcessEnv = process.env,
): boolean {
  return stream.isTTY === true && (env.CI ?? '') === '' && env.TERM !== 'dumb';
}

/** A Step that draws on `stream` when showsProgress says so, else quietStep. */
export function progressStep(
  stream: ProgressStream = process.stderr,
  env: NodeJS.ProcessEnv = process.env,
): Step {
  if (!showsProgress(stream, env)) return quietStep;
  return async (label, work) => {
    const started = performance.now();
    const elapsed = () => `${((performance.now() - started) / 1000).toFixed(1)} s`;
    let frame = 0;
    const draw = () =>
      stream.write(`\r\x1b[K${FRAMES[frame++ % FRAMES.length]} ${label} (${elapsed()})`);
    draw();
    const timer = setInterval(draw, REDRAW_MS);
    timer.unref();
    try {
      const result = await work();
      stream.write(`\r\x1b[K✓ ${label} (${elapsed()})\n`);
      return result;
    } catch (error) {
      stream.write(`\r\x1b[K✗ ${label} (${elapsed()})\n`);
      throw error;
    } finally {
      clearInterval(timer);
    }
  };
}
