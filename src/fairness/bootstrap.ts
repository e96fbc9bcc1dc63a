/**
 * Sampling for the bootstrap: binomial and multinomial counts from a seeded stream, and percentile intervals.
 *
 * A bootstrap resample of n rows drawn with replacement puts Multinomial(n, cell shares) rows in each cell of
 * (group × y × ŷ); any figure that depends on the rows only through those counts has the same bootstrap
 * distribution whether the rows are drawn one by one or the counts are drawn directly. Drawing the counts costs
 * O(cells · √n) per resample instead of O(n).
 */

import type { Random } from "../explain/index.js";
import { logGamma } from "../monitor/index.js";

/** Uniform in [0, 1) with 53 bits of resolution, from two 32-bit draws. */
export function uniform53(random: Random): number {
  return random.next() + random.next() * 2.3283064365386963e-10;
}

/**
 * One Binomial(n, p) draw by inversion, searching outward from the mode (alternately one step up and one down,
 * each step's probability from its neighbour's by the ratio recurrence): exact up to rounding, with
 * O(√(n p (1 − p))) expected steps. The mode's probability comes from log-gamma (about 1e-13 relative at n = 10⁶).
 */
export function sampleBinomial(random: Random, n: number, p: number): number {
  if (!(Number.isInteger(n) && n >= 0)) throw new RangeError(`binomial n must be a count, got ${n}`);
  if (!(p >= 0 && p <= 1)) throw new RangeError(`binomial p must lie in [0, 1], got ${p}`);
  if (n === 0 || p === 0) return 0;
  if (p === 1) return n;
  if (p > 0.5) return n - sampleBinomial(random, n, 1 - p);
  const q = 1 - p;
  const mode = Math.floor((n + 1) * p);
  const pMode = Math.exp(
    logGamma(n + 1) -
      logGamma(mode + 1) -
      logGamma(n - mode + 1) +
      mode * Math.log(p) +
      (n - mode) * Math.log(q),
  );
  let u = uniform53(random) - pMode;
  if (u < 0) return mode;
  const odds = p / q;
  let low = mode;
  let high = mode;
  let pLow = pMode;
  let pHigh = pMode;
  while (low > 0 || high < n) {
    if (high < n) {
      pHigh *= ((n - high) / (high + 1)) * odds;
      high++;
      u -= pHigh;
      if (u < 0) return high;
    }
    if (low > 0) {
      pLow *= low / (n - low + 1) / odds;
      low--;
      u -= pLow;
      if (u < 0) return low;
    }
    if (pHigh === 0 && pLow === 0) break;
  }
  return mode; // the probability left over by rounding (far below 2⁻⁵³ in total)
}

/**
 * Multinomial(n, weights / Σ weights) counts into `out[offset .. offset + weights.length)`, by conditional
 * binomials: count_k ~ Binomial(n − drawn so far, w_k / remaining weight).
 */
export function sampleMultinomial(
  random: Random,
  n: number,
  weights: ArrayLike<number>,
  out: Float64Array,
  offset = 0,
  weightsOffset = 0,
  length = weights.length - weightsOffset,
): void {
  let remainingWeight = 0;
  for (let k = 0; k < length; k++) remainingWeight += weights[weightsOffset + k]!;
  let remaining = n;
  for (let k = 0; k < length; k++) {
    const w = weights[weightsOffset + k]!;
    if (remaining === 0 || w === 0) {
      out[offset + k] = 0;
    } else if (k === length - 1 || w >= remainingWeight) {
      out[offset + k] = remaining;
      remaining = 0;
    } else {
      const draw = sampleBinomial(random, remaining, w / remainingWeight);
      out[offset + k] = draw;
      remaining -= draw;
    }
    remainingWeight -= w;
  }
}

/** The bootstrap's percentile interval of one figure. */
export interface PercentileInterval {
  readonly lower: number;
  readonly upper: number;
  /** Resamples in which the figure was undefined (left out of the interval). */
  readonly undefinedResamples: number;
}

/**
 * Percentile interval at `level` (e.g. 0.95: the 2.5th and 97.5th percentiles) of the defined replicate values,
 * with linear interpolation between order statistics (NumPy's default "linear" method). NaN bounds when no
 * replicate is defined. Sorts `values` in place.
 */
export function percentileInterval(values: Float64Array, level: number): PercentileInterval {
  if (!(level > 0 && level < 1)) throw new RangeError(`level must lie in (0, 1), got ${level}`);
  let defined = 0;
  for (let i = 0; i < values.length; i++) if (!Number.isNaN(values[i]!)) values[defined++] = values[i]!;
  const undefinedResamples = values.length - defined;
  if (defined === 0) return { lower: Number.NaN, upper: Number.NaN, undefinedResamples };
  const sorted = values.subarray(0, defined).sort();
  const at = (q: number) => {
    const h = (defined - 1) * q;
    const i = Math.floor(h);
    const next = sorted[Math.min(i + 1, defined - 1)]!;
    return sorted[i]! + (h - i) * (next - sorted[i]!);
  };
  const tail = (1 - level) / 2;
  return { lower: at(tail), upper: at(1 - tail), undefinedResamples };
}
