/**
 * Exact Shapley values by enumerating every coalition: the brute-force reference the faster explainers are
 * checked against, and usable as an explainer itself for a handful of features.
 *
 * For players N = {0, …, M−1} and a value function v over coalitions S ⊆ N, player i receives
 *
 *   φ_i = Σ_{S ⊆ N∖{i}} |S|! (M − |S| − 1)! / M! · (v(S ∪ {i}) − v(S)),
 *
 * and the values add up to v(N) − v(∅) (efficiency). Coalitions are bit masks: bit i set means player i is
 * in. Cost is M · 2^M arithmetic operations plus 2^M evaluations of v.
 *
 * The interventional value function of a model f at a row x over a background set B is
 * v(S) = Σ_b w_b f(x_S, b_{N∖S}): features in S take x's values, the others the background row's, averaged
 * with the background's weights. Its Shapley values are what interventional TreeSHAP and KernelSHAP
 * estimate.
 */
import type { Background } from "./background.js";
import type { Attribution, BatchScorer, SyncBatchScorer } from "./types.js";

/** A model scorer, asynchronous (a worker thread) or in-thread. */
export type Scorer = BatchScorer | SyncBatchScorer;

/** Most players {@link exactShapley} enumerates: 2^20 coalitions already cost a million evaluations. */
export const MAX_EXACT_PLAYERS = 20;

/** Default cap on the rows handed to one scorer call by the model-based explainers. */
export const DEFAULT_MAX_ROWS_PER_CALL = 1 << 18;

/**
 * Shapley values from the value of every coalition: `values[mask]` is v of the coalition whose members are
 * the set bits of `mask` (length 2^players).
 */
export function shapleyFromCoalitions(players: number, values: Float64Array): Float64Array {
  checkPlayers(players);
  const size = 2 ** players;
  if (values.length !== size) throw new RangeError(`${players} players need ${size} coalition values`);
  // weight[s] = s! (M − s − 1)! / M! = 1 / (M · C(M − 1, s)).
  const weight = new Float64Array(players);
  for (let s = 0; s < players; s++) weight[s] = 1 / (players * binomial(players - 1, s));
  const phi = new Float64Array(players);
  for (let mask = 0; mask < size; mask++) {
    const w = weight[popcount(mask)]!;
    const base = values[mask]!;
    for (let i = 0; i < players; i++) {
      const bit = 1 << i;
      if ((mask & bit) === 0) phi[i]! += w * (values[mask | bit]! - base);
    }
  }
  return phi;
}

/**
 * Exact Shapley values of `players` players (at most {@link MAX_EXACT_PLAYERS}) for the value function
 * `value`, called once for each of the 2^players coalitions (a bit mask, bit i = player i is in).
 *
 * @example exactShapley(2, (s) => (s === 3 ? 1 : 0)) // [0.5, 0.5]: the two players share the joint gain
 */
export function exactShapley(players: number, value: (coalition: number) => number): Float64Array {
  checkPlayers(players);
  const values = new Float64Array(2 ** players);
  for (let mask = 0; mask < values.length; mask++) values[mask] = value(mask);
  return shapleyFromCoalitions(players, values);
}

/** Options of {@link interventionalCoalitionValues} and {@link exactInterventionalShapley}. */
export interface EnumerationOptions {
  /** Most rows per scorer call (default {@link DEFAULT_MAX_ROWS_PER_CALL}); whole coalitions per call. */
  readonly maxRowsPerCall?: number;
}

/**
 * The interventional value of every coalition of the model's features for the row `x`:
 * `values[mask] = Σ_b w_b f(x_S, b_rest)` with S the set bits of `mask`. Scores 2^M × background rows rows,
 * in calls of whole coalitions.
 */
export async function interventionalCoalitionValues(
  scorer: Scorer,
  x: Float32Array,
  background: Background,
  options: EnumerationOptions = {},
): Promise<Float64Array> {
  const m = background.features;
  if (x.length !== m) throw new RangeError(`the row has ${x.length} values, the background ${m} features`);
  checkPlayers(m);
  const coalitions = 2 ** m;
  const n = background.rows;
  const perCall = Math.max(1, Math.floor((options.maxRowsPerCall ?? DEFAULT_MAX_ROWS_PER_CALL) / n));
  const values = new Float64Array(coalitions);
  for (let first = 0; first < coalitions; first += perCall) {
    const last = Math.min(coalitions, first + perCall);
    const rows = (last - first) * n;
    const input = new Float32Array(rows * m);
    for (let mask = first; mask < last; mask++) {
      const offset = (mask - first) * n * m;
      input.set(background.data.subarray(0, n * m), offset);
      for (let j = 0; j < m; j++) {
        if ((mask & (1 << j)) === 0) continue;
        for (let b = 0; b < n; b++) input[offset + b * m + j] = x[j]!;
      }
    }
    const scores = await scoreRows(scorer, input, rows);
    for (let mask = first; mask < last; mask++) {
      let sum = 0;
      const offset = (mask - first) * n;
      for (let b = 0; b < n; b++) sum += background.weights[b]! * scores[offset + b]!;
      values[mask] = sum;
    }
  }
  return values;
}

/**
 * Exact interventional Shapley values of the model behind `scorer` at the row `x` (one value per feature,
 * in the scorer's output units) over `background`: `base` is the background's weighted mean output and
 * the values sum to f(x) − base. Cost: 2^M × background rows model evaluations, so keep M small (≤ ~14).
 */
export async function exactInterventionalShapley(
  scorer: Scorer,
  x: Float32Array,
  background: Background,
  options: EnumerationOptions = {},
): Promise<Attribution> {
  const values = await interventionalCoalitionValues(scorer, x, background, options);
  return { values: shapleyFromCoalitions(background.features, values), base: values[0]! };
}

/**
 * Call `scorer` and check it returned one finite-or-NaN number per row, so a scorer with the wrong output
 * shape fails loudly instead of producing silent garbage.
 */
export async function scoreRows(scorer: Scorer, input: Float32Array, rows: number): Promise<Float64Array> {
  const scores = await scorer(input, rows);
  if (scores.length !== rows) {
    throw new RangeError(
      `the scorer returned ${scores.length} numbers for ${rows} rows (one per row expected)`,
    );
  }
  return scores;
}

/** The binomial coefficient C(n, k) as a double (exact below 2^53). */
export function binomial(n: number, k: number): number {
  if (k < 0 || k > n) return 0;
  const j = Math.min(k, n - k);
  let c = 1;
  // Each partial product c · (n − j + i) / i is itself a binomial coefficient, so it stays an integer.
  for (let i = 1; i <= j; i++) c = (c * (n - j + i)) / i;
  return c;
}

/** Number of set bits of a 32-bit integer. */
export function popcount(mask: number): number {
  let v = mask - ((mask >>> 1) & 0x55555555);
  v = (v & 0x33333333) + ((v >>> 2) & 0x33333333);
  return (Math.imul((v + (v >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24) & 0xff;
}

function checkPlayers(players: number): void {
  if (!Number.isInteger(players) || players < 1 || players > MAX_EXACT_PLAYERS) {
    throw new RangeError(`exact enumeration needs 1 to ${MAX_EXACT_PLAYERS} players, got ${players}`);
  }
}
