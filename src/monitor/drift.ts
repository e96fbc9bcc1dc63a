/**
 * Drift statistics between a reference sample and a current window: two-sample Kolmogorov–Smirnov,
 * Wasserstein-1 (plain and normalised), chi-squared (goodness of fit and contingency), Jensen–Shannon
 * distance and the population stability index. Pure functions over arrays of numbers or counts; each
 * matches the SciPy (or Evidently) definition it names, on the fixtures in fixtures/monitor/drift.json.
 */

import { chiSquaredSurvival, kolmogorovSmirnovSurvival } from "./special.js";

/** Which p-value computation the two-sample KS test used. */
export const KS_METHODS = ["exact", "asymptotic"] as const;
export type KsMethod = (typeof KS_METHODS)[number];

/** Result of {@link ksTwoSample}. */
export interface KsResult {
  /** sup |F₁ − F₂| over the pooled sample, in [0, 1]. */
  readonly statistic: number;
  /** Two-sided p-value. */
  readonly pValue: number;
  readonly method: KsMethod;
}

/** SciPy's `MAX_AUTO_N`: method "auto" computes the exact p-value when both samples are at most this size. */
export const KS_EXACT_MAX_N = 10_000;

function sortedCopy(values: readonly number[]): Float64Array {
  const out = Float64Array.from(values);
  for (const v of out) {
    if (Number.isNaN(v))
      throw new RangeError("drift statistics take no NaN values; drop missing values first");
  }
  return out.sort();
}

function gcd(a: number, b: number): number {
  let x = a;
  let y = b;
  while (y !== 0) [x, y] = [y, x % y];
  return x;
}

/**
 * Pr(D_{n,n} ≥ h/n) for two samples of equal size n: the classical alternating sum
 * 2 Σ_{k≥1} (−1)^(k−1) C(2n, n − kh) / C(2n, n), each ratio built as a product of h factors and the
 * sum nested (Horner-like) so no large binomials or cancellations appear.
 */
function ksEqualSizeTail(n: number, h: number): number {
  let p = 0;
  for (let k = Math.floor(n / h); k >= 0; k--) {
    let ratio = 1;
    for (let j = 0; j < h; j++) ratio = ((n - k * h - j) * ratio) / (n + k * h + j + 1);
    p = ratio * (1 - p);
  }
  return 2 * p;
}

/**
 * Pr(D_{m,n} ≥ h/lcm(m, n)) for samples of m and n by lattice paths (Hodges 1958, "inside" method),
 * carrying the probability of having left the band directly rather than 1 minus the share of paths
 * inside it, which cancels badly in the tail (Viehmann 2021, arXiv:2102.08037).
 *
 * A monotone path from (0, 0) to (m, n) visits (i, j); it has left the band when |n·i − m·j| ≥ h·g at
 * some visit. For a path drawn uniformly, the probability u(i, j) that it has left the band by (i, j)
 * satisfies u(i, j) = (i·u(i − 1, j) + j·u(i, j − 1)) / (i + j) inside the band and u = 1 outside.
 * Only the band's cells of one column are kept.
 */
function ksUnequalSizeTail(m0: number, n0: number, g: number, h: number): number {
  const m = Math.max(m0, n0);
  const n = Math.min(m0, n0);
  const mg = m / g;
  const ng = n / g;
  // Column i holds rows [lo, hi) inside the band: ng·i − h < mg·j < ng·i + h.
  let lo = 0;
  let hi = Math.min(Math.ceil(h / mg), n + 1);
  let column = new Float64Array(hi - lo); // u(0, j) = 0 inside the band
  let next = new Float64Array(Math.min(2 * hi + 2, n + 1));
  for (let i = 1; i <= m; i++) {
    const newLo = Math.min(Math.max(Math.floor((ng * i - h) / mg) + 1, 0), n);
    const newHi = Math.min(Math.ceil((ng * i + h) / mg), n + 1);
    if (newHi <= newLo) return 1;
    if (next.length < newHi - newLo) next = new Float64Array(newHi - newLo);
    // u(i, newLo − 1) is outside the band (1), except on the bottom edge j = 0 where there is none.
    let below = newLo === 0 ? 0 : 1;
    for (let j = newLo; j < newHi; j++) {
      const left = j >= lo && j < hi ? column[j - lo]! : 1;
      below = (left * i + below * j) / (i + j);
      next[j - newLo] = below;
    }
    [column, next] = [next, column];
    lo = newLo;
    hi = newHi;
  }
  return column[hi - lo - 1]!;
}

