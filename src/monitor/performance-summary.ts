/**
 * A mergeable summary of a binary classifier's performance, for sliding windows and for the windows of
 * several replicas: O(1) per decision or outcome, merged bin by bin, serialisable.
 *
 * What is exact and what is not:
 * - accuracy, precision, recall at the threshold, the Brier score and the expected calibration error are
 *   exact (they need only counts and sums; the ECE bins are unions of the summary's bins, and a score's bin
 *   is found inside its ECE bin, so it sits in the same ECE bin as in `expectedCalibrationError`);
 * - the ROC AUC and the estimated (CBPE) ROC AUC come from a histogram of `bins` equal-width score bins:
 *   pairs in different bins are ordered exactly, pairs within a bin count as ties. Each figure carries a
 *   bound on its error: ½·Σ_b pos_b·neg_b / (P·N) for the AUC, and w·Σ_b m_b(m_b − 1) / (4·P̂·N̂) for the
 *   estimate (w = 1/bins, m_b the scores in bin b, P̂ = Σ p, N̂ = Σ (1 − p)). Use {@link binaryMetrics} over
 *   the records for the exact figures in reports.
 */

import { type BinaryLabel, type BinaryMetrics, type EstimatedMetrics, eceFromBins } from "./performance.js";
import type { SummaryKind } from "./window.js";

/** Options of {@link createPerformanceSummary}. */
export interface PerformanceSummaryOptions {
  /** Policy threshold: score ≥ threshold predicts positive. Default 0.5. */
  readonly threshold?: number;
  /** Score histogram bins (default 200); a multiple of `eceBins`. */
  readonly bins?: number;
  /** Equal-width bins of the calibration error. Default 10. */
  readonly eceBins?: number;
}

/** Realised metrics from the summary, with the AUC's error bound. */
export interface SummaryMetrics extends BinaryMetrics {
  /** |rocAuc − exact ROC AUC| ≤ rocAucErrorBound. */
  readonly rocAucErrorBound: number;
}

/** Estimated (label-free) metrics from the summary, with the AUC's error bound. */
export interface SummaryEstimates extends EstimatedMetrics {
  /** |rocAuc − exact CBPE ROC AUC| ≤ rocAucErrorBound. */
  readonly rocAucErrorBound: number;
}

/** The JSON form of a performance summary. */
export interface PerformanceSummaryJSON {
  readonly kind: "binary-performance";
  readonly version: 1;
  readonly threshold: number;
  readonly bins: number;
  readonly eceBins: number;
  /** Labelled pairs: per bin, how many, how many positive, the sum of their scores. */
  readonly labelled: {
    readonly counts: number[];
    readonly positives: number[];
    readonly scoreSums: number[];
  };
  /** Decisions (for the estimates): per bin, how many and the sum of their scores. */
  readonly decisions: { readonly counts: number[]; readonly scoreSums: number[] };
  readonly confusion: { tp: number; fp: number; tn: number; fn: number };
  readonly brierSum: number;
  readonly expected: { tp: number; fp: number; tn: number; fn: number };
}

/**
 * Running performance of one model over decisions (score only, for the label-free estimates) and outcomes
 * (score and realised label). Scores are probabilities in [0, 1], calibrated for the estimates to mean much.
 */
export interface PerformanceSummary {
  /** Counts a decision's score towards the label-free estimates. */
  addDecision(score: number): void;
  /** Counts a labelled outcome towards the realised metrics. */
  addOutcome(score: number, label: BinaryLabel): void;
  /** Folds `other` (same threshold and bins) into this summary. */
  merge(other: PerformanceSummary): void;
  realised(): SummaryMetrics;
  estimated(): SummaryEstimates;
  toJSON(): PerformanceSummaryJSON;
}

class Performance implements PerformanceSummary {
  readonly threshold: number;
  readonly bins: number;
  readonly eceBins: number;
  readonly #labelled: { counts: Float64Array; positives: Float64Array; scoreSums: Float64Array };
  readonly #decisions: { counts: Float64Array; scoreSums: Float64Array };
  readonly #confusion = { tp: 0, fp: 0, tn: 0, fn: 0 };
  readonly #expected = { tp: 0, fp: 0, tn: 0, fn: 0 };
  #brierSum = 0;

