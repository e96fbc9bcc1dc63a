/**
 * A per-request anomaly score fitted on reference rows: an Isolation Forest (Liu, Ting and Zhou, 2008,
 * "Isolation Forest", ICDM). Each tree splits a random subsample of the rows on a random feature at a
 * uniformly drawn value until every row stands alone or the height limit ⌈log₂ ψ⌉ is reached; rows unlike
 * the others are isolated by short paths. A row's score is s = 2^(−E[h(x)] / c(ψ)), in (0, 1]: near 1 for
 * rows isolated at once, near 0.5 or below for ordinary ones. h(x) counts the edges from the root to the
 * external node x lands in, plus c(size) for the rows left unseparated there (the expected path length of an
 * unbuilt subtree, the paper's adjustment).
 *
 * Missing values (NaN) are a value of their own: for each feature the forest keeps a stand-in that lies
 * below the reference's present values by the width of their range (at least 1), and a missing value is
 * split as that stand-in. A missing value the reference rows often show is thus common and scores as
 * ordinary; one they rarely show is isolated early and scores high. (Sending it to the side holding more
 * of the node's sample would never make a missing value anomalous.)
 *
 * Rows are the model's encoding (explain/types.ts): numbers as-is, booleans 0/1, categories as their
 * index; a split on a category index is a split of the categories in the manifest's order, as in Liu et
 * al.'s treatment of ordinal attributes.
 *
 * The forest is seeded (xoshiro128**, explain/random.ts), so the same rows and seed give the same forest on
 * every machine. scikit-learn's IsolationForest draws from another generator, so its scores for the same
 * rows differ tree by tree; its c(n) also approximates the harmonic number by ln(n) + γ, where this module
 * sums H(n) exactly up to 10⁶ terms.
 */
import { seededRandom } from "../explain/random.js";

/** Options of {@link fitIsolationForest}. */
export interface IsolationForestOptions {
  /** Trees (default 100, the paper's choice). */
  readonly trees?: number;
  /** Rows drawn, without replacement, for each tree (default 256, the paper's ψ; at most the rows given). */
  readonly subsample?: number;
  /** Seed of the random draws (default 0). */
  readonly seed?: number;
  /**
   * The share of reference rows taken as anomalous (default 0.01): the threshold is the reference scores'
   * (1 − contamination) quantile, so 0.01 puts it at their 99th percentile.
   */
  readonly contamination?: number;
}

/** One tree as parallel arrays over its nodes (node 0 the root). */
export interface IsolationTreeJSON {
  /** The feature split on; −1 at an external node. */
  readonly feature: readonly number[];
  /** Rows with value < threshold go left; 0 at an external node. */
  readonly threshold: readonly number[];
  /** Children of internal nodes (−1 at an external node). */
  readonly left: readonly number[];
  readonly right: readonly number[];
  /** Sample rows that reached an external node (0 at internal nodes). */
  readonly size: readonly number[];
}

/** The JSON form of a fitted forest. */
export interface IsolationForestJSON {
  readonly kind: "isolation-forest";
  readonly version: 1;
  /** Values per row. */
  readonly width: number;
  readonly seed: number;
  /** ψ actually used (the subsample size, at most the rows fitted on). */
  readonly subsample: number;
  readonly heightLimit: number;
  /** Per feature, the value a missing value is split as. */
  readonly missingAs: readonly number[];
  readonly contamination: number;
  /** Scores at or above this are anomalous: the reference scores' (1 − contamination) quantile. */
  readonly threshold: number;
  readonly trees: readonly IsolationTreeJSON[];
}

/** A fitted Isolation Forest. */
export interface IsolationForest {
  /** The anomaly score of one row of `width` encoded values (NaN = missing), in (0, 1]. */
  score(row: ArrayLike<number>): number;
  /** Whether `score` is at or above {@link threshold}. */
  isAnomalous(score: number): boolean;
  readonly threshold: number;
  readonly width: number;
  toJSON(): IsolationForestJSON;
}

const EULER_GAMMA = 0.5772156649015329;

