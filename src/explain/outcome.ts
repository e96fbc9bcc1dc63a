/**
 * The binary decision rule as the explainers see it: which label a score decides, and whether that is the
 * outcome the subject hoped for. Mirrors decision/policy.ts (`positive_label` when score ≥ threshold).
 */
import type { Manifest } from "../config/index.js";

/** The labels of a binary manifest, read once: what a score decides and which outcome is favourable. */
export interface BinaryOutcomes {
  /** The label decided when score ≥ threshold. */
  readonly positive: string;
  /** The label decided otherwise. */
  readonly negative: string;
  /** The outcome the subject hopes for (`output.favorable_label`). */
  readonly favorable: string;
  /** The other one. */
  readonly adverse: string;
  readonly threshold: number;
  /** The label a score (P(positive_label)) decides. */
  decisionOf(score: number): string;
  /** Whether a score decides the favourable outcome. */
  isFavorable(score: number): boolean;
}

/**
 * The outcomes of a binary manifest.
 *
 * @throws RangeError for a multiclass or regression manifest: reason codes and counterfactuals explain a
 *   binary decision.
 */
export function binaryOutcomes(manifest: Manifest): BinaryOutcomes {
  const { labels, positiveIndex, favorableIndex, threshold } = manifest.output;
  if (manifest.task !== "binary" || labels === undefined || favorableIndex < 0) {
    throw new RangeError(
      `model ${manifest.name} ${manifest.version} has task ${manifest.task}: reason codes and counterfactuals need a binary task`,
    );
  }
  const positive = labels[positiveIndex]!;
  const negative = labels[1 - positiveIndex]!;
  const favorable = labels[favorableIndex]!;
  const adverse = labels[1 - favorableIndex]!;
  const favorableIsPositive = favorable === positive;
  return Object.freeze({
    positive,
    negative,
    favorable,
    adverse,
    threshold,
    decisionOf: (score: number) => (score >= threshold ? positive : negative),
    isFavorable: (score: number) => score >= threshold === favorableIsPositive,
  });
}