/**
 * Two-sample Kolmogorov–Smirnov test, two-sided, as SciPy 1.10's `ks_2samp(a, b)` with method "auto".
 *
 * Statistic: D = sup_x |F_a(x) − F_b(x)| over the pooled values (ties handled as in SciPy: both
 * empirical CDFs evaluated right-continuously at every pooled value).
 *
 * p-value: exact when max(n_a, n_b) ≤ 10 000 (the null distribution of D for continuous data, by
 * lattice-path counting, with D rounded to the lattice h / lcm(n_a, n_b) as SciPy does); otherwise
 * Pr(D_N ≥ D) of the one-sample statistic with N = round(n_a·n_b / (n_a + n_b)) (SciPy's `kstwo.sf`).
 * If the exact computation fails numerically, falls back to the asymptotic one, like SciPy.
 *
 * @example ksTwoSample([1, 2, 3], [4, 5, 6]) // { statistic: 1, pValue: ≈ 0.1 (= 2 / C(6, 3)), method: "exact" }
 */
export function ksTwoSample(a: readonly number[], b: readonly number[]): KsResult {
  const x = sortedCopy(a);
  const y = sortedCopy(b);
  const n1 = x.length;
  const n2 = y.length;
  if (n1 === 0 || n2 === 0) throw new RangeError("ksTwoSample needs two non-empty samples");
  let i = 0;
  let j = 0;
  let d = 0;
  while (i < n1 || j < n2) {
    const v = j >= n2 || (i < n1 && x[i]! <= y[j]!) ? x[i]! : y[j]!;
    while (i < n1 && x[i] === v) i++;
    while (j < n2 && y[j] === v) j++;
    const diff = Math.abs(i / n1 - j / n2);
    if (diff > d) d = diff;
  }
  if (Math.max(n1, n2) <= KS_EXACT_MAX_N) {
    const g = gcd(n1, n2);
    const lcm = (n1 / g) * n2;
    const h = Math.round(d * lcm);
    const dLattice = h / lcm;
    if (h === 0) return { statistic: dLattice, pValue: 1, method: "exact" };
    const p = n1 === n2 ? ksEqualSizeTail(n1, h) : ksUnequalSizeTail(n1, n2, g, h);
    if (p >= 0 && p <= 1) return { statistic: dLattice, pValue: p, method: "exact" };
    d = dLattice;
  }
  const en = (n1 * n2) / (n1 + n2);
  const p = kolmogorovSmirnovSurvival(Math.round(en), d);
  return { statistic: d, pValue: Math.min(1, Math.max(0, p)), method: "asymptotic" };
}

