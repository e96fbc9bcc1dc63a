/**
 * Performance of a binary classifier over a set of (score, label) pairs, exactly, for reports; and the
 * label-free estimates of confidence-based performance estimation (CBPE, as NannyML computes it) from
 * calibrated scores, before labels arrive. The mergeable, windowed version is in performance-summary.ts.
 *
 * A score at or above the policy threshold predicts the positive class. Figures that are undefined (a
 * precision with nothing predicted positive, an AUC with a single class) are NaN; scikit-learn answers 0
 * (with a warning) for the first and raises for the second.
 */

/** Counts (or expected counts) of a confusion matrix. */
export interface Confusion {
  readonly tp: number;
  readonly fp: number;
  readonly tn: number;
  readonly fn: number;
}

/** Realised performance over labelled pairs. */
export interface BinaryMetrics {
  readonly count: number;
  readonly threshold: number;
  readonly confusion: Confusion;
  readonly accuracy: number;
  readonly precision: number;
  readonly recall: number;
  /** As sklearn.metrics.roc_auc_score: ties between a positive and a negative count one half. */
  readonly rocAuc: number;
  /** As sklearn.metrics.brier_score_loss: mean of (p − y)². */
  readonly brier: number;
  /** See {@link expectedCalibrationError}. */
  readonly ece: number;
}

/** Label-free estimates from calibrated probabilities (CBPE). */
export interface EstimatedMetrics {
  readonly count: number;
  readonly threshold: number;
  /** Expected counts: E[TP] = Σ p·[p ≥ t], E[FP] = Σ (1 − p)·[p ≥ t], E[FN] = Σ p·[p < t], E[TN] = Σ (1 − p)·[p < t]. */
  readonly confusion: Confusion;
  /** (E[TP] + E[TN]) / n. */
  readonly accuracy: number;
  /** E[TP] / (E[TP] + E[FP]). */
  readonly precision: number;
  /** E[TP] / (E[TP] + E[FN]). */
  readonly recall: number;
  /** See {@link estimatedRocAuc}. */
  readonly rocAuc: number;
}

/** Options of the metrics. */
export interface BinaryMetricsOptions {
  /** Policy threshold: score ≥ threshold predicts positive. Default 0.5. */
  readonly threshold?: number;
  /** Equal-width bins of the calibration error. Default 10. */
  readonly eceBins?: number;
}

/** A label: 1 or true is positive, 0 or false negative. */
export type BinaryLabel = 0 | 1 | boolean;

function isPositive(label: BinaryLabel): boolean {
  if (label === 1 || label === true) return true;
  if (label === 0 || label === false) return false;
  throw new RangeError(`labels must be 0, 1, true or false, got ${String(label)}`);
}

function checkProbability(p: number): void {
  if (!(p >= 0 && p <= 1)) throw new RangeError(`scores must be probabilities in [0, 1], got ${p}`);
}

function checkPairs(scores: ArrayLike<number>, labels: ArrayLike<BinaryLabel>): void {
  if (scores.length !== labels.length) {
    throw new RangeError(`scores and labels differ in length (${scores.length} vs ${labels.length})`);
  }
}

/** The ECE bin of p ∈ [0, 1] among `bins` equal-width bins: ⌊p·bins⌋, the last bin closed at 1. */
export function calibrationBin(p: number, bins: number): number {
  return Math.min(Math.floor(p * bins), bins - 1);
}

/**
 * Area under the ROC curve, exactly as sklearn.metrics.roc_auc_score for a binary target: the share of
 * (positive, negative) pairs ranked the right way, a tie counting one half (the Mann–Whitney U statistic
 * over P·N, which is what the trapezoidal rule gives on scikit-learn's curve with tied scores collapsed).
 * Any real scores; NaN when the labels hold a single class. O(n log n).
 */
export function rocAuc(scores: ArrayLike<number>, labels: ArrayLike<BinaryLabel>): number {
  checkPairs(scores, labels);
  const n = scores.length;
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => scores[a]! - scores[b]!);
  let negativesBelow = 0;
  let correct = 0;
  let positives = 0;
  for (let i = 0; i < n; ) {
    const s = scores[order[i]!]!;
    if (Number.isNaN(s)) throw new RangeError("scores must not be NaN");
    let pos = 0;
    let neg = 0;
    for (; i < n && scores[order[i]!] === s; i++) {
      if (isPositive(labels[order[i]!]!)) pos++;
      else neg++;
    }
    correct += pos * negativesBelow + 0.5 * pos * neg;
    negativesBelow += neg;
    positives += pos;
  }
  const negatives = n - positives;
  return positives > 0 && negatives > 0 ? correct / (positives * negatives) : Number.NaN;
}

/** Brier score, as sklearn.metrics.brier_score_loss: mean of (p − y)² over scores p ∈ [0, 1]; NaN when empty. */
export function brierScore(scores: ArrayLike<number>, labels: ArrayLike<BinaryLabel>): number {
  checkPairs(scores, labels);
  let total = 0;
  for (let i = 0; i < scores.length; i++) {
    const p = scores[i]!;
    checkProbability(p);
    const y = isPositive(labels[i]!) ? 1 : 0;
    total += (p - y) ** 2;
  }
  return scores.length > 0 ? total / scores.length : Number.NaN;
}

