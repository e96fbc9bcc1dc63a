import { describeValue, type FieldProblem } from "../errors/index.js";
import type { RiskTier } from "./manifest-schema.js";

/**
 * How a decision's sensitive subject attributes are stored (closed list):
 * - `clear`: in the hashed ledger entry as sent (kept as long as the ledger: forever);
 * - `pseudonymised`: the entry holds a salted commitment per attribute; a keyed HMAC-SHA256 pseudonym
 *   (equal values, equal pseudonyms: fairness grouping still works; not reversible) sits in the subject vault;
 * - `encrypted`: the entry holds the commitments; the vault holds the values under AES-256-GCM (reversible by
 *   whoever holds the key).
 */
export const SUBJECT_STORAGES = ["clear", "pseudonymised", "encrypted"] as const;
export type SubjectStorage = (typeof SUBJECT_STORAGES)[number];

/** The shortest retention a high-risk model may set, in days (six months, rounded up). */
export const HIGH_RISK_MIN_RETENTION_DAYS = 183;
/** The longest retention any model may set, in days (about 100 years). */
export const MAX_RETENTION_DAYS = 36_500;

/** Defaults per risk tier (prohibited models never load). */
export const PRIVACY_DEFAULTS: Readonly<
  Record<Exclude<RiskTier, "prohibited">, { retentionDays: number; subjectStorage: SubjectStorage }>
> = Object.freeze({
  high: { retentionDays: HIGH_RISK_MIN_RETENTION_DAYS, subjectStorage: "encrypted" },
  limited: { retentionDays: 90, subjectStorage: "clear" },
  minimal: { retentionDays: 30, subjectStorage: "clear" },
});

/** A manifest's retention and subject-storage policy, defaults applied. */
export interface PrivacyPolicy {
  /** Days the subject's personal data outside the chain is kept, counted from the decision's time. */
  readonly retentionDays: number;
  readonly subjectStorage: SubjectStorage;
}

/** Problems with `policy.retention_days` and `policy.subject_storage` (field paths from the manifest root). */
export function privacyPolicyProblems(
  riskTier: RiskTier,
  policy: Readonly<Record<string, unknown>>,
): FieldProblem[] {
  const problems: FieldProblem[] = [];
  const days = policy.retention_days;
  const minimum = riskTier === "high" ? HIGH_RISK_MIN_RETENTION_DAYS : 0;
  if (days !== undefined) {
    if (typeof days !== "number" || !Number.isInteger(days) || days < minimum || days > MAX_RETENTION_DAYS) {
      const tooShortForHigh =
        riskTier === "high" && typeof days === "number" && Number.isInteger(days) && days < minimum;
      problems.push({
        field: "/policy/retention_days",
        expected: `a whole number of days from ${minimum} to ${MAX_RETENTION_DAYS}${riskTier === "high" ? " (a high-risk model keeps its records at least six months)" : ""}`,
        found: describeValue(days),
        fix: tooShortForHigh
          ? `set it to ${HIGH_RISK_MIN_RETENTION_DAYS} or more, or remove it for the default (${HIGH_RISK_MIN_RETENTION_DAYS})`
          : "write the number of days, e.g. retention_days: 365",
      });
    }
  }
  const storage = policy.subject_storage;
  if (storage !== undefined && !(SUBJECT_STORAGES as readonly unknown[]).includes(storage)) {
    problems.push({
      field: "/policy/subject_storage",
      expected: `one of ${SUBJECT_STORAGES.join(", ")}`,
      found: describeValue(storage),
      fix: "see docs/manifest.md#retention-and-privacy",
    });
  }
  return problems;
}

/** The policy with defaults for the tier (call after {@link privacyPolicyProblems} found nothing). */
export function privacyPolicyOf(
  riskTier: RiskTier,
  policy: Readonly<Record<string, unknown>>,
): PrivacyPolicy {
  const defaults = PRIVACY_DEFAULTS[riskTier === "prohibited" ? "high" : riskTier];
  return Object.freeze({
    retentionDays: (policy.retention_days as number | undefined) ?? defaults.retentionDays,
    subjectStorage: (policy.subject_storage as SubjectStorage | undefined) ?? defaults.subjectStorage,
  });
}