/** Neumaier-compensated running sum. */
class CompensatedSum {
  #sum = 0;
  #compensation = 0;
  add(value: number): void {
    const s = this.#sum + value;
    this.#compensation +=
      Math.abs(this.#sum) >= Math.abs(value) ? this.#sum - s + value : value - s + this.#sum;
    this.#sum = s;
  }
  get value(): number {
    // An infinite term (a category absent from the reference) makes the compensation NaN.
    return Number.isFinite(this.#sum) ? this.#sum + this.#compensation : this.#sum;
  }
}

function checkWeights(values: readonly number[], weights: readonly number[] | undefined, name: string): void {
  if (weights === undefined) return;
  if (weights.length !== values.length) {
    throw new RangeError(`${name}: ${weights.length} weights for ${values.length} values`);
  }
  let total = 0;
  for (const w of weights) {
    if (!(w >= 0) || !Number.isFinite(w)) throw new RangeError(`${name}: weights must be finite and ≥ 0`);
    total += w;
  }
  if (!(total > 0)) throw new RangeError(`${name}: weights must not all be zero`);
}

/** Sorted values with their cumulative weights: cumulative[k] is the weight of the first k values. */
function weightedSorted(
  values: readonly number[],
  weights: readonly number[] | undefined,
): { readonly sorted: Float64Array; readonly cumulative: Float64Array } {
  const order = Array.from(values.keys()).sort((p, q) => values[p]! - values[q]!);
  const sorted = new Float64Array(order.length);
  const cumulative = new Float64Array(order.length + 1);
  for (let k = 0; k < order.length; k++) {
    const idx = order[k]!;
    sorted[k] = values[idx]!;
    cumulative[k + 1] = cumulative[k]! + (weights === undefined ? 1 : weights[idx]!);
  }
  return { sorted, cumulative };
}

/**
 * First Wasserstein (earth mover's) distance between two one-dimensional empirical distributions,
 * as SciPy's `wasserstein_distance(u, v, uWeights, vWeights)`: ∫ |U(x) − V(x)| dx over the pooled
 * support, U and V the (weighted) empirical CDFs. Units: those of the values.
 *
 * @example wassersteinDistance([0, 1, 3], [5, 6, 8]) // 5
 */
export function wassersteinDistance(
  u: readonly number[],
  v: readonly number[],
  uWeights?: readonly number[],
  vWeights?: readonly number[],
): number {
  if (u.length === 0 || v.length === 0) throw new RangeError("wassersteinDistance needs non-empty samples");
  for (const value of [...u, ...v]) {
    if (!Number.isFinite(value)) throw new RangeError("wassersteinDistance takes finite values only");
  }
  checkWeights(u, uWeights, "uWeights");
  checkWeights(v, vWeights, "vWeights");
  const U = weightedSorted(u, uWeights);
  const V = weightedSorted(v, vWeights);
  const uTotal = U.cumulative[U.sorted.length]!;
  const vTotal = V.cumulative[V.sorted.length]!;
  const all = Float64Array.from([...u, ...v]).sort();
  const sum = new CompensatedSum();
  let iu = 0;
  let iv = 0;
  for (let k = 0; k < all.length - 1; k++) {
    const at = all[k]!;
    // Right-continuous CDFs at the left end of [all[k], all[k + 1]).
    while (iu < U.sorted.length && U.sorted[iu]! <= at) iu++;
    while (iv < V.sorted.length && V.sorted[iv]! <= at) iv++;
    const width = all[k + 1]! - at;
    if (width === 0) continue;
    sum.add(Math.abs(U.cumulative[iu]! / uTotal - V.cumulative[iv]! / vTotal) * width);
  }
  return sum.value;
}

/** Evidently's floor on the reference's standard deviation in the normalised Wasserstein distance. */
export const WASSERSTEIN_MIN_SCALE = 0.001;
/** Evidently's default drift threshold for the normalised Wasserstein distance (drift when ≥). */
export const WASSERSTEIN_NORMALIZED_THRESHOLD = 0.1;

/**
 * Wasserstein-1 distance divided by the reference's population standard deviation (ddof = 0),
 * floored at 0.001, exactly as Evidently's `wasserstein` drift method:
 * W₁(reference, current) / max(σ_reference, 0.001). Unitless: "how many reference standard deviations
 * the distribution moved". Evidently flags drift when the value is ≥ 0.1
 * ({@link WASSERSTEIN_NORMALIZED_THRESHOLD}).
 */
export function normalizedWasserstein(reference: readonly number[], current: readonly number[]): number {
  const distance = wassersteinDistance(reference, current);
  let mean = 0;
  for (const v of reference) mean += v;
  mean /= reference.length;
  let squares = 0;
  for (const v of reference) squares += (v - mean) ** 2;
  const sd = Math.sqrt(squares / reference.length);
  return distance / Math.max(sd, WASSERSTEIN_MIN_SCALE);
}

/** A chi-squared test's outcome. */
export interface ChiSquaredResult {
  readonly statistic: number;
  readonly dof: number;
  readonly pValue: number;
}

function checkCounts(counts: readonly number[], name: string): number {
  let total = 0;
  for (const c of counts) {
    if (!(c >= 0) || !Number.isFinite(c)) throw new RangeError(`${name}: counts must be finite and ≥ 0`);
    total += c;
  }
  if (!(total > 0)) throw new RangeError(`${name}: counts must not all be zero`);
  return total;
}

/**
 * Pearson goodness-of-fit of the current window's category counts against the reference's
 * proportions, as Evidently's `chisquare` drift method: SciPy's `chisquare(observed, expected)` with
 * expected = referenceCounts × (current total / reference total), dof = k − 1.
 *
 * Categories are aligned by index. Categories empty in both are dropped (SciPy would give 0/0);
 * a category seen now but never in the reference gives an infinite statistic and p = 0, as SciPy does.
 */
export function chiSquaredGoodnessOfFit(
  currentCounts: readonly number[],
  referenceCounts: readonly number[],
): ChiSquaredResult {
  if (currentCounts.length !== referenceCounts.length) {
    throw new RangeError("chiSquaredGoodnessOfFit: current and reference need the same categories");
  }
  const currentTotal = checkCounts(currentCounts, "currentCounts");
  const referenceTotal = checkCounts(referenceCounts, "referenceCounts");
  const scale = currentTotal / referenceTotal;
  const sum = new CompensatedSum();
  let k = 0;
  for (let i = 0; i < currentCounts.length; i++) {
    const observed = currentCounts[i]!;
    const expected = referenceCounts[i]! * scale;
    if (observed === 0 && expected === 0) continue;
    k++;
    sum.add((observed - expected) ** 2 / expected);
  }
  const statistic = sum.value;
  const dof = k - 1;
  if (dof < 1) return { statistic, dof, pValue: Number.NaN };
  return { statistic, dof, pValue: chiSquaredSurvival(statistic, dof) };
}

/**
 * Chi-squared test of independence on an r × c contingency table, as SciPy's
 * `chi2_contingency(table)` with its defaults: expected = row total × column total / grand total,
 * dof = (r − 1)(c − 1), and Yates' continuity correction when dof = 1 (each observed count moved
 * halfway, at most 0.5, towards its expected count). With dof = 0 the statistic is 0 and p = 1.
 * Throws when an expected count is zero (an empty row or column), as SciPy does.
 *
 * @example chiSquaredContingency([[12, 5], [7, 9]]) // 2×2: Yates-corrected
 */
export function chiSquaredContingency(
  table: readonly (readonly number[])[],
  options: { readonly correction?: boolean } = {},
): ChiSquaredResult & { readonly expected: readonly (readonly number[])[] } {
  const correction = options.correction ?? true;
  const rows = table.length;
  const cols = table[0]?.length ?? 0;
  if (rows === 0 || cols === 0) throw new RangeError("chiSquaredContingency: empty table");
  const rowTotals = new Float64Array(rows);
  const colTotals = new Float64Array(cols);
  let total = 0;
  for (let r = 0; r < rows; r++) {
    const row = table[r]!;
    if (row.length !== cols) throw new RangeError("chiSquaredContingency: rows of different lengths");
    for (let c = 0; c < cols; c++) {
      const v = row[c]!;
      if (!(v >= 0) || !Number.isFinite(v)) {
        throw new RangeError("chiSquaredContingency: counts must be finite and ≥ 0");
      }
      rowTotals[r]! += v;
      colTotals[c]! += v;
      total += v;
    }
  }
  const expected = Array.from(rowTotals, (rt) => Array.from(colTotals, (ct) => (rt * ct) / total));
  for (const row of expected) {
    if (row.some((e) => !(e > 0))) {
      throw new RangeError(
        "chiSquaredContingency: a zero expected count (empty row or column); drop empty categories",
      );
    }
  }
  const dof = (rows - 1) * (cols - 1);
  if (dof === 0) return { statistic: 0, dof: 0, pValue: 1, expected };
  const sum = new CompensatedSum();
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      let observed = table[r]![c]!;
      const e = expected[r]![c]!;
      if (dof === 1 && correction) {
        const diff = e - observed;
        observed += Math.sign(diff) * Math.min(0.5, Math.abs(diff));
      }
      sum.add((observed - e) ** 2 / e);
    }
  }
  const statistic = sum.value;
  return { statistic, dof, pValue: chiSquaredSurvival(statistic, dof), expected };
}

