/**
 * LIME for tabular data (Ribeiro, Singh and Guestrin, "Why should I trust you?", KDD 2016), with the
 * defaults of the reference implementation's LimeTabularExplainer:
 *
 * - numeric features are cut at their training quartiles (duplicate cut points merged), categorical ones
 *   kept as categories;
 * - 5,000 perturbed samples: each feature's bin or category drawn by its training frequency, numeric values
 *   then drawn from a normal with the bin's training mean and standard deviation, truncated to the bin;
 * - the interpretable representation is binary: 1 where a sample falls in x's bin (or category);
 * - samples are weighted by the kernel √exp(−d²/w²), d the Euclidean distance to x in that representation
 *   and w = 0.75 √M (M the number of features);
 * - a ridge regression (alpha 1, unpenalised intercept) of the model's output on the binary
 *   representation gives one weight per feature: how much the output moves when the feature leaves x's bin
 *   for a typical one, in the scorer's output units.
 *
 * Missing values (NaN) are a bin or category of their own, drawn with their training frequency and sent to
 * the model as NaN. All randomness comes from a seed. Since a LIME explanation changes with the seed, the
 * explainer also reports how stable its top reasons are across seeds.
 */
import { predictRow, weightedR2, weightedRidge } from "./linalg.js";
import { type Random, seededRandom } from "./random.js";
import { DEFAULT_MAX_ROWS_PER_CALL, type Scorer, scoreRows } from "./shapley.js";

/** Training (or background) rows LIME takes its statistics from: row-major float32 in the model's encoding. */
export interface LimeTrainingData {
  readonly data: Float32Array;
  readonly rows: number;
  readonly features: number;
}

/** Options of {@link createLimeExplainer}. */
export interface LimeOptions {
  /** Columns that are categories (category codes, booleans): kept as they are, never cut into quartiles. */
  readonly categorical?: readonly number[];
  /** Perturbed samples per explanation, x itself included (default 5,000). */
  readonly samples?: number;
  /** Kernel width in the binary representation (default 0.75 √M). */
  readonly kernelWidth?: number;
  /** Ridge penalty (default 1). */
  readonly alpha?: number;
  /** Most rows per scorer call (default 2^18). */
  readonly maxRowsPerCall?: number;
}

/** Options of one explanation. */
export interface LimeExplainOptions {
  /** Seed of the explanation (default 0); stability runs use the following seeds. */
  readonly seed?: number;
  /** Explanations behind the stability figure, this one included (default 10; 1 skips it). */
  readonly runs?: number;
  /** Size of the top set the stability figure compares (default 4). */
  readonly topK?: number;
}

/** x's bin of one feature: a half-open range `lower < x ≤ upper` (±Infinity at the ends), a category, or missing. */
export type LimeCondition =
  | { readonly kind: "range"; readonly lower: number; readonly upper: number }
  | { readonly kind: "category"; readonly value: number }
  | { readonly kind: "missing" };

/** A local linear surrogate around one row. */
export interface LimeExplanation {
  /** One weight per feature: the output's change when the feature is in x's bin rather than another. */
  readonly weights: Float64Array;
  readonly intercept: number;
  /** The surrogate at x (every feature in x's bin): intercept + Σ weights. */
  readonly localPrediction: number;
  /** The model's output at x. */
  readonly prediction: number;
  /** Weighted R² of the surrogate over the samples (scikit-learn's `score`): how linear the model is there. */
  readonly score: number;
  /** x's bin of each feature, what a weight refers to. */
  readonly conditions: readonly LimeCondition[];
  readonly seed: number;
}

/** How much the top reasons move when only the seed changes. */
export interface LimeStability {
  /** Explanations compared (seeds seed … seed + runs − 1). */
  readonly runs: number;
  /** Size of the compared top sets (features with the largest |weight|). */
  readonly k: number;
  /** Fraction of pairs of runs whose top-k feature sets differ (0: always the same set). */
  readonly changedPairs: number;
  /** Mean Jaccard similarity |A ∩ B| / |A ∪ B| of the top-k sets over all pairs of runs (1: identical). */
  readonly meanJaccard: number;
  /** Per feature, the fraction of runs that put it in the top k. */
  readonly topKFrequency: Float64Array;
}

/** An explanation and the stability of its top reasons over the following seeds. */
export interface LimeResult {
  readonly explanation: LimeExplanation;
  readonly stability: LimeStability;
}

/** LIME's statistics of the training data, ready to explain rows. */
export interface LimeExplainer {
  /** The discretisation of each feature. */
  readonly bins: readonly FeatureBins[];
  /** Explain one row (the model's encoding): one scorer call covers every stability run. */
  explain(x: Float32Array, options?: LimeExplainOptions): Promise<LimeResult>;
}

