/**
 * Group metrics from confusion counts. Everything here reads the counts of the four cells of each group,
 * (y, ŷ) ∈ {0, 1}², gathered in one pass over the rows; scores add a sum per group and, for calibration, counts
 * per (group, score bin, y).
 */

import { calibrationBin } from "../monitor/index.js";
import type { GroupEncoding } from "./groups.js";

/** Cell index within a group: 2·y + ŷ. */
export const CELL = { tn: 0, fp: 1, fn: 2, tp: 3 } as const;
/** Cells per group. */
export const CELLS = 4;

/**
 * The rate metrics, each a ratio of sums of a group's cells:
 *
 * | metric | numerator | denominator | undefined when |
 * |---|---|---|---|
 * | selection_rate | TP + FP | n | the group is empty |
 * | base_rate | TP + FN | n | the group is empty |
 * | accuracy | TP + TN | n | the group is empty |
 * | tpr (recall) | TP | TP + FN | no actual positives |
 * | fnr | FN | TP + FN | no actual positives |
 * | fpr | FP | FP + TN | no actual negatives |
 * | tnr | TN | FP + TN | no actual negatives |
 * | precision (PPV) | TP | TP + FP | nothing predicted positive |
 * | fdr | FP | TP + FP | nothing predicted positive |
 * | npv | TN | TN + FN | nothing predicted negative |
 * | for (false omission rate) | FN | TN + FN | nothing predicted negative |
 */
export const RATE_METRICS = [
  "selection_rate",
  "base_rate",
  "accuracy",
  "tpr",
  "fnr",
  "fpr",
  "tnr",
  "precision",
  "fdr",
  "npv",
  "for",
] as const;
export type RateMetric = (typeof RATE_METRICS)[number];

/** Why a figure is undefined (NaN in numbers, null in JSON). */
export const UNDEFINED_REASONS = [
  "empty-group",
  "no-actual-positives",
  "no-actual-negatives",
  "no-predicted-positives",
  "no-predicted-negatives",
  "no-rows-in-bin",
  "fewer-than-two-groups",
  "largest-value-zero",
  "reference-undefined",
  "reference-zero",
  "group-undefined",
  "zero-mean-benefit",
] as const;
export type UndefinedReason = (typeof UNDEFINED_REASONS)[number];

interface RateDefinition {
  /** Bit c set: cell c counts. */
  readonly numerator: number;
  readonly denominator: number;
  readonly whenUndefined: UndefinedReason;
}

const TN = 1 << CELL.tn;
const FP = 1 << CELL.fp;
const FN = 1 << CELL.fn;
const TP = 1 << CELL.tp;
const ALL = TN | FP | FN | TP;

/** Numerator and denominator of each rate, as sets of cells. */
export const RATE_DEFINITIONS: Readonly<Record<RateMetric, RateDefinition>> = Object.freeze({
  selection_rate: { numerator: TP | FP, denominator: ALL, whenUndefined: "empty-group" },
  base_rate: { numerator: TP | FN, denominator: ALL, whenUndefined: "empty-group" },
  accuracy: { numerator: TP | TN, denominator: ALL, whenUndefined: "empty-group" },
  tpr: { numerator: TP, denominator: TP | FN, whenUndefined: "no-actual-positives" },
  fnr: { numerator: FN, denominator: TP | FN, whenUndefined: "no-actual-positives" },
  fpr: { numerator: FP, denominator: FP | TN, whenUndefined: "no-actual-negatives" },
  tnr: { numerator: TN, denominator: FP | TN, whenUndefined: "no-actual-negatives" },
  precision: { numerator: TP, denominator: TP | FP, whenUndefined: "no-predicted-positives" },
  fdr: { numerator: FP, denominator: TP | FP, whenUndefined: "no-predicted-positives" },
  npv: { numerator: TN, denominator: TN | FN, whenUndefined: "no-predicted-negatives" },
  for: { numerator: FN, denominator: TN | FN, whenUndefined: "no-predicted-negatives" },
});

function sumCells(cells: ArrayLike<number>, offset: number, mask: number): number {
  let total = 0;
  for (let c = 0; c < CELLS; c++) if (mask & (1 << c)) total += cells[offset + c]!;
  return total;
}

