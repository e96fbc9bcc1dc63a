/**
 * Exact TreeSHAP for the native XGBoost engine: the path-dependent Shapley values of every feature for a
 * row's margin, in polynomial time (Lundberg, Erion and Lee, 2018, "Consistent individualized feature
 * attribution for tree ensembles", Algorithm 2: O(T·L·D²) for T trees of L leaves and depth D).
 *
 * The game: a set S of known features is worth the tree's expected output when the walk from the root
 * follows the row at nodes that split on a feature of S, and at any other node takes both branches weighted
 * by the share of training cover (XGBoost's `sum_hessian`) that went each way. The Shapley values of that
 * game are what XGBoost's `predict(pred_contribs=True)` returns, and what this module computes, in float64
 * (XGBoost works in float32, so the two agree to about 1e-7 of the largest value). Missing features (NaN)
 * take each node's default branch, as prediction does.
 *
 * Three algorithms compute these values (see {@link TreeShapAlgorithm}). By default a row is answered from
 * tables prepared once per model: subtree tables (treeshap-subtrees.ts: one integer comparison per split
 * node and one short vector per subtree), built from per-leaf tables (treeshap-tables.ts), which serve on
 * their own when the subtree tables would not fit. Models whose tables would not fit at all, and callers
 * asking for `path`, get Algorithm 2, implemented in this file.
 *
 * Algorithm 2 walks each tree once per row, carrying along the path the features met so far: for each, the
 * share of cover that followed the path (`zero`: the weight when the feature is unknown) and whether the row
 * follows it (`one`: the weight when it is known), plus for each possible count of known features the
 * summed Shapley weights of those subsets (`weight`). Extending the path by a split is one step of a
 * polynomial multiplication; a feature met a second time is first divided out ("unwound") and its fractions
 * folded into the new entry. At a leaf, each feature's contribution is the leaf value times (one − zero)
 * times the path's weights with that feature divided out.
 */
import { WardenError } from "../errors/index.js";
import type { XGBoostModel } from "../runtime/xgboost/model.js";
import { buildSubtreeTables, subtreeContributions } from "./treeshap-subtrees.js";
import { buildLeafTables, MAX_TABLE_ENTRIES, tableContributions } from "./treeshap-tables.js";

/** The most table entries subtree tables may take, as a multiple of the per-leaf tables they are built from. */
export const SUBTREE_GROWTH = 16;
const MAX_INT32 = 2 ** 31 - 1;

import type { Attribution } from "./types.js";

/**
 * How TreeSHAP computes (all three give the same values, up to rounding):
 *
 * - `subtrees`: tables of each tree's subtrees, prepared once from the per-leaf tables; a row costs one
 *   integer comparison per split node and one short vector added per subtree (treeshap-subtrees.ts).
 * - `tables`: per-leaf tables prepared once; a row in O(nodes + leaves × depth) (treeshap-tables.ts).
 * - `path`: Algorithm 2, O(leaves × depth²) per row, no preparation.
 */
export type TreeShapAlgorithm = "subtrees" | "tables" | "path";

/** How {@link prepareTreeShap} computes. */
export interface TreeShapOptions {
  /**
   * The algorithm to prefer (default `subtrees`). Tables that would take more than `maxTableEntries` are not
   * built: `subtrees` then falls back to `tables`, and `tables` to `path`; subtree tables also give way to the
   * per-leaf ones past {@link SUBTREE_GROWTH} times their entries. {@link TreeShap.algorithm} says which runs.
   */
  readonly algorithm?: TreeShapAlgorithm;
  /**
   * Most float64 entries each kind of table of one model may take (default {@link MAX_TABLE_ENTRIES}, 64 MiB; a
   * whole number up to 2^31 − 1). While subtree tables are built from the per-leaf ones, both are held.
   */
  readonly maxTableEntries?: number;
}

