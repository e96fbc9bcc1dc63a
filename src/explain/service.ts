/**
 * The explanations that run off a model's serving thread: KernelSHAP (any model), interventional TreeSHAP
 * (XGBoost models, against the reference rows), LIME with its stability figure, and counterfactuals. An
 * {@link ExplanationService} holds one model's engine, reference rows and prepared explainers; an explainer
 * thread (runtime/explainer-worker.ts) holds one and answers jobs, so these slower methods never hold up a
 * model's inference.
 */

import { createHash } from "node:crypto";
import { basename } from "node:path";
import {
  DEFAULT_KERNELSHAP_BACKGROUND,
  DEFAULT_KERNELSHAP_EXTRA_SAMPLES,
  MAX_REFERENCE_BYTES,
  type Manifest,
  readBoundedFile,
} from "../config/index.js";
import type { FeatureValue } from "../decision/input.js";
import { WardenError } from "../errors/index.js";
import { buildReferenceProfile, type ReferenceProfile } from "../monitor/profile.js";
import type { ModelEngine } from "../runtime/types.js";
import { XGBoostEngine } from "../runtime/xgboost/index.js";
import { type Background, kmeansBackground } from "./background.js";
import { type CounterfactualResult, findCounterfactuals } from "./counterfactuals.js";
import { attributionOf, interventionalTreeShap } from "./interventional.js";
import { createKernelExplainer, type KernelExplainer } from "./kernelshap.js";
import { createLimeExplainer, type LimeExplainer } from "./lime.js";
import {
  type ExplanationRecord,
  loadModelReference,
  type ModelReference,
  policyScores,
  reasonRecords,
} from "./model-explainer.js";
import { binaryOutcomes } from "./outcome.js";
import { readInputReferenceRows, readReferenceRows } from "./reference-stats.js";
import type { BatchScorer } from "./types.js";

/** KernelSHAP's background rows by default (`policy.explanations.kernelshap.background`). */
export const SERVICE_BACKGROUND_SIZE = DEFAULT_KERNELSHAP_BACKGROUND;
/** Coalitions beyond 2 × features by default (`policy.explanations.kernelshap.samples` overrides the total). */
export const SERVICE_EXTRA_COALITIONS = DEFAULT_KERNELSHAP_EXTRA_SAMPLES;

/**
 * What KernelSHAP and LIME explain for a model, and a scorer of it over the model's engine: the log-odds of
 * class 1 for a binary model (the units of TreeSHAP's values and of the reason codes), else the policy's score.
 */
export function explainedOutput(
  manifest: Manifest,
  engine: ModelEngine,
): { readonly output: string; readonly scorer: BatchScorer } {
  const labels = manifest.output.labels;
  if (manifest.task !== "binary") {
    return {
      output: manifest.task === "multiclass" ? "probability of the decided class" : "value",
      scorer: (input, rows) => policyScores(manifest, engine, input, rows),
    };
  }
  const positiveIsClass1 = manifest.output.positiveIndex === 1;
  return {
    output: `log-odds of ${labels![1]}`,
    async scorer(input, rows) {
      const scores = await policyScores(manifest, engine, input, rows);
      for (let r = 0; r < rows; r++) {
        const p1 = positiveIsClass1 ? scores[r]! : 1 - scores[r]!;
        const p = Math.min(Math.max(p1, 1e-15), 1 - 1e-15);
        scores[r] = Math.log(p / (1 - p));
      }
      return scores;
    },
  };
}

/** The jobs an explainer thread takes. Rows are in the model's encoding. */
export type ExplanationJob =
  | {
      readonly kind: "kernelshap" | "interventional";
      readonly input: Float32Array;
      readonly rows: number;
      readonly values: readonly Readonly<Record<string, FeatureValue>>[];
      readonly seed?: number | undefined;
      readonly nsamples?: number | undefined;
    }
  | {
      readonly kind: "lime";
      readonly row: Float32Array;
      readonly seed?: number | undefined;
      readonly runs?: number | undefined;
    }
  | {
      /** A reference profile of the model version (monitor/profile.ts) from a CSV of reference rows. */
      readonly kind: "profile";
      /** Absolute path of the CSV (default: the manifest's `policy.explanations.reference`). */
      readonly reference?: string | undefined;
      readonly seed?: number | undefined;
    }
  | {
      readonly kind: "counterfactuals";
      readonly row: Float32Array;
      readonly seed?: number | undefined;
      readonly max?: number | undefined;
    };

