/**
 * Exact path-dependent TreeSHAP by subtree tables: the values of the per-leaf tables (treeshap-tables.ts)
 * summed ahead of time over groups of leaves, so that a row costs one comparison per split node and one
 * short vector added per group, instead of a walk over every node and a table row per leaf.
 *
 * Why it works. A tree's contributions for a row depend on the row only through which way it goes at each
 * split node (its directions). Cut the tree into subtrees: each leaf belongs to the subtree of one cut node
 * r, and its per-leaf table row depends only on the directions at r's ancestors (they make the leaf's
 * follow-set above r) and at the split nodes under r. So does the sum of the rows of all leaves under r: it
 * is tabulated for every assignment of those directions (2^(depth(r) + splits under r) entries), each entry
 * a dense vector over the group's columns (the distinct features of r's ancestors and of its subtree).
 * Entries are sums of per-leaf table rows, so the maths is that of the per-leaf tables; only the order of
 * the additions changes.
 *
 * Which cut. Per tree, a dynamic programme over the nodes picks the cut nodes minimising an estimate of the
 * work per row (a constant per group, one per column, one per split above the cuts) plus a price per table
 * entry (large tables cost cache misses); when the whole model's tables would not fit the budget, the price
 * is raised until they do. Cutting at every leaf takes as many entries as the per-leaf tables, unless a path
 * splits twice on one feature (2^depth entries where the per-leaf table has 2^distinct), and a group of two
 * sibling leaves takes half as many as theirs; when no cut fits (or a group would need more than {@link MAX_GROUP_BITS}
 * directions) the caller falls back to the per-leaf tables.
 *
 * A row. A value's rank on a feature is how many of the model's thresholds on that feature are ≤ it (one
 * binary search per feature and row), a node's rank is 1 + its threshold's position among them: the value
 * is below the threshold (the row goes left) exactly when its rank is below the node's, so the direction is
 * `(value's rank − node's rank) >>> 31`, an integer operation without a branch to mispredict. A missing
 * value ranks 0 for nodes whose missing values go left and 2^30 for the others (two copies of the row's
 * ranks); infinite values and thresholds need no special case. Then the split nodes above the cuts,
 * parents first, each pack their direction onto their parent's (bit i: the direction at depth i); each
 * group starts from its cut node's parent's packed directions, adds the directions of its own split nodes,
 * and adds one table entry to the contributions.
 */
import type { XGBoostModel } from "../runtime/xgboost/model.js";
import type { LeafTables } from "./treeshap-tables.js";

/**
 * Cost model of a row, in rough nanoseconds (fitted on the fixtures and the credit demo): each group read,
 * each column added, each split above a cut, and each table entry held (cache pressure, spread over rows).
 */
const COSTS: Readonly<Record<"group" | "column" | "top" | "entry", number>> = {
  group: 4,
  column: 1.5,
  top: 1,
  entry: 1e-3,
};
/** Most directions one group's table is indexed by. */
const MAX_GROUP_BITS = 22;
/** Rank of a missing value for nodes whose missing values go right: above every threshold's. */
const MISSING_RIGHT = 0x40000000;

/** The prepared subtree tables of a model (flat over all groups of all trees). */
export interface SubtreeTables {
  readonly numFeature: number;
  /** Features some split tests, and per feature its thresholds, ascending: `thresholds[thresholdAt[f] ..]`. */
  readonly used: Int32Array;
  readonly thresholdAt: Int32Array;
  readonly thresholds: Float64Array;
  /**
   * Scratch: the row's ranks; feature f's at f with missing as 0 (nodes whose missing values go left read
   * it), at numFeature + f with missing as {@link MISSING_RIGHT} (the others read it).
   */
  readonly ranks: Int32Array;
  /**
   * Split nodes above the cuts, parents first, 4 numbers each: where its feature's rank is in `ranks`, its
   * threshold's rank + 1 (so that rank − this < 0 means x < threshold), the slot in `packed` of its parent
   * (0 for a root) and its depth. Node i packs into slot i + 1.
   */
  readonly tops: Int32Array;
  /** Scratch: each top node's direction and its ancestors', bit i the one at depth i (slot 0 is 0). */
  readonly packed: Int32Array;
  /**
   * Groups, 5 numbers each: the slot in `packed` of the cut node's parent, the cut node's depth, the end of
   * its split nodes in `splits` (they start where the previous group's end), its first table entry and its
   * column count (its columns follow the previous group's in `columns`).
   */
  readonly groups: Int32Array;
  /** Split nodes inside the groups, each group's in preorder, 2 numbers each: as the first two of `tops`. */
  readonly splits: Int32Array;
  /** Each group's columns, as offsets in a row's contributions (output group × width + feature). */
  readonly columns: Int32Array;
  /**
   * Group entry (first + index · columns + c): the group's summed contributions to its column c, index bit i
   * the direction (1 = left) at the ancestor at depth i, bits from the cut node's depth up those of its split
   * nodes in preorder.
   */
  readonly table: Float64Array;
}

