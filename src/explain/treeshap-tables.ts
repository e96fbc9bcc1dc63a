/**
 * Exact path-dependent TreeSHAP by per-leaf tables: the same values as Algorithm 2 of Lundberg et al. (2018),
 * computed per row in O(nodes + leaves × depth) instead of O(leaves × depth²), at the price of tables
 * prepared once per model (the idea of Yang 2021, "Fast TreeSHAP", v2).
 *
 * Why it works. For one tree, the path-dependent value of a feature set S is a sum over leaves of the leaf
 * value times, for each distinct feature j on the leaf's path, `o_j` (1 when the row follows every split on
 * j along the path, else 0) if j ∈ S, or `z_j` (the product of the cover shares of those splits) if not.
 * Each leaf's term is a product game over the d distinct features of its path, whose Shapley value for
 * feature k is
 *
 *     v · (o_k − z_k) · Σ_{S ⊆ P∖{k}} s!(d−s−1)!/d! · ∏_{j∈S} o_j · ∏_{j∈P∖S∖{k}} z_j      (s = |S|)
 *
 * (features off the path are dummies and change nothing). The o_j are 0 or 1, so the sum depends on the row
 * only through B, the set of path features the row follows: it is tabulated for every B (2^d of them) and
 * every k. Grouping the subsets of A = B ∖ {k} by size, Σ_S w(s) ∏_{A∖S} z = Σ_s w(s) e_{|A|−s}(z_A), with
 * e the elementary symmetric polynomials, so a table entry costs O(d²).
 *
 * A row then costs one pass over the split nodes (which way it goes), one over all nodes in preorder (each
 * node's B from its parent's), and d table reads per leaf. These tables are also what the subtree tables
 * (treeshap-subtrees.ts) are summed from; they answer rows themselves when those would not fit.
 */
import type { XGBoostModel } from "../runtime/xgboost/model.js";

/**
 * Most table entries (float64) a model's tables may take, per kind (per-leaf, subtree), unless the caller
 * says otherwise: 64 MiB. Past it TreeSHAP falls back to the next algorithm (subtrees, per-leaf, path).
 */
export const MAX_TABLE_ENTRIES = 8 * 1024 * 1024;
/** Deepest distinct-feature path tabulated (2^d entries per feature per leaf). */
const MAX_PATH_FEATURES = 16;

/** The prepared tables of a model (flat over all leaves of all trees). */
export interface LeafTables {
  /** Leaves with at least one split above them. */
  readonly leaves: number;
  /** Per leaf: output group, distinct path features, first table entry, first feature. */
  readonly leafGroup: Int32Array;
  readonly leafFeatures: Uint8Array;
  readonly tableAt: Int32Array;
  readonly featureAt: Int32Array;
  /** Distinct path features of the leaves, concatenated. */
  readonly features: Int32Array;
  /** The node of each leaf. */
  readonly leafNode: Int32Array;
  /** Roots of the tabulated trees (their follow-set is "everything so far"). */
  readonly roots: Int32Array;
  /**
   * Every other node of the tabulated trees, parents before children: its parent, whether it is the parent's
   * left child, and the bit of the parent's split feature among the distinct features of the path to it.
   */
  readonly order: Int32Array;
  readonly orderParent: Int32Array;
  readonly orderLeft: Uint8Array;
  readonly orderBit: Uint8Array;
  /** Scratch: each node's follow-set bits for the row at hand. */
  readonly follow: Int32Array;
  /** Entry (B · d + k): feature k's share for the follow-set B. */
  readonly table: Float64Array;
}

interface Split {
  readonly node: number;
  readonly left: boolean;
  readonly feature: number;
  readonly share: number;
}

/**
 * Tabulate a model's leaves; undefined when the tables would take more than `budget` entries or a path has
 * more than 16 distinct features (the caller then uses the path algorithm). `share[n]` is the
 * fraction of its parent's cover that node n received.
 */
export function buildLeafTables(
  model: XGBoostModel,
  share: Float64Array,
  budget: number = MAX_TABLE_ENTRIES,
): LeafTables | undefined {
  const { count, treeStart, treeGroup, left, right, feature, leafValue } = model.trees;
  type Leaf = { node: number; group: number; value: number; splits: Split[] };
  const found: Leaf[] = [];
  const roots: number[] = [];
  const order: number[] = [];
  const orderParent: number[] = [];
  const orderLeft: number[] = [];
  const orderBit: number[] = [];
  let entries = 0;
  for (let t = 0; t < count; t++) {
    const root = treeStart[t]!;
    if (left[root] === -1) continue;
    roots.push(root);
    const path: Split[] = [];
    /** Distinct features of the path so far, in order of first appearance: a leaf's table columns. */
    const distinct: number[] = [];
    const walk = (node: number): boolean => {
      if (left[node] === -1) {
        if (distinct.length > MAX_PATH_FEATURES) return false;
        entries += 2 ** distinct.length * distinct.length;
        if (entries > budget) return false;
        found.push({ node, group: treeGroup[t]!, value: leafValue[node]!, splits: [...path] });
        return true;
      }
      const f = feature[node]!;
      const seen = distinct.indexOf(f);
      if (seen === -1) distinct.push(f);
      const bit = seen === -1 ? distinct.length - 1 : seen;
      for (const [child, goesLeft] of [
        [left[node]!, true],
        [right[node]!, false],
      ] as const) {
        order.push(child);
        orderParent.push(node);
        orderLeft.push(goesLeft ? 1 : 0);
        orderBit.push(bit);
        path.push({ node, left: goesLeft, feature: f, share: share[child]! });
        const ok = walk(child);
        path.pop();
        if (!ok) return false;
      }
      if (seen === -1) distinct.pop();
      return true;
    };
    if (!walk(root)) return undefined;
  }

  const leaves = found.length;
  const leafGroup = new Int32Array(leaves);
  const leafFeatures = new Uint8Array(leaves);
  const tableAt = new Int32Array(leaves);
  const featureAt = new Int32Array(leaves);
  const leafNode = new Int32Array(leaves);
  const featureList: number[] = [];
  const table = new Float64Array(entries);
  let tableNext = 0;
  found.forEach((leaf, l) => {
    const distinct: number[] = [];
    const z: number[] = [];
    for (const s of leaf.splits) {
      let k = distinct.indexOf(s.feature);
      if (k === -1) {
        k = distinct.length;
        distinct.push(s.feature);
        z.push(1);
      }
      z[k]! *= s.share;
    }
    const d = distinct.length;
    leafGroup[l] = leaf.group;
    leafFeatures[l] = d;
    tableAt[l] = tableNext;
    featureAt[l] = featureList.length;
    leafNode[l] = leaf.node;
    featureList.push(...distinct);
    fillLeafTable(table, tableNext, leaf.value, z);
    tableNext += 2 ** d * d;
  });
  return {
    leaves,
    leafGroup,
    leafFeatures,
    tableAt,
    featureAt,
    features: Int32Array.from(featureList),
    leafNode,
    roots: Int32Array.from(roots),
    order: Int32Array.from(order),
    orderParent: Int32Array.from(orderParent),
    orderLeft: Uint8Array.from(orderLeft),
    orderBit: Uint8Array.from(orderBit),
    follow: new Int32Array(left.length),
    table,
  };
}

