/**
 * The XGBoost demo model as an explainer's scorer, run in-thread by the native engine: what tests of the
 * explainers score against. The product never imports this file.
 */
import type { Manifest } from "../config/index.js";
import type { BatchScorer } from "../explain/types.js";
import { readXGBoostModel } from "../runtime/xgboost/model.js";
import { computeMargins, sigmoid } from "../runtime/xgboost/predict.js";

/** A scorer counting the rows it scored. */
export interface CountingScorer {
  /** Returns the policy's score per row: P(positive_label). */
  readonly score: BatchScorer;
  /** Rows scored so far, and calls made. */
  readonly rows: () => number;
  readonly calls: () => number;
}

/** The manifest's XGBoost model (binary:logistic) scoring P(positive_label), with counts of its use. */
export function xgboostScorer(manifest: Manifest): CountingScorer {
  const model = readXGBoostModel(manifest.artifact.absolutePath);
  const positiveIsClass1 = manifest.output.positiveIndex === 1;
  let rows = 0;
  let calls = 0;
  const score: BatchScorer = async (input, count) => {
    rows += count;
    calls += 1;
    const out = new Float64Array(count);
    computeMargins(model, input, count, out);
    for (let r = 0; r < count; r++) {
      const p1 = sigmoid(out[r]!);
      out[r] = positiveIsClass1 ? p1 : 1 - p1;
    }
    return out;
  };
  return { score, rows: () => rows, calls: () => calls };
}
