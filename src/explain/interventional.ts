/**
 * Interventional TreeSHAP for XGBoost tree ensembles: exact Shapley values of the interventional value
 * function v(S) = Σ_b w_b f(x_S, b_rest) over a background set, in margin space, per output group.
 *
 * The method is the per-pair algorithm behind `feature_perturbation="interventional"` (Lundberg et al.,
 * "From local explanations to global understanding", Nature Machine Intelligence 2020). Fix the explained row x and one background row r. A tree's output f(x_S, r_rest) only
 * changes with S at nodes where x and r go different ways; walk the tree from the root, following both
 * ways at such a node, once with the split feature taken from x (it joins the set A) and once from r (it
 * joins the set R). A feature met again further down is already decided and follows its side. A leaf of
 * value v reached with sets A (size a) and R (size c) is reached exactly by the coalitions S with A ⊆ S and
 * S ∩ R = ∅, a game whose Shapley values are
 *
 *   φ_i = v · (a − 1)! c! / (a + c)!   for i ∈ A,
 *   φ_i = −v · a! (c − 1)! / (a + c)!  for i ∈ R,
 *
 * (i ∈ A gains v when it arrives after every other member of A and before every member of R) and 0 for
 * everyone else. Summing over the leaves gives the tree's exact Shapley values for the pair, which add up
 * to f(x) − f(r); averaging over the background with its weights gives the interventional values. A walk
 * visits at most the leaves a tree has, so the cost is rows × background rows × Σ_trees leaves at most.
 *
 * Missing values take each node's default direction, as in prediction. Sums are in float64, so the values
 * add up to the float64 sum of leaves minus the background mean; XGBoost's own margins round to float32
 * after each tree and differ from that by float32 rounding only.
 */
import type { XGBoostModel } from "../runtime/xgboost/model.js";
import type { Background } from "./background.js";
import type { Attribution } from "./types.js";

/** What the algorithm needs from a model: its trees, feature count, output groups and base margin. */
export type TreeEnsemble = Pick<XGBoostModel, "trees" | "numFeature" | "groups" | "baseMargin">;

/** Interventional Shapley values of many rows, in margin space. */
export interface InterventionalShap {
  readonly rows: number;
  /** Output groups (classes of a multi:* model, else 1). */
  readonly groups: number;
  readonly features: number;
  /**
   * `rows × groups × features` values, row-major: the value of feature j for group g of row i is at
   * `(i * groups + g) * features + j`. For each row and group they sum to margin − base.
   */
  readonly values: Float64Array;
  /** The background's weighted mean margin, one per group. */
  readonly base: Float64Array;
}

/**
 * Interventional TreeSHAP values of `rows` rows of `input` (row-major float32 in the model's encoding, NaN =
 * missing) against `background` (same encoding), in margin units, for every output group.
 *
 * @throws RangeError when the input or background width differs from the model's feature count.
 */
export function interventionalTreeShap(
  model: TreeEnsemble,
  input: Float32Array,
  rows: number,
  background: Background,
): InterventionalShap {
  const m = model.numFeature;
  if (background.features !== m) {
    throw new RangeError(`the background has ${background.features} features, the model ${m}`);
  }
  if (!Number.isInteger(rows) || rows < 0 || input.length < rows * m) {
    throw new RangeError(`${rows} rows of ${m} features need ${rows * m} values, got ${input.length}`);
  }
  const groups = model.groups;
  const walker = new PairWalker(model.trees, m);
  const values = new Float64Array(rows * groups * m);
  const base = backgroundMargins(model, background);
  for (let row = 0; row < rows; row++) {
    walker.out = values;
    walker.x = input;
    walker.xOffset = row * m;
    walker.r = background.data;
    for (let b = 0; b < background.rows; b++) {
      walker.rOffset = b * m;
      walker.weight = background.weights[b]!;
      const { trees } = walker;
      for (let t = 0; t < trees.count; t++) {
        walker.outOffset = (row * groups + trees.treeGroup[t]!) * m;
        walker.visit(trees.treeStart[t]!);
      }
    }
  }
  return Object.freeze({ rows, groups, features: m, values, base });
}

/** One row and group of a result as an {@link Attribution} (the values are a copy). */
export function attributionOf(result: InterventionalShap, row: number, group = 0): Attribution {
  if (row < 0 || row >= result.rows || group < 0 || group >= result.groups) {
    throw new RangeError(
      `no row ${row}, group ${group} in a result of ${result.rows} rows × ${result.groups} groups`,
    );
  }
  const start = (row * result.groups + group) * result.features;
  return { values: result.values.slice(start, start + result.features), base: result.base[group]! };
}

/** Weighted mean over the background of each group's margin, summed in float64. */
function backgroundMargins(model: TreeEnsemble, background: Background): Float64Array {
  const { trees, numFeature: m, groups } = model;
  const base = new Float64Array(groups);
  for (let b = 0; b < background.rows; b++) {
    const w = background.weights[b]!;
    for (let t = 0; t < trees.count; t++) {
      const leaf = leafOf(trees, background.data, b * m, trees.treeStart[t]!);
      base[trees.treeGroup[t]!]! += w * trees.leafValue[leaf]!;
    }
  }
  for (let g = 0; g < groups; g++) base[g]! += model.baseMargin;
  return base;
}

