/**
 * Disparities of one figure across groups: between groups (largest − smallest, smallest / largest, as Fairlearn's
 * `difference` and `ratio` with method "between_groups") and to a reference group (group − reference and
 * group / reference, as Aequitas's disparities), and the reference group rules.
 *
 * Sign convention: a difference to the reference is `group − reference` (positive: the group's figure is
 * higher); a ratio is `group / reference` (above 1: higher). Between groups the difference is ≥ 0 and the
 * ratio lies in [0, 1].
 */

import type { GroupKey } from "./groups.js";
import type { RateMetric, UndefinedReason } from "./metrics.js";

/**
 * How the reference group is chosen, per metric:
 * - "largest": the group with the most rows (Aequitas's "majority"); ties go to the first group.
 * - "lowest": the group with the lowest defined value (Aequitas's "min_metric").
 * - "highest": the group with the highest defined value.
 * - "best": "highest" for metrics where more is better (TPR, TNR, precision, NPV, accuracy, and selection rate,
 *   base rate and mean score when the positive prediction is the favourable outcome), "lowest" for the others.
 * - `{ group: label }`: a named group (Aequitas's "predefined"), by its {@link GroupKey.label}.
 */
export const REFERENCE_RULES = ["largest", "lowest", "highest", "best"] as const;
export type ReferenceRule = (typeof REFERENCE_RULES)[number];
export type ReferenceGroup = ReferenceRule | { readonly group: string };

/** A metric a disparity is taken of: a rate, or the mean score. */
export type DisparityMetric = RateMetric | "mean_score";

const HIGHER_IS_BETTER: ReadonlySet<DisparityMetric> = new Set([
  "tpr",
  "tnr",
  "precision",
  "npv",
  "accuracy",
]);
const FOLLOWS_FAVOURABLE: ReadonlySet<DisparityMetric> = new Set([
  "selection_rate",
  "base_rate",
  "mean_score",
]);

/** Whether a higher value of `metric` is better for the group ("best" reference rule). */
export function higherIsBetter(metric: DisparityMetric, positiveIsFavourable: boolean): boolean {
  if (FOLLOWS_FAVOURABLE.has(metric)) return positiveIsFavourable;
  return HIGHER_IS_BETTER.has(metric);
}

/**
 * Index of the reference group for one metric, or -1 when no group qualifies (every eligible value undefined).
 * Groups not `eligible` (empty, or small ones when they are excluded) are never chosen.
 */
export function chooseReference(
  rule: ReferenceGroup,
  metric: DisparityMetric,
  values: ArrayLike<number>,
  sizes: ArrayLike<number>,
  eligible: ArrayLike<boolean>,
  groups: readonly GroupKey[],
  positiveIsFavourable = true,
): number {
  if (typeof rule === "object") {
    const index = groups.findIndex((g) => g.label === rule.group);
    if (index < 0) {
      throw new RangeError(
        `reference group ${JSON.stringify(rule.group)} is not one of ${groups.map((g) => JSON.stringify(g.label)).join(", ")}`,
      );
    }
    return index;
  }
  let best = -1;
  const highest = rule === "highest" || (rule === "best" && higherIsBetter(metric, positiveIsFavourable));
  for (let g = 0; g < values.length; g++) {
    if (!eligible[g]) continue;
    if (rule === "largest") {
      if (best < 0 || sizes[g]! > sizes[best]!) best = g;
      continue;
    }
    const v = values[g]!;
    if (Number.isNaN(v)) continue;
    if (best < 0 || (highest ? v > values[best]! : v < values[best]!)) best = g;
  }
  return best;
}

/** A difference and a ratio between groups, with the groups at either end. */
export interface BetweenGroups {
  /** max − min over the eligible groups with a defined value; NaN with `reason` otherwise. */
  readonly difference: number;
  /** min / max; NaN when fewer than two groups or when max is 0. */
  readonly ratio: number;
  readonly minGroup: number;
  readonly maxGroup: number;
  readonly differenceReason?: UndefinedReason;
  readonly ratioReason?: UndefinedReason;
}