/** Shapley weight of a coalition of s others among d players: s!(d−s−1)!/d!. */
function shapleyWeights(d: number): Float64Array {
  const w = new Float64Array(d);
  for (let s = 0; s < d; s++) {
    // s!(d−1−s)!/d! = 1 / (d · C(d−1, s))
    let binom = 1;
    for (let i = 1; i <= s; i++) binom = (binom * (d - 1 - s + i)) / i;
    w[s] = 1 / (d * binom);
  }
  return w;
}

/** One leaf's table: entry (B·d + k) for every follow-set B ⊆ {0..d−1} and path feature k. */
function fillLeafTable(table: Float64Array, at: number, value: number, z: readonly number[]): void {
  const d = z.length;
  const w = shapleyWeights(d);
  const e = new Float64Array(d + 1);
  for (let b = 0; b < 1 << d; b++) {
    for (let k = 0; k < d; k++) {
      // A = B ∖ {k}: e_m(z_A) by the usual product expansion; the features of R ∖ B contribute their z.
      e.fill(0);
      e[0] = 1;
      let m = 0;
      let outside = 1;
      for (let j = 0; j < d; j++) {
        if (j === k) continue;
        if ((b >> j) & 1) {
          m++;
          for (let i = m; i >= 1; i--) e[i]! += e[i - 1]! * z[j]!;
        } else outside *= z[j]!;
      }
      let sum = 0;
      for (let s = 0; s <= m; s++) sum += w[s]! * e[m - s]!;
      const o = (b >> k) & 1;
      table[at + b * d + k] = value * (o - z[k]!) * outside * sum;
    }
  }
}

/**
 * Add the contributions of row `xAt` of `x` to `phi` (the row's block: group g's features start at
 * `phiAt + g · width`), using `dirs` (one byte per node of the model) as scratch.
 */
export function tableContributions(
  model: XGBoostModel,
  tables: LeafTables,
  x: Float32Array,
  xAt: number,
  phi: Float64Array,
  phiAt: number,
  width: number,
  dirs: Uint8Array,
): void {
  followSplits(model, x, xAt, dirs);
  addLeafShares(tables, phi, phiAt, width, dirs);
}

/** Which way the row goes at every split node (NaN takes the default branch): 1 left, 0 right. */
function followSplits(model: XGBoostModel, x: Float32Array, xAt: number, dirs: Uint8Array): void {
  const { left, feature, threshold, defaultLeft } = model.trees;
  const nodes = left.length;
  for (let n = 0; n < nodes; n++) {
    if (left[n] === -1) continue;
    const v = x[xAt + feature[n]!]!;
    const split = threshold[n]!;
    dirs[n] = v < split || (!(v >= split) && defaultLeft[n] === 1) ? 1 : 0;
  }
}

/**
 * Each node's follow-set (bit k set while the row has followed every split on the path's k-th distinct
 * feature), parents before children, then each leaf's table row added to the contributions.
 */
function addLeafShares(
  tables: LeafTables,
  phi: Float64Array,
  phiAt: number,
  width: number,
  dirs: Uint8Array,
): void {
  const { leaves, leafGroup, leafFeatures, tableAt, featureAt, features, leafNode, table } = tables;
  const { roots, order, orderParent, orderLeft, orderBit, follow } = tables;
  for (let r = 0; r < roots.length; r++) follow[roots[r]!] = -1;
  for (let i = 0; i < order.length; i++) {
    const parent = orderParent[i]!;
    const b = follow[parent]!;
    follow[order[i]!] = dirs[parent] === orderLeft[i] ? b : b & ~(1 << orderBit[i]!);
  }
  for (let l = 0; l < leaves; l++) {
    const d = leafFeatures[l]!;
    const b = follow[leafNode[l]!]! & ((1 << d) - 1);
    const row = tableAt[l]! + b * d;
    const f0 = featureAt[l]!;
    const out = phiAt + leafGroup[l]! * width;
    for (let k = 0; k < d; k++) phi[out + features[f0 + k]!]! += table[row + k]!;
  }
}