/** Per-node facts, indexed by global node number. */
interface NodeFacts {
  readonly depth: Int32Array;
  readonly parent: Int32Array;
  /** Split nodes under the node, itself included. */
  readonly splits: Int32Array;
  /** Columns of a group cut at the node: distinct features of its ancestors and of its subtree's splits. */
  readonly columns: Int32Array;
  /** Bit of the node's split feature among the distinct features of the path to it (itself included). */
  readonly featureBit: Int32Array;
  /** Table entries of a group cut at the node (Infinity when it would need too many directions). */
  readonly entries: Float64Array;
}

/**
 * Build the subtree tables of a model from its per-leaf tables, in at most `budget` entries; undefined when
 * they do not fit.
 */
export function buildSubtreeTables(
  model: XGBoostModel,
  leafTables: LeafTables,
  budget: number,
): SubtreeTables | undefined {
  const { count, treeStart, left, right, feature } = model.trees;
  const nodeCount = left.length;
  const facts: NodeFacts = {
    depth: new Int32Array(nodeCount),
    parent: new Int32Array(nodeCount).fill(-1),
    splits: new Int32Array(nodeCount),
    columns: new Int32Array(nodeCount),
    featureBit: new Int32Array(nodeCount),
    entries: new Float64Array(nodeCount),
  };
  /** The trees with a split, and their roots. */
  const trees: number[] = [];
  const roots: number[] = [];
  for (let t = 0; t < count; t++) {
    const root = treeStart[t]!;
    if (left[root] === -1) continue; // a lone leaf adds to the bias only
    trees.push(t);
    roots.push(root);
    /** Distinct features of the path so far, in order of first appearance (as the per-leaf tables). */
    const distinct: number[] = [];
    // Returns the distinct split features of the node's subtree.
    const walk = (node: number, depth: number): Set<number> => {
      facts.depth[node] = depth;
      const above = distinct.length;
      let under: Set<number>;
      if (left[node] === -1) under = new Set();
      else {
        const f = feature[node]!;
        let bit = distinct.indexOf(f);
        if (bit === -1) {
          bit = distinct.length;
          distinct.push(f);
        }
        facts.featureBit[node] = bit;
        const l = left[node]!;
        const r = right[node]!;
        facts.parent[l] = node;
        facts.parent[r] = node;
        under = walk(l, depth + 1);
        for (const g of walk(r, depth + 1)) under.add(g);
        under.add(f);
        distinct.length = above;
        facts.splits[node] = 1 + facts.splits[l]! + facts.splits[r]!;
      }
      let columns = above;
      for (const g of under) if (distinct.indexOf(g) === -1) columns++;
      facts.columns[node] = columns;
      const bits = depth + facts.splits[node]!;
      facts.entries[node] = bits <= MAX_GROUP_BITS ? 2 ** bits * columns : Number.POSITIVE_INFINITY;
      return under;
    };
    walk(root, 0);
  }

  // The cheapest cut at the price COSTS.entry per entry, or a dearer price that fits the budget.
  const cut = new Uint8Array(nodeCount);
  let entries = chooseCuts(model, facts, roots, COSTS.entry, cut);
  // A leaf too deep for any table: no price makes one fit.
  if (entries === Number.POSITIVE_INFINITY) return undefined;
  if (entries > budget) {
    let low = COSTS.entry;
    let high = COSTS.entry;
    while (entries > budget) {
      low = high;
      high *= 16;
      if (high > 1e30) return undefined;
      entries = chooseCuts(model, facts, roots, high, cut);
    }
    for (let i = 0; i < 60 && high > low * (1 + 1e-6); i++) {
      const middle = Math.sqrt(low * high);
      if (chooseCuts(model, facts, roots, middle, cut) > budget) low = middle;
      else high = middle;
    }
    entries = chooseCuts(model, facts, roots, high, cut);
  }
  return fillSubtreeTables(model, leafTables, facts, trees, cut, entries);
}

