import type { Manifest } from "../config/index.js";
import { WardenError } from "../errors/index.js";
import type { RowResult } from "../runtime/batcher.js";

/** The decision for one row under the manifest's output policy. */
export interface Outcome {
  /** Binary: P(positive label); multiclass: probability of the chosen class; regression: the value. */
  readonly score: number;
  /** Class probabilities by label (classification only). */
  readonly probabilities?: Readonly<Record<string, number>>;
  /** The label decided (null for regression). */
  readonly decision: string | null;
}

/**
 * Turn a model output row into a decision: binary → `positive_label` when P(positive) ≥ threshold,
 * otherwise the other label; multiclass → the most probable label; regression → the value, no label.
 */
export function applyPolicy(manifest: Manifest, result: RowResult): Outcome {
  const { values, kind } = result;
  for (const v of values) {
    // A model that outputs NaN/Infinity has failed; such a number can be neither decided nor recorded.
    if (!Number.isFinite(v)) {
      throw new WardenError(
        "WARDEN_ERR_INFERENCE_FAILED",
        `model ${manifest.name} ${manifest.version} returned a non-finite output (${v}); check the model with this input`,
      );
    }
  }
  switch (manifest.task) {
    case "binary": {
      const labels = manifest.output.labels!;
      const [label0, label1] = [labels[0]!, labels[1]!];
      let p1: number;
      if (kind === "probabilities" && values.length === 2) p1 = values[1]!;
      else if (kind === "values" && values.length === 1) p1 = values[0]!;
      else
        throw outputMismatch(manifest, "2 class probabilities or one probability of class 1", values.length);
      const p0 = kind === "probabilities" ? values[0]! : 1 - p1;
      const probabilities = { [label0]: p0, [label1]: p1 };
      const positiveIsClass1 = manifest.output.positiveIndex === 1;
      const score = positiveIsClass1 ? p1 : p0;
      const negative = positiveIsClass1 ? label0 : label1;
      const decision = score >= manifest.output.threshold ? (positiveIsClass1 ? label1 : label0) : negative;
      return { score, probabilities, decision };
    }
    case "multiclass": {
      const labels = manifest.output.labels!;
      if (kind !== "probabilities" || values.length !== labels.length) {
        throw outputMismatch(manifest, `${labels.length} class probabilities`, values.length);
      }
      let best = 0;
      const probabilities: Record<string, number> = {};
      labels.forEach((label, i) => {
        probabilities[label] = values[i]!;
        if (values[i]! > values[best]!) best = i;
      });
      return { score: values[best]!, probabilities, decision: labels[best]! };
    }
    case "regression": {
      if (values.length !== 1) throw outputMismatch(manifest, "one value per row", values.length);
      return { score: values[0]!, decision: null };
    }
  }
}

function outputMismatch(manifest: Manifest, expected: string, width: number): WardenError {
  return new WardenError(
    "WARDEN_ERR_INFERENCE_FAILED",
    `model ${manifest.name} ${manifest.version} (task ${manifest.task}) returned ${width} values per row; expected ${expected}: check the manifest's task and labels against the artifact`,
  );
}
