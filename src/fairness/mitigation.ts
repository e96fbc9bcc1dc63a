/**
 * Mitigations a governance team can review: reweighing (Kamiran & Calders 2012) for the next training round,
 * and deterministic per-group decision thresholds (post-processing toward demographic parity or equal
 * opportunity, found by search on labelled data). Pure maths: nothing here applies anything to a model.
 */

import { CELLS, rate } from "./metrics.js";

/** One (group, label) cell of reweighing. */
export interface ReweighingCell {
  readonly group: number;
  /** The label: 1 favourable, 0 not. */
  readonly y: 0 | 1;
  readonly count: number;
  /** w(g, y) = P(g)·P(y) / P(g, y); NaN for an empty cell (no row needs it). */
  readonly weight: number;
}

/**
 * Kamiran & Calders' reweighing: each row of group g and label y gets w(g, y) = P(g)·P(y) / P(g, y), with the
 * probabilities the shares of the rows. Under these weights the label is independent of the group: the
 * weighted share of y = 1 in every group equals the overall share, and each group keeps its total weight n_g.
 *
 * @throws RangeError when lengths differ, a label is not 0/1, or a code is outside [0, groupCount).
 */
export function reweighing(
  codes: ArrayLike<number>,
  groupCount: number,
  yTrue: ArrayLike<number>,
): { readonly weights: Float64Array; readonly cells: readonly ReweighingCell[] } {
  const n = codes.length;
  if (yTrue.length !== n) throw new RangeError(`groups (${n}) and labels (${yTrue.length}) differ in length`);
  const counts = new Float64Array(groupCount * 2);
  for (let i = 0; i < n; i++) {
    const g = codes[i]!;
    const y = yTrue[i]!;
    if (!(Number.isInteger(g) && g >= 0 && g < groupCount)) throw new RangeError(`code ${g} at row ${i}`);
    if (y !== 0 && y !== 1) throw new RangeError(`label ${y} at row ${i} is not 0 or 1`);
    counts[g * 2 + y]!++;
  }
  const positives = counts.reduce((sum, c, i) => (i % 2 === 1 ? sum + c : sum), 0);
  const pY = [(n - positives) / n, positives / n];
  const table = new Float64Array(groupCount * 2);
  const cells: ReweighingCell[] = [];
  for (let g = 0; g < groupCount; g++) {
    const ng = counts[g * 2]! + counts[g * 2 + 1]!;
    for (const y of [0, 1] as const) {
      const c = counts[g * 2 + y]!;
      // P(g)·P(y) / P(g, y) = (n_g / n)·P(y) / (c / n) = n_g·P(y) / c.
      const weight = c === 0 ? Number.NaN : (ng * pY[y]!) / c;
      table[g * 2 + y] = weight;
      cells.push({ group: g, y, count: c, weight });
    }
  }
  const weights = new Float64Array(n);
  for (let i = 0; i < n; i++) weights[i] = table[codes[i]! * 2 + yTrue[i]!]!;
  return { weights, cells };
}

/** What per-group thresholds equalise (closed list). */
export const THRESHOLD_CONSTRAINTS = ["demographic_parity", "equal_opportunity"] as const;
export type ThresholdConstraint = (typeof THRESHOLD_CONSTRAINTS)[number];

/** Input of {@link groupThresholds}. */
export interface GroupThresholdInput {
  /** Group code per row. */
  readonly codes: ArrayLike<number>;
  readonly groupCount: number;
  /** The model's score per row: the decision is the positive label when score ≥ threshold. */
  readonly scores: ArrayLike<number>;
  /** Observed outcome per row: 1 favourable, 0 not. */
  readonly yTrue: ArrayLike<number>;
  /** Whether the favourable outcome is the positive label (score ≥ threshold) or the other one. */
  readonly favourableIsPositive: boolean;
  /** The policy's threshold, which groups left out of the search keep. */
  readonly threshold: number;
}

/** Options of {@link groupThresholds}. */
export interface GroupThresholdOptions {
  readonly constraint: ThresholdConstraint;
  /** The largest gap allowed between the groups' rates (selection rate or TPR) on the data. */
  readonly tolerance: number;
  /** Groups with fewer rows (or, for equal opportunity, no favourable outcomes) keep the policy threshold. */
  readonly minGroupSize: number;
}

