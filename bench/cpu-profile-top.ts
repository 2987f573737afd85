// The functions a CPU profile (BENCH_PROFILE's .cpuprofile files) spent most self time in, over
// the whole profile or a window of it (the "profile window" lines of bench/smtp.ts, in ms of
// CLOCK_MONOTONIC, the clock V8 stamps its samples with):
// node --import tsx bench/cpu-profile-top.ts <file.cpuprofile> [count, 10] [--window FROM-TO]
import { readFile } from 'node:fs/promises';
import { relative } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The parts of V8's .cpuprofile JSON read here. */
interface CpuProfile {
  /** µs, CLOCK_MONOTONIC. */
  startTime: number;
  nodes: {
    id: number;
    callFrame: { functionName: string; url: string; lineNumber: number };
  }[];
  samples: number[];
  /** µs since the previous sample, one per sample. */
  timeDeltas: number[];
}

export interface SelfTime {
  /** Function name, file and line (0-based in the profile, printed 1-based). */
  frame: string;
  micros: number;
  share: number;
}

/** Self time per function (summed over the nodes of its call sites), largest first. */
export function selfTimes(
  profile: CpuProfile,
  root: string,
  window?: { from: number; to: number },
): SelfTime[] {
  const frames = new Map<number, string>();
  for (const { id, callFrame } of profile.nodes) {
    const path = callFrame.url.startsWith('file://')
      ? relative(root, fileURLToPath(callFrame.url))
      : callFrame.url;
    const where = path === '' ? '' : ` ${path}:${callFrame.lineNumber + 1}`;
    frames.set(id, `${callFrame.functionName || '(anonymous)'}${where}`);
  }
  const totals = new Map<string, number>();
  let all = 0;
  // A sample's time is the delta to the next one (V8 records the gap before each sample).
  let at = profile.startTime / 1000;
  profile.samples.forEach((id, index) => {
    at += (profile.timeDeltas[index] ?? 0) / 1000;
    if (window !== undefined && (at < window.from || at > window.to)) return;
    const micros = profile.timeDeltas[index + 1] ?? 0;
    const frame = frames.get(id) ?? `node ${id}`;
    totals.set(frame, (totals.get(frame) ?? 0) + micros);
    all += micros;
  });
  return [...totals]
    .map(([frame, micros]) => ({ frame, micros, share: micros / Math.max(1, all) }))
    .sort((a, b) => b.micros - a.micros);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const windowIndex = args.indexOf('--window');
  const [from, to] = (windowIndex >= 0 ? (args.splice(windowIndex, 2)[1] ?? '') : '')
    .split('-')
    .map(Number);
  const window = from !== undefined && to !== undefined ? { from, to } : undefined;
  const [file, count] = args;
  if (file === undefined)
    throw new Error('usage: cpu-profile-top.ts <file.cpuprofile> [count] [--window FROM-TO]');
  const profile = JSON.parse(await readFile(file, 'utf8')) as CpuProfile;
  const root = fileURLToPath(new URL('..', import.meta.url));
  const top = selfTimes(profile, root, window).slice(0, Number(count ?? 10));
  for (const { frame, micros, share } of top)
    console.log(
      `${(micros / 1000).toFixed(0).padStart(7)} ms ${(100 * share).toFixed(1).padStart(5)}%  ${frame}`,
    );
}