/** TreeSHAP prepared for one model: per-tree facts computed once, scratch buffers sized once. */
export interface TreeShap {
  /** Input columns of the model (`model.numFeature`). */
  readonly numFeature: number;
  /** Output groups: one per class for multi:* models, else 1. */
  readonly groups: number;
  /** The algorithm in use (see {@link TreeShapOptions}). */
  readonly algorithm: TreeShapAlgorithm;
  /** Float64 entries its tables hold (0 for `path`): 8 bytes each, what the tables cost in memory. */
  readonly tableEntries: number;
  /**
   * The bias of each group, in margin units: the base margin plus each tree's expected value (its leaves
   * averaged by cover), i.e. the margin expected when no feature is known. XGBoost's bias column.
   */
  readonly expectedMargins: readonly number[];
  /**
   * Contributions of `rows` rows of `input` (row-major float32, `numFeature` columns, NaN = missing) into
   * `out` (allocated when absent), laid out as XGBoost's `pred_contribs`: row × group × (numFeature + 1),
   * the feature contributions then the bias. For each row and group they add up to the margin (as a
   * float64 sum of the float32 leaves; XGBoost's own float32 sum differs in the last float32 bits).
   * Allocates nothing per row.
   *
   * @throws WardenError WARDEN_ERR_INTERNAL when `input` or `out` has the wrong length.
   */
  contributions(input: Float32Array, rows: number, out?: Float64Array): Float64Array;
  /**
   * One row's attribution for one output group (default 0; the class index for multi:* models): the
   * feature contributions in model-feature order and the group's expected margin, so that `values` sum to
   * the row's margin minus `base`.
   *
   * @throws WardenError WARDEN_ERR_INTERNAL when `row` is not `numFeature` long or `group` is out of range.
   */
  explain(row: Float32Array, group?: number): Attribution;
}

/**
 * Prepare TreeSHAP for a parsed XGBoost model (gbtree or DART: DART's tree weights are already in the
 * leaf values, and XGBoost weights the bias the same way).
 *
 * @throws WardenError WARDEN_ERR_ARTIFACT_INVALID when an internal node's cover is not a positive number:
 *   the expectation over its branches, and so the Shapley values, are undefined there.
 */
export function prepareTreeShap(model: XGBoostModel, options: TreeShapOptions = {}): TreeShap {
  const { count, treeStart, treeGroup, left } = model.trees;
  const numFeature = model.numFeature;
  const groups = model.groups;
  const width = numFeature + 1;

  // share[n]: the fraction of its parent's cover that node n received (1 for roots); a walk that does not
  // know the parent's split feature goes down both branches in these proportions.
  const share = new Float64Array(left.length);
  const expected = new Array<number>(groups).fill(model.baseMargin);
  let maxDepth = 0;
  for (let t = 0; t < count; t++) {
    const root = treeStart[t]!;
    share[root] = 1;
    const { mean, depth } = describeTree(model, root, share);
    expected[treeGroup[t]!]! += mean;
    maxDepth = Math.max(maxDepth, depth);
  }
  const expectedMargins = Object.freeze(expected);
  const walker = new Walker(model, share, maxDepth);
  // Subtree tables are built from the per-leaf tables, which are kept only when they are the ones used.
  const budget = options.maxTableEntries ?? MAX_TABLE_ENTRIES;
  if (!Number.isInteger(budget) || budget < 0 || budget > MAX_INT32) {
    throw new RangeError(`maxTableEntries must be a whole number from 0 to ${MAX_INT32}, got ${budget}`);
  }
  const algorithm = options.algorithm ?? "subtrees";
  const leafTables = algorithm === "path" ? undefined : buildLeafTables(model, share, budget);
  // Subtree tables trade memory for fewer operations a row; past SUBTREE_GROWTH times the per-leaf tables'
  // entries (deep, narrow trees, where a group needs 2^depth entries and a leaf few), the per-leaf tables answer.
  const subtrees =
    leafTables === undefined || algorithm !== "subtrees"
      ? undefined
      : buildSubtreeTables(
          model,
          leafTables,
          Math.min(budget, SUBTREE_GROWTH * Math.max(1, leafTables.table.length)),
        );
  const tables = subtrees === undefined ? leafTables : undefined;
  const dirs = new Uint8Array(tables === undefined ? 0 : left.length);

  const contributions = (input: Float32Array, rows: number, out?: Float64Array): Float64Array => {
    if (!Number.isInteger(rows) || rows < 0 || input.length !== rows * numFeature) {
      throw new WardenError(
        "WARDEN_ERR_INTERNAL",
        `TreeSHAP for ${model.file}: input holds ${input.length} numbers, expected ${rows} rows × ` +
          `${numFeature} features`,
      );
    }
    const size = rows * groups * width;
    const result = out ?? new Float64Array(size);
    if (result.length !== size) {
      throw new WardenError(
        "WARDEN_ERR_INTERNAL",
        `TreeSHAP for ${model.file}: the output holds ${result.length} numbers, expected ${rows} rows × ` +
          `${groups} groups × ${width} (features and bias)`,
      );
    }
    result.fill(0);
    walker.x = input;
    walker.phi = result;
    for (let row = 0; row < rows; row++) {
      walker.xAt = row * numFeature;
      const rowAt = row * groups * width;
      if (subtrees !== undefined) subtreeContributions(subtrees, input, row * numFeature, result, rowAt);
      else if (tables !== undefined)
        tableContributions(model, tables, input, row * numFeature, result, rowAt, width, dirs);
      else
        for (let t = 0; t < count; t++) {
          walker.phiAt = rowAt + treeGroup[t]! * width;
          const root = treeStart[t]!;
          // A tree that is one leaf adds to the bias only.
          if (left[root] !== -1) visit(walker, root, 0, 0, 1, 1, -1);
        }
      for (let g = 0; g < groups; g++) result[rowAt + g * width + numFeature] = expectedMargins[g]!;
    }
    // Drop the references so a finished call keeps no caller's buffers alive.
    walker.x = EMPTY_INPUT;
    walker.phi = EMPTY_OUTPUT;
    return result;
  };

  return Object.freeze({
    numFeature,
    groups,
    algorithm: subtrees !== undefined ? "subtrees" : tables !== undefined ? "tables" : "path",
    tableEntries: (subtrees ?? tables)?.table.length ?? 0,
    expectedMargins,
    contributions,
    explain(row: Float32Array, group = 0): Attribution {
      if (!Number.isInteger(group) || group < 0 || group >= groups) {
        throw new WardenError(
          "WARDEN_ERR_INTERNAL",
          `TreeSHAP for ${model.file}: output group ${group} does not exist (the model has ${groups})`,
        );
      }
      const all = contributions(row, 1);
      return Object.freeze({
        values: all.slice(group * width, group * width + numFeature),
        base: expectedMargins[group]!,
      });
    },
  });
}

