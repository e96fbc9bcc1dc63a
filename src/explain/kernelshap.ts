/**
 * KernelSHAP (Lundberg and Lee, "A unified approach to interpreting model predictions", NeurIPS 2017):
 * model-agnostic Shapley values of the interventional game v(S) = Σ_b w_b f(x_S, b_rest), estimated by a
 * weighted linear regression of v over coalitions with the Shapley kernel
 *
 *   π(S) = (M − 1) / (C(M, |S|) · |S| · (M − |S|)).
 *
 * With every coalition included, the regression's solution is exactly the Shapley values; with a budget it
 * is the usual sampled estimate. The design follows the KernelExplainer of the shap package: coalition
 * sizes are taken in pairs (s, M − s) from the outside in, since the kernel puts most of its mass on the
 * smallest and largest coalitions; a pair whose share of the remaining budget covers all its coalitions is
 * enumerated in full with its exact kernel weights, and the budget left after the first pair that does not
 * fit is spent on random coalitions of the remaining sizes, each drawn with its complement (paired
 * sampling, which cancels the even-order error terms). The random coalitions share the kernel mass of the
 * sizes they stand for in proportion to how often they were drawn.
 *
 * Features whose value in x equals the value in every background row (missing counting as equal to
 * missing) cannot change any coalition's value: they get exactly 0 and are left out of the regression.
 * The efficiency constraint Σφ = f(x) − E[f] is substituted into the regression (one feature's value is
 * expressed through the others), so the values add up exactly, not approximately.
 */
import { type Background, type SummaryOptions, summariseBackground } from "./background.js";
import { weightedLeastSquares } from "./linalg.js";
import { type Random, seededRandom } from "./random.js";
import { binomial, DEFAULT_MAX_ROWS_PER_CALL, type Scorer, scoreRows } from "./shapley.js";
import type { Attribution } from "./types.js";

/** Options of one explanation. */
export interface KernelShapOptions {
  /** Coalitions evaluated per row (default 2M + 2048, M = the features that vary; at most 2^M − 2). */
  readonly nsamples?: number;
  /** Seed of the coalition sampling (default 0). The same seed gives the same values. */
  readonly seed?: number;
  /** Most rows per scorer call (default 2^18); a row's coalitions are split across calls above it. */
  readonly maxRowsPerCall?: number;
}

/** Options of {@link createKernelExplainer}; the {@link KernelShapOptions} are defaults for every `explain`. */
export interface KernelExplainerOptions extends KernelShapOptions {
  /**
   * How a background larger than `summary.size` (default 50, `DEFAULT_BACKGROUND_SIZE`) is shrunk first:
   * weighted k-means by default. Every explained row costs (coalitions × background rows) evaluations.
   */
  readonly summary?: SummaryOptions;
}

/** A KernelSHAP explanation of one row and how it was reached. */
export interface KernelShapAttribution extends Attribution {
  /** f(x), the explained output: base + Σ values. */
  readonly prediction: number;
  /** Distinct coalitions evaluated. */
  readonly coalitions: number;
  /** True when every coalition was evaluated: the values are then the exact Shapley values. */
  readonly exhaustive: boolean;
}

/** A model and background ready to explain rows. */
export interface KernelExplainer {
  /** The (summarised) background the values are relative to. */
  readonly background: Background;
  /** E[f] over the background: every explanation's `base`. */
  readonly base: number;
  /** Explain `rows` rows of `input` (row-major, the model's encoding): one scorer call per row, or a few. */
  explain(input: Float32Array, rows: number, options?: KernelShapOptions): Promise<KernelShapAttribution[]>;
}

/**
 * Prepare KernelSHAP for the model behind `scorer` (one output per row, e.g. a margin or a probability)
 * against `background`, summarised first when larger than the summary size. Scores the background once.
 *
 * @example
 * const explainer = await createKernelExplainer(scorer, weightedBackground(holdout, 891, 11));
 * const [attribution] = await explainer.explain(row, 1, { seed: 7 });
 */
export async function createKernelExplainer(
  scorer: Scorer,
  background: Background,
  options: KernelExplainerOptions = {},
): Promise<KernelExplainer> {
  const summary = summariseBackground(background, options.summary);
  const scores = await scoreRows(
    scorer,
    summary.data.slice(0, summary.rows * summary.features),
    summary.rows,
  );
  let base = 0;
  for (let b = 0; b < summary.rows; b++) base += summary.weights[b]! * scores[b]!;
  return Object.freeze({
    background: summary,
    base,
    async explain(input: Float32Array, rows: number, overrides: KernelShapOptions = {}) {
      const m = summary.features;
      if (!Number.isInteger(rows) || rows < 0 || input.length < rows * m) {
        throw new RangeError(`${rows} rows of ${m} features need ${rows * m} values, got ${input.length}`);
      }
      const settings = { ...options, ...overrides };
      const designs = new Map<number, CoalitionDesign>();
      const out: KernelShapAttribution[] = [];
      for (let row = 0; row < rows; row++) {
        const x = input.subarray(row * m, (row + 1) * m);
        const varying = varyingFeatures(x, summary);
        let design = designs.get(varying.length);
        if (design === undefined) {
          // One design per number of varying features, drawn from the seed alone: a row's values do not
          // depend on which other rows are explained with it.
          design = coalitionDesign(varying.length, settings.nsamples, seededRandom(settings.seed ?? 0));
          designs.set(varying.length, design);
        }
        out.push(await explainRow(scorer, x, summary, base, varying, design, settings.maxRowsPerCall));
      }
      return out;
    },
  });
}

