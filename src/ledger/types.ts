/**
 * Kinds of ledger record (closed list):
 * - `decision`: a model's answer to one instance;
 * - `rejection`: a request that reached a model and was refused (invalid input, queue full, timeout);
 * - `outcome`: the ground truth for an earlier decision, once known (points to it; nothing is mutated);
 * - `appeal`: a subject contests an earlier decision (GDPR Art. 22; points to it);
 * - `deployment`: a change of which version serves a model (register, promote, roll back, traffic policy);
 * - `shadow`: a candidate version's answer to a served decision under a shadow policy (points to it; never
 *   returned to the client).
 * - `retention`: a retention purge removed subject data from the subject vault (outside the chain) for one
 *   model: counts, the time range of the decisions concerned and a digest of their ids. No record is ever
 *   deleted or changed; this one says what was removed beside them.
 * - `review`: a human reviewer's judgement of an earlier decision held for review (points to it): the final
 *   decision when `final` is true, otherwise the first of two (four-eyes) or a disagreement.
 * - `access`: a request refused for its identity (401, 403: the route, the reason, the identity when known, never
 *   the credential), or an API key made, rotated or revoked (with the admin who did it). `model` and `version`
 *   are the route's, or "-" (as is `artifact_sha256`).
 * - `breaker`: a model version's circuit breaker changed state (closed, open, half-open): the rule that
 *   tripped or the cause (cool-down, healthy probes, an operator's stop or resume with actor and reason),
 *   the signals' values and the threshold crossed.
 */
export const RECORD_KINDS = [
  "decision",
  "rejection",
  "outcome",
  "appeal",
  "deployment",
  "shadow",
  "retention",
  "review",
  "breaker",
  "access",
] as const;
export type RecordKind = (typeof RECORD_KINDS)[number];

/**
 * Kinds of record that point to an earlier decision through `body.decision_id` (its history): every store
 * indexes them by that id (see LedgerReader.linked).
 */
export const LINKED_KINDS = ["outcome", "appeal", "review"] as const;
export type LinkedKind = (typeof LINKED_KINDS)[number];

/**
 * A stretch of the ledger as the review queue's catch-up reads it (LedgerReader.reviewSources): the records in
 * (afterSeq, through] that may have put a decision in the queue, and where the ledger ends.
 */
export interface ReviewSources {
  /** Appeals, and decisions whose entry holds a `review` object (held for review), in ledger order. */
  readonly records: LedgerRecord[];
  /** The last sequence number the stretch covers: min(afterSeq + limit, end). */
  readonly through: number;
  /** The ledger's last sequence number. */
  readonly end: number;
  /** The hash of record `through`; undefined when there is none (0, or past the end). */
  readonly throughHash: string | undefined;
}

/**
 * What picks the review queue's sources in SQL without parsing JSON: a decision held for review is the only
 * decision whose canonical entry holds the text `"review":{` (a key `review` with an object value; inside a
 * string the quotes would be escaped). A record it picks wrongly is harmless (the reader checks the parsed
 * body); one it missed would not be, hence a test on the pipeline's entries (see the review tests).
 */
export const REVIEW_MARK = '"review":{';

/**
 * One ledger entry as the pipeline hands it over. It is hashed as canonical JSON (RFC 8785), so it must be
 * plain JSON data: no undefined, no NaN/Infinity, no class instances.
 */
export interface LedgerEntry {
  /** Decision id (UUIDv7), unique. */
  readonly id: string;
  readonly kind: RecordKind;
  /** ISO-8601 UTC time the decision was made. */
  readonly time: string;
  readonly model: string;
  readonly version: string;
  readonly artifact_sha256: string;
  /** Everything else: inputs, subject, outputs, decision, latency_ms, client id, errors, ... */
  readonly body: Readonly<Record<string, unknown>>;
}

/** An entry as stored: its position and its place in the hash chain. */
export interface LedgerRecord extends LedgerEntry {
  /** 1-based position in the ledger. */
  readonly seq: number;
  /** Hash of the previous record (64 zero hex digits for the first). */
  readonly prev_hash: string;
  /** sha256(prev_hash ‖ canonical JSON of the entry), hex. */
  readonly hash: string;
}
