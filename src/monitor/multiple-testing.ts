/**
 * Multiple testing across features: adjusted p-values (Bonferroni, Holm, Benjamini–Hochberg, as
 * statsmodels' `multipletests` defines them), the number of features expected to drift by chance,
 * and the dataset-level drift verdict.
 */

/** The p-value adjustments on offer. */
export const P_VALUE_ADJUSTMENTS = ["bonferroni", "holm", "benjamini-hochberg"] as const;
export type PValueAdjustment = (typeof P_VALUE_ADJUSTMENTS)[number];

function checkPValues(pValues: readonly number[]): void {
  for (const p of pValues) {
    if (!(p >= 0 && p <= 1)) throw new RangeError(`p-values must lie in [0, 1]; got ${p}`);
  }
}

/** Indices ordering the p-values ascending (stable). */
function ascendingOrder(pValues: readonly number[]): number[] {
  return Array.from(pValues.keys()).sort((a, b) => pValues[a]! - pValues[b]! || a - b);
}

/**
 * Adjusted p-values for m simultaneous tests, in the input's order; a feature is significant at
 * family-wise (or false-discovery) level α when its adjusted p-value is < α.
 *
 * - "bonferroni": min(1, m·p).
 * - "holm" (step-down): with p₍₁₎ ≤ … ≤ p₍ₘ₎, adjusted p₍ᵢ₎ = min(1, max_{j≤i} (m − j + 1)·p₍ⱼ₎).
 * - "benjamini-hochberg" (step-up, false discovery rate):
 *   adjusted p₍ᵢ₎ = min(1, min_{j≥i} m·p₍ⱼ₎ / j).
 *
 * Ties get the same adjusted value whatever their order.
 *
 * @example adjustPValues([0.01, 0.04, 0.03], "holm") // [0.03, 0.06, 0.06]
 */
export function adjustPValues(pValues: readonly number[], method: PValueAdjustment): number[] {
  checkPValues(pValues);
  const m = pValues.length;
  const adjusted = new Array<number>(m);
  if (method === "bonferroni") {
    for (let i = 0; i < m; i++) adjusted[i] = Math.min(1, m * pValues[i]!);
    return adjusted;
  }
  const order = ascendingOrder(pValues);
  if (method === "holm") {
    let running = 0;
    for (let rank = 0; rank < m; rank++) {
      const idx = order[rank]!;
      running = Math.max(running, (m - rank) * pValues[idx]!);
      adjusted[idx] = Math.min(1, running);
    }
    return adjusted;
  }
  let running = Number.POSITIVE_INFINITY;
  for (let rank = m - 1; rank >= 0; rank--) {
    const idx = order[rank]!;
    running = Math.min(running, (pValues[idx]! * m) / (rank + 1));
    adjusted[idx] = Math.min(1, running);
  }
  return adjusted;
}

/**
 * How many of m independent features are expected to be flagged at level α when none has drifted:
 * α·m (each test is a false positive with probability α under the null).
 */
export function expectedFalseAlarms(featureCount: number, alpha: number): number {
  if (!(featureCount >= 0) || !(alpha >= 0 && alpha <= 1)) {
    throw new RangeError("expectedFalseAlarms: featureCount ≥ 0 and alpha in [0, 1]");
  }
  return alpha * featureCount;
}

/** Evidently's default share of drifted features above which the dataset counts as drifted. */
export const DATASET_DRIFT_SHARE = 0.5;
/** Default significance level for the per-feature tests and the Bonferroni check. */
export const DEFAULT_ALPHA = 0.05;

/** One feature's drift outcome as the dataset verdict sees it. */
export interface FeatureDrift {
  readonly feature: string;
  /** Whether the feature's own test or distance crossed its threshold. */
  readonly drifted: boolean;
  /** The feature's p-value, when its method has one (KS, chi-squared); distances have none. */
  readonly pValue?: number;
}

/** Why the dataset was judged drifted. */
export const DATASET_DRIFT_REASONS = ["share", "bonferroni"] as const;
export type DatasetDriftReason = (typeof DATASET_DRIFT_REASONS)[number];

/** Result of {@link datasetDriftVerdict}. */
export interface DatasetDriftVerdict {
  readonly drifted: boolean;
  readonly reasons: readonly DatasetDriftReason[];
  readonly featureCount: number;
  readonly driftedCount: number;
  /** driftedCount / featureCount (0 when there are no features). */
  readonly driftShare: number;
  /** Features with a p-value, the m of the Bonferroni correction. */
  readonly testedCount: number;
  /** α · testedCount: how many tested features may be flagged by chance alone. */
  readonly expectedByChance: number;
  /** Features whose Bonferroni-adjusted p-value is < α. */
  readonly bonferroniSignificant: readonly string[];
}

/**
 * Dataset-level drift: drifted when the share of drifted features is ≥ `shareThreshold` (Evidently's
 * rule, default 0.5), or when any feature's Bonferroni-adjusted p-value (over the features that have
 * p-values) is < `alpha` (default 0.05), which keeps the family-wise false-alarm rate ≤ α however many
 * features are tested.
 */
export function datasetDriftVerdict(
  features: readonly FeatureDrift[],
  options: { readonly alpha?: number; readonly shareThreshold?: number } = {},
): DatasetDriftVerdict {
  const alpha = options.alpha ?? DEFAULT_ALPHA;
  const shareThreshold = options.shareThreshold ?? DATASET_DRIFT_SHARE;
  if (!(alpha > 0 && alpha < 1)) throw new RangeError("alpha must lie in (0, 1)");
  if (!(shareThreshold > 0 && shareThreshold <= 1)) throw new RangeError("shareThreshold must lie in (0, 1]");
  const featureCount = features.length;
  const driftedCount = features.filter((f) => f.drifted).length;
  const driftShare = featureCount === 0 ? 0 : driftedCount / featureCount;
  const tested = features.filter((f) => f.pValue !== undefined);
  const adjusted = adjustPValues(
    tested.map((f) => f.pValue!),
    "bonferroni",
  );
  const bonferroniSignificant = tested.filter((_, i) => adjusted[i]! < alpha).map((f) => f.feature);
  const reasons: DatasetDriftReason[] = [];
  if (featureCount > 0 && driftShare >= shareThreshold) reasons.push("share");
  if (bonferroniSignificant.length > 0) reasons.push("bonferroni");
  return Object.freeze({
    drifted: reasons.length > 0,
    reasons: Object.freeze(reasons),
    featureCount,
    driftedCount,
    driftShare,
    testedCount: tested.length,
    expectedByChance: expectedFalseAlarms(tested.length, alpha),
    bonferroniSignificant: Object.freeze(bonferroniSignificant),
  });
}
