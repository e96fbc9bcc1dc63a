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
 * A row then costs one pass over the split nodes (which way it goes), one over each leaf's path splits (its
 * B), and d table reads per leaf.
 */
import type { XGBoostModel } from "../runtime/xgboost/model.js";

/** Most table entries (float64) a model may take before TreeSHAP falls back to the path algorithm: 64 MiB. */
export const MAX_TABLE_ENTRIES = 8 * 1024 * 1024;
/** Deepest distinct-feature path tabulated (2^d entries per feature per leaf). */
const MAX_PATH_FEATURES = 16;

/** The prepared tables of a model (flat over all leaves of all trees). */
export interface LeafTables {
  /** Leaves with at least one split above them. */
  readonly leaves: number;
  /** Per leaf: output group, distinct path features, first table entry, first feature, first split, splits. */
  readonly leafGroup: Int32Array;
  readonly leafFeatures: Uint8Array;
  readonly tableAt: Int32Array;
  readonly featureAt: Int32Array;
  readonly splitAt: Int32Array;
  readonly splitCount: Uint8Array;
  /** Distinct path features of the leaves, concatenated. */
  readonly features: Int32Array;
  /** The path splits of the leaves, concatenated: node, whether the path goes left there, feature bit. */
  readonly splitNode: Int32Array;
  readonly splitLeft: Uint8Array;
  readonly splitBit: Uint8Array;
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
 * Tabulate a model's leaves; undefined when the tables would take more than {@link MAX_TABLE_ENTRIES} entries
 * or a path has more than 16 distinct features (the caller then uses the path algorithm). `share[n]` is the
 * fraction of its parent's cover that node n received.
 */
export function buildLeafTables(model: XGBoostModel, share: Float64Array): LeafTables | undefined {
  const { count, treeStart, treeGroup, left, right, feature, leafValue } = model.trees;
  type Leaf = { group: number; value: number; splits: Split[] };
  const found: Leaf[] = [];
  let entries = 0;
  for (let t = 0; t < count; t++) {
    const root = treeStart[t]!;
    if (left[root] === -1) continue;
    const path: Split[] = [];
    const walk = (node: number): boolean => {
      if (left[node] === -1) {
        const distinct = new Set(path.map((s) => s.feature)).size;
        if (distinct > MAX_PATH_FEATURES) return false;
        entries += 2 ** distinct * distinct;
        if (entries > MAX_TABLE_ENTRIES) return false;
        found.push({ group: treeGroup[t]!, value: leafValue[node]!, splits: [...path] });
        return true;
      }
      const f = feature[node]!;
      for (const [child, goesLeft] of [
        [left[node]!, true],
        [right[node]!, false],
      ] as const) {
        path.push({ node, left: goesLeft, feature: f, share: share[child]! });
        const ok = walk(child);
        path.pop();
        if (!ok) return false;
      }
      return true;
    };
    if (!walk(root)) return undefined;
  }

  const leaves = found.length;
  const leafGroup = new Int32Array(leaves);
  const leafFeatures = new Uint8Array(leaves);
  const tableAt = new Int32Array(leaves);
  const featureAt = new Int32Array(leaves);
  const splitAt = new Int32Array(leaves);
  const splitCount = new Uint8Array(leaves);
  const totalSplits = found.reduce((n, l) => n + l.splits.length, 0);
  const featureList: number[] = [];
  const splitNode = new Int32Array(totalSplits);
  const splitLeft = new Uint8Array(totalSplits);
  const splitBit = new Uint8Array(totalSplits);
  const table = new Float64Array(entries);
  let tableNext = 0;
  let splitNext = 0;
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
      splitNode[splitNext] = s.node;
      splitLeft[splitNext] = s.left ? 1 : 0;
      splitBit[splitNext] = k;
      splitNext++;
    }
    const d = distinct.length;
    leafGroup[l] = leaf.group;
    leafFeatures[l] = d;
    tableAt[l] = tableNext;
    featureAt[l] = featureList.length;
    splitAt[l] = splitNext - leaf.splits.length;
    splitCount[l] = leaf.splits.length;
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
    splitAt,
    splitCount,
    features: Int32Array.from(featureList),
    splitNode,
    splitLeft,
    splitBit,
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

/** Each leaf's follow-set from the split directions, and its table row added to the contributions. */
function addLeafShares(
  tables: LeafTables,
  phi: Float64Array,
  phiAt: number,
  width: number,
  dirs: Uint8Array,
): void {
  const { leaves, leafGroup, leafFeatures, tableAt, featureAt, splitAt, splitCount, features } = tables;
  const { splitNode, splitLeft, splitBit, table } = tables;
  for (let l = 0; l < leaves; l++) {
    const d = leafFeatures[l]!;
    let b = (1 << d) - 1;
    const s0 = splitAt[l]!;
    const s1 = s0 + splitCount[l]!;
    for (let s = s0; s < s1; s++) {
      if (dirs[splitNode[s]!] !== splitLeft[s]) b &= ~(1 << splitBit[s]!);
    }
    const row = tableAt[l]! + b * d;
    const f0 = featureAt[l]!;
    const out = phiAt + leafGroup[l]! * width;
    for (let k = 0; k < d; k++) phi[out + features[f0 + k]!]! += table[row + k]!;
  }
}