/** Successes and trials of a rate in group `group` (cells laid out group by group, {@link CELLS} each). */
export function rateCounts(
  metric: RateMetric,
  cells: ArrayLike<number>,
  group: number,
): { successes: number; trials: number } {
  const definition = RATE_DEFINITIONS[metric];
  const offset = group * CELLS;
  return {
    successes: sumCells(cells, offset, definition.numerator),
    trials: sumCells(cells, offset, definition.denominator),
  };
}

/** A rate of group `group`; NaN when its denominator is 0 (see {@link RATE_DEFINITIONS} for why). */
export function rate(metric: RateMetric, cells: ArrayLike<number>, group: number): number {
  const { successes, trials } = rateCounts(metric, cells, group);
  return trials === 0 ? Number.NaN : successes / trials;
}

/** Label arrays hold 0 and 1 (booleans allowed); anything else is refused. */
export type BinaryLabels = ArrayLike<number | boolean>;

function label(values: BinaryLabels, i: number, name: string): 0 | 1 {
  const v = values[i];
  if (v === 1 || v === true) return 1;
  if (v === 0 || v === false) return 0;
  throw new RangeError(`${name}[${i}] must be 0, 1, true or false, got ${String(v)}`);
}

/** What one pass over the rows gathers ({@link countOutcomes}). */
export interface OutcomeCounts {
  readonly groupCount: number;
  /** Rows per group. */
  readonly sizes: Float64Array;
  /** Cells per group, {@link CELLS} each, in {@link CELL} order. */
  readonly cells: Float64Array;
  /** Cell of each row (2·y + ŷ), kept for row resampling. */
  readonly rowCells: Uint8Array;
  /** Present when scores were given. */
  readonly scores?: {
    readonly bins: number;
    /** Sum of scores per group. */
    readonly sums: Float64Array;
    /** Per (group, bin): rows, positives (y = 1) and score sum, at [(g·bins + b)·3 + 0, 1, 2]. */
    readonly calibration: Float64Array;
  };
}

/**
 * Count each group's confusion cells (and score sums and calibration bins when scores are given) in one pass.
 * Scores must lie in [0, 1]; bin k is [k/B, (k+1)/B), the last one closed at 1 (as the monitor's ECE bins).
 */
export function countOutcomes(
  encoding: GroupEncoding,
  yTrue: BinaryLabels,
  yPred: BinaryLabels,
  options: { readonly scores?: ArrayLike<number>; readonly calibrationBins?: number } = {},
): OutcomeCounts {
  const n = encoding.codes.length;
  if (yTrue.length !== n || yPred.length !== n) {
    throw new RangeError(
      `yTrue (${yTrue.length}), yPred (${yPred.length}) and groups (${n}) differ in length`,
    );
  }
  const groupCount = encoding.groups.length;
  const sizes = new Float64Array(groupCount);
  const cells = new Float64Array(groupCount * CELLS);
  const rowCells = new Uint8Array(n);
  const codes = encoding.codes;
  for (let i = 0; i < n; i++) {
    const cell = 2 * label(yTrue, i, "yTrue") + label(yPred, i, "yPred");
    const g = codes[i]!;
    rowCells[i] = cell;
    cells[g * CELLS + cell]!++;
    sizes[g]!++;
  }
  if (options.scores === undefined) return { groupCount, sizes, cells, rowCells };
  const scores = options.scores;
  if (scores.length !== n)
    throw new RangeError(`scores (${scores.length}) and groups (${n}) differ in length`);
  const bins = options.calibrationBins ?? DEFAULT_CALIBRATION_BINS;
  if (!(Number.isInteger(bins) && bins >= 1 && bins <= 1000)) {
    throw new RangeError(`calibrationBins must be an integer in [1, 1000], got ${bins}`);
  }
  const sums = new Float64Array(groupCount);
  const calibration = new Float64Array(groupCount * bins * 3);
  for (let i = 0; i < n; i++) {
    const s = scores[i]!;
    if (!(s >= 0 && s <= 1)) throw new RangeError(`scores[${i}] must lie in [0, 1], got ${s}`);
    const g = codes[i]!;
    const b = calibrationBin(s, bins);
    sums[g]! += s;
    const at = (g * bins + b) * 3;
    calibration[at]!++;
    calibration[at + 1]! += rowCells[i]! >> 1;
    calibration[at + 2]! += s;
  }
  return { groupCount, sizes, cells, rowCells, scores: { bins, sums, calibration } };
}

/** Default number of equal-width calibration bins. */
export const DEFAULT_CALIBRATION_BINS = 10;