function leafOf(trees: TreeEnsemble["trees"], row: Float32Array, offset: number, root: number): number {
  let node = root;
  while (trees.left[node] !== -1) {
    node = goesLeft(trees, node, row[offset + trees.feature[node]!]!)
      ? trees.left[node]!
      : trees.right[node]!;
  }
  return node;
}

/**
 * Prediction's rule: left when x < threshold, and a missing x (NaN, which fails both comparisons) follows
 * the node's default direction.
 */
function goesLeft(trees: TreeEnsemble["trees"], node: number, x: number): boolean {
  const split = trees.threshold[node]!;
  return x < split || (!(x >= split) && trees.defaultLeft[node] === 1);
}

/** Longest root-to-leaf path over all trees, in splits. */
function maxDepth(trees: TreeEnsemble["trees"]): number {
  let deepest = 0;
  const stack: number[] = [];
  for (let t = 0; t < trees.count; t++) {
    stack.push(trees.treeStart[t]!, 0);
    while (stack.length > 0) {
      const depth = stack.pop()!;
      const node = stack.pop()!;
      if (trees.left[node] === -1) deepest = Math.max(deepest, depth);
      else stack.push(trees.left[node]!, depth + 1, trees.right[node]!, depth + 1);
    }
  }
  return deepest;
}

const FROM_X = 1;
const FROM_REFERENCE = 2;

/**
 * The walk of one tree for one (x, reference) pair. A class with fields rather than a closure so that the
 * recursion reads its state from one monomorphic object; it is reused across pairs and trees.
 */
class PairWalker {
  readonly trees: TreeEnsemble["trees"];
  x: Float32Array = new Float32Array(0);
  xOffset = 0;
  r: Float32Array = new Float32Array(0);
  rOffset = 0;
  /** Background weight of the reference row. */
  weight = 0;
  out: Float64Array = new Float64Array(0);
  outOffset = 0;
  /** FROM_X or FROM_REFERENCE for a feature decided on the current path, else 0. */
  readonly side: Uint8Array;
  /** The decided features of the current path, in order. */
  readonly path: Int32Array;
  pathLength = 0;
  fromX = 0;
  fromReference = 0;
  /** gain[a * stride + c] = (a − 1)! c! / (a + c)!, the share of a leaf for a member of A (a ≥ 1). */
  readonly gain: Float64Array;
  readonly stride: number;

  constructor(trees: TreeEnsemble["trees"], features: number) {
    this.trees = trees;
    this.side = new Uint8Array(features);
    const depth = maxDepth(trees);
    this.path = new Int32Array(depth + 1);
    this.stride = depth + 2;
    this.gain = new Float64Array(this.stride * this.stride);
    for (let a = 1; a <= depth + 1; a++) {
      // (a − 1)! c! / (a + c)! = 1 / (a · C(a + c, a)), computed as a product of ratios to stay in range.
      let share = 1 / a;
      for (let c = 0; a + c <= depth + 1; c++) {
        this.gain[a * this.stride + c] = share;
        share *= (c + 1) / (a + c + 1);
      }
    }
  }

  visit(node: number): void {
    const trees = this.trees;
    const left = trees.left[node]!;
    if (left === -1) {
      this.leaf(node);
      return;
    }
    const right = trees.right[node]!;
    const f = trees.feature[node]!;
    const xLeft = goesLeft(trees, node, this.x[this.xOffset + f]!);
    const rLeft = goesLeft(trees, node, this.r[this.rOffset + f]!);
    if (xLeft === rLeft) {
      this.visit(xLeft ? left : right);
      return;
    }
    const side = this.side[f]!;
    if (side === FROM_X) {
      this.visit(xLeft ? left : right);
    } else if (side === FROM_REFERENCE) {
      this.visit(rLeft ? left : right);
    } else {
      this.path[this.pathLength++] = f;
      this.side[f] = FROM_X;
      this.fromX++;
      this.visit(xLeft ? left : right);
      this.fromX--;
      this.side[f] = FROM_REFERENCE;
      this.fromReference++;
      this.visit(rLeft ? left : right);
      this.fromReference--;
      this.side[f] = 0;
      this.pathLength--;
    }
  }

  leaf(node: number): void {
    const a = this.fromX;
    const c = this.fromReference;
    // Reached by every coalition (x and r agree on this tree's path): no feature changes the output.
    if (a + c === 0) return;
    const value = this.weight * this.trees.leafValue[node]!;
    const gain = a > 0 ? value * this.gain[a * this.stride + c]! : 0;
    // By symmetry a member of R loses a! (c − 1)! / (a + c)!, the gain formula with the roles swapped.
    const loss = c > 0 ? value * this.gain[c * this.stride + a]! : 0;
    const out = this.out;
    for (let k = 0; k < this.pathLength; k++) {
      const f = this.path[k]!;
      out[this.outOffset + f]! += this.side[f] === FROM_X ? gain : -loss;
    }
  }
}
