/**
 * Human review: which decisions are held for a reviewer (`policy.review`), the queue in
 * `<data_dir>/review.sqlite`, claims, resolutions (four-eyes where the policy asks), SLA escalations as
 * alert-shaped events, similar past cases, and override counts. A reviewer's decision is a `review` ledger
 * record pointing to the decision; the decision's own record is never changed.
 */
export {
  createReviewRouting,
  REVIEW_REASONS,
  type ReviewReason,
  type ReviewRoutingContext,
  reviewReasons,
} from "./router.js";
export {
  createReviewService,
  REVIEW_LIST_DEFAULT,
  REVIEW_LIST_MAX,
  type Resolution,
  type ReviewAlert,
  type ReviewJudged,
  type ReviewLedger,
  type ReviewService,
  type ReviewServiceOptions,
  SIMILAR_DEFAULT,
  SIMILAR_MAX,
  SIMILAR_WINDOW,
} from "./service.js";
export { nearestCases, type SimilarCase } from "./similar.js";
export {
  effectiveStatus,
  openReviewStore,
  REVIEW_STATUSES,
  type ReviewItem,
  type ReviewStatus,
  type ReviewStore,
  type Verdict,
} from "./store.js";