/** The n-th harmonic number H(n) = Σ_{i=1..n} 1/i (0 for n ≤ 0); exact summation up to 10⁶, else asymptotic. */
export function harmonicNumber(n: number): number {
  if (n <= 0) return 0;
  if (n <= 1_000_000) {
    let sum = 0;
    // Smallest terms first, to lose less to rounding.
    for (let i = Math.floor(n); i >= 1; i--) sum += 1 / i;
    return sum;
  }
  return Math.log(n) + EULER_GAMMA + 1 / (2 * n) - 1 / (12 * n * n);
}

/**
 * c(n): the average path length of an unsuccessful search in a binary search tree of n keys, which
 * normalises path lengths in Isolation Forest: 2H(n − 1) − 2(n − 1)/n for n > 2, 1 for n = 2, 0 below.
 */
export function averagePathLength(n: number): number {
  if (n <= 1) return 0;
  if (n === 2) return 1;
  return 2 * harmonicNumber(n - 1) - (2 * (n - 1)) / n;
}

/**
 * Fit a forest on `rows` rows of `width` encoded values (row-major, NaN = missing), score those rows, and set
 * the threshold at the quantile `1 − contamination` of their scores (linear interpolation, as NumPy's default).
 *
 * @throws RangeError for no rows, a size mismatch or options out of range.
 */
export function fitIsolationForest(
  input: ArrayLike<number>,
  rows: number,
  width: number,
  options: IsolationForestOptions = {},
): IsolationForest {
  const trees = options.trees ?? 100;
  const seed = options.seed ?? 0;
  const contamination = options.contamination ?? 0.01;
  if (!Number.isInteger(rows) || rows < 1 || !Number.isInteger(width) || width < 1) {
    throw new RangeError(
      `an isolation forest needs at least one row of at least one value; got ${rows}×${width}`,
    );
  }
  if (input.length !== rows * width) {
    throw new RangeError(`expected ${rows}×${width} = ${rows * width} values, got ${input.length}`);
  }
  if (!Number.isInteger(trees) || trees < 1)
    throw new RangeError(`trees must be an integer >= 1, got ${trees}`);
  const requested = options.subsample ?? 256;
  if (!Number.isInteger(requested) || requested < 2) {
    throw new RangeError(`subsample must be an integer >= 2, got ${requested}`);
  }
  if (!(contamination > 0 && contamination < 0.5)) {
    throw new RangeError(`contamination must lie in (0, 0.5), got ${contamination}`);
  }
  const subsample = Math.min(requested, rows);
  const heightLimit = Math.max(1, Math.ceil(Math.log2(subsample)));
  const missingAs = missingStandIns(input, rows, width);
  // The rows with missing values replaced by their stand-ins, so that splits compare plain numbers.
  const filled = new Float64Array(rows * width);
  for (let i = 0; i < filled.length; i++) {
    const v = Number(input[i]);
    filled[i] = Number.isNaN(v) ? missingAs[i % width]! : v;
  }
  const random = seededRandom(seed);
  const order = Int32Array.from({ length: rows }, (_, i) => i);
  const built: IsolationTreeJSON[] = [];
  for (let t = 0; t < trees; t++) {
    // A partial Fisher–Yates shuffle draws `subsample` distinct rows.
    for (let i = 0; i < subsample; i++) {
      const j = i + random.int(rows - i);
      const swap = order[i]!;
      order[i] = order[j]!;
      order[j] = swap;
    }
    built.push(buildTree(filled, width, order.slice(0, subsample), heightLimit, random));
  }
  const unthresholded = new Forest({
    kind: "isolation-forest",
    version: 1,
    width,
    seed,
    subsample,
    heightLimit,
    missingAs,
    contamination,
    threshold: 1,
    trees: built,
  });
  const scores = new Float64Array(rows);
  for (let r = 0; r < rows; r++) scores[r] = unthresholded.scoreFilled(filled, r * width);
  scores.sort();
  return new Forest({ ...unthresholded.toJSON(), threshold: typeSevenQuantile(scores, 1 - contamination) });
}