/**
 * Choose each tree's cut nodes (`cut[n]` = 1) minimising the estimated work per row plus `price` per table
 * entry; returns the entries the chosen groups take (Infinity when a tree has a leaf too deep for any).
 */
function chooseCuts(
  model: XGBoostModel,
  facts: NodeFacts,
  roots: readonly number[],
  price: number,
  cut: Uint8Array,
): number {
  const { left, right } = model.trees;
  const best = (node: number): number => {
    const entries = facts.entries[node]!;
    const asGroup =
      entries === Number.POSITIVE_INFINITY
        ? entries
        : COSTS.group + COSTS.column * facts.columns[node]! + price * entries;
    if (left[node] === -1) {
      cut[node] = 1;
      return asGroup;
    }
    const split = COSTS.top + best(left[node]!) + best(right[node]!);
    cut[node] = asGroup <= split ? 1 : 0;
    return Math.min(asGroup, split);
  };
  let total = 0;
  const sum = (node: number): void => {
    if (cut[node] === 1) total += facts.entries[node]!;
    else {
      sum(left[node]!);
      sum(right[node]!);
    }
  };
  for (const root of roots) {
    if (best(root) === Number.POSITIVE_INFINITY) return Number.POSITIVE_INFINITY;
    sum(root);
  }
  return total;
}

/** Lay out the chosen groups and fill their tables from the per-leaf tables. */
function fillSubtreeTables(
  model: XGBoostModel,
  leafTables: LeafTables,
  facts: NodeFacts,
  trees: readonly number[],
  cut: Uint8Array,
  entries: number,
): SubtreeTables {
  const { left, right, feature, threshold, defaultLeft, treeGroup, treeStart } = model.trees;
  const numFeature = model.numFeature;
  const width = numFeature + 1;

  // Each feature's distinct thresholds, ascending, over the split nodes of the tabulated trees.
  const perFeature = Array.from({ length: numFeature }, () => new Set<number>());
  const visitSplits = (node: number, each: (n: number) => void): void => {
    if (left[node] === -1) return;
    each(node);
    visitSplits(left[node]!, each);
    visitSplits(right[node]!, each);
  };
  for (const t of trees) visitSplits(treeStart[t]!, (n) => perFeature[feature[n]!]!.add(threshold[n]!));
  const sorted = perFeature.map((set) => Float64Array.from(set).sort());
  const thresholdAt = new Int32Array(numFeature + 1);
  sorted.forEach((list, f) => {
    thresholdAt[f + 1] = thresholdAt[f]! + list.length;
  });
  const thresholds = new Float64Array(thresholdAt[numFeature]!);
  sorted.forEach((list, f) => {
    thresholds.set(list, thresholdAt[f]!);
  });
  const used = Int32Array.from(sorted.flatMap((list, f) => (list.length > 0 ? [f] : [])));
  /** A split node's test: where its feature's rank is, and its threshold's rank + 1. */
  const test = (node: number): [number, number] => {
    const f = feature[node]!;
    return [(defaultLeft[node] === 1 ? 0 : numFeature) + f, sorted[f]!.indexOf(threshold[node]!) + 1];
  };

  const leafOf = new Int32Array(left.length).fill(-1);
  for (let l = 0; l < leafTables.leaves; l++) leafOf[leafTables.leafNode[l]!] = l;
  const tops: number[] = [];
  const groups: number[] = [];
  const splits: number[] = [];
  const columns: number[] = [];
  const table = new Float64Array(entries);
  let tableNext = 0;
  /** Slot in `packed` of each top node. */
  const slot = new Int32Array(left.length);
  /** Scratch: each feature's column in the group at hand. */
  const columnOf = new Int32Array(numFeature);

  for (const t of trees) {
    const root = treeStart[t]!;
    const outAt = treeGroup[t]! * width;
    const visit = (node: number): void => {
      const parentSlot = node === root ? 0 : slot[facts.parent[node]!]!;
      if (cut[node] === 0) {
        tops.push(...test(node), parentSlot, facts.depth[node]!);
        slot[node] = tops.length / 4;
        visit(left[node]!);
        visit(right[node]!);
        return;
      }
      // Its columns: the features of its ancestors and split nodes, ascending.
      const own = new Set<number>();
      for (let a = facts.parent[node]!; a !== -1; a = facts.parent[a]!) own.add(feature[a]!);
      visitSplits(node, (n) => {
        splits.push(...test(n));
        own.add(feature[n]!);
      });
      const features = Int32Array.from(own).sort();
      features.forEach((f, c) => {
        columnOf[f] = c;
        columns.push(outAt + f);
      });
      const entries = tabulate(model, leafTables, facts, leafOf, node, columnOf, features.length);
      groups.push(parentSlot, facts.depth[node]!, splits.length / 2, tableNext, features.length);
      table.set(entries, tableNext);
      tableNext += entries.length;
    };
    visit(root);
  }

  return {
    numFeature,
    used,
    thresholdAt,
    thresholds,
    ranks: new Int32Array(2 * numFeature),
    tops: Int32Array.from(tops),
    packed: new Int32Array(tops.length / 4 + 1),
    groups: Int32Array.from(groups),
    splits: Int32Array.from(splits),
    columns: Int32Array.from(columns),
    table,
  };
}