/**
 * Jensen–Shannon distance between two discrete distributions, as SciPy's
 * `jensenshannon(p, q, base)`: p and q are normalised to sum 1, m = (p + q) / 2, and the distance is
 * √((KL(p‖m) + KL(q‖m)) / 2), KL in natural logarithms, or divided by ln(base) when a base is given
 * (base 2 bounds the distance by 1). Inputs are counts or proportions over the same categories.
 */
export function jensenShannonDistance(p: readonly number[], q: readonly number[], base?: number): number {
  if (p.length !== q.length) throw new RangeError("jensenShannonDistance: p and q need the same length");
  const pTotal = checkCounts(p, "p");
  const qTotal = checkCounts(q, "q");
  const sum = new CompensatedSum();
  for (let i = 0; i < p.length; i++) {
    const pi = p[i]! / pTotal;
    const qi = q[i]! / qTotal;
    const mi = (pi + qi) / 2;
    if (pi > 0) sum.add(pi * Math.log(pi / mi));
    if (qi > 0) sum.add(qi * Math.log(qi / mi));
  }
  let js = sum.value;
  if (base !== undefined) {
    if (!(base > 0) || base === 1) throw new RangeError("jensenShannonDistance: base must be > 0 and ≠ 1");
    js /= Math.log(base);
  }
  return Math.sqrt(Math.max(0, js) / 2);
}