/** The thresholds found. */
export interface GroupThresholdResult {
  /** Threshold per group: the decision is the positive label when score ≥ threshold. */
  readonly thresholds: Float64Array;
  /** Whether each group took part in the search (else it keeps the policy threshold). */
  readonly constrained: readonly boolean[];
  /** The decisions under the thresholds: 1 favourable. */
  readonly yPred: Uint8Array;
  /** The constrained groups' rate gap (max − min) on the data; ≤ tolerance. */
  readonly gap: number;
}

/** Sparse table for range maxima (index of the max, first on ties). */
function rangeMax(values: Float64Array): (lo: number, hi: number) => number {
  const n = values.length;
  const levels: Int32Array[] = [Int32Array.from({ length: n }, (_, i) => i)];
  for (let span = 1; 2 * span <= n; span *= 2) {
    const prev = levels[levels.length - 1]!;
    const next = new Int32Array(n - 2 * span + 1);
    for (let i = 0; i < next.length; i++) {
      const a = prev[i]!;
      const b = prev[i + span]!;
      next[i] = values[b]! > values[a]! ? b : a;
    }
    levels.push(next);
  }
  return (lo, hi) => {
    const level = Math.floor(Math.log2(hi - lo + 1));
    const a = levels[level]![lo]!;
    const b = levels[level]![hi - (1 << level) + 1]!;
    return values[b]! > values[a]! ? b : a;
  };
}

interface GroupCuts {
  /** Thresholds of the valid cuts, in order of rising rate. */
  readonly thresholds: number[];
  readonly rates: Float64Array;
  readonly correct: Float64Array;
  readonly best: (lo: number, hi: number) => number;
}

/** The valid cuts of one group: the first k rows by favourability become favourable, for each k a threshold can make. */
function cutsOf(
  scores: number[],
  labels: number[],
  favourableIsPositive: boolean,
  constraint: ThresholdConstraint,
): GroupCuts {
  const n = scores.length;
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) =>
    favourableIsPositive ? scores[b]! - scores[a]! || a - b : scores[a]! - scores[b]! || a - b,
  );
  const s = order.map((i) => scores[i]!);
  const y = order.map((i) => labels[i]!);
  const positives = y.reduce((a, b) => a + b, 0);
  const negatives = n - positives;
  const thresholds: number[] = [];
  const rates: number[] = [];
  const correct: number[] = [];
  let tp = 0;
  let fp = 0;
  for (let k = 0; k <= n; k++) {
    if (k > 0) {
      if (y[k - 1] === 1) tp++;
      else fp++;
    }
    // The cut after k rows needs a threshold that separates row k − 1 from row k.
    let t: number | undefined;
    if (favourableIsPositive) {
      // favourable ⇔ score ≥ t: t = the k-th highest score, when the next one is strictly lower.
      if (k === 0) t = s[0]! < 1 ? 1 : undefined;
      else if (k === n || s[k]! < s[k - 1]!) t = s[k - 1]!;
    } else {
      // favourable ⇔ score < t: t = the (k+1)-th lowest score, when it is strictly above the k-th.
      if (k === n) t = n === 0 || s[n - 1]! < 1 ? 1 : undefined;
      else if (k === 0 || s[k]! > s[k - 1]!) t = s[k]!;
    }
    if (t === undefined) continue;
    thresholds.push(t);
    rates.push(constraint === "demographic_parity" ? k / n : tp / positives);
    correct.push(tp + (negatives - fp));
  }
  const correctArray = Float64Array.from(correct);
  return {
    thresholds,
    rates: Float64Array.from(rates),
    correct: correctArray,
    best: rangeMax(correctArray),
  };
}

