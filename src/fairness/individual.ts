/**
 * Individual-fairness measures as AI Fairness 360 defines them (aif360.metrics.ClassificationMetric and
 * BinaryLabelDatasetMetric): the generalized entropy index of the benefits b_i = ŷ_i − y_i + 1 (Theil index at
 * α = 1), its between-group part, and the consistency of predictions among k nearest neighbours.
 */

import { CELL, CELLS } from "./metrics.js";

function checkAlpha(alpha: number): void {
  if (!Number.isFinite(alpha)) throw new RangeError(`alpha must be a finite number, got ${alpha}`);
}

/**
 * Generalized entropy index of non-negative benefits b, with μ = mean(b):
 *
 * - α = 1 (Theil): (1/n) Σ (b_i/μ) ln(b_i/μ), with 0 · ln 0 = 0;
 * - α = 0: −(1/n) Σ ln(b_i/μ) (+∞ when some b_i = 0);
 * - otherwise: (1/(n α (α − 1))) Σ ((b_i/μ)^α − 1).
 *
 * NaN when n = 0 or μ = 0. AI Fairness 360's default α is 2.
 */
export function generalizedEntropy(benefits: ArrayLike<number>, alpha = 2): number {
  checkAlpha(alpha);
  const n = benefits.length;
  if (n === 0) return Number.NaN;
  let sum = 0;
  for (let i = 0; i < n; i++) sum += benefits[i]!;
  const mu = sum / n;
  if (!(mu > 0)) return Number.NaN;
  let total = 0;
  for (let i = 0; i < n; i++) {
    const r = benefits[i]! / mu;
    if (alpha === 1) total += r === 0 ? 0 : r * Math.log(r);
    else if (alpha === 0) total -= Math.log(r);
    else total += r ** alpha - 1;
  }
  if (alpha === 1 || alpha === 0) return total / n;
  return total / (n * alpha * (alpha - 1));
}

/**
 * The same index over weighted benefit values: `weights[k]` rows have benefit `values[k]`. Lets the index be
 * computed (and bootstrapped) from cell counts: in a binary task b is 0 for a false negative, 1 for a correct
 * prediction and 2 for a false positive.
 */
export function weightedGeneralizedEntropy(
  values: ArrayLike<number>,
  weights: ArrayLike<number>,
  alpha = 2,
): number {
  checkAlpha(alpha);
  let n = 0;
  let sum = 0;
  for (let k = 0; k < values.length; k++) {
    n += weights[k]!;
    sum += weights[k]! * values[k]!;
  }
  if (n === 0) return Number.NaN;
  const mu = sum / n;
  if (!(mu > 0)) return Number.NaN;
  let total = 0;
  for (let k = 0; k < values.length; k++) {
    const w = weights[k]!;
    if (w === 0) continue;
    const r = values[k]! / mu;
    if (alpha === 1) total += r === 0 ? 0 : w * r * Math.log(r);
    else if (alpha === 0) total -= w * Math.log(r);
    else total += w * (r ** alpha - 1);
  }
  if (alpha === 1 || alpha === 0) return total / n;
  return total / (n * alpha * (alpha - 1));
}

/** Benefits b_i = ŷ_i − y_i + 1 of binary labels (AI Fairness 360's convention: a false positive benefits). */
export function benefits(yTrue: ArrayLike<number>, yPred: ArrayLike<number>): Float64Array {
  if (yTrue.length !== yPred.length) throw new RangeError("yTrue and yPred differ in length");
  const b = new Float64Array(yTrue.length);
  for (let i = 0; i < b.length; i++) b[i] = yPred[i]! - yTrue[i]! + 1;
  return b;
}

/** AI Fairness 360's `generalized_entropy_index(alpha)` of binary labels and predictions. */
export function generalizedEntropyIndex(
  yTrue: ArrayLike<number>,
  yPred: ArrayLike<number>,
  alpha = 2,
): number {
  return generalizedEntropy(benefits(yTrue, yPred), alpha);
}

/** AI Fairness 360's `theil_index`: the generalized entropy index at α = 1. */
export function theilIndex(yTrue: ArrayLike<number>, yPred: ArrayLike<number>): number {
  return generalizedEntropyIndex(yTrue, yPred, 1);
}