/**
 * KernelSHAP values of `rows` rows in one go: {@link createKernelExplainer} then `explain`. Prefer the
 * explainer when explaining repeatedly, so the background is summarised and scored once.
 */
export async function kernelShap(
  scorer: Scorer,
  input: Float32Array,
  rows: number,
  background: Background,
  options: KernelExplainerOptions = {},
): Promise<KernelShapAttribution[]> {
  const explainer = await createKernelExplainer(scorer, background, options);
  return explainer.explain(input, rows);
}

/** Coalitions to evaluate over M players: `masks` is `count × players` zeros and ones. */
export interface CoalitionDesign {
  readonly players: number;
  readonly count: number;
  readonly masks: Uint8Array;
  /** Regression weight of each coalition (their sum is 1). */
  readonly weights: Float64Array;
  readonly exhaustive: boolean;
}

/** Features of x whose value differs from at least one background row's (NaN equals NaN here). */
export function varyingFeatures(x: ArrayLike<number>, background: Background): number[] {
  const { data, rows, features } = background;
  const varying: number[] = [];
  for (let j = 0; j < features; j++) {
    const v = x[j]!;
    for (let b = 0; b < rows; b++) {
      const u = data[b * features + j]!;
      if (u !== v && !(Number.isNaN(u) && Number.isNaN(v))) {
        varying.push(j);
        break;
      }
    }
  }
  return varying;
}

/**
 * The coalitions KernelSHAP evaluates over `players` players and their kernel weights: whole coalition
 * sizes while the budget covers them, then paired random coalitions (see the module comment).
 *
 * @param nsamples budget of coalitions (default 2·players + 2048), capped at the 2^players − 2 that exist.
 */
export function coalitionDesign(
  players: number,
  nsamples: number | undefined,
  random: Random,
): CoalitionDesign {
  const budgetWanted = nsamples ?? 2 * players + 2048;
  if (!Number.isInteger(budgetWanted) || budgetWanted < 1) {
    throw new RangeError(`nsamples must be an integer >= 1, got ${budgetWanted}`);
  }
  if (players < 2)
    return { players, count: 0, masks: new Uint8Array(0), weights: new Float64Array(0), exhaustive: true };
  const existing = players < 53 ? 2 ** players - 2 : Number.POSITIVE_INFINITY;
  const budget = Math.min(budgetWanted, existing);
  // Pair p stands for the sizes p and M − p (one size when 2p = M); its kernel mass is the Shapley kernel
  // summed over its coalitions: (M − 1) / (s (M − s)) for each of its sizes.
  const pairs = Math.floor(players / 2);
  const mass = new Float64Array(pairs + 1);
  const members = new Float64Array(pairs + 1);
  let totalMass = 0;
  for (let p = 1; p <= pairs; p++) {
    const sizes = 2 * p === players ? 1 : 2;
    mass[p] = (sizes * (players - 1)) / (p * (players - p));
    members[p] = sizes * binomial(players, p);
    totalMass += mass[p]!;
  }
  for (let p = 1; p <= pairs; p++) mass[p]! /= totalMass;

  const masks: Uint8Array[] = [];
  const weights: number[] = [];
  let left = budget;
  let massLeft = 1;
  let p = 1;
  const exhaustive = budget === existing;
  for (; p <= pairs; p++) {
    // Enumerate the pair when its share of the remaining budget covers all of its coalitions (always, when
    // the budget covers every coalition).
    if (!exhaustive && left * (mass[p]! / massLeft) < members[p]! - 1e-8) break;
    const each = mass[p]! / members[p]!;
    forEachSubset(players, p, (mask) => {
      masks.push(mask);
      weights.push(each);
      if (2 * p !== players) {
        masks.push(complement(mask));
        weights.push(each);
      }
    });
    left -= members[p]!;
    massLeft -= mass[p]!;
  }
  if (p <= pairs && left > 0) {
    const firstSampled = p;
    const drawn = new Map<string, number>();
    const sampled: Uint8Array[] = [];
    const counts: number[] = [];
    const add = (mask: Uint8Array) => {
      const key = mask.join("");
      const index = drawn.get(key);
      if (index !== undefined) counts[index]! += 1;
      else if (sampled.length < left) {
        drawn.set(key, sampled.length);
        sampled.push(mask);
        counts.push(1);
      }
    };
    const order = Int32Array.from({ length: players }, (_, i) => i);
    // Enough draws to fill the budget many times over; the cap only matters when the unenumerated sizes hold
    // barely more coalitions than the budget left and drawing them all would take a coupon collector's time.
    const maxDraws = 50 * left + 1000;
    for (let draw = 0; draw < maxDraws && sampled.length < left; draw++) {
      let target = random.next() * massLeft;
      let pair = pairs;
      for (let q = firstSampled; q <= pairs; q++) {
        target -= mass[q]!;
        if (target < 0) {
          pair = q;
          break;
        }
      }
      // A uniform subset of size `pair`: the first `pair` entries of a partial shuffle.
      const mask = new Uint8Array(players);
      for (let i = 0; i < pair; i++) {
        const j = i + random.int(players - i);
        const t = order[i]!;
        order[i] = order[j]!;
        order[j] = t;
        mask[order[i]!] = 1;
      }
      // A pair of unequal sizes is drawn at either size with equal chance; the complement always follows.
      const first = 2 * pair !== players && random.next() < 0.5 ? complement(mask) : mask;
      add(first);
      add(complement(first));
    }
    const drawnTotal = counts.reduce((s, c) => s + c, 0);
    sampled.forEach((mask, i) => {
      masks.push(mask);
      weights.push((massLeft * counts[i]!) / drawnTotal);
    });
  }
  const count = masks.length;
  const flat = new Uint8Array(count * players);
  masks.forEach((mask, k) => {
    flat.set(mask, k * players);
  });
  return { players, count, masks: flat, weights: Float64Array.from(weights), exhaustive };
}