/** One feature's bins (quartiles or categories) and the training statistics LIME samples from. */
export interface FeatureBins {
  readonly kind: "quartiles" | "categories";
  /** Quartile cut points, increasing, duplicates merged (quartiles only). */
  readonly boundaries: readonly number[];
  /** The category codes, increasing (categories only). */
  readonly categories: readonly number[];
  /** Training frequency of each bin; the last entry is the missing-value bin. */
  readonly frequency: Float64Array;
  /** Per numeric bin: mean and population standard deviation of the training values in it. */
  readonly mean: Float64Array;
  readonly std: Float64Array;
  /** Per numeric bin: its edges, the outer ones at the training minimum and maximum. */
  readonly lower: Float64Array;
  readonly upper: Float64Array;
}

/** numpy's `percentile(values, q)` with its default linear interpolation, on increasingly sorted values. */
export function percentile(sorted: ArrayLike<number>, q: number): number {
  const position = ((sorted.length - 1) * q) / 100;
  const below = Math.floor(position);
  const t = position - below;
  const a = sorted[below]!;
  const b = sorted[Math.min(below + 1, sorted.length - 1)]!;
  // numpy interpolates from the nearer end, so the result is exact at both ends: a + (b − a)t for t < ½.
  return t >= 0.5 ? b - (b - a) * (1 - t) : a + (b - a) * t;
}

/**
 * The quartile cut points of the present (non-NaN) values with duplicates merged, as numpy's
 * `unique(percentile(values, [25, 50, 75]))`. Empty when every value is missing.
 */
export function quartileBoundaries(values: ArrayLike<number>): number[] {
  const kept: number[] = [];
  for (let i = 0; i < values.length; i++) if (!Number.isNaN(values[i]!)) kept.push(values[i]!);
  const present = Float64Array.from(kept);
  if (present.length === 0) return [];
  present.sort();
  const cuts = [25, 50, 75].map((q) => percentile(present, q));
  return cuts.filter((c, i) => i === 0 || c !== cuts[i - 1]);
}

/**
 * The bin of `value` among `boundaries`: the number of cut points strictly below it (numpy's
 * `searchsorted(boundaries, value, side="left")`), so a value equal to a cut point falls in the lower bin.
 * NaN gets `boundaries.length + 1`, the missing-value bin.
 */
export function binOf(boundaries: readonly number[], value: number): number {
  if (Number.isNaN(value)) return boundaries.length + 1;
  let bin = 0;
  while (bin < boundaries.length && boundaries[bin]! < value) bin++;
  return bin;
}

/** The discretisation LIME uses for a numeric column: quartile bins with their training statistics. */
export function quartileBins(values: ArrayLike<number>): FeatureBins {
  const boundaries = quartileBoundaries(values);
  const count = boundaries.length + 2;
  const frequency = new Float64Array(count);
  const sum = new Float64Array(count);
  const mean = new Float64Array(count);
  const std = new Float64Array(count);
  let min = Number.POSITIVE_INFINITY;
  let max = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    const bin = binOf(boundaries, v);
    frequency[bin]! += 1;
    if (Number.isNaN(v)) continue;
    sum[bin]! += v;
    min = Math.min(min, v);
    max = Math.max(max, v);
  }
  for (let b = 0; b < count - 1; b++) mean[b] = frequency[b]! > 0 ? sum[b]! / frequency[b]! : 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (Number.isNaN(v)) continue;
    const bin = binOf(boundaries, v);
    std[bin]! += (v - mean[bin]!) ** 2;
  }
  for (let b = 0; b < count - 1; b++) std[b] = frequency[b]! > 0 ? Math.sqrt(std[b]! / frequency[b]!) : 0;
  for (let b = 0; b < count; b++) frequency[b]! /= values.length;
  const lower = Float64Array.from({ length: count - 1 }, (_, b) => (b === 0 ? min : boundaries[b - 1]!));
  const upper = Float64Array.from({ length: count - 1 }, (_, b) => (b === count - 2 ? max : boundaries[b]!));
  return { kind: "quartiles", boundaries, categories: [], frequency, mean, std, lower, upper };
}

/** The categories of a categorical column and their training frequencies (missing last). */
export function categoryBins(values: ArrayLike<number>): FeatureBins {
  const counts = new Map<number, number>();
  let missing = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (Number.isNaN(v)) missing++;
    else counts.set(v, (counts.get(v) ?? 0) + 1);
  }
  const categories = [...counts.keys()].sort((a, b) => a - b);
  const frequency = Float64Array.from(
    [...categories.map((c) => counts.get(c)!), missing],
    (n) => n / values.length,
  );
  const none = new Float64Array(0);
  return {
    kind: "categories",
    boundaries: [],
    categories,
    frequency,
    mean: none,
    std: none,
    lower: none,
    upper: none,
  };
}

