/**
 * A served model's explainer: what a thread that holds the model's engine needs to explain its rows the way
 * the manifest's `policy.explanations` asks, and the explanation record the ledger keeps with a decision.
 *
 * - TreeSHAP (xgboost-json models) runs inline, on the model's worker thread beside inference
 *   (runtime/row-tasks.ts), so a decision's answer carries its reasons without a further hop.
 * - The reference rows (`policy.explanations.reference`) are read and scored once, when the explainer is made:
 *   their statistics give the reason texts their typical favourable values, and their sha256 is recorded with
 *   each explanation, so the texts given can be reproduced later from the same files.
 */
import { createHash } from "node:crypto";
import { MAX_REFERENCE_BYTES, type Manifest, readBoundedFile } from "../config/index.js";
import type { FeatureValue } from "../decision/input.js";
import { applyPolicy } from "../decision/policy.js";
import { WardenError } from "../errors/index.js";
import type { EngineOutput, ModelEngine } from "../runtime/types.js";
import type { XGBoostModel } from "../runtime/xgboost/model.js";
import { binaryOutcomes } from "./outcome.js";
import { type ReasonCode, reasonCodes } from "./reasons.js";
import {
  computeReferenceStats,
  type ReferenceRows,
  type ReferenceStats,
  readReferenceRows,
} from "./reference-stats.js";
import { prepareTreeShap, type TreeShap } from "./treeshap.js";
import type { Attribution } from "./types.js";

/** Explanation methods as recorded. */
export const RECORDED_METHODS = ["treeshap", "kernelshap"] as const;
export type RecordedMethod = (typeof RECORDED_METHODS)[number];

/** One reason as the ledger records it (keys in canonical order). */
export interface ReasonRecord {
  readonly code: string;
  /** Toward the adverse outcome, margin units. */
  readonly contribution: number;
  readonly factors: readonly {
    readonly contribution: number;
    readonly direction?: string;
    readonly feature: string;
    readonly text: string;
    readonly value: FeatureValue;
  }[];
  readonly kind: "feature" | "group";
  readonly text: string;
}

/** A reason as a decision's answer gives it (the full explanation is recorded in the ledger). */
export interface ReasonSummary {
  readonly code: string;
  readonly text: string;
  /** Toward the adverse outcome, margin units. */
  readonly contribution: number;
}

/** The part of a reason an answer shows. */
export function reasonSummary(reason: ReasonRecord): ReasonSummary {
  return { code: reason.code, text: reason.text, contribution: reason.contribution };
}

/**
 * A decision's explanation as recorded in its ledger entry (`body.explanation`) and returned by the API. Keys
 * are in canonical order.
 */
export interface ExplanationRecord {
  /** Binary models: whether the decision is the adverse outcome (the reasons are then its principal reasons). */
  readonly adverse?: boolean;
  /** The output explained when no feature is known (the expected value); contributions sum to output − base. */
  readonly base: number;
  /** One contribution per model feature, by name (sorted). */
  readonly contributions: Readonly<Record<string, number>>;
  readonly method: RecordedMethod;
  /** What is explained, e.g. `log-odds of bad` (an XGBoost binary margin), `margin of class setosa`. */
  readonly output: string;
  /** The principal reasons toward the adverse outcome, largest first (binary models only). */
  readonly reasons?: readonly ReasonRecord[];
  /** sha256 of the reference rows the reason texts quote, when the manifest names them. */
  readonly reference_sha256?: string;
}

/** The reference rows of a model and what they give the explainers. */
export interface ModelReference {
  readonly rows: ReferenceRows;
  /** The model's policy score per reference row (P(positive_label) for binary models). */
  readonly scores: Float64Array;
  /** Binary models only. */
  readonly stats: ReferenceStats | undefined;
  readonly sha256: string;
}

/** Rows scored per engine call while scoring the reference rows. */
const REFERENCE_CHUNK = 4096;

/**
 * Read and score a manifest's reference rows (`policy.explanations.reference`) with an engine; undefined
 * when the manifest names none.
 *
 * @throws WardenError WARDEN_ERR_MANIFEST_INVALID for an unreadable or invalid file (see readReferenceRows).
 */
export async function loadModelReference(
  manifest: Manifest,
  engine: ModelEngine,
): Promise<ModelReference | undefined> {
  const path = manifest.explanations.referencePath;
  if (path === undefined) return undefined;
  // Read once: the hash and the rows are of the same contents.
  let bytes: Buffer;
  try {
    bytes = readBoundedFile(path, MAX_REFERENCE_BYTES);
  } catch (error) {
    throw new WardenError(
      "WARDEN_ERR_MANIFEST_INVALID",
      `${manifest.manifestPath}: the reference rows of /policy/explanations/reference (${path}) cannot be read: ${(error as Error).message}`,
    );
  }
  const sha256 = createHash("sha256").update(bytes).digest("hex");
  const rows = readReferenceRows(manifest, path, bytes);
  const scores = await policyScores(manifest, engine, rows.input, rows.rows);
  const stats = manifest.task === "binary" ? computeReferenceStats(manifest, rows, scores) : undefined;
  return { rows, scores, stats, sha256 };
}