/** Call `visit` with every subset of size `size` of `players` players, as a 0/1 mask, in lexicographic order. */
function forEachSubset(players: number, size: number, visit: (mask: Uint8Array) => void): void {
  const chosen = Int32Array.from({ length: size }, (_, i) => i);
  for (;;) {
    const mask = new Uint8Array(players);
    for (const i of chosen) mask[i] = 1;
    visit(mask);
    let k = size - 1;
    while (k >= 0 && chosen[k] === players - size + k) k--;
    if (k < 0) return;
    chosen[k]!++;
    for (let i = k + 1; i < size; i++) chosen[i] = chosen[i - 1]! + 1;
  }
}

function complement(mask: Uint8Array): Uint8Array {
  return mask.map((v) => 1 - v);
}

async function explainRow(
  scorer: Scorer,
  x: Float32Array,
  background: Background,
  base: number,
  varying: readonly number[],
  design: CoalitionDesign,
  maxRowsPerCall = DEFAULT_MAX_ROWS_PER_CALL,
): Promise<KernelShapAttribution> {
  const m = background.features;
  const n = background.rows;
  const k = design.count;
  const values = new Float64Array(m);
  // Coalition values v(z) = Σ_b w_b f(x_z, b_rest), plus f(x) as one extra row at the end.
  const coalitionValue = new Float64Array(k);
  const perCall = Math.max(1, Math.floor((maxRowsPerCall - 1) / n));
  let prediction = Number.NaN;
  for (let first = 0; first < k || first === 0; first += perCall) {
    const last = Math.min(k, first + perCall);
    const withX = last === k;
    const rows = (last - first) * n + (withX ? 1 : 0);
    const input = new Float32Array(rows * m);
    for (let c = first; c < last; c++) {
      const offset = (c - first) * n * m;
      input.set(background.data.subarray(0, n * m), offset);
      for (let v = 0; v < varying.length; v++) {
        if (design.masks[c * design.players + v] === 0) continue;
        const j = varying[v]!;
        const value = x[j]!;
        for (let b = 0; b < n; b++) input[offset + b * m + j] = value;
      }
    }
    if (withX) input.set(x, (rows - 1) * m);
    const scores = await scoreRows(scorer, input, rows);
    for (let c = first; c < last; c++) {
      let sum = 0;
      const offset = (c - first) * n;
      for (let b = 0; b < n; b++) sum += background.weights[b]! * scores[offset + b]!;
      coalitionValue[c] = sum;
    }
    if (withX) prediction = scores[rows - 1]!;
  }
  const total = prediction - base;
  const players = varying.length;
  if (players === 1) values[varying[0]!] = total;
  if (players >= 2) {
    // With φ_last = total − Σ_{i<last} φ_i substituted, each coalition z gives the equation
    // Σ_{i<last} (z_i − z_last) φ_i = v(z) − base − z_last · total.
    const unknowns = players - 1;
    const a = new Float64Array(k * unknowns);
    const y = new Float64Array(k);
    for (let c = 0; c < k; c++) {
      const zLast = design.masks[c * players + unknowns]!;
      for (let i = 0; i < unknowns; i++) a[c * unknowns + i] = design.masks[c * players + i]! - zLast;
      y[c] = coalitionValue[c]! - base - zLast * total;
    }
    const phi = weightedLeastSquares(a, k, unknowns, y, design.weights);
    let rest = total;
    for (let i = 0; i < unknowns; i++) {
      values[varying[i]!] = phi[i]!;
      rest -= phi[i]!;
    }
    values[varying[unknowns]!] = rest;
  }
  return { values, base, prediction, coalitions: k, exhaustive: design.exhaustive };
}