/** Reads a forest from its JSON form, checking every field. */
export function isolationForestFromJSON(json: unknown): IsolationForest {
  const fail = (what: string): never => {
    throw new TypeError(`not an isolation-forest JSON: ${what}`);
  };
  if (typeof json !== "object" || json === null) return fail("expected an object");
  const j = json as Record<string, unknown>;
  if (j.kind !== "isolation-forest") fail(`kind must be "isolation-forest", got ${String(j.kind)}`);
  if (j.version !== 1) fail(`version must be 1, got ${String(j.version)}`);
  const positiveInt = (key: string) => {
    if (!Number.isInteger(j[key]) || (j[key] as number) < 1) fail(`${key} must be an integer >= 1`);
  };
  positiveInt("width");
  positiveInt("subsample");
  positiveInt("heightLimit");
  if (!Number.isInteger(j.seed)) fail("seed must be an integer");
  const width = j.width as number;
  const finite = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v);
  if (!Array.isArray(j.missingAs) || j.missingAs.length !== width || !j.missingAs.every(finite)) {
    fail(`missingAs must be ${width} finite numbers`);
  }
  if (!finite(j.contamination) || !(j.contamination > 0 && j.contamination < 0.5)) {
    fail("contamination must lie in (0, 0.5)");
  }
  if (!finite(j.threshold) || !(j.threshold > 0 && j.threshold <= 1)) fail("threshold must lie in (0, 1]");
  if (!Array.isArray(j.trees) || j.trees.length === 0) fail("trees must be a non-empty array");
  const trees = j.trees as unknown[];
  for (let t = 0; t < trees.length; t++) {
    checkTree(trees[t], width, (what) => fail(`trees[${t}].${what}`));
  }
  return new Forest(j as unknown as IsolationForestJSON);
}

function checkTree(tree: unknown, width: number, fail: (what: string) => never): void {
  if (typeof tree !== "object" || tree === null) fail("expected an object");
  const t = tree as Record<string, unknown>;
  const keys = ["feature", "threshold", "left", "right", "size"] as const;
  for (const key of keys) {
    if (
      !Array.isArray(t[key]) ||
      !(t[key] as unknown[]).every((v) => typeof v === "number" && Number.isFinite(v))
    ) {
      fail(`${key} must be an array of finite numbers`);
    }
  }
  const feature = t.feature as number[];
  const n = feature.length;
  if (n === 0) fail("feature must not be empty");
  for (const key of keys) if ((t[key] as number[]).length !== n) fail(`${key} must have ${n} entries`);
  const left = t.left as number[];
  const right = t.right as number[];
  const size = t.size as number[];
  for (let i = 0; i < n; i++) {
    const f = feature[i]!;
    if (f === -1) {
      if (left[i] !== -1 || right[i] !== -1 || !Number.isInteger(size[i]) || size[i]! < 1) {
        fail(`node ${i}: an external node has left = right = -1 and size >= 1`);
      }
    } else if (
      !Number.isInteger(f) ||
      f < 0 ||
      f >= width ||
      !Number.isInteger(left[i]) ||
      !Number.isInteger(right[i]) ||
      // Children come after their parent, so a walk from the root always ends.
      left[i]! <= i ||
      right[i]! <= i ||
      left[i]! >= n ||
      right[i]! >= n
    ) {
      fail(`node ${i}: an internal node splits a feature in [0, ${width}) into two later nodes`);
    }
  }
}

class Forest implements IsolationForest {
  readonly #json: IsolationForestJSON;
  readonly #normaliser: number;
  readonly #missingAs: Float64Array;

  constructor(json: IsolationForestJSON) {
    this.#json = json;
    this.#normaliser = averagePathLength(json.subsample);
    this.#missingAs = Float64Array.from(json.missingAs);
  }

  get threshold(): number {
    return this.#json.threshold;
  }
  get width(): number {
    return this.#json.width;
  }

  score(row: ArrayLike<number>): number {
    const width = this.#json.width;
    if (row.length !== width) throw new RangeError(`expected a row of ${width} values, got ${row.length}`);
    const filled = new Float64Array(width);
    for (let j = 0; j < width; j++) {
      const v = Number(row[j]);
      filled[j] = Number.isNaN(v) ? this.#missingAs[j]! : v;
    }
    return this.scoreFilled(filled, 0);
  }