/** The policy's score (decision/policy.ts) of each of `rows` rows. */
export async function policyScores(
  manifest: Manifest,
  engine: ModelEngine,
  input: Float32Array,
  rows: number,
): Promise<Float64Array> {
  const width = manifest.modelFeatures.length;
  const scores = new Float64Array(rows);
  for (let start = 0; start < rows; start += REFERENCE_CHUNK) {
    const count = Math.min(REFERENCE_CHUNK, rows - start);
    const output = await engine.predict(input.subarray(start * width, (start + count) * width), count);
    for (let r = 0; r < count; r++) scores[start + r] = outcomeOf(manifest, output, r).score;
  }
  return scores;
}

function outcomeOf(manifest: Manifest, output: EngineOutput, row: number) {
  const w = output.width;
  return applyPolicy(manifest, {
    values: output.values.subarray(row * w, (row + 1) * w),
    margins: undefined,
    kind: output.kind,
    batchSize: 0,
    queueMs: 0,
    inferenceMs: 0,
  });
}

/** What explains rows inline on the model's thread (TreeSHAP over the XGBoost trees). */
export interface InlineExplainer {
  /**
   * Explain row `row` of a batch (`input`, `rows × features`) that the engine answered with `output`.
   * `values` are the row's model-feature values as validated (for the reason texts).
   */
  explain(
    input: Float32Array,
    row: number,
    output: EngineOutput,
    values: Readonly<Record<string, FeatureValue>>,
  ): ExplanationRecord;
}

/**
 * The inline explainer of an XGBoost model: exact TreeSHAP in margin space, with reason codes for a binary
 * model (quoting the reference statistics when there are any).
 */
export function treeShapExplainer(
  manifest: Manifest,
  model: XGBoostModel,
  reference: ModelReference | undefined,
): InlineExplainer {
  const shap: TreeShap = prepareTreeShap(model);
  const features = manifest.modelFeatures;
  const width = features.length;
  // Feature indexes in name order, so that `contributions` is written with its keys sorted.
  const sorted = features
    .map((f, j) => [f.name, j] as const)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const labels = manifest.output.labels;
  const binaryOutput =
    model.objectiveSpec.link === "sigmoid" && labels !== undefined ? `log-odds of ${labels[1]}` : "margin";
  const referenceSha256 = reference?.sha256;
  const adverseLabel = manifest.task === "binary" ? binaryOutcomes(manifest).adverse : undefined;
  return {
    explain(input, row, output, values) {
      const x = input.subarray(row * width, (row + 1) * width);
      const outcome = outcomeOf(manifest, output, row);
      // Multiclass: the chosen class's margin; otherwise the one margin.
      const group =
        manifest.task === "multiclass" && labels !== undefined ? labels.indexOf(outcome.decision!) : 0;
      const attribution = shap.explain(x, group);
      const contributions: Record<string, number> = {};
      for (const [name, j] of sorted) contributions[name] = attribution.values[j]!;
      const base = attribution.base;
      // Keys in canonical order (reference_sha256 last); no spreads, this runs for every explained decision.
      if (manifest.task !== "binary") {
        const output = manifest.task === "multiclass" ? `margin of class ${outcome.decision}` : "margin";
        return referenceSha256 === undefined
          ? { base, contributions, method: "treeshap", output }
          : { base, contributions, method: "treeshap", output, reference_sha256: referenceSha256 };
      }
      const adverse = outcome.decision === adverseLabel;
      const reasons = reasonRecords(manifest, attribution, values, outcome.decision!, reference);
      return referenceSha256 === undefined
        ? { adverse, base, contributions, method: "treeshap", output: binaryOutput, reasons }
        : {
            adverse,
            base,
            contributions,
            method: "treeshap",
            output: binaryOutput,
            reasons,
            reference_sha256: referenceSha256,
          };
    },
  };
}

/** The reasons of a binary decision, as recorded. `attribution` explains the margin of class 1. */
export function reasonRecords(
  manifest: Manifest,
  attribution: Attribution,
  values: Readonly<Record<string, FeatureValue>>,
  decision: string,
  reference: ModelReference | undefined,
  attributionClass: 0 | 1 = 1,
): ReasonRecord[] {
  const codes = reasonCodes(
    manifest,
    { attribution, values, decision },
    { stats: reference?.stats, attributionClass },
  );
  return codes.reasons.map(reasonRecord);
}

function reasonRecord(reason: ReasonCode): ReasonRecord {
  return {
    code: reason.code,
    contribution: reason.contribution,
    factors: reason.factors.map((f) =>
      f.direction === undefined
        ? { contribution: f.contribution, feature: f.feature, text: f.text, value: f.value }
        : {
            contribution: f.contribution,
            direction: f.direction,
            feature: f.feature,
            text: f.text,
            value: f.value,
          },
    ),
    kind: reason.kind,
    text: reason.text,
  };
}
