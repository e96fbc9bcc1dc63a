/**
 * The prediction hot path: tree traversal and links, reproducing XGBoost's CPU predictor arithmetic.
 *
 * XGBoost works in float32 throughout: inputs and thresholds are float32, each row's margin is a float32
 * that every tree's leaf is added to in tree order, and the links run on float32. Float32 inputs compared
 * with float32 thresholds (held in doubles, which represent them exactly) take exactly XGBoost's path, and
 * rounding the running sum to float32 after every addition (`Math.fround`) reproduces its margins bit for
 * bit. Summing in float64 instead would drift from XGBoost by a few float32 ulps, which for large
 * regression values is more than 1e-6.
 */
import type { XGBoostModel, XGBoostTrees } from "./model.js";

/**
 * Compute the margins (raw scores before the link) of `rows` rows of `input` (row-major float32, NaN =
 * missing) into `out` (`rows × model.groups`). Allocates nothing per row.
 */
export function computeMargins(
  model: XGBoostModel,
  input: Float32Array,
  rows: number,
  out: Float64Array,
): void {
  if (model.groups === 1) {
    singleGroupMargins(model.trees, model.baseMargin, model.numFeature, input, rows, out);
  } else {
    groupedMargins(model.trees, model.baseMargin, model.numFeature, model.groups, input, rows, out);
  }
}

/**
 * The leaf a row reaches in the tree rooted at `root`: left when `x < threshold`, right when
 * `x >= threshold`, and the node's default branch when the feature is missing (NaN fails both comparisons).
 * Small enough for V8 to inline into the loops below.
 */
function leafOf(trees: XGBoostTrees, input: Float32Array, offset: number, root: number): number {
  const { left, right, feature, threshold, defaultLeft } = trees;
  let node = root;
  let next = left[node]!;
  while (next !== -1) {
    const x = input[offset + feature[node]!]!;
    const split = threshold[node]!;
    if (!(x < split) && (x >= split || defaultLeft[node] === 0)) next = right[node]!;
    node = next;
    next = left[node]!;
  }
  return node;
}

/** One output (binary, regression): the running margin lives in a local, rounded to float32 per tree. */
function singleGroupMargins(
  trees: XGBoostTrees,
  baseMargin: number,
  width: number,
  input: Float32Array,
  rows: number,
  out: Float64Array,
): void {
  const { count, treeStart, leafValue } = trees;
  for (let row = 0, offset = 0; row < rows; row++, offset += width) {
    let margin = baseMargin;
    for (let t = 0; t < count; t++) {
      margin = Math.fround(margin + leafValue[leafOf(trees, input, offset, treeStart[t]!)]!);
    }
    out[row] = margin;
  }
}

/** Several outputs (multi:*): each tree adds to its group; a Float32Array rounds every sum on store. */
function groupedMargins(
  trees: XGBoostTrees,
  baseMargin: number,
  width: number,
  groups: number,
  input: Float32Array,
  rows: number,
  out: Float64Array,
): void {
  const { count, treeStart, treeGroup, leafValue } = trees;
  const margin = new Float32Array(groups);
  for (let row = 0, offset = 0; row < rows; row++, offset += width) {
    margin.fill(baseMargin);
    for (let t = 0; t < count; t++) {
      margin[treeGroup[t]!]! += leafValue[leafOf(trees, input, offset, treeStart[t]!)]!;
    }
    out.set(margin, row * groups);
  }
}

/** Logistic link: `booster.predict()` of binary:logistic and reg:logistic, rounded to float32 like XGBoost's. */
export function sigmoid(margin: number): number {
  return Math.fround(1 / (1 + Math.exp(-margin)));
}

/**
 * Softmax of each row of `margins` (`rows × width`) into `out`, shifted by the row maximum so large margins
 * cannot overflow `exp`. Results are rounded to float32, the precision XGBoost reports.
 */
export function softmaxRows(margins: Float64Array, width: number, out: Float64Array): void {
  for (let offset = 0; offset < margins.length; offset += width) {
    let max = margins[offset]!;
    for (let k = 1; k < width; k++) max = Math.max(max, margins[offset + k]!);
    let sum = 0;
    for (let k = 0; k < width; k++) {
      const e = Math.exp(margins[offset + k]! - max);
      out[offset + k] = e;
      sum += e;
    }
    for (let k = 0; k < width; k++) out[offset + k] = Math.fround(out[offset + k]! / sum);
  }
}