  /** The score of the row at `offset` of `filled` (missing values already replaced). */
  scoreFilled(filled: ArrayLike<number>, offset: number): number {
    let total = 0;
    for (const tree of this.#json.trees) {
      let node = 0;
      let depth = 0;
      for (;;) {
        const f = tree.feature[node]!;
        if (f < 0) break;
        node = filled[offset + f]! < tree.threshold[node]! ? tree.left[node]! : tree.right[node]!;
        depth++;
      }
      total += depth + averagePathLength(tree.size[node]!);
    }
    const meanPath = total / this.#json.trees.length;
    // With ψ = 1 every path is 0 and c(1) = 0: every row is equally (un)remarkable.
    return this.#normaliser > 0 ? 2 ** (-meanPath / this.#normaliser) : 1;
  }

  isAnomalous(score: number): boolean {
    return score >= this.#json.threshold;
  }

  toJSON(): IsolationForestJSON {
    return this.#json;
  }
}

/** Per feature: the present values' minimum less their range (at least 1); −1 for a feature never present. */
function missingStandIns(input: ArrayLike<number>, rows: number, width: number): number[] {
  const out: number[] = [];
  for (let j = 0; j < width; j++) {
    let min = Number.POSITIVE_INFINITY;
    let max = Number.NEGATIVE_INFINITY;
    for (let r = 0; r < rows; r++) {
      const v = Number(input[r * width + j]);
      if (Number.isNaN(v)) continue;
      if (v < min) min = v;
      if (v > max) max = v;
    }
    out.push(min <= max ? min - Math.max(1, max - min) : -1);
  }
  return out;
}

interface Random {
  next(): number;
  int(n: number): number;
}

function buildTree(
  filled: Float64Array,
  width: number,
  sample: Int32Array,
  heightLimit: number,
  random: Random,
): IsolationTreeJSON {
  const feature: number[] = [];
  const threshold: number[] = [];
  const left: number[] = [];
  const right: number[] = [];
  const size: number[] = [];
  const candidates = Int32Array.from({ length: width }, (_, j) => j);
  const grow = (rows: Int32Array, depth: number): number => {
    const node = feature.length;
    feature.push(-1);
    threshold.push(0);
    left.push(-1);
    right.push(-1);
    size.push(rows.length);
    if (depth >= heightLimit || rows.length <= 1) return node;
    // Draw features in random order until one varies within the node; none varies: an external node.
    for (let k = 0; k < width; k++) {
      const pick = k + random.int(width - k);
      const j = candidates[pick]!;
      candidates[pick] = candidates[k]!;
      candidates[k] = j;
      let min = Number.POSITIVE_INFINITY;
      let max = Number.NEGATIVE_INFINITY;
      for (const r of rows) {
        const v = filled[r * width + j]!;
        if (v < min) min = v;
        if (v > max) max = v;
      }
      if (!(max > min)) continue;
      let split = min + random.next() * (max - min);
      // Both sides must hold a row: x < split goes left, so split must exceed the minimum.
      if (!(split > min)) split = min + (max - min) / 2;
      const lower = rows.filter((r) => filled[r * width + j]! < split);
      const upper = rows.filter((r) => filled[r * width + j]! >= split);
      feature[node] = j;
      threshold[node] = split;
      size[node] = 0;
      const l = grow(lower, depth + 1);
      const u = grow(upper, depth + 1);
      left[node] = l;
      right[node] = u;
      return node;
    }
    return node;
  };
  grow(sample, 0);
  return { feature, threshold, left, right, size };
}

/** The p quantile of ascending values, interpolating between order statistics at p·(n − 1). */
function typeSevenQuantile(sorted: Float64Array, p: number): number {
  const h = (sorted.length - 1) * p;
  const lo = Math.floor(h);
  const hi = Math.min(lo + 1, sorted.length - 1);
  return sorted[lo]! + (h - lo) * (sorted[hi]! - sorted[lo]!);
}
