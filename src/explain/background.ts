/**
 * Background data sets for the explainers: the rows whose average stands in for "feature unknown".
 *
 * Interventional Shapley values, KernelSHAP and exact enumeration average the model over a background set,
 * so their cost grows with its size. A summary keeps that cost bounded: either a seeded sample of the rows,
 * or weighted k-means, where each cluster is represented by a real row and weighted by the share of rows it
 * stands for.
 */
import { seededRandom } from "./random.js";

/**
 * A weighted set of rows in the model's encoding (row-major float32, NaN = missing). Weights are positive
 * and sum to 1: averages over the background are weighted averages.
 */
export interface Background {
  readonly data: Float32Array;
  readonly rows: number;
  /** Columns per row (the model's feature count). */
  readonly features: number;
  /** One weight per row, each > 0, summing to 1. */
  readonly weights: Float64Array;
}

/** How {@link summariseBackground} shrinks a large data set. */
export interface SummaryOptions {
  /** `kmeans` (default): weighted k-means, one real row per cluster; `sample`: a uniform sample. */
  readonly method?: "kmeans" | "sample";
  /** Rows kept (default 50). A data set no larger than this is used whole. */
  readonly size?: number;
  /** Seed of the k-means++ initialisation or of the sample (default 0). */
  readonly seed?: number;
}

/** Default size of a background summary: enough to average over, small enough for the explainers' cost. */
export const DEFAULT_BACKGROUND_SIZE = 50;

/**
 * A background of `rows` rows of `data` (`rows × features`), weighted by `weights` (default equal). The
 * weights are scaled to sum to 1; the data is used as given, not copied.
 *
 * @throws RangeError when the shapes disagree or a weight is not finite and positive.
 */
export function weightedBackground(
  data: Float32Array,
  rows: number,
  features: number,
  weights?: ArrayLike<number>,
): Background {
  checkShape(data, rows, features);
  if (weights !== undefined && weights.length !== rows) {
    throw new RangeError(`expected ${rows} background weights, got ${weights.length}`);
  }
  const w = new Float64Array(rows);
  let total = 0;
  for (let i = 0; i < rows; i++) {
    const value = weights === undefined ? 1 : weights[i]!;
    if (!(Number.isFinite(value) && value > 0)) {
      throw new RangeError(`background weight ${i} must be finite and > 0, got ${value}`);
    }
    w[i] = value;
    total += value;
  }
  for (let i = 0; i < rows; i++) w[i]! /= total;
  return Object.freeze({ data, rows, features, weights: w });
}

/**
 * A uniform sample of `size` distinct rows (all rows when there are no more than `size`), equally weighted.
 * The rows keep their order in `data`.
 */
export function sampleBackground(
  data: Float32Array,
  rows: number,
  features: number,
  size: number,
  seed = 0,
): Background {
  return summariseBackground(weightedBackground(data, rows, features), { method: "sample", size, seed });
}

/** `size` distinct row numbers below `rows`, in increasing order: a partial Fisher–Yates shuffle, sorted. */
function sampleRows(rows: number, size: number, seed: number): Int32Array {
  const random = seededRandom(seed);
  const order = Int32Array.from({ length: rows }, (_, i) => i);
  for (let i = 0; i < size; i++) {
    const j = i + random.int(rows - i);
    const t = order[i]!;
    order[i] = order[j]!;
    order[j] = t;
  }
  return order.slice(0, size).sort();
}

/** Options of {@link kmeansBackground}. */
export interface KMeansOptions {
  /** Seed of the k-means++ initialisation (default 0). */
  readonly seed?: number;
  /** Most Lloyd iterations (default 100); stops earlier when no row changes cluster. */
  readonly iterations?: number;
  /** Weight of each input row (default equal). */
  readonly weights?: ArrayLike<number>;
}

/**
 * Weighted k-means summary: at most `k` rows, each the real row nearest its cluster's centre, weighted by the
 * total weight of the cluster's rows.
 *
 * Distances are taken on standardised columns (each divided by its standard deviation), so a feature in
 * large units (amounts in thousands) does not decide the clusters alone; missing values count as the
 * column's mean there. A cluster is represented by a real row rather than by its centre because the centre
 * of category codes, booleans or missing values is not a value the model was ever trained on. Initial
 * centres follow k-means++ (Arthur and Vassilvitskii, 2007), seeded. Fewer than `k` rows come back when the
 * data has fewer distinct rows.
 */