  constructor(threshold: number, bins: number, eceBins: number) {
    if (!(threshold >= 0 && threshold <= 1))
      throw new RangeError(`threshold must lie in [0, 1], got ${threshold}`);
    if (!Number.isInteger(eceBins) || eceBins < 1) throw new RangeError(`eceBins must be an integer >= 1`);
    if (!Number.isInteger(bins) || bins < 1 || bins % eceBins !== 0) {
      throw new RangeError(`bins must be a positive multiple of eceBins (${eceBins}), got ${bins}`);
    }
    this.threshold = threshold;
    this.bins = bins;
    this.eceBins = eceBins;
    this.#labelled = {
      counts: new Float64Array(bins),
      positives: new Float64Array(bins),
      scoreSums: new Float64Array(bins),
    };
    this.#decisions = { counts: new Float64Array(bins), scoreSums: new Float64Array(bins) };
  }

  #bin(p: number): number {
    if (!(p >= 0 && p <= 1)) throw new RangeError(`scores must be probabilities in [0, 1], got ${p}`);
    // The ECE bin of p must be the ECE bin of its histogram bin: take the ECE bin first, then refine in it.
    const per = this.bins / this.eceBins;
    const e = Math.min(Math.floor(p * this.eceBins), this.eceBins - 1);
    const within = Math.min(Math.max(Math.floor(p * this.bins) - e * per, 0), per - 1);
    return e * per + within;
  }

  addDecision(score: number): void {
    const b = this.#bin(score);
    this.#decisions.counts[b]! += 1;
    this.#decisions.scoreSums[b]! += score;
    if (score >= this.threshold) {
      this.#expected.tp += score;
      this.#expected.fp += 1 - score;
    } else {
      this.#expected.fn += score;
      this.#expected.tn += 1 - score;
    }
  }

  addOutcome(score: number, label: BinaryLabel): void {
    const b = this.#bin(score);
    let y: 0 | 1;
    if (label === 1 || label === true) y = 1;
    else if (label === 0 || label === false) y = 0;
    else throw new RangeError(`labels must be 0, 1, true or false, got ${String(label)}`);
    this.#labelled.counts[b]! += 1;
    this.#labelled.positives[b]! += y;
    this.#labelled.scoreSums[b]! += score;
    this.#brierSum += (score - y) ** 2;
    const c = this.#confusion;
    if (score >= this.threshold) {
      if (y) c.tp++;
      else c.fp++;
    } else if (y) c.fn++;
    else c.tn++;
  }

  merge(other: PerformanceSummary): void {
    if (!(other instanceof Performance))
      throw new TypeError("can only merge summaries made by createPerformanceSummary");
    if (other.threshold !== this.threshold || other.bins !== this.bins || other.eceBins !== this.eceBins) {
      throw new RangeError("cannot merge performance summaries of different threshold or bins");
    }
    addInto(this.#labelled.counts, other.#labelled.counts);
    addInto(this.#labelled.positives, other.#labelled.positives);
    addInto(this.#labelled.scoreSums, other.#labelled.scoreSums);
    addInto(this.#decisions.counts, other.#decisions.counts);
    addInto(this.#decisions.scoreSums, other.#decisions.scoreSums);
    for (const k of ["tp", "fp", "tn", "fn"] as const) {
      this.#confusion[k] += other.#confusion[k];
      this.#expected[k] += other.#expected[k];
    }
    this.#brierSum += other.#brierSum;
  }

  realised(): SummaryMetrics {
    const { counts, positives, scoreSums } = this.#labelled;
    const { tp, fp, tn, fn } = this.#confusion;
    const n = tp + fp + tn + fn;
    let negBelow = 0;
    let correct = 0;
    let sameBin = 0;
    let pos = 0;
    for (let b = 0; b < this.bins; b++) {
      const p = positives[b]!;
      const q = counts[b]! - p;
      correct += p * negBelow + 0.5 * p * q;
      sameBin += p * q;
      negBelow += q;
      pos += p;
    }
    const pairs = pos * negBelow;
    const per = this.bins / this.eceBins;
    const eceCounts = new Float64Array(this.eceBins);
    const eceSums = new Float64Array(this.eceBins);
    const ecePos = new Float64Array(this.eceBins);
    for (let b = 0; b < this.bins; b++) {
      const e = Math.floor(b / per);
      eceCounts[e]! += counts[b]!;
      eceSums[e]! += scoreSums[b]!;
      ecePos[e]! += positives[b]!;
    }
    return Object.freeze({
      count: n,
      threshold: this.threshold,
      confusion: Object.freeze({ tp, fp, tn, fn }),
      accuracy: ratio(tp + tn, n),
      precision: ratio(tp, tp + fp),
      recall: ratio(tp, tp + fn),
      rocAuc: ratio(correct, pairs),
      rocAucErrorBound: ratio(0.5 * sameBin, pairs),
      brier: ratio(this.#brierSum, n),
      ece: eceFromBins(eceCounts, eceSums, ecePos),
    });
  }

  estimated(): SummaryEstimates {
    const { counts, scoreSums } = this.#decisions;
    const { tp, fp, tn, fn } = this.#expected;
    let above = 0;
    let total = 0;
    let area = 0;
    let slack = 0;
    let n = 0;
    // Highest bin first, as the CBPE curve runs; within a bin the scores count as tied.
    for (let b = this.bins - 1; b >= 0; b--) {
      const m = counts[b]!;
      const groupP = scoreSums[b]!;
      const groupN = m - groupP;
      area += groupN * (above + groupP / 2);
      slack += (m * (m - 1)) / (4 * this.bins);
      above += groupP;
      total += groupN;
      n += m;
    }
    return Object.freeze({
      count: n,
      threshold: this.threshold,
      confusion: Object.freeze({ tp, fp, tn, fn }),
      accuracy: ratio(tp + tn, n),
      precision: ratio(tp, tp + fp),
      recall: ratio(tp, tp + fn),
      rocAuc: ratio(area, above * total),
      rocAucErrorBound: ratio(slack, above * total),
    });
  }

  toJSON(): PerformanceSummaryJSON {
    return {
      kind: "binary-performance",
      version: 1,
      threshold: this.threshold,
      bins: this.bins,
      eceBins: this.eceBins,
      labelled: {
        counts: Array.from(this.#labelled.counts),
        positives: Array.from(this.#labelled.positives),
        scoreSums: Array.from(this.#labelled.scoreSums),
      },
      decisions: {
        counts: Array.from(this.#decisions.counts),
        scoreSums: Array.from(this.#decisions.scoreSums),
      },
      confusion: { ...this.#confusion },
      brierSum: this.#brierSum,
      expected: { ...this.#expected },
    };
  }

  static restore(j: PerformanceSummaryJSON): Performance {
    const s = new Performance(j.threshold, j.bins, j.eceBins);
    s.#labelled.counts.set(j.labelled.counts);
    s.#labelled.positives.set(j.labelled.positives);
    s.#labelled.scoreSums.set(j.labelled.scoreSums);
    s.#decisions.counts.set(j.decisions.counts);
    s.#decisions.scoreSums.set(j.decisions.scoreSums);
    Object.assign(s.#confusion, j.confusion);
    Object.assign(s.#expected, j.expected);
    s.#brierSum = j.brierSum;
    return s;
  }
}

function addInto(into: Float64Array, from: Float64Array): void {
  for (let i = 0; i < into.length; i++) into[i]! += from[i]!;
}

function ratio(a: number, b: number): number {
  return b > 0 ? a / b : Number.NaN;
}

/** A new, empty performance summary. */
export function createPerformanceSummary(options: PerformanceSummaryOptions = {}): PerformanceSummary {
  return new Performance(options.threshold ?? 0.5, options.bins ?? 200, options.eceBins ?? 10);
}

/** Reads a performance summary from its JSON form, checking its shape. */
export function performanceSummaryFromJSON(json: unknown): PerformanceSummary {
  const fail = (what: string): never => {
    throw new TypeError(`not a binary-performance JSON: ${what}`);
  };
  const j = json as Record<string, unknown> | null;
  if (typeof j !== "object" || j === null) return fail("expected an object");
  if (j.kind !== "binary-performance" || j.version !== 1) fail("kind must be binary-performance, version 1");
  const finite = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v);
  if (!finite(j.threshold) || !Number.isInteger(j.bins) || !Number.isInteger(j.eceBins)) {
    fail("threshold, bins and eceBins must be numbers");
  }
  const bins = j.bins as number;
  const arrays = (part: unknown, keys: string[], name: string): void => {
    const o = part as Record<string, unknown> | null;
    if (typeof o !== "object" || o === null) fail(`${name} must be an object`);
    for (const k of keys) {
      const a = (o as Record<string, unknown>)[k];
      if (!Array.isArray(a) || a.length !== bins || !a.every(finite))
        fail(`${name}.${k} must hold ${bins} numbers`);
    }
  };
  arrays(j.labelled, ["counts", "positives", "scoreSums"], "labelled");
  arrays(j.decisions, ["counts", "scoreSums"], "decisions");
  for (const name of ["confusion", "expected"]) {
    const o = j[name] as Record<string, unknown> | null;
    if (typeof o !== "object" || o === null || !["tp", "fp", "tn", "fn"].every((k) => finite(o[k]))) {
      fail(`${name} must hold tp, fp, tn, fn`);
    }
  }
  if (!finite(j.brierSum)) fail("brierSum must be a number");
  return Performance.restore(j as unknown as PerformanceSummaryJSON);
}

/**
 * The summary as a window kind. An observation with a label is an outcome (realised metrics); one without
 * is a decision (label-free estimates): add the decision when it is made and the outcome when it lands.
 */
export function performanceKind(
  options: PerformanceSummaryOptions = {},
): SummaryKind<PerformanceSummary, { readonly score: number; readonly label?: BinaryLabel }> {
  return {
    create: () => createPerformanceSummary(options),
    add: (summary, { score, label }) => {
      if (label === undefined) summary.addDecision(score);
      else summary.addOutcome(score, label);
    },
    merge: (into, from) => into.merge(from),
  };
}
