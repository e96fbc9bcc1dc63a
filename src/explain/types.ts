/**
 * What the explainers need from a model, independent of its format: the encoded feature space and a way to
 * score many rows at once.
 *
 * Rows are in the model's encoding (see runtime/types.ts `ModelEngine`): row-major float32, one column per
 * model feature (`manifest.modelFeatures`), categories as their index, booleans 0/1, missing as NaN.
 */

/**
 * Scores `rows` rows of `input` and returns one number per row: the quantity being explained (for a binary
 * classifier usually the margin or the positive class's probability). May run the model on another thread.
 */
export type BatchScorer = (input: Float32Array, rows: number) => Promise<Float64Array>;

/** The same, for in-thread callers (a native tree engine). */
export type SyncBatchScorer = (input: Float32Array, rows: number) => Float64Array;

/** Contributions of each feature to one output, and the value they start from. */
export interface Attribution {
  /** One value per model feature, in model-feature order. */
  readonly values: Float64Array;
  /** Expected output (E[f] over the background, or the bias term): values sum to f(x) − base. */
  readonly base: number;
}