export function kmeansBackground(
  data: Float32Array,
  rows: number,
  features: number,
  k: number,
  options: KMeansOptions = {},
): Background {
  checkShape(data, rows, features);
  checkSize(k);
  const input = weightedBackground(data, rows, features, options.weights);
  const weight = input.weights;
  const points = standardise(data, rows, features, weight);
  const random = seededRandom(options.seed ?? 0);
  const centres = kmeansPlusPlus(points, rows, features, Math.min(k, rows), weight, random);
  const count = centres.length / features;
  const assignment = new Int32Array(rows).fill(-1);
  const distance = new Float64Array(rows);
  const iterations = options.iterations ?? 100;
  for (let iteration = 0; iteration < iterations; iteration++) {
    let changed = false;
    for (let i = 0; i < rows; i++) {
      const [best, d] = nearest(points, i, centres, count, features);
      distance[i] = d;
      if (assignment[i] !== best) {
        assignment[i] = best;
        changed = true;
      }
    }
    if (!changed) break;
    // New centres: weighted means of their rows. A centre that lost all its rows stays where it was.
    const sums = new Float64Array(count * features);
    const mass = new Float64Array(count);
    for (let i = 0; i < rows; i++) {
      const c = assignment[i]!;
      mass[c]! += weight[i]!;
      for (let j = 0; j < features; j++) sums[c * features + j]! += weight[i]! * points[i * features + j]!;
    }
    for (let c = 0; c < count; c++) {
      if (mass[c] === 0) continue;
      for (let j = 0; j < features; j++) centres[c * features + j] = sums[c * features + j]! / mass[c]!;
    }
  }
  // Distances to the final centres (the loop may have stopped on its iteration limit after moving them).
  for (let i = 0; i < rows; i++) {
    const [best, d] = nearest(points, i, centres, count, features);
    assignment[i] = best;
    distance[i] = d;
  }
  const representative = new Int32Array(count).fill(-1);
  const mass = new Float64Array(count);
  for (let i = 0; i < rows; i++) {
    const c = assignment[i]!;
    mass[c]! += weight[i]!;
    const r = representative[c]!;
    if (r === -1 || distance[i]! < distance[r]!) representative[c] = i;
  }
  const kept = [...representative.keys()].filter((c) => representative[c]! !== -1);
  const out = new Float32Array(kept.length * features);
  kept.forEach((c, i) => {
    const row = representative[c]!;
    out.set(data.subarray(row * features, (row + 1) * features), i * features);
  });
  return weightedBackground(
    out,
    kept.length,
    features,
    kept.map((c) => mass[c]!),
  );
}

/**
 * A background of at most `options.size` rows (default {@link DEFAULT_BACKGROUND_SIZE}) standing for a
 * larger one, by weighted k-means (default; the input weights count) or by a seeded sample (sampled rows
 * keep their relative weights). A background no larger than the size is returned as it is.
 */
export function summariseBackground(background: Background, options: SummaryOptions = {}): Background {
  const size = options.size ?? DEFAULT_BACKGROUND_SIZE;
  checkSize(size);
  const { data, rows, features, weights } = background;
  if (rows <= size) return background;
  if (options.method === "sample") {
    const sample = sampleRows(rows, size, options.seed ?? 0);
    const out = new Float32Array(size * features);
    sample.forEach((row, i) => {
      out.set(data.subarray(row * features, (row + 1) * features), i * features);
    });
    return weightedBackground(
      out,
      size,
      features,
      Array.from(sample, (row) => weights[row]!),
    );
  }
  return kmeansBackground(data, rows, features, size, { seed: options.seed ?? 0, weights });
}

/** Weighted mean of `values` under a background's weights. */
export function weightedMean(values: ArrayLike<number>, weights: Float64Array): number {
  let sum = 0;
  for (let i = 0; i < weights.length; i++) sum += weights[i]! * values[i]!;
  return sum;
}