/**
 * Prepare LIME for the model behind `scorer` (one output per row) with statistics from `training`.
 *
 * @example
 * const lime = createLimeExplainer(scorer, { data: holdout, rows: 891, features: 11 }, { categorical: [1, 4, 5] });
 * const { explanation, stability } = await lime.explain(row, { seed: 1 });
 */
export function createLimeExplainer(
  scorer: Scorer,
  training: LimeTrainingData,
  options: LimeOptions = {},
): LimeExplainer {
  const { data, rows, features: m } = training;
  if (!Number.isInteger(rows) || rows < 1 || !Number.isInteger(m) || m < 1 || data.length < rows * m) {
    throw new RangeError(
      `training data: ${rows} rows of ${m} features need ${rows * m} values, got ${data.length}`,
    );
  }
  const categorical = new Set(options.categorical ?? []);
  for (const j of categorical) {
    if (!Number.isInteger(j) || j < 0 || j >= m)
      throw new RangeError(`categorical column ${j} is not a column`);
  }
  const samples = options.samples ?? 5000;
  if (!Number.isInteger(samples) || samples < 2)
    throw new RangeError(`samples must be an integer >= 2, got ${samples}`);
  const width = options.kernelWidth ?? 0.75 * Math.sqrt(m);
  const alpha = options.alpha ?? 1;
  const maxRowsPerCall = options.maxRowsPerCall ?? DEFAULT_MAX_ROWS_PER_CALL;
  const bins = Array.from({ length: m }, (_, j) => {
    const column = Float64Array.from({ length: rows }, (_, i) => data[i * m + j]!);
    return categorical.has(j) ? categoryBins(column) : quartileBins(column);
  });
  // The kernel depends only on how many features leave x's bin: tabulate it.
  const kernel = Float64Array.from({ length: m + 1 }, (_, d) => Math.sqrt(Math.exp(-d / (width * width))));

  return Object.freeze({
    bins,
    async explain(x: Float32Array, explainOptions: LimeExplainOptions = {}): Promise<LimeResult> {
      if (x.length !== m)
        throw new RangeError(`the row has ${x.length} values, the training data ${m} features`);
      const seed = explainOptions.seed ?? 0;
      const runs = explainOptions.runs ?? 10;
      const k = Math.min(explainOptions.topK ?? 4, m);
      if (!Number.isInteger(runs) || runs < 1)
        throw new RangeError(`runs must be an integer >= 1, got ${runs}`);
      if (!Number.isInteger(k) || k < 1) throw new RangeError(`topK must be an integer >= 1, got ${k}`);
      const own = bins.map((b, j) => ownBin(b, x[j]!));
      // Every run's samples go to the scorer together: runs × samples rows, in as few calls as allowed.
      const input = new Float32Array(runs * samples * m);
      const binary = new Uint8Array(runs * samples * m);
      for (let run = 0; run < runs; run++) {
        const offset = run * samples;
        perturb(
          bins,
          own,
          x,
          samples,
          seededRandom(seed + run),
          input.subarray(offset * m),
          binary.subarray(offset * m),
        );
      }
      const scores = new Float64Array(runs * samples);
      const perCall = Math.max(1, maxRowsPerCall);
      for (let first = 0; first < runs * samples; first += perCall) {
        const count = Math.min(perCall, runs * samples - first);
        scores.set(await scoreRows(scorer, input.subarray(first * m, (first + count) * m), count), first);
      }
      const explanations = Array.from({ length: runs }, (_, run) => {
        const offset = run * samples;
        return surrogate(
          binary.subarray(offset * m, (offset + samples) * m),
          scores.subarray(offset, offset + samples),
          samples,
          m,
          kernel,
          alpha,
        );
      });
      const first = explanations[0]!;
      const explanation: LimeExplanation = {
        ...first,
        prediction: scores[0]!,
        conditions: bins.map((b, j) => conditionOf(b, own[j]!, x[j]!)),
        seed,
      };
      return {
        explanation,
        stability: stabilityOf(
          explanations.map((e) => e.weights),
          k,
        ),
      };
    },
  });
}

/** x's bin (quartiles) or category index (categories); −1 for a category never seen in training. */
function ownBin(bins: FeatureBins, value: number): number {
  if (bins.kind === "quartiles") return binOf(bins.boundaries, value);
  if (Number.isNaN(value)) return bins.categories.length;
  return bins.categories.indexOf(value);
}

function conditionOf(bins: FeatureBins, bin: number, value: number): LimeCondition {
  if (Number.isNaN(value)) return { kind: "missing" };
  if (bins.kind === "categories") return { kind: "category", value };
  const last = bins.boundaries.length;
  return {
    kind: "range",
    lower: bin === 0 ? Number.NEGATIVE_INFINITY : bins.boundaries[bin - 1]!,
    upper: bin === last ? Number.POSITIVE_INFINITY : bins.boundaries[bin]!,
  };
}