const EMPTY_INPUT = new Float32Array(0);
const EMPTY_OUTPUT = new Float64Array(0);

/**
 * What the walk over one model's trees reads and writes: the trees, the path buffers (sized once for the
 * deepest tree) and the row being explained. One class for every model, so that the walk below is one
 * function whose compiled code serves them all.
 */
class Walker {
  readonly left: Int32Array;
  readonly right: Int32Array;
  readonly feature: Int32Array;
  readonly threshold: Float32Array;
  readonly defaultLeft: Uint8Array;
  readonly leafValue: Float32Array;
  readonly share: Float64Array;
  // The path at tree depth d (root 0) holds at most d + 1 entries (the root's placeholder and one per
  // distinct feature) and is stored after its parent's, so depth D needs (D + 1)(D + 2) / 2 slots in all.
  readonly pathFeature: Int32Array;
  readonly pathZero: Float64Array;
  readonly pathOne: Float64Array;
  readonly pathWeight: Float64Array;
  /** Weights of a leaf's path (the parent's extended by one entry), computed without copying the entries. */
  readonly leafWeight: Float64Array;
  /** 1/k for the small integers the weight updates divide by: a multiplication is cheaper than a division. */
  readonly reciprocal: Float64Array;
  /** The rows being explained, and where the current row starts. */
  x: Float32Array = EMPTY_INPUT;
  xAt = 0;
  /** The output, and where the current row and group's contributions start. */
  phi: Float64Array = EMPTY_OUTPUT;
  phiAt = 0;

  constructor(model: XGBoostModel, share: Float64Array, maxDepth: number) {
    const { left, right, feature, threshold, defaultLeft, leafValue } = model.trees;
    this.left = left;
    this.right = right;
    this.feature = feature;
    this.threshold = threshold;
    this.defaultLeft = defaultLeft;
    this.leafValue = leafValue;
    this.share = share;
    const slots = ((maxDepth + 1) * (maxDepth + 2)) / 2;
    this.pathFeature = new Int32Array(slots);
    this.pathZero = new Float64Array(slots);
    this.pathOne = new Float64Array(slots);
    this.pathWeight = new Float64Array(slots);
    this.leafWeight = new Float64Array(maxDepth + 2);
    this.reciprocal = new Float64Array(maxDepth + 3);
    for (let k = 1; k < this.reciprocal.length; k++) this.reciprocal[k] = 1 / k;
  }
}