/**
 * The table of a group cut at `node`, `width` columns (feature f's at `columnOf[f]`): for every assignment
 * of directions (1 = left) to the node's ancestors (bit i: the one at depth i) and to its split nodes (bits
 * from depth(node) up, in preorder), the summed rows of its leaves' per-leaf tables. Built bottom-up over
 * the group's columns: a leaf's table is its per-leaf table read at the follow-set its ancestors' directions
 * give; a split node's is its children's added up, each read at the bits it depends on (the left child's
 * are a prefix of the node's, the right child's skip the left subtree's).
 */
function tabulate(
  model: XGBoostModel,
  leafTables: LeafTables,
  facts: NodeFacts,
  leafOf: Int32Array,
  node: number,
  columnOf: Int32Array,
  width: number,
): Float64Array {
  const { left, right } = model.trees;
  const { leafFeatures, tableAt, featureAt, features, table } = leafTables;
  const postorder: number[] = [];
  const collect = (n: number): void => {
    if (left[n] !== -1) {
      collect(left[n]!);
      collect(right[n]!);
    }
    postorder.push(n);
  };
  collect(node);
  const done: Float64Array[] = [];
  for (const n of postorder) {
    const depth = facts.depth[n]!;
    if (left[n] === -1) {
      const l = leafOf[n]!;
      const d = leafFeatures[l]!;
      const column = Int32Array.from(
        features.subarray(featureAt[l]!, featureAt[l]! + d),
        (f) => columnOf[f]!,
      );
      // Per ancestor (depth 0 first): the side towards the leaf (1 = left) and its feature's bit.
      const toward = new Int32Array(depth);
      const bit = new Int32Array(depth);
      for (let child = n, a = facts.parent[n]!; a !== -1; child = a, a = facts.parent[a]!) {
        const i = facts.depth[a]!;
        toward[i] = left[a] === child ? 1 : 0;
        bit[i] = facts.featureBit[a]!;
      }
      const entries = new Float64Array((1 << depth) * width);
      expandLeaf(entries, width, depth, table, tableAt[l]!, d, toward, bit, column);
      done.push(entries);
    } else {
      const r = done.pop()!;
      const l = done.pop()!;
      const low = 1 << (depth + 1); // ancestors and the node itself: both children's lowest bits
      const middle = 1 << facts.splits[left[n]!]!;
      const high = 1 << facts.splits[right[n]!]!;
      const entries = new Float64Array(low * middle * high * width);
      addChildren(entries, width, low, middle, high, l, r);
      done.push(entries);
    }
  }
  return done[0]!;
}

