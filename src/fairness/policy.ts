/**
 * The manifest's fairness policy applied: sensitive values put into the policy's groups (numeric buckets,
 * categories, booleans, and a `(missing)` group), and the criteria judged against the policy's thresholds.
 * Shared by the offline audit (warden audit fairness), the mitigations and the live monitor, so that they put
 * a value in the same group and call the same figure a failure.
 */

import type { FairnessAttribute, FairnessPolicy } from "../config/index.js";
import type { CriterionReport, FairnessAudit, Figure } from "./audit.js";
import type { EncodedAttribute } from "./groups.js";
import { MISSING_LEVEL } from "./groups.js";

/** The criteria a policy judges (closed list). */
export const FAIRNESS_CRITERIA = ["demographic_parity", "equal_opportunity", "equalized_odds"] as const;
export type FairnessCriterion = (typeof FAIRNESS_CRITERIA)[number];

/** pass, fail, or insufficient: the figure is undefined (fewer than two groups of min_group_size, no positives). */
export const VERDICTS = ["pass", "fail", "insufficient"] as const;
export type Verdict = (typeof VERDICTS)[number];

/** Every group of an attribute, `(missing)` last. */
export function attributeLevels(attribute: FairnessAttribute): string[] {
  return [...attribute.levels, MISSING_LEVEL];
}

/**
 * The index of a value's group in {@link attributeLevels}: its bucket (edges[k−1] ≤ value < edges[k]), its
 * category, "true"/"false"; null, undefined and anything outside the attribute's groups fall in `(missing)`.
 */
export function levelIndex(attribute: FairnessAttribute, value: unknown): number {
  const missing = attribute.levels.length;
  if (value === null || value === undefined) return missing;
  const edges = attribute.buckets;
  if (edges !== undefined) {
    if (typeof value !== "number" || !Number.isFinite(value)) return missing;
    let k = 0;
    while (k < edges.length && value >= edges[k]!) k++;
    return k;
  }
  const text = typeof value === "boolean" ? String(value) : typeof value === "string" ? value : undefined;
  if (text === undefined) return missing;
  const at = attribute.levels.indexOf(text);
  return at < 0 ? missing : at;
}

/**
 * One attribute's values as the fairness library's encoded attribute, groups in the policy's order. The
 * `(missing)` group is kept only when some value is missing (a category nobody has stays: an empty group is a
 * finding).
 */
export function encodePolicyAttribute(
  attribute: FairnessAttribute,
  values: ArrayLike<unknown>,
): EncodedAttribute {
  const codes = new Uint32Array(values.length);
  let missing = false;
  for (let i = 0; i < values.length; i++) {
    const code = levelIndex(attribute, values[i]);
    codes[i] = code;
    if (code === attribute.levels.length) missing = true;
  }
  return {
    name: attribute.name,
    codes,
    levels: missing ? attributeLevels(attribute) : [...attribute.levels],
  };
}

/** One criterion judged against its threshold. */
export interface CriterionVerdict {
  readonly criterion: FairnessCriterion;
  /** The figure judged: the lowest selection rate over the highest, or a largest gap between groups. */
  readonly figure: "selection_rate_ratio" | "tpr_difference" | "equalized_odds_difference";
  /** null when undefined (then the verdict is insufficient, and `reason` says why). */
  readonly value: number | null;
  readonly reason?: string;
  /** The bootstrap interval of the figure, when there is one. */
  readonly interval: { readonly lower: number; readonly upper: number } | null;
  readonly threshold: number;
  /** pass when `value comparison threshold`. */
  readonly comparison: ">=" | "<=";
  readonly verdict: Verdict;
  /**
   * Whether the whole interval lies on the failing side of the threshold (a failure the resampling does not
   * explain away), or on the passing side for a pass; null without an interval or a value.
   */
  readonly interval_agrees: boolean | null;
}

/** The figure of each criterion and how it is compared. */
export const CRITERION_FIGURES: Readonly<
  Record<
    FairnessCriterion,
    {
      readonly figure: CriterionVerdict["figure"];
      readonly comparison: ">=" | "<=";
      readonly threshold: keyof FairnessPolicy["thresholds"];
    }
  >
> = Object.freeze({
  demographic_parity: {
    figure: "selection_rate_ratio",
    comparison: ">=",
    threshold: "selectionRateRatio",
  },
  equal_opportunity: {
    figure: "tpr_difference",
    comparison: "<=",
    threshold: "equalOpportunityDifference",
  },
  equalized_odds: {
    figure: "equalized_odds_difference",
    comparison: "<=",
    threshold: "equalizedOddsDifference",
  },
});

/** Judge one figure. */
export function judge(
  criterion: FairnessCriterion,
  value: number,
  thresholds: FairnessPolicy["thresholds"],
  options: { reason?: string | undefined; interval?: { lower: number; upper: number } | undefined } = {},
): CriterionVerdict {
  const spec = CRITERION_FIGURES[criterion];
  const threshold = thresholds[spec.threshold];
  const passes = (v: number) => (spec.comparison === ">=" ? v >= threshold : v <= threshold);
  const defined = Number.isFinite(value);
  const interval =
    options.interval !== undefined && Number.isFinite(options.interval.lower)
      ? { lower: options.interval.lower, upper: options.interval.upper }
      : null;
  const verdict: Verdict = !defined ? "insufficient" : passes(value) ? "pass" : "fail";
  return {
    criterion,
    figure: spec.figure,
    value: defined ? value : null,
    ...(defined ? {} : { reason: options.reason ?? "undefined" }),
    interval,
    threshold,
    comparison: spec.comparison,
    verdict,
    interval_agrees:
      interval === null || !defined
        ? null
        : verdict === "pass"
          ? passes(interval.lower) && passes(interval.upper)
          : !passes(interval.lower) && !passes(interval.upper),
  };
}

function fromFigure(
  criterion: FairnessCriterion,
  figure: Figure,
  thresholds: FairnessPolicy["thresholds"],
): CriterionVerdict {
  return judge(criterion, figure.value, thresholds, { reason: figure.reason, interval: figure.interval });
}

/**
 * The policy's criteria over an audit: demographic parity as the between-groups selection-rate ratio (the
 * four-fifths rule against the most selected group), equal opportunity as the TPR gap, equalized odds as the
 * larger of the TPR and FPR gaps. Between-groups figures do not depend on the reference group.
 */
export function auditVerdicts(
  audit: FairnessAudit,
  thresholds: FairnessPolicy["thresholds"],
): CriterionVerdict[] {
  const c = audit.criteria;
  const ratio = (r: CriterionReport) => r.ratio;
  return [
    fromFigure("demographic_parity", ratio(c.demographicParity), thresholds),
    fromFigure("equal_opportunity", c.equalOpportunity.difference, thresholds),
    fromFigure("equalized_odds", c.equalizedOdds.difference, thresholds),
  ];
}

/** fail when any criterion fails; else insufficient when any is; else pass. */
export function overallVerdict(verdicts: readonly { readonly verdict: Verdict }[]): Verdict {
  if (verdicts.some((v) => v.verdict === "fail")) return "fail";
  if (verdicts.some((v) => v.verdict === "insufficient")) return "insufficient";
  return "pass";
}
