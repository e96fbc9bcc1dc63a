/** What every benchmark suite provides, and helpers the suites share. */
import { cpus, platform, release } from "node:os";

/** A benchmark suite: one module in src/bench/, chosen by name on the command line (`npm run bench -- <name>`). */
export interface BenchSuite {
  /**
   * Run the suite, print its report on standard output (progress on standard error), and return the exit
   * code: 0 when the benchmark ran and its correctness checks passed, 1 when a check failed. Throw
   * {@link BenchUsageError} for a bad invocation (the program then exits with 2).
   */
  run(args: readonly string[]): Promise<number>;
}

/** A mistake in how the benchmark was invoked: reported as a one-line message with exit code 2. */
export class BenchUsageError extends Error {
  override readonly name = "BenchUsageError";
}

/** Most seconds a run may be asked to last, so that a typo cannot start an hour-long benchmark. */
const MAX_SECONDS = 120;

/**
 * Measured seconds per run: `WARDEN_BENCH_SECONDS` (e.g. 2 for a quick look), else `fallback`.
 *
 * @throws BenchUsageError when the variable is set but is not a number of seconds in (0, 120].
 */
export function benchSeconds(fallback: number): number {
  const raw = process.env.WARDEN_BENCH_SECONDS;
  if (raw === undefined || raw.trim() === "") return fallback;
  const seconds = Number(raw);
  if (!Number.isFinite(seconds) || seconds <= 0 || seconds > MAX_SECONDS) {
    throw new BenchUsageError(
      `WARDEN_BENCH_SECONDS must be a number of seconds in (0, ${MAX_SECONDS}], not ${JSON.stringify(raw)}`,
    );
  }
  return seconds;
}

/** Most rounds a benchmark may be asked to repeat. */
const MAX_ROUNDS = 20;

/**
 * Rounds per measurement: `WARDEN_BENCH_ROUNDS`, else `fallback`. Repeating short runs and taking medians
 * keeps one disturbed run (another tenant, a CPU frequency change) from deciding a comparison.
 *
 * @throws BenchUsageError when the variable is set but is not an integer in [1, 20].
 */
export function benchRounds(fallback: number): number {
  const raw = process.env.WARDEN_BENCH_ROUNDS;
  if (raw === undefined || raw.trim() === "") return fallback;
  const rounds = Number(raw);
  if (!Number.isInteger(rounds) || rounds < 1 || rounds > MAX_ROUNDS) {
    throw new BenchUsageError(
      `WARDEN_BENCH_ROUNDS must be an integer from 1 to ${MAX_ROUNDS}, not ${JSON.stringify(raw)}`,
    );
  }
  return rounds;
}

/** The median of a non-empty list (the mean of the middle two for an even count). */
export function median(values: readonly number[]): number {
  if (values.length === 0) throw new RangeError("median of an empty list");
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** One line naming the machine, since every number in a report depends on it. */
export function describeMachine(): string {
  const all = cpus();
  const model = all[0]?.model.trim() ?? "unknown CPU";
  return `${all.length} × ${model}, ${platform()} ${release()}, Node ${process.version}`;
}

/** Render rows as a plain-text table: the first column left-aligned, the others right-aligned. */
export function formatTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ");
  return [line(header), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(line)].join("\n");
}

/** Progress for the person watching; kept off standard output so the report can be piped cleanly. */
export function progress(message: string): void {
  process.stderr.write(`${message}\n`);
}