/** Largest − smallest and smallest / largest of the eligible groups' defined values. */
export function betweenGroups(values: ArrayLike<number>, eligible: ArrayLike<boolean>): BetweenGroups {
  let minGroup = -1;
  let maxGroup = -1;
  let defined = 0;
  for (let g = 0; g < values.length; g++) {
    const v = values[g]!;
    if (!eligible[g] || Number.isNaN(v)) continue;
    defined++;
    if (minGroup < 0 || v < values[minGroup]!) minGroup = g;
    if (maxGroup < 0 || v > values[maxGroup]!) maxGroup = g;
  }
  if (defined < 2) {
    return {
      difference: Number.NaN,
      ratio: Number.NaN,
      minGroup,
      maxGroup,
      differenceReason: "fewer-than-two-groups",
      ratioReason: "fewer-than-two-groups",
    };
  }
  const min = values[minGroup]!;
  const max = values[maxGroup]!;
  if (max === 0)
    return { difference: 0, ratio: Number.NaN, minGroup, maxGroup, ratioReason: "largest-value-zero" };
  return { difference: max - min, ratio: min / max, minGroup, maxGroup };
}

/** Difference and ratio of one group's value to the reference's, with why either is undefined. */
export function toReference(
  value: number,
  reference: number,
): { difference: number; ratio: number; reason?: UndefinedReason; ratioReason?: UndefinedReason } {
  if (Number.isNaN(reference)) {
    return {
      difference: Number.NaN,
      ratio: Number.NaN,
      reason: "reference-undefined",
      ratioReason: "reference-undefined",
    };
  }
  if (Number.isNaN(value)) {
    return {
      difference: Number.NaN,
      ratio: Number.NaN,
      reason: "group-undefined",
      ratioReason: "group-undefined",
    };
  }
  if (reference === 0) return { difference: value, ratio: Number.NaN, ratioReason: "reference-zero" };
  return { difference: value - reference, ratio: value / reference };
}

/** How equalized odds folds its TPR and FPR gaps into one figure. */
export const EQUALIZED_ODDS_AGGREGATES = ["worst", "mean"] as const;
export type EqualizedOddsAggregate = (typeof EQUALIZED_ODDS_AGGREGATES)[number];

/**
 * Equalized odds from the between-groups TPR and FPR figures: "worst" (Fairlearn's `worst_case`, the default):
 * difference = max(ΔTPR, ΔFPR), ratio = min(rTPR, rFPR); "mean": their averages. NaN when either is NaN.
 */
export function equalizedOdds(
  tpr: { difference: number; ratio: number },
  fpr: { difference: number; ratio: number },
  aggregate: EqualizedOddsAggregate = "worst",
): { difference: number; ratio: number } {
  if (aggregate === "mean") {
    return { difference: (tpr.difference + fpr.difference) / 2, ratio: (tpr.ratio + fpr.ratio) / 2 };
  }
  const nan = (a: number, b: number) => Number.isNaN(a) || Number.isNaN(b);
  return {
    difference: nan(tpr.difference, fpr.difference) ? Number.NaN : Math.max(tpr.difference, fpr.difference),
    ratio: nan(tpr.ratio, fpr.ratio) ? Number.NaN : Math.min(tpr.ratio, fpr.ratio),
  };
}

/** The four-fifths rule's band for a selection-rate ratio to the reference: [0.8, 1.25]. */
export const FOUR_FIFTHS = { lower: 0.8, upper: 1.25 } as const;

/** Whether a selection-rate ratio passes the four-fifths rule; null when the ratio is undefined. */
export function passesFourFifths(ratio: number): boolean | null {
  if (Number.isNaN(ratio)) return null;
  return ratio >= FOUR_FIFTHS.lower && ratio <= FOUR_FIFTHS.upper;
}