/**
 * Fill `input` (samples × M) with perturbed rows and `binary` with their same-bin-as-x representation; row 0
 * is x itself. Bins are drawn by training frequency, numeric values within their bin.
 */
function perturb(
  bins: readonly FeatureBins[],
  own: readonly number[],
  x: Float32Array,
  samples: number,
  random: Random,
  input: Float32Array,
  binary: Uint8Array,
): void {
  const m = bins.length;
  input.set(x, 0);
  binary.fill(1, 0, m);
  for (let j = 0; j < m; j++) {
    const feature = bins[j]!;
    const cumulative = new Float64Array(feature.frequency.length);
    let total = 0;
    feature.frequency.forEach((f, b) => {
      total += f;
      cumulative[b] = total;
    });
    const missingBin = feature.frequency.length - 1;
    for (let i = 1; i < samples; i++) {
      const target = random.next() * total;
      let bin = 0;
      while (bin < missingBin && !(target < cumulative[bin]!)) bin++;
      // Rounding can leave the target at the very top: take the last bin with any mass.
      while (feature.frequency[bin] === 0 && bin > 0) bin--;
      binary[i * m + j] = bin === own[j] ? 1 : 0;
      input[i * m + j] =
        bin === missingBin
          ? Number.NaN
          : feature.kind === "categories"
            ? feature.categories[bin]!
            : truncatedNormal(
                random,
                feature.mean[bin]!,
                feature.std[bin]!,
                feature.lower[bin]!,
                feature.upper[bin]!,
              );
    }
  }
}

/**
 * A normal(mean, std) value truncated to [lower, upper], by rejection. The bin's training values lie in the
 * interval and have this mean and standard deviation, so the interval spans at least two standard
 * deviations and contains the mean: a draw is accepted with probability ≥ 0.47, and 100 failures in a row
 * (probability below 1e-27) fall back to a uniform draw.
 */
function truncatedNormal(random: Random, mean: number, std: number, lower: number, upper: number): number {
  if (!(std > 0) || !(upper > lower)) return mean;
  for (let attempt = 0; attempt < 100; attempt++) {
    const v = mean + std * random.normal();
    if (v >= lower && v <= upper) return v;
  }
  return lower + (upper - lower) * random.next();
}

/** The kernel-weighted ridge fit of one run. */
function surrogate(
  binary: Uint8Array,
  scores: Float64Array,
  samples: number,
  m: number,
  kernel: Float64Array,
  alpha: number,
): Pick<LimeExplanation, "weights" | "intercept" | "localPrediction" | "score"> {
  const design = Float64Array.from(binary);
  const weights = new Float64Array(samples);
  for (let i = 0; i < samples; i++) {
    let changed = 0;
    for (let j = 0; j < m; j++) changed += 1 - binary[i * m + j]!;
    weights[i] = kernel[changed]!;
  }
  const fit = weightedRidge(design, samples, m, scores, weights, alpha);
  const predicted = Float64Array.from({ length: samples }, (_, i) => predictRow(fit, design, i));
  return {
    weights: fit.coef,
    intercept: fit.intercept,
    localPrediction: predictRow(fit, design, 0),
    score: weightedR2(scores, predicted, weights),
  };
}

/** The k features with the largest |weight| (ties to the lower index). */
export function topFeatures(weights: ArrayLike<number>, k: number): number[] {
  return Array.from({ length: weights.length }, (_, j) => j)
    .sort((a, b) => Math.abs(weights[b]!) - Math.abs(weights[a]!) || a - b)
    .slice(0, k);
}

/** Agreement of the top-k sets of several runs' weights. */
export function stabilityOf(runs: readonly ArrayLike<number>[], k: number): LimeStability {
  const m = runs[0]?.length ?? 0;
  const sets = runs.map((w) => new Set(topFeatures(w, k)));
  const topKFrequency = new Float64Array(m);
  for (const set of sets) for (const j of set) topKFrequency[j]! += 1;
  for (let j = 0; j < m; j++) topKFrequency[j]! /= runs.length;
  let pairs = 0;
  let changed = 0;
  let jaccard = 0;
  for (let a = 0; a < sets.length; a++) {
    for (let b = a + 1; b < sets.length; b++) {
      const shared = [...sets[a]!].filter((j) => sets[b]!.has(j)).length;
      const union = sets[a]!.size + sets[b]!.size - shared;
      pairs++;
      if (shared !== sets[a]!.size || shared !== sets[b]!.size) changed++;
      jaccard += union === 0 ? 1 : shared / union;
    }
  }
  return {
    runs: runs.length,
    k,
    changedPairs: pairs === 0 ? 0 : changed / pairs,
    meanJaccard: pairs === 0 ? 1 : jaccard / pairs,
    topKFrequency,
  };
}