// A path entry's `one` is whether the row follows the path at that feature's splits: always 1 or 0 (1 at the
// root, inherited down the hot branch, 0 down the cold one), which spares the divisions by it that the
// general algorithm has.

/**
 * Visit the split node `node`, reached with `zero` and `one` fractions for the split feature `splitFeature`
 * of its parent (−1 at the root). The parent's path is `parentStart .. parentStart + parentLength - 1`; this
 * node's path is written right after it, so the parent's stays intact for its other child. Leaves are
 * handled by {@link leaf}, which needs no path of its own.
 */
function visit(
  walker: Walker,
  node: number,
  parentStart: number,
  parentLength: number,
  zero: number,
  one: number,
  splitFeature: number,
): void {
  const { pathFeature, pathZero, pathOne, pathWeight, reciprocal } = walker;
  const start = parentStart + parentLength;
  // Copy the parent's path and extend it by this node's entry: each weight w_k (k known features among the
  // path's) becomes zero·w_k·(n−k)/(n+1) + one·w_{k−1}·k/(n+1), n the entries before the new one.
  const n = parentLength;
  const over = reciprocal[n + 1]!;
  pathFeature[start + n] = splitFeature;
  pathZero[start + n] = zero;
  pathOne[start + n] = one;
  pathWeight[start + n] = n === 0 ? 1 : 0;
  for (let i = n - 1; i >= 0; i--) {
    const from = parentStart + i;
    const to = start + i;
    const w = pathWeight[from]! * over;
    pathFeature[to] = pathFeature[from]!;
    pathZero[to] = pathZero[from]!;
    pathOne[to] = pathOne[from]!;
    if (one !== 0) pathWeight[to + 1]! += w * (i + 1);
    pathWeight[to] = zero * w * (n - i);
  }

  const f = walker.feature[node]!;
  const v = walker.x[walker.xAt + f]!;
  const split = walker.threshold[node]!;
  // x < threshold goes left; NaN fails both comparisons and takes the default branch.
  const l = walker.left[node]!;
  const r = walker.right[node]!;
  const goesLeft = v < split || (!(v >= split) && walker.defaultLeft[node] === 1);
  const hot = goesLeft ? l : r;
  const cold = goesLeft ? r : l;

  // A feature met again on the path: divide its earlier entry out and carry its fractions down, so each
  // feature appears once and the product of its fractions along the path stays exact.
  let inZero = 1;
  let inOne = 1;
  let end = start + n + 1;
  for (let k = start + 1; k < end; k++) {
    if (pathFeature[k] !== f) continue;
    inZero = pathZero[k]!;
    inOne = pathOne[k]!;
    unwind(walker, start, end, k);
    end--;
    break;
  }
  const kept = end - start;
  const { share, left } = walker;
  const hotZero = inZero * share[hot]!;
  if (hotZero !== 0 || inOne !== 0) {
    if (left[hot] === -1) leaf(walker, hot, start, kept, hotZero, inOne, f);
    else visit(walker, hot, start, kept, hotZero, inOne, f);
  }
  // The row never takes the cold branch, so it only counts while f is unknown; with no cover it never does.
  const coldZero = inZero * share[cold]!;
  if (coldZero !== 0) {
    if (left[cold] === -1) leaf(walker, cold, start, kept, coldZero, 0, f);
    else visit(walker, cold, start, kept, coldZero, 0, f);
  }
}

/**
 * Add the leaf `node`'s shares to the row's contributions: for each feature on the path, (one − zero) × the
 * leaf value × the path's weights with its entry divided out, summed over the counts of known features (the
 * Shapley weights of the subsets that leave it out). The path is the parent's plus the entry for
 * `splitFeature`; only its weights are computed (into a scratch array), the entries are read in place.
 */