/** LIME as the API returns it: weights by feature, the fit, and how stable the top reasons are across seeds. */
export interface LimeReport {
  readonly method: "lime";
  readonly output: string;
  readonly weights: Readonly<Record<string, number>>;
  readonly intercept: number;
  readonly local_prediction: number;
  readonly prediction: number;
  /** Weighted R² of the surrogate. */
  readonly score: number;
  readonly seed: number;
  readonly stability: {
    readonly runs: number;
    readonly k: number;
    /** Fraction of pairs of seeds whose top-k features differ. */
    readonly changed_pairs: number;
    readonly mean_jaccard: number;
    /** Per feature, the share of seeds that put it in the top k. */
    readonly top_k_frequency: Readonly<Record<string, number>>;
  };
}

export type JobResult = ExplanationRecord[] | LimeReport | CounterfactualResult | ReferenceProfile;

/** One model's off-thread explainers. */
export interface ExplanationService {
  run(job: ExplanationJob): Promise<JobResult>;
}

/**
 * Prepare the off-thread explainers of a model over its engine (in the thread that calls it). The reference rows
 * are read and scored now; KernelSHAP's background and LIME's statistics are prepared on first use.
 */
export async function createExplanationService(
  manifest: Manifest,
  engine: ModelEngine,
): Promise<ExplanationService> {
  const reference = await loadModelReference(manifest, engine);
  const features = manifest.modelFeatures;
  const width = features.length;
  const labels = manifest.output.labels;
  const binary = manifest.task === "binary";
  const outcomes = binary ? binaryOutcomes(manifest) : undefined;
  const { output, scorer: explained } = explainedOutput(manifest, engine);
  const policyScore: BatchScorer = (input, rows) => policyScores(manifest, engine, input, rows);
  const needReference = (what: string): ModelReference => {
    if (reference !== undefined) return reference;
    throw new WardenError(
      "WARDEN_ERR_EXPLANATION_UNAVAILABLE",
      `model ${manifest.name} ${manifest.version} names no reference rows (policy.explanations.reference), which ${what} needs`,
    );
  };
  let background: Background | undefined;
  const backgroundOf = (): Background => {
    const ref = needReference("a background for SHAP values");
    background ??= kmeansBackground(
      ref.rows.input,
      ref.rows.rows,
      width,
      Math.min(manifest.explanations.kernelshap.background, ref.rows.rows),
      { seed: 0 },
    );
    return background;
  };
  let kernel: KernelExplainer | undefined;
  let lime: LimeExplainer | undefined;
  const sorted = features
    .map((f, j) => [f.name, j] as const)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const byName = (values: ArrayLike<number>): Record<string, number> => {
    const out: Record<string, number> = {};
    for (const [name, j] of sorted) out[name] = values[j]!;
    return out;
  };

  const records = async (
    method: "kernelshap" | "interventional",
    input: Float32Array,
    rows: number,
    values: readonly Readonly<Record<string, FeatureValue>>[],
    attributions: { values: ArrayLike<number>; base: number }[],
  ): Promise<ExplanationRecord[]> => {
    const scores = binary ? await policyScores(manifest, engine, input, rows) : undefined;
    return attributions.map((a, r) => {
      const extra = reference === undefined ? {} : { reference_sha256: reference.sha256 };
      const base = {
        base: a.base,
        contributions: byName(a.values),
        method: method === "interventional" ? ("treeshap" as const) : ("kernelshap" as const),
        output:
          method === "interventional" ? `log-odds of ${labels?.[1] ?? "class 1"} (interventional)` : output,
      };
      if (!binary) return { ...base, ...extra };
      const decision = outcomes!.decisionOf(scores![r]!);
      return {
        adverse: decision === outcomes!.adverse,
        ...base,
        reasons: reasonRecords(
          manifest,
          { values: Float64Array.from(a.values), base: a.base },
          values[r] ?? {},
          decision,
          reference,
        ),
        ...extra,
      };
    });
  };

  return {
    async run(job) {
      switch (job.kind) {
        case "kernelshap": {
          kernel ??= await createKernelExplainer(explained, backgroundOf(), {
            summary: { size: manifest.explanations.kernelshap.background, seed: 0 },
          });
          const nsamples =
            job.nsamples ?? manifest.explanations.kernelshap.samples ?? 2 * width + SERVICE_EXTRA_COALITIONS;
          const attributions = await kernel.explain(job.input, job.rows, { seed: job.seed ?? 0, nsamples });
          return records("kernelshap", job.input, job.rows, job.values, attributions);
        }
        case "interventional": {
          if (!(engine instanceof XGBoostEngine)) {
            throw new WardenError(
              "WARDEN_ERR_EXPLANATION_UNAVAILABLE",
              `model ${manifest.name} ${manifest.version} is not an XGBoost model: interventional TreeSHAP reads trees (use kernelshap)`,
            );
          }
          if (!binary && manifest.task === "multiclass") {
            throw new WardenError(
              "WARDEN_ERR_EXPLANATION_UNAVAILABLE",
              "interventional TreeSHAP is offered for binary and regression models",
            );
          }
          const result = interventionalTreeShap(engine.model, job.input, job.rows, backgroundOf());
          const attributions = Array.from({ length: job.rows }, (_, r) => attributionOf(result, r, 0));
          return records("interventional", job.input, job.rows, job.values, attributions);
        }
        case "lime": {
          if (lime === undefined) {
            const ref = needReference("LIME's sampling statistics");
            lime = createLimeExplainer(
              explained,
              { data: ref.rows.input, rows: ref.rows.rows, features: width },
              {
                categorical: features.flatMap((f, j) =>
                  f.type === "category" || f.type === "boolean" ? [j] : [],
                ),
              },
            );
          }
          const { explanation, stability } = await lime.explain(job.row, {
            seed: job.seed ?? 0,
            runs: job.runs ?? 10,
          });
          return {
            method: "lime",
            output,
            weights: byName(explanation.weights),
            intercept: explanation.intercept,
            local_prediction: explanation.localPrediction,
            prediction: explanation.prediction,
            score: explanation.score,
            seed: explanation.seed,
            stability: {
              runs: stability.runs,
              k: stability.k,
              changed_pairs: stability.changedPairs,
              mean_jaccard: stability.meanJaccard,
              top_k_frequency: byName(stability.topKFrequency),
            },
          };
        }
        case "profile": {
          const path = job.reference ?? manifest.explanations.referencePath;
          if (path === undefined) {
            throw new WardenError(
              "WARDEN_ERR_EXPLANATION_UNAVAILABLE",
              `model ${manifest.name} ${manifest.version} names no reference rows: give a reference file to profile it on`,
              {
                details: [
                  { field: "reference", expected: "the path of a CSV of reference rows", found: "none" },
                ],
              },
            );
          }
          let bytes: Buffer;
          try {
            bytes = readBoundedFile(path, MAX_REFERENCE_BYTES);
          } catch (error) {
            throw new WardenError("WARDEN_ERR_INPUT_FILE", `cannot read ${path}`, {
              details: [
                {
                  field: "reference",
                  expected: `a readable CSV file on the server, at most ${MAX_REFERENCE_BYTES / (1024 * 1024)} MiB`,
                  found: (error as Error).message,
                },
              ],
            });
          }
          // A file the request names is the request's problem; the manifest's own is the manifest's.
          const rows =
            job.reference === undefined
              ? readReferenceRows(manifest, path, bytes)
              : readInputReferenceRows(manifest, path, bytes);
          const scores = await policyScores(manifest, engine, rows.input, rows.rows);
          return buildReferenceProfile(manifest, rows.input, rows.rows, scores, {
            referenceSha256: createHash("sha256").update(bytes).digest("hex"),
            referenceFile: basename(path),
            seed: job.seed ?? 0,
          });
        }
        case "counterfactuals": {
          if (!binary) {
            throw new WardenError(
              "WARDEN_ERR_EXPLANATION_UNAVAILABLE",
              `model ${manifest.name} ${manifest.version} has task ${manifest.task}: counterfactuals flip a binary decision`,
            );
          }
          if (!manifest.explanations.counterfactuals.enabled) {
            throw new WardenError(
              "WARDEN_ERR_EXPLANATION_UNAVAILABLE",
              `model ${manifest.name} ${manifest.version} offers no counterfactuals (policy.explanations.counterfactuals)`,
            );
          }
          const ref = needReference("counterfactuals");
          return findCounterfactuals(manifest, ref.stats!, job.row, policyScore, {
            seed: job.seed ?? 0,
            ...(job.max === undefined ? {} : { max: job.max }),
          });
        }
      }
    },
  };
}
