/**
 * Tests of a difference between two proportions x₁/n₁ and x₂/n₂ (a group's rate against the reference group's):
 * Fisher's exact test, two-sided, and the pooled two-proportion z-test. Both are checked against SciPy.
 */

import { chiSquaredSurvival } from "../monitor/index.js";

/** The tests on offer for a group's rate against the reference's. */
export const PROPORTION_TESTS = ["fisher", "z"] as const;
export type ProportionTest = (typeof PROPORTION_TESTS)[number];

function checkCount(name: string, value: number): void {
  if (!(Number.isInteger(value) && value >= 0)) throw new RangeError(`${name} must be a count, got ${value}`);
}

/**
 * Two-sided p-value of Fisher's exact test on the 2×2 table [[a, b], [c, d]] (rows: the two groups; columns:
 * successes, failures), as scipy.stats.fisher_exact: the sum of the hypergeometric probabilities (margins fixed)
 * of every table no more probable than the observed one. "No more probable" allows a relative 1e-7, as R's
 * fisher.test, so that tables of mathematically equal probability count alike despite rounding.
 *
 * The probabilities are computed relative to the mode by the ratio recurrence and normalised by their sum, so
 * no factorial is ever formed; O(min(row, column margins)). 1 when a margin is 0.
 */
export function fisherExactTest(a: number, b: number, c: number, d: number): number {
  checkCount("a", a);
  checkCount("b", b);
  checkCount("c", c);
  checkCount("d", d);
  const rowOne = a + b;
  const rowTwo = c + d;
  const columnOne = a + c;
  const total = rowOne + rowTwo;
  if (rowOne === 0 || rowTwo === 0 || columnOne === 0 || columnOne === total) return 1;
  // x = the table's top-left cell, hypergeometric on [lo, hi].
  const lo = Math.max(0, columnOne - rowTwo);
  const hi = Math.min(rowOne, columnOne);
  const mode = Math.floor(((columnOne + 1) * (rowOne + 1)) / (total + 2));
  // P(x + 1) / P(x) = (rowOne − x)(columnOne − x) / ((x + 1)(rowTwo − columnOne + x + 1))
  const up = (x: number) => ((rowOne - x) * (columnOne - x)) / ((x + 1) * (rowTwo - columnOne + x + 1));
  const width = hi - lo + 1;
  const relative = new Float64Array(width);
  relative[mode - lo] = 1;
  for (let x = mode; x < hi; x++) relative[x + 1 - lo] = relative[x - lo]! * up(x);
  for (let x = mode - 1; x >= lo; x--) relative[x - lo] = relative[x + 1 - lo]! / up(x);
  const observed = relative[a - lo]! * (1 + 1e-7);
  let sum = 0;
  let tail = 0;
  for (let k = 0; k < width; k++) {
    const p = relative[k]!;
    sum += p;
    if (p <= observed) tail += p;
  }
  return Math.min(1, tail / sum);
}

/** Result of {@link twoProportionZTest}. */
export interface ZTestResult {
  /** (p₁ − p₂) / √(p̂(1 − p̂)(1/n₁ + 1/n₂)), p̂ the pooled proportion; 0 when p̂ is 0 or 1. */
  readonly statistic: number;
  /** Two-sided: P(|Z| ≥ |z|) = P(χ²₁ ≥ z²), as scipy.stats.chi2_contingency(correction=False) on the table. */
  readonly pValue: number;
}

/**
 * Pooled two-proportion z-test of x₁/n₁ against x₂/n₂. When both proportions are 0 (or both 1) there is no
 * variation and no evidence of a difference: statistic 0, p-value 1. NaN when n₁ or n₂ is 0.
 */
export function twoProportionZTest(x1: number, n1: number, x2: number, n2: number): ZTestResult {
  checkCount("x1", x1);
  checkCount("n1", n1);
  checkCount("x2", x2);
  checkCount("n2", n2);
  if (x1 > n1 || x2 > n2) throw new RangeError("successes cannot exceed trials");
  if (n1 === 0 || n2 === 0) return { statistic: Number.NaN, pValue: Number.NaN };
  const pooled = (x1 + x2) / (n1 + n2);
  if (pooled === 0 || pooled === 1) return { statistic: 0, pValue: 1 };
  const z = (x1 / n1 - x2 / n2) / Math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2));
  return { statistic: z, pValue: chiSquaredSurvival(z * z, 1) };
}

/** Two-sided p-value of a group's proportion x₁/n₁ against the reference's x₂/n₂; NaN when a trial count is 0. */
export function proportionTestPValue(
  test: ProportionTest,
  x1: number,
  n1: number,
  x2: number,
  n2: number,
): number {
  if (n1 === 0 || n2 === 0) return Number.NaN;
  return test === "fisher"
    ? fisherExactTest(x1, n1 - x1, x2, n2 - x2)
    : twoProportionZTest(x1, n1, x2, n2).pValue;
}
