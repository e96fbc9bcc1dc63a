import { Type as T } from "@sinclair/typebox";
import { describeValue, type FieldProblem } from "../errors/index.js";
import type { Task } from "./manifest-schema.js";
import { schemaProblems } from "./schema-errors.js";

/** Minutes a review item may wait before it is overdue (escalated), by default: one day. */
export const DEFAULT_REVIEW_SLA_MINUTES = 1440;
/** Minutes a reviewer's claim on an item lasts, by default. */
export const DEFAULT_REVIEW_CLAIM_MINUTES = 30;

const Minutes = (max: number) =>
  T.Number({ exclusiveMinimum: 0, maximum: max, description: `minutes, above 0 and at most ${max}` });

/** `policy.review` as written (every field optional). */
export const ReviewPolicySchema = T.Object(
  {
    all: T.Optional(T.Boolean({ description: "true or false" })),
    borderline: T.Optional(
      T.Object(
        {
          low: T.Number({ description: "a number: the band's lower end (inclusive)" }),
          high: T.Number({ description: "a number: the band's upper end (inclusive)" }),
        },
        { additionalProperties: false, description: "a mapping of low and high" },
      ),
    ),
    anomalies: T.Optional(T.Boolean({ description: "true or false" })),
    breaker_open: T.Optional(T.Boolean({ description: "true or false" })),
    four_eyes: T.Optional(T.Boolean({ description: "true or false" })),
    sla_minutes: T.Optional(Minutes(525_600)),
    claim_minutes: T.Optional(Minutes(10_080)),
    reason_codes: T.Optional(
      T.Array(
        T.String({
          minLength: 1,
          maxLength: 64,
          pattern: "^[A-Za-z0-9][A-Za-z0-9_.-]*$",
          description: "a reason code: 1 to 64 letters, digits, _ . -",
        }),
        { minItems: 1, description: "a list of reason codes" },
      ),
    ),
  },
  {
    additionalProperties: false,
    description:
      "a mapping of all, borderline, anomalies, breaker_open, four_eyes, sla_minutes, claim_minutes and reason_codes",
  },
);

/** A manifest's human review policy, defaults applied. */
export interface ReviewPolicy {
  /** Whether the manifest has a `policy.review` section (appeals enter the queue either way). */
  readonly configured: boolean;
  /** Hold every decision of the model (default false). */
  readonly all: boolean;
  /** Hold decisions whose score lies in [low, high] (binary: P(positive label); regression: the value). */
  readonly borderline: { readonly low: number; readonly high: number } | undefined;
  /** Hold decisions whose input the live monitor's Isolation Forest finds anomalous (default false). */
  readonly anomalies: boolean;
  /** Hold decisions made while the model version's circuit breaker is open (default true). */
  readonly breakerOpen: boolean;
  /** Two distinct reviewers must agree before a decision is final (default false). */
  readonly fourEyes: boolean;
  /** Minutes before an unresolved item is overdue and escalated (default 1440). */
  readonly slaMinutes: number;
  /** Minutes a claim lasts (default 30). */
  readonly claimMinutes: number;
  /** The reason codes a reviewer may give; undefined: any code (1 to 64 letters, digits, _ . -). */
  readonly reasonCodes: readonly string[] | undefined;
}

type RawReview = {
  all?: boolean;
  borderline?: { low: number; high: number };
  anomalies?: boolean;
  breaker_open?: boolean;
  four_eyes?: boolean;
  sla_minutes?: number;
  claim_minutes?: number;
  reason_codes?: string[];
};

const AT = "/policy/review";

/** Problems with `policy.review` (field paths from the manifest root). */
export function reviewPolicyProblems(task: Task, policy: Readonly<Record<string, unknown>>): FieldProblem[] {
  const raw = policy.review;
  if (raw === undefined) return [];
  const problems = schemaProblems(ReviewPolicySchema, raw, AT);
  if (problems.length > 0) return problems;
  const r = raw as RawReview;
  const band = r.borderline;
  if (band !== undefined) {
    const probability = task !== "regression";
    for (const end of ["low", "high"] as const) {
      const value = band[end];
      if (!Number.isFinite(value) || (probability && (value < 0 || value > 1))) {
        problems.push({
          field: `${AT}/borderline/${end}`,
          expected: probability
            ? `a probability from 0 to 1 (the ${task} model's score)`
            : "a finite number (the regression model's value)",
          found: describeValue(value),
        });
      }
    }
    if (problems.length === 0 && band.low >= band.high) {
      problems.push({
        field: `${AT}/borderline/high`,
        expected: `a number above low (${band.low}): the band holds the scores from low to high`,
        found: describeValue(band.high),
        fix: "swap low and high, or widen the band",
      });
    }
  }
  const codes = r.reason_codes;
  if (codes !== undefined) {
    const seen = new Set<string>();
    codes.forEach((code, i) => {
      if (seen.has(code)) {
        problems.push({
          field: `${AT}/reason_codes/${i}`,
          expected: "a reason code not listed before",
          found: describeValue(code),
          fix: "remove the repeated code",
        });
      }
      seen.add(code);
    });
  }
  return problems;
}

/** The review policy with defaults (call after {@link reviewPolicyProblems} found nothing). */
export function reviewPolicyOf(policy: Readonly<Record<string, unknown>>): ReviewPolicy {
  const r = (policy.review ?? {}) as RawReview;
  return Object.freeze({
    configured: policy.review !== undefined,
    all: r.all ?? false,
    borderline: r.borderline === undefined ? undefined : Object.freeze({ ...r.borderline }),
    anomalies: r.anomalies ?? false,
    breakerOpen: r.breaker_open ?? true,
    fourEyes: r.four_eyes ?? false,
    slaMinutes: r.sla_minutes ?? DEFAULT_REVIEW_SLA_MINUTES,
    claimMinutes: r.claim_minutes ?? DEFAULT_REVIEW_CLAIM_MINUTES,
    reasonCodes: r.reason_codes === undefined ? undefined : Object.freeze([...r.reason_codes]),
  });
}
