/**
 * Timing helpers shared by the benchmarks: run a command, take its wall time and peak RSS.
 *
 * @module
 */

/** A finished, timed command. */
export interface Timed {
  code: number;
  seconds: number;
  stdout: string;
  stderr: string;
  /** Peak RSS in MB when the command printed `peak-rss-kb N` on stderr. */
  peakRssMb?: number;
}

/** Runs a command to completion and times it (wall clock, whole process). */
export async function runTimed(
  cmd: string,
  args: string[],
  options: { env?: Record<string, string>; cwd?: string } = {},
): Promise<Timed> {
  const started = performance.now();
  const out = await new Deno.Command(cmd, {
    args,
    env: options.env,
    cwd: options.cwd,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const seconds = (performance.now() - started) / 1000;
  const stderr = new TextDecoder().decode(out.stderr);
  const kb = /peak-rss-kb (\d+)/.exec(stderr)?.[1];
  return {
    code: out.code,
    seconds,
    stdout: new TextDecoder().decode(out.stdout),
    stderr,
    peakRssMb: kb ? Number(kb) / 1024 : undefined,
  };
}

/** The median of some numbers. */
export function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Prints rows of (label, median s, min s). */
export function table(rows: [string, number, number][], repeats: number): void {
  const width = Math.max(...rows.map((r) => r[0].length));
  console.log(`${"".padEnd(width)}  median s   min s   (${repeats} runs each)`);
  for (const [label, med, min] of rows) {
    console.log(
      `${label.padEnd(width)}  ${med.toFixed(3).padStart(8)}  ${min.toFixed(3).padStart(6)}`,
    );
  }
}