/** Evidently's default drift threshold for the Jensen–Shannon distance (drift when ≥). */
export const JENSEN_SHANNON_THRESHOLD = 0.1;

/** Conventional PSI reading: below 0.1 stable, 0.1–0.2 moderate shift, 0.2 and above significant shift. */
export const PSI_THRESHOLDS = { moderate: 0.1, significant: 0.2 } as const;

/** Evidently's default number of bins for a numeric feature's PSI (here: reference deciles). */
export const PSI_DEFAULT_BINS = 10;

/**
 * Evidently's empty-bin rule: a zero proportion becomes 0.0001, or, when the smallest non-zero
 * proportion is itself ≤ 0.0001, that smallest proportion divided by 10⁶. Applied to each
 * distribution separately.
 */
export function fillEmptyProportions(proportions: readonly number[]): number[] {
  let smallest = Number.POSITIVE_INFINITY;
  for (const p of proportions) if (p > 0 && p < smallest) smallest = p;
  const fill = smallest <= 0.0001 ? smallest / 1e6 : 0.0001;
  return proportions.map((p) => (p === 0 ? fill : p));
}

/**
 * Population stability index over matching bins of reference and current counts:
 * PSI = Σ (r_i − c_i) · ln(r_i / c_i), with r_i, c_i each side's proportion per bin after
 * {@link fillEmptyProportions} (Evidently's `psi` formula and empty-bin rule). Always ≥ 0.
 * Readings: < 0.1 stable, 0.1–0.2 moderate, ≥ 0.2 significant ({@link PSI_THRESHOLDS}); Evidently's
 * drift threshold is 0.1.
 *
 * Bins: for categorical features, one bin per category seen in either sample; for numeric features
 * see {@link psiNumeric}.
 *
 * @example populationStabilityIndex([3, 2, 2], [1, 2, 3]) // ≈ 0.3746
 */