/** First index with values[i] ≥ x (values non-decreasing). */
function lowerBound(values: Float64Array, x: number): number {
  let lo = 0;
  let hi = values.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (values[mid]! < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * Per-group thresholds that bring the groups' selection rates (demographic parity) or true positive rates
 * (equal opportunity; the favourable outcome's) within `tolerance` of each other on the labelled data, and
 * among those the ones with the most correct decisions. Deterministic: for every band [L, L + tolerance] with
 * L a rate some group can reach, each group takes its most accurate threshold whose rate lies in the band
 * (ties: the lower rate); the band with the most correct decisions wins (ties: the lower L). A threshold is one
 * of the group's own scores (or 1), so applying it to the same rows gives exactly the rates searched.
 *
 * @throws RangeError on a tolerance outside [0, 1] or inputs of different lengths.
 */
export function groupThresholds(
  input: GroupThresholdInput,
  options: GroupThresholdOptions,
): GroupThresholdResult {
  const { codes, groupCount, scores, yTrue, favourableIsPositive, threshold } = input;
  const { constraint, tolerance, minGroupSize } = options;
  const n = codes.length;
  if (scores.length !== n || yTrue.length !== n)
    throw new RangeError("codes, scores and labels differ in length");
  if (!(tolerance >= 0 && tolerance <= 1))
    throw new RangeError(`tolerance must lie in [0, 1], got ${tolerance}`);
  const groupScores: number[][] = Array.from({ length: groupCount }, () => []);
  const groupLabels: number[][] = Array.from({ length: groupCount }, () => []);
  for (let i = 0; i < n; i++) {
    groupScores[codes[i]!]!.push(scores[i]!);
    groupLabels[codes[i]!]!.push(yTrue[i]!);
  }
  const constrained = groupScores.map(
    (s, g) =>
      s.length >= minGroupSize &&
      s.length > 0 &&
      (constraint === "demographic_parity" || groupLabels[g]!.some((y) => y === 1)),
  );
  const cuts = groupScores.map((s, g) =>
    constrained[g] ? cutsOf(s, groupLabels[g]!, favourableIsPositive, constraint) : undefined,
  );
  const candidates = [...new Set(cuts.flatMap((c) => (c === undefined ? [] : [...c.rates])))].sort(
    (a, b) => a - b,
  );
  let bestTotal = -1;
  let bestChoice: number[] | undefined;
  // A tiny slack so that a gap equal to the tolerance (in exact arithmetic) is not lost to rounding.
  const slack = 1e-12;
  for (const low of candidates) {
    const high = low + tolerance + slack;
    let total = 0;
    const choice: number[] = [];
    let feasible = true;
    for (let g = 0; g < groupCount; g++) {
      const c = cuts[g];
      if (c === undefined) {
        choice.push(-1);
        continue;
      }
      const lo = lowerBound(c.rates, low);
      const hi = lowerBound(c.rates, high) - 1;
      if (lo > hi) {
        feasible = false;
        break;
      }
      const k = c.best(lo, hi);
      choice.push(k);
      total += c.correct[k]!;
    }
    if (feasible && total > bestTotal) {
      bestTotal = total;
      bestChoice = choice;
    }
  }
  const thresholds = new Float64Array(groupCount).fill(threshold);
  if (bestChoice !== undefined) {
    bestChoice.forEach((k, g) => {
      if (k >= 0) thresholds[g] = cuts[g]!.thresholds[k]!;
    });
  }
  const yPred = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const positive = scores[i]! >= thresholds[codes[i]!]!;
    yPred[i] = positive === favourableIsPositive ? 1 : 0;
  }
  // The gap, recounted from the decisions the thresholds make.
  const cells = new Float64Array(groupCount * CELLS);
  for (let i = 0; i < n; i++) cells[codes[i]! * CELLS + 2 * yTrue[i]! + yPred[i]!]!++;
  const metric = constraint === "demographic_parity" ? "selection_rate" : "tpr";
  let min = Number.POSITIVE_INFINITY;
  let max = Number.NEGATIVE_INFINITY;
  for (let g = 0; g < groupCount; g++) {
    if (!constrained[g]) continue;
    const r = rate(metric, cells, g);
    min = Math.min(min, r);
    max = Math.max(max, r);
  }
  return { thresholds, constrained, yPred, gap: max >= min ? max - min : Number.NaN };
}