/**
 * Expected calibration error over `bins` equal-width bins of [0, 1] (default 10): bin b holds the scores in
 * [b/B, (b+1)/B), the last bin also 1; ECE = Σ over non-empty bins of (n_b / n)·|mean label − mean score|.
 * 0 for a perfectly calibrated model; NaN when empty.
 */
export function expectedCalibrationError(
  scores: ArrayLike<number>,
  labels: ArrayLike<BinaryLabel>,
  bins = 10,
): number {
  checkPairs(scores, labels);
  if (!Number.isInteger(bins) || bins < 1) throw new RangeError(`bins must be an integer >= 1, got ${bins}`);
  const counts = new Float64Array(bins);
  const scoreSums = new Float64Array(bins);
  const positives = new Float64Array(bins);
  for (let i = 0; i < scores.length; i++) {
    const p = scores[i]!;
    checkProbability(p);
    const b = calibrationBin(p, bins);
    counts[b]! += 1;
    scoreSums[b]! += p;
    if (isPositive(labels[i]!)) positives[b]! += 1;
  }
  return eceFromBins(counts, scoreSums, positives);
}

/** ECE from per-bin counts, score sums and positive counts. */
export function eceFromBins(
  counts: ArrayLike<number>,
  scoreSums: ArrayLike<number>,
  positives: ArrayLike<number>,
) {
  let n = 0;
  let total = 0;
  for (let b = 0; b < counts.length; b++) {
    const c = counts[b]!;
    if (c === 0) continue;
    n += c;
    total += Math.abs(positives[b]! - scoreSums[b]!); // n_b·|mean y − mean p|
  }
  return n > 0 ? total / n : Number.NaN;
}

function ratio(a: number, b: number): number {
  return b > 0 ? a / b : Number.NaN;
}

/** Every realised metric at once over labelled pairs (scores in [0, 1]). */
export function binaryMetrics(
  scores: ArrayLike<number>,
  labels: ArrayLike<BinaryLabel>,
  options: BinaryMetricsOptions = {},
): BinaryMetrics {
  checkPairs(scores, labels);
  const threshold = options.threshold ?? 0.5;
  let tp = 0;
  let fp = 0;
  let tn = 0;
  let fn = 0;
  for (let i = 0; i < scores.length; i++) {
    const p = scores[i]!;
    checkProbability(p);
    const y = isPositive(labels[i]!);
    if (p >= threshold) {
      if (y) tp++;
      else fp++;
    } else if (y) fn++;
    else tn++;
  }
  const n = scores.length;
  return Object.freeze({
    count: n,
    threshold,
    confusion: Object.freeze({ tp, fp, tn, fn }),
    accuracy: ratio(tp + tn, n),
    precision: ratio(tp, tp + fp),
    recall: ratio(tp, tp + fn),
    rocAuc: rocAuc(scores, labels),
    brier: brierScore(scores, labels),
    ece: expectedCalibrationError(scores, labels, options.eceBins ?? 10),
  });
}

/**
 * Expected ROC AUC from calibrated probabilities alone, as NannyML's CBPE computes it: sorted by p
 * descending, the expected true and false positives after each row trace a curve from (0, 0) to (1, 1)
 * whose trapezoidal area is taken. In closed form, with P = Σ p and N = Σ (1 − p),
 *
 *   AUC = [Σ over pairs with p_i > p_j of p_i (1 − p_j) + ½ Σ over pairs with p_i = p_j (i = j included)
 *          of p_i (1 − p_j)] / (P·N),
 *
 * the AUC of the expected counts of pairs (the pair of a row with itself is an artefact of P·N that the
 * curve carries too). NaN when P or N is 0. NannyML rounds the cumulative sums to 5 decimals; this does not.
 */
export function estimatedRocAuc(probabilities: ArrayLike<number>): number {
  const n = probabilities.length;
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => probabilities[b]! - probabilities[a]!);
  let above = 0; // Σ p over rows with a higher score
  let area = 0;
  let total = 0;
  for (let i = 0; i < n; ) {
    const p = probabilities[order[i]!]!;
    checkProbability(p);
    let groupP = 0;
    let groupN = 0;
    for (; i < n && probabilities[order[i]!] === p; i++) {
      groupP += p;
      groupN += 1 - p;
    }
    area += groupN * (above + groupP / 2);
    above += groupP;
    total += groupN;
  }
  return above > 0 && total > 0 ? area / (above * total) : Number.NaN;
}

/** Every label-free estimate at once from calibrated probabilities (CBPE). */
export function estimatedBinaryMetrics(
  probabilities: ArrayLike<number>,
  options: Pick<BinaryMetricsOptions, "threshold"> = {},
): EstimatedMetrics {
  const threshold = options.threshold ?? 0.5;
  let tp = 0;
  let fp = 0;
  let tn = 0;
  let fn = 0;
  for (let i = 0; i < probabilities.length; i++) {
    const p = probabilities[i]!;
    checkProbability(p);
    if (p >= threshold) {
      tp += p;
      fp += 1 - p;
    } else {
      fn += p;
      tn += 1 - p;
    }
  }
  const n = probabilities.length;
  return Object.freeze({
    count: n,
    threshold,
    confusion: Object.freeze({ tp, fp, tn, fn }),
    accuracy: ratio(tp + tn, n),
    precision: ratio(tp, tp + fp),
    recall: ratio(tp, tp + fn),
    rocAuc: estimatedRocAuc(probabilities),
  });
}