export function populationStabilityIndex(
  referenceCounts: readonly number[],
  currentCounts: readonly number[],
): number {
  if (referenceCounts.length !== currentCounts.length) {
    throw new RangeError("populationStabilityIndex: reference and current need the same bins");
  }
  const referenceTotal = checkCounts(referenceCounts, "referenceCounts");
  const currentTotal = checkCounts(currentCounts, "currentCounts");
  const r = fillEmptyProportions(referenceCounts.map((c) => c / referenceTotal));
  const c = fillEmptyProportions(currentCounts.map((v) => v / currentTotal));
  const sum = new CompensatedSum();
  for (let i = 0; i < r.length; i++) sum.add((r[i]! - c[i]!) * Math.log(r[i]! / c[i]!));
  return sum.value;
}

/**
 * Inner bin edges at the reference's quantiles 1/bins, 2/bins, …, (bins − 1)/bins (linear
 * interpolation between order statistics, NumPy's default `quantile` method), duplicates removed so
 * heavily tied data yields fewer, non-empty bins.
 */
export function referenceQuantileEdges(reference: readonly number[], bins = PSI_DEFAULT_BINS): number[] {
  if (!Number.isInteger(bins) || bins < 1) throw new RangeError("bins must be a positive integer");
  const sorted = sortedCopy(reference);
  if (sorted.length === 0) throw new RangeError("referenceQuantileEdges needs a non-empty reference");
  const edges: number[] = [];
  for (let k = 1; k < bins; k++) {
    const position = (k / bins) * (sorted.length - 1);
    const below = Math.floor(position);
    const fraction = position - below;
    const lower = sorted[below]!;
    const upper = sorted[Math.min(below + 1, sorted.length - 1)]!;
    const edge = lower + (upper - lower) * fraction;
    if (edges.length === 0 || edge > edges[edges.length - 1]!) edges.push(edge);
  }
  return edges;
}

/**
 * Counts per bin for inner edges e₁ < … < e_{k−1}: bin 0 is (−∞, e₁), bin i is [e_i, e_{i+1}), the
 * last bin is [e_{k−1}, ∞). Values outside the reference's range land in the end bins.
 */
export function binCounts(values: readonly number[], edges: readonly number[]): number[] {
  const counts = new Array<number>(edges.length + 1).fill(0);
  for (const v of values) {
    if (Number.isNaN(v)) throw new RangeError("binCounts takes no NaN values");
    let lo = 0;
    let hi = edges.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (v >= edges[mid]!) lo = mid + 1;
      else hi = mid;
    }
    counts[lo]!++;
  }
  return counts;
}

/**
 * PSI of a numeric feature: bins at the reference's deciles (or `bins` quantiles, see
 * {@link referenceQuantileEdges} and {@link binCounts}), then {@link populationStabilityIndex}.
 *
 * The reference's quantiles give each reference bin about the same share, which is the usual PSI
 * practice and lets a stored reference profile fix the bins once. Evidently itself bins numeric
 * features with more than 20 distinct reference values by equal-width edges over both samples, so
 * its numeric PSI can differ from this one; categorical PSI is identical.
 */
export function psiNumeric(
  reference: readonly number[],
  current: readonly number[],
  bins = PSI_DEFAULT_BINS,
): number {
  const edges = referenceQuantileEdges(reference, bins);
  return populationStabilityIndex(binCounts(reference, edges), binCounts(current, edges));
}