function leaf(
  walker: Walker,
  node: number,
  parentStart: number,
  parentLength: number,
  zero: number,
  one: number,
  splitFeature: number,
): void {
  const { pathFeature, pathZero, pathOne, pathWeight, reciprocal, leafWeight: w } = walker;
  const n = parentLength;
  const length = n + 1;
  const over = reciprocal[length]!;
  w[n] = 0;
  for (let i = n - 1; i >= 0; i--) {
    const parent = pathWeight[parentStart + i]! * over;
    if (one !== 0) w[i + 1]! += parent * (i + 1);
    w[i] = zero * parent * (n - i);
  }

  const value = walker.leafValue[node]!;
  const phi = walker.phi;
  const phiAt = walker.phiAt;
  // Entries the row does not follow (one = 0) all get the same share: (one − zero) = −zero cancels the
  // division by zero that removing the entry takes, leaving the weights summed with 1/(n − j) factors.
  let coldShare = Number.NaN;
  const zOver = reciprocal[length]!;
  for (let i = 1; i <= n; i++) {
    // Entries 1 .. n − 1 are the parent's; entry n is the one this leaf's parent split adds.
    const isNew = i === n;
    const entry = parentStart + i;
    const z = isNew ? zero : pathZero[entry]!;
    const o = isNew ? one : pathOne[entry]!;
    const f = isNew ? splitFeature : pathFeature[entry]!;
    if (o === 0) {
      if (Number.isNaN(coldShare)) {
        let total = 0;
        for (let j = n - 1; j >= 0; j--) total += w[j]! * reciprocal[n - j]!;
        coldShare = total * length * value;
      }
      phi[phiAt + f]! -= coldShare;
      continue;
    }
    if (z === 1) continue; // one − zero = 0: no share
    const zScaled = z * zOver;
    let next = w[n]!;
    let total = 0;
    for (let j = n - 1; j >= 0; j--) {
      const share = next * length * reciprocal[j + 1]!;
      total += share;
      next = w[j]! - share * zScaled * (n - j);
    }
    phi[phiAt + f]! += total * (1 - z) * value;
  }
}

/** Remove entry `i` from the path `start .. end - 1`, undoing its step of the weight polynomial. */
function unwind(walker: Walker, start: number, end: number, i: number): void {
  const { pathFeature, pathZero, pathOne, pathWeight, reciprocal } = walker;
  const length = end - start;
  const n = length - 1;
  const zero = pathZero[i]!;
  if (pathOne[i] !== 0) {
    const zOver = zero * reciprocal[length]!;
    let next = pathWeight[end - 1]!;
    for (let j = n - 1; j >= 0; j--) {
      const w = pathWeight[start + j]!;
      const restored = next * length * reciprocal[j + 1]!;
      pathWeight[start + j] = restored;
      next = w - restored * zOver * (n - j);
    }
  } else {
    const scale = length / zero;
    for (let j = n - 1; j >= 0; j--)
      pathWeight[start + j] = pathWeight[start + j]! * scale * reciprocal[n - j]!;
  }
  for (let j = i; j < end - 1; j++) {
    pathFeature[j] = pathFeature[j + 1]!;
    pathZero[j] = pathZero[j + 1]!;
    pathOne[j] = pathOne[j + 1]!;
  }
}

/**
 * Walk one tree from `root`: fill `share` for its nodes, and return its expected value (leaves weighted
 * by cover, as XGBoost's bias: each node's mean is its children's means weighted by their covers over the
 * node's own cover) and its depth (edges from the root to the deepest leaf).
 */
function describeTree(
  model: XGBoostModel,
  root: number,
  share: Float64Array,
): { mean: number; depth: number } {
  const { left, right, cover, leafValue } = model.trees;
  let depth = 0;
  const meanOf = (node: number, level: number): number => {
    const l = left[node]!;
    if (l === -1) {
      depth = Math.max(depth, level);
      return leafValue[node]!;
    }
    const r = right[node]!;
    const c = cover[node]!;
    if (!(c > 0) || !Number.isFinite(c) || !(cover[l]! >= 0) || !(cover[r]! >= 0)) {
      throw new WardenError(
        "WARDEN_ERR_ARTIFACT_INVALID",
        `${model.file}: TreeSHAP needs a positive cover (sum_hessian) on every split node and a non-negative ` +
          `one on its children; node ${node - root} of the tree starting at node ${root} has ${c} ` +
          `(children ${cover[l]}, ${cover[r]})`,
        {
          details: [
            {
              field: `${model.file}#sum_hessian`,
              expected: "covers as XGBoost saves them: positive on split nodes",
              found: `${c} on node ${node - root}`,
              fix: "save the model again from XGBoost (covers are its training statistics)",
            },
          ],
        },
      );
    }
    share[l] = cover[l]! / c;
    share[r] = cover[r]! / c;
    return (meanOf(l, level + 1) * cover[l]! + meanOf(r, level + 1) * cover[r]!) / c;
  };
  return { mean: meanOf(root, 0), depth };
}