function checkShape(data: Float32Array, rows: number, features: number): void {
  if (!Number.isInteger(rows) || rows < 1) throw new RangeError(`need at least one row, got ${rows}`);
  if (!Number.isInteger(features) || features < 1) {
    throw new RangeError(`need at least one feature, got ${features}`);
  }
  if (data.length < rows * features) {
    throw new RangeError(
      `${rows} rows of ${features} features need ${rows * features} values, got ${data.length}`,
    );
  }
}

function checkSize(size: number): void {
  if (!Number.isInteger(size) || size < 1)
    throw new RangeError(`summary size must be an integer >= 1, got ${size}`);
}

/** Columns centred and scaled to unit (weighted) standard deviation, missing values at 0 (the mean). */
function standardise(data: Float32Array, rows: number, features: number, weight: Float64Array): Float64Array {
  const out = new Float64Array(rows * features);
  for (let j = 0; j < features; j++) {
    let mass = 0;
    let sum = 0;
    for (let i = 0; i < rows; i++) {
      const v = data[i * features + j]!;
      if (!Number.isNaN(v)) {
        mass += weight[i]!;
        sum += weight[i]! * v;
      }
    }
    const mean = mass > 0 ? sum / mass : 0;
    let square = 0;
    for (let i = 0; i < rows; i++) {
      const v = data[i * features + j]!;
      if (!Number.isNaN(v)) square += weight[i]! * (v - mean) ** 2;
    }
    const sd = mass > 0 ? Math.sqrt(square / mass) : 0;
    // A constant column separates nothing: leave it at 0 rather than divide by 0.
    const scale = sd > 0 ? 1 / sd : 0;
    for (let i = 0; i < rows; i++) {
      const v = data[i * features + j]!;
      out[i * features + j] = Number.isNaN(v) ? 0 : (v - mean) * scale;
    }
  }
  return out;
}

function squaredDistance(
  a: Float64Array,
  rowA: number,
  b: Float64Array,
  rowB: number,
  features: number,
): number {
  let d = 0;
  for (let j = 0; j < features; j++) {
    const diff = a[rowA * features + j]! - b[rowB * features + j]!;
    d += diff * diff;
  }
  return d;
}

function nearest(
  points: Float64Array,
  i: number,
  centres: Float64Array,
  count: number,
  features: number,
): [number, number] {
  let best = 0;
  let bestDistance = Number.POSITIVE_INFINITY;
  for (let c = 0; c < count; c++) {
    const d = squaredDistance(points, i, centres, c, features);
    if (d < bestDistance) {
      bestDistance = d;
      best = c;
    }
  }
  return [best, bestDistance];
}

/**
 * k-means++ seeding: the first centre drawn by weight, each next one with probability proportional to
 * weight × squared distance to the nearest centre so far. Stops early when every row sits on a centre.
 */
function kmeansPlusPlus(
  points: Float64Array,
  rows: number,
  features: number,
  k: number,
  weight: Float64Array,
  random: { next(): number },
): Float64Array {
  const chosen: number[] = [];
  const closest = new Float64Array(rows).fill(Number.POSITIVE_INFINITY);
  const draw = (mass: (i: number) => number, total: number): number => {
    let target = random.next() * total;
    for (let i = 0; i < rows; i++) {
      const m = mass(i);
      if (m <= 0) continue;
      target -= m;
      if (target < 0) return i;
    }
    // Rounding can leave a sliver of `target`: take the last row with any mass.
    for (let i = rows - 1; i >= 0; i--) if (mass(i) > 0) return i;
    return -1;
  };
  let next = draw((i) => weight[i]!, 1);
  while (next !== -1 && chosen.length < k) {
    chosen.push(next);
    let total = 0;
    for (let i = 0; i < rows; i++) {
      const d = squaredDistance(points, i, points, next, features);
      if (d < closest[i]!) closest[i] = d;
      total += weight[i]! * closest[i]!;
    }
    if (!(total > 0)) break;
    next = draw((i) => weight[i]! * closest[i]!, total);
  }
  const centres = new Float64Array(chosen.length * features);
  chosen.forEach((row, c) => {
    centres.set(points.subarray(row * features, (row + 1) * features), c * features);
  });
  return centres;
}
