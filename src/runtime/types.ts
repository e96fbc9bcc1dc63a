import type { Manifest } from "../config/index.js";

/**
 * What a model produced for one batch, as a row-major matrix of `rows × width` numbers.
 * - `probabilities`: class probabilities in the manifest's label order (binary: width 2, [P(class 0), P(class 1)]).
 * - `values`: one number per row (width 1): a regression value, or P(class 1) for a model that gives only that.
 */
export interface EngineOutput {
  readonly kind: "probabilities" | "values";
  readonly width: number;
  readonly values: Float64Array;
  /** Raw scores before the link function (XGBoost margins), `rows × marginWidth`, when the engine has them. */
  readonly margins?: Float64Array;
  readonly marginWidth?: number;
}

/** A model's inputs and outputs, as the engine sees them (for `GET /v2/models/{m}`). */
export interface EngineDescription {
  readonly format: "xgboost-json" | "onnx";
  /** Number of input columns the model expects. */
  readonly featureCount: number;
  readonly inputs: readonly TensorInfo[];
  readonly outputs: readonly TensorInfo[];
  /** Format-specific facts (objective, number of trees, opset, execution providers, ...). */
  readonly details: Readonly<Record<string, string | number | boolean>>;
}

/** Open Inference Protocol tensor metadata. */
export interface TensorInfo {
  readonly name: string;
  readonly datatype: string;
  readonly shape: readonly number[];
}

/**
 * One loaded model inside one thread. `input` is row-major `rows × featureCount` float32, encoded per the
 * manifest: numbers as-is, booleans 0/1, categories as their index in the manifest's `categories`, missing
 * values as NaN. Engines never see sensitive features.
 */
export interface ModelEngine {
  predict(input: Float32Array, rows: number): Promise<EngineOutput> | EngineOutput;
  describe(): EngineDescription;
  close(): Promise<void> | void;
}

/** Builds an engine for a manifest's artifact (runs inside a worker thread or in-process). */
export type EngineFactory = (manifest: Manifest) => Promise<ModelEngine>;