const BENEFIT_OF_CELL = [1, 2, 0, 1]; // tn, fp, fn, tp
const benefitValues = new Float64Array(CELLS);
for (const cell of [CELL.tn, CELL.fp, CELL.fn, CELL.tp]) benefitValues[cell] = BENEFIT_OF_CELL[cell]!;

/** Generalized entropy index over all rows from the groups' cell counts (cells laid out group by group). */
export function generalizedEntropyFromCells(cells: ArrayLike<number>, alpha = 2): number {
  const weights = new Float64Array(CELLS);
  for (let i = 0; i < cells.length; i++) weights[i % CELLS]! += cells[i]!;
  return weightedGeneralizedEntropy(benefitValues, weights, alpha);
}

/**
 * Between-group generalized entropy index (AI Fairness 360's `between_group_generalized_entropy_index`, over
 * however many groups): each row's benefit replaced by its group's mean benefit. From cell counts.
 */
export function betweenGroupGeneralizedEntropyFromCells(cells: ArrayLike<number>, alpha = 2): number {
  const groups = cells.length / CELLS;
  const means = new Float64Array(groups);
  const sizes = new Float64Array(groups);
  for (let g = 0; g < groups; g++) {
    let n = 0;
    let sum = 0;
    for (let c = 0; c < CELLS; c++) {
      n += cells[g * CELLS + c]!;
      sum += cells[g * CELLS + c]! * benefitValues[c]!;
    }
    sizes[g] = n;
    means[g] = n === 0 ? 0 : sum / n;
  }
  return weightedGeneralizedEntropy(means, sizes, alpha);
}

/** Between-group generalized entropy index of labels, predictions and group codes. */
export function betweenGroupGeneralizedEntropyIndex(
  yTrue: ArrayLike<number>,
  yPred: ArrayLike<number>,
  groupCodes: ArrayLike<number>,
  alpha = 2,
): number {
  const b = benefits(yTrue, yPred);
  if (groupCodes.length !== b.length) throw new RangeError("group codes and labels differ in length");
  const sums = new Map<number, { n: number; sum: number }>();
  for (let i = 0; i < b.length; i++) {
    const entry = sums.get(groupCodes[i]!) ?? { n: 0, sum: 0 };
    entry.n++;
    entry.sum += b[i]!;
    sums.set(groupCodes[i]!, entry);
  }
  for (let i = 0; i < b.length; i++) {
    const entry = sums.get(groupCodes[i]!)!;
    b[i] = entry.sum / entry.n;
  }
  return generalizedEntropy(b, alpha);
}

/**
 * Consistency (Zemel et al. 2013, as AI Fairness 360's `consistency`): 1 − (1/n) Σ_i |ŷ_i − mean of ŷ over the
 * k nearest neighbours of x_i|, where the neighbours come from the same rows by Euclidean distance and include
 * x_i itself (scikit-learn's `kneighbors` on the fitted data, which AI Fairness 360 calls). Ties in distance
 * go to the lower row index. Exact search, O(n² d): meant for a sample of rows (thousands), not a whole audit.
 *
 * @param features n rows of d numbers, row-major.
 * @param labels the predictions (or labels) compared, one per row.
 */
export function consistency(
  features: ArrayLike<number>,
  d: number,
  labels: ArrayLike<number>,
  k = 5,
): number {
  const n = labels.length;
  if (!(Number.isInteger(d) && d >= 1) || features.length !== n * d) {
    throw new RangeError(`features must hold ${n} rows of d = ${d} numbers`);
  }
  if (!(Number.isInteger(k) && k >= 1 && k <= n)) throw new RangeError(`k must be an integer in [1, ${n}]`);
  const distances = new Float64Array(n);
  const order = new Int32Array(n);
  let total = 0;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let f = 0; f < d; f++) {
        const diff = features[i * d + f]! - features[j * d + f]!;
        s += diff * diff;
      }
      distances[j] = s;
      order[j] = j;
    }
    order.sort((a, b) => distances[a]! - distances[b]! || a - b);
    let sum = 0;
    for (let m = 0; m < k; m++) sum += labels[order[m]!]!;
    total += Math.abs(labels[i]! - sum / k);
  }
  return 1 - total / n;
}