/**
 * A leaf's table over its ancestors' directions: entry (index · width + column[k]) is its path feature k's
 * share at the follow-set those directions give (bit[i] cleared when the direction at depth i is not
 * `toward[i]`), read from the per-leaf table at `at` (d features).
 */
function expandLeaf(
  entries: Float64Array,
  width: number,
  depth: number,
  table: Float64Array,
  at: number,
  d: number,
  toward: Int32Array,
  bit: Int32Array,
  column: Int32Array,
): void {
  const size = 1 << depth;
  for (let index = 0; index < size; index++) {
    let b = (1 << d) - 1;
    for (let i = 0; i < depth; i++) if (((index >> i) & 1) !== toward[i]) b &= ~(1 << bit[i]!);
    const from = at + b * d;
    for (let k = 0; k < d; k++) entries[index * width + column[k]!] = table[from + k]!;
  }
}

/**
 * A split node's table from its children's: index (low bits: ancestors and the node; middle: the left
 * subtree's split nodes; high: the right subtree's) adds the left child's entry (middle, low) and the right
 * child's (high, low).
 */
function addChildren(
  entries: Float64Array,
  width: number,
  low: number,
  middle: number,
  high: number,
  lEntries: Float64Array,
  rEntries: Float64Array,
): void {
  let to = 0;
  for (let h = 0; h < high; h++) {
    for (let m = 0; m < middle; m++) {
      for (let a = 0; a < low; a++) {
        const lFrom = (m * low + a) * width;
        const rFrom = (h * low + a) * width;
        for (let k = 0; k < width; k++, to++) entries[to] = lEntries[lFrom + k]! + rEntries[rFrom + k]!;
      }
    }
  }
}

/**
 * Add the contributions of row `xAt` of `x` to `phi`, whose row block starts at `phiAt` (the columns hold
 * each output group's offset).
 */
export function subtreeContributions(
  tables: SubtreeTables,
  x: Float32Array,
  xAt: number,
  phi: Float64Array,
  phiAt: number,
): void {
  const { numFeature, used, thresholdAt, thresholds, ranks, tops, packed, groups, splits, columns, table } =
    tables;
  for (let u = 0; u < used.length; u++) {
    const f = used[u]!;
    const v = x[xAt + f]!;
    if (Number.isNaN(v)) {
      ranks[f] = 0;
      ranks[numFeature + f] = MISSING_RIGHT;
      continue;
    }
    // How many of the feature's thresholds are ≤ v.
    const first = thresholdAt[f]!;
    let low = first;
    let high = thresholdAt[f + 1]!;
    while (low < high) {
      const middle = (low + high) >> 1;
      if (thresholds[middle]! <= v) low = middle + 1;
      else high = middle;
    }
    ranks[f] = low - first;
    ranks[numFeature + f] = low - first;
  }
  for (let i = 0, at = 0; at < tops.length; i++, at += 4) {
    const left = (ranks[tops[at]!]! - tops[at + 1]!) >>> 31;
    packed[i + 1] = packed[tops[at + 2]!]! | (left << tops[at + 3]!);
  }
  let s = 0;
  let c = 0;
  for (let g = 0; g < groups.length; g += 5) {
    let index = packed[groups[g]!]!;
    let bit = groups[g + 1]!;
    for (const end = groups[g + 2]! * 2; s < end; s += 2, bit++) {
      index |= ((ranks[splits[s]!]! - splits[s + 1]!) >>> 31) << bit;
    }
    const n = groups[g + 4]!;
    const end = c + n;
    for (let at = groups[g + 3]! + index * n; c < end; c++, at++) phi[phiAt + columns[c]!]! += table[at]!;
  }
}
