import type { ReviewPolicy } from "../config/index.js";
import type { ReviewRouting } from "../decision/index.js";
import type { LoadedModel } from "../registry/index.js";

/** Why a decision is in the review queue (closed list, in the order the rules are checked). */
export const REVIEW_REASONS = ["all", "borderline", "anomaly", "breaker_open", "appeal"] as const;
export type ReviewReason = (typeof REVIEW_REASONS)[number];

/** What the routing rules may ask about a decision beyond its score. */
export interface ReviewRoutingContext {
  /**
   * Whether the model version's circuit breaker is open (the breakers plug in here). Default: never.
   */
  readonly breakerOpen?: (model: string, version: string) => boolean;
  /** Whether the live monitor finds this encoded row anomalous (Isolation Forest). Default: never. */
  readonly anomalous?: (model: LoadedModel, row: Float32Array) => boolean;
}

/**
 * The reasons to hold one decision under `policy` (empty: final as decided). Pure apart from the predicates;
 * `row` is only handed to `anomalous`, and only when the policy asks for anomalies.
 */
export function reviewReasons(
  policy: ReviewPolicy,
  model: LoadedModel,
  row: Float32Array,
  score: number,
  context: ReviewRoutingContext = {},
): ReviewReason[] {
  const reasons: ReviewReason[] = [];
  if (policy.all) reasons.push("all");
  const band = policy.borderline;
  if (band !== undefined && score >= band.low && score <= band.high) reasons.push("borderline");
  if (policy.anomalies && context.anomalous?.(model, row) === true) reasons.push("anomaly");
  const m = model.manifest;
  if (policy.breakerOpen && context.breakerOpen?.(m.name, m.version) === true) reasons.push("breaker_open");
  return reasons;
}

/**
 * The pipeline's review hook: rules from each model's `policy.review`, held decisions handed to `held` (the
 * queue). A model without `policy.review` holds only decisions made while its breaker is open (its appeals
 * still come to the queue).
 */
export function createReviewRouting(
  held: ReviewRouting["held"],
  context: ReviewRoutingContext = {},
): ReviewRouting {
  return {
    route: (model, row, score) => reviewReasons(model.manifest.review, model, row, score, context),
    held,
  };
}
