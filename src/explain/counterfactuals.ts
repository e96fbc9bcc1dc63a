/**
 * Counterfactual explanations: the smallest changes to an instance that would have flipped its decision
 * ("had the requested amount been 900 instead of 1,600, the loan would have been granted"), found by
 * querying the model alone, so they work for any model behind a {@link BatchScorer}.
 *
 * Distance. A change to a number costs |Δ| / its spread in the reference rows (the median absolute
 * deviation, see reference-stats.ts), so one unit is a typical difference between subjects; a change of
 * category or boolean costs 1; giving a value that was missing costs 1 plus its distance from the typical
 * value. Every changed feature adds `sparsityWeight` (0.5) more: fewer changes are easier to act on.
 *
 * Search (deterministic under its seed; every step scores rows in batches):
 * 1. Growing spheres (Laugel et al. 2018), restricted to the features that may change: random sparse
 *    changes with steps of radius r × spread, r doubling from 0.25 until some candidates flip the decision.
 *    A fifth of numeric proposals are favourable quantiles of the reference rows instead, which reach the
 *    thresholds of tree models quickly.
 * 2. The closest few flipping candidates are refined: greedy sparsification (undo any change the flip does
 *    not need, largest saving first), then a line search of every numeric change back toward its starting
 *    value (a joint search along the whole change, then per feature in rounds of 16 points), repeated until
 *    nothing moves. Every step keeps the decision flipped, so a result is always a verified flip, and no
 *    single change in a result can be undone without losing it.
 * 3. Diversity (after DiCE, Mothilal et al. 2020): each further option may not change a superset of the
 *    features of an earlier one; an earlier option whose features strictly include a later one's is
 *    retired. No option is another plus extra changes: each is a different way out.
 *
 * Constraints: immutable features never change (sensitive attributes are not model inputs at all); a
 * `monotone` feature moves only its way; values stay within min/max (where the manifest gives no bound,
 * within the reference rows' range), integers stay whole, categories stay among `categories`; a missing
 * value may be given but a given value is never withdrawn. Numbers move on a grid of a hundredth of their
 * spread (rounded to a power of ten) so the values suggested are ones a person would write.
 *
 * Finally every option is scored again through the scorer and dropped unless it flips the decision.
 */
import type { FeatureSpec, Manifest } from "../config/index.js";
import type { FeatureValue } from "../decision/index.js";
import { binaryOutcomes } from "./outcome.js";
import { type Random, seededRandom } from "./random.js";
import type { ReferenceStats } from "./reference-stats.js";
import type { BatchScorer } from "./types.js";

/** Default weight of each changed feature in the distance. */
export const DEFAULT_SPARSITY_WEIGHT = 0.5;
/** Default rows per scorer call in the random search. */
export const DEFAULT_SEARCH_BATCH = 512;

/** One changed feature. */
export interface CounterfactualChange {
  readonly feature: string;
  /** The instance's value (null: missing). */
  readonly from: FeatureValue;
  /** The value that, with the option's other changes, flips the decision. */
  readonly to: FeatureValue;
}

/** One way to flip the decision. */
export interface CounterfactualOption {
  /** Changed features, in model-feature order. */
  readonly changes: readonly CounterfactualChange[];
  /** The scorer's score for the changed instance, and the decision it gives. */
  readonly score: number;
  readonly decision: string;
  /** Distance from the instance (see the module's description): scaled changes plus the sparsity term. */
  readonly distance: number;
}

/** The counterfactuals of one instance. */
export interface CounterfactualResult {
  /** Whether at least one option was found. */
  readonly found: boolean;
  /** Why none was found (only when `found` is false). */
  readonly reason?: string;
  /** The instance's score and decision, and the decision the options reach. */
  readonly score: number;
  readonly decision: string;
  readonly target: string;
  /** At most `max` options, closest first; no option's changed features include another's. */
  readonly options: readonly CounterfactualOption[];
  /** Rows the scorer was asked to score, all included. */
  readonly evaluations: number;
  readonly seed: number;
}

export interface CounterfactualOptions {
  /** Seed of the search (default 0): the same seed, instance, model and statistics give the same result. */
  readonly seed?: number;
  /** Most options (default `manifest.explanations.counterfactuals.max`). */
  readonly max?: number;
  /** Most rows scored in all (default `manifest.explanations.counterfactuals.maxEvaluations`). */
  readonly maxEvaluations?: number;
  /** Rows per scorer call in the random search (default 512). */
  readonly batchSize?: number;
  /** Distance added per changed feature (default 0.5). */
  readonly sparsityWeight?: number;
}

/** How one feature may move. */
interface Mover {
  readonly column: number;
  readonly spec: FeatureSpec;
  readonly numeric: boolean;
  /** The instance's encoded value (NaN: missing). */
  readonly origin: number;
  /** Numbers: bounds (monotone applied), spread, grid step, the cheapest value when origin is missing. */
  readonly lo: number;
  readonly hi: number;
  readonly scale: number;
  readonly step: number;
  readonly center: number;
  /** Numbers: favourable quantiles within bounds (proposals that reach tree thresholds quickly). */
  readonly anchors: readonly number[];
  /** Booleans and categories: the codes it may take. */
  readonly choices: readonly number[];
}

/** Signals the end of the evaluation budget; the search keeps what it has verified so far. */
class OutOfBudget extends Error {}

const GRID = 16;
/** Closest flipping candidates of the first successful radius that are refined. */
const REFINED = 3;

/**
 * Find up to `max` diverse counterfactuals for one instance of a binary model.
 *
 * @param row The instance in the model's encoding (`ValidInstance.row`).
 * @param scorer Returns the score the policy thresholds (P(positive_label)) per row.
 * @throws RangeError when the manifest is not binary, sizes disagree, the instance's score is not finite, or
 *   the scorer returns the wrong number of scores.
 */
export async function findCounterfactuals(
  manifest: Manifest,
  stats: ReferenceStats,
  row: Float32Array,
  scorer: BatchScorer,
  options: CounterfactualOptions = {},
): Promise<CounterfactualResult> {
  const outcomes = binaryOutcomes(manifest);
  const features = manifest.modelFeatures;
  const width = features.length;
  if (row.length !== width || stats.features.length !== width) {
    throw new RangeError(
      `the instance has ${row.length} values and the statistics ${stats.features.length} features; the model has ${width}`,
    );
  }
  const seed = options.seed ?? 0;
  const max = options.max ?? manifest.explanations.counterfactuals.max;
  const budget = options.maxEvaluations ?? manifest.explanations.counterfactuals.maxEvaluations;
  const batchSize = Math.max(1, options.batchSize ?? DEFAULT_SEARCH_BATCH);
  const sparsityWeight = options.sparsityWeight ?? DEFAULT_SPARSITY_WEIGHT;
  const origin = Float64Array.from(row);

  let evaluations = 0;
  const score = async (candidates: readonly Float64Array[], reserve = 0): Promise<Float64Array> => {
    if (candidates.length === 0) return new Float64Array(0);
    if (evaluations + candidates.length > budget - reserve) throw new OutOfBudget();
    const input = new Float32Array(candidates.length * width);
    for (const [i, c] of candidates.entries()) input.set(c, i * width);
    evaluations += candidates.length;
    const scores = await scorer(input, candidates.length);
    if (scores.length !== candidates.length) {
      throw new RangeError(`the scorer returned ${scores.length} scores for ${candidates.length} rows`);
    }
    return scores;
  };

  const [instanceScore] = await score([origin]);
  if (!Number.isFinite(instanceScore)) throw new RangeError(`the model scored the instance ${instanceScore}`);
  const decision = outcomes.decisionOf(instanceScore!);
  const target = decision === outcomes.positive ? outcomes.negative : outcomes.positive;
  const result = (found: CounterfactualOption[], reason?: string): CounterfactualResult =>
    deepFreeze({
      found: found.length > 0,
      ...(found.length === 0 ? { reason: reason ?? "no option flipped the decision when scored again" } : {}),
      score: instanceScore!,
      decision,
      target,
      options: found,
      evaluations,
      seed,
    });

  const movers = moversOf(features, stats, origin);
  if (movers.length === 0) {
    return result(
      [],
      "no feature may change: every model feature is immutable, or at the end of its range in its only direction",
    );
  }
  const search = new Search({
    movers,
    origin,
    flips: (s) => Number.isFinite(s) && outcomes.decisionOf(s) === target,
    sparsity: sparsityWeight,
    random: seededRandom(seed),
    batch: batchSize,
    // Keep `max` rows for scoring the options again at the end.
    score: (candidates) => score(candidates, max),
  });
  let found: Float64Array[] = [];
  // Each search may retire earlier options (below), so a few more searches than options are allowed.
  for (let attempt = 0; found.length < max && attempt < 2 * max; attempt++) {
    const share = Math.floor((budget - max - evaluations) / (max - found.length));
    const candidate = await search.option(found, evaluations + share, () => evaluations);
    if (candidate === undefined) break;
    // A later option never changes a superset of an earlier one's features (the search avoids them); when
    // it changes a strict subset, the earlier option is that way out plus extra changes, and is retired.
    const changedSet = search.changedFeatures(candidate);
    found = found.filter((earlier) => !isSubset(changedSet, search.changedFeatures(earlier)));
    found.push(candidate);
  }
  if (found.length === 0) {
    return result(
      [],
      `no change of the features that may change flipped the decision within ${budget} scored rows`,
    );
  }
  // Score every option again, through the scorer, and keep only real flips.
  const rescored = await score(found);
  const verified: CounterfactualOption[] = [];
  found.forEach((candidate, i) => {
    const s = rescored[i]!;
    if (!Number.isFinite(s) || outcomes.decisionOf(s) !== target) return;
    verified.push({
      changes: movers
        .filter((m) => changed(candidate[m.column]!, m.origin))
        .sort((a, b) => a.column - b.column)
        .map((m) => ({
          feature: m.spec.name,
          from: m.spec.type === "number" ? shortestFloat32(m.origin) : decode(m.spec, m.origin),
          to: decode(m.spec, candidate[m.column]!),
        })),
      score: s,
      decision: target,
      distance: search.distance(candidate),
    });
  });
  verified.sort((a, b) => a.distance - b.distance);
  return result(verified);
}

/** What a search needs: the features that may change, the instance, the goal and the means. */
interface SearchSetup {
  readonly movers: readonly Mover[];
  /** The instance, encoded. */
  readonly origin: Float64Array;
  /** Whether a score reaches the target decision. */
  readonly flips: (score: number) => boolean;
  /** Distance added per changed feature. */
  readonly sparsity: number;
  readonly random: Random;
  /** Rows per scorer call in the random search. */
  readonly batch: number;
  /** Scores candidates, counting them; throws OutOfBudget past the budget. */
  readonly score: (candidates: readonly Float64Array[]) => Promise<Float64Array>;
}

/** The search state shared by the options of one instance. */
class Search {
  readonly #movers: readonly Mover[];
  readonly #origin: Float64Array;
  /** Whether a score reaches the target decision. */
  readonly #flips: (score: number) => boolean;
  readonly #sparsity: number;
  readonly #random: Random;
  readonly #batch: number;
  readonly #score: (candidates: readonly Float64Array[]) => Promise<Float64Array>;

  constructor(setup: SearchSetup) {
    this.#movers = setup.movers;
    this.#origin = setup.origin;
    this.#flips = setup.flips;
    this.#sparsity = setup.sparsity;
    this.#random = setup.random;
    this.#batch = setup.batch;
    this.#score = setup.score;
  }

  /** Scaled cost of one feature's value (0 when unchanged). */
  #cost(m: Mover, value: number): number {
    if (!changed(value, m.origin)) return 0;
    if (!m.numeric) return 1 + this.#sparsity;
    const moved = Number.isNaN(m.origin)
      ? 1 + Math.abs(value - m.center) / m.scale
      : Math.abs(value - m.origin) / m.scale;
    return moved + this.#sparsity;
  }

  /** A candidate's distance from the instance (see the module's description). */
  distance(candidate: Float64Array): number {
    let sum = 0;
    for (const m of this.#movers) sum += this.#cost(m, candidate[m.column]!);
    return sum;
  }

  /** Movers (indices into #movers) a candidate changes, ascending. */
  changedFeatures(candidate: Float64Array): number[] {
    const set: number[] = [];
    this.#movers.forEach((m, i) => {
      if (changed(candidate[m.column]!, m.origin)) set.push(i);
    });
    return set;
  }

  /**
   * The next option: a refined flip whose changed features include no earlier option's, or undefined when
   * none is found before `evaluations()` reaches `until` (or the budget ends).
   */
  async option(
    earlier: readonly Float64Array[],
    until: number,
    evaluations: () => number,
  ): Promise<Float64Array | undefined> {
    const forbidden = earlier.map((c) => this.changedFeatures(c));
    // A radius at which any single change fits: the widest numeric range, or a discrete change.
    const reach =
      Math.max(4, ...this.#movers.filter((m) => m.numeric).map((m) => 1 + (m.hi - m.lo) / m.scale)) +
      this.#sparsity;
    let flipping: { candidate: Float64Array; distance: number }[] = [];
    try {
      // The smallest radius allows one change a quarter of a spread long.
      for (let radius = this.#sparsity + 0.25; flipping.length === 0; radius = Math.min(radius * 2, reach)) {
        const size = Math.min(this.#batch, until - evaluations());
        if (size < 1) return undefined;
        const candidates: Float64Array[] = [];
        for (let i = 0; i < size; i++) {
          const candidate = this.#propose(radius, forbidden);
          if (candidate !== undefined) candidates.push(candidate);
        }
        if (candidates.length === 0) {
          // Nothing to propose even at full reach: every allowed change includes an earlier option's features.
          if (radius >= reach) return undefined;
          continue;
        }
        const scores = await this.#score(candidates);
        flipping = candidates
          .filter((_, i) => this.#flips(scores[i]!))
          .map((candidate) => ({ candidate, distance: this.distance(candidate) }));
      }
    } catch (error) {
      if (error instanceof OutOfBudget) return undefined;
      throw error;
    }
    flipping.sort((a, b) => a.distance - b.distance);
    // Refine the closest few with different sets of changed features; keep the closest result.
    const seen = new Set<string>();
    let best: { candidate: Float64Array; distance: number } | undefined;
    for (const { candidate } of flipping) {
      const key = this.changedFeatures(candidate).join(",");
      if (seen.has(key)) continue;
      seen.add(key);
      const refined = await this.#refine(candidate);
      const distance = this.distance(refined);
      if (best === undefined || distance < best.distance) best = { candidate: refined, distance };
      if (seen.size === REFINED) break;
    }
    return best?.candidate;
  }

  /**
   * A random sparse change at distance about `radius` (between half of it and all of it): a few features
   * are drawn, each discrete change (or value given for a missing one) spends 1 of the distance, every
   * change its sparsity weight, and what is left is split among the numeric changes at random. Undefined
   * when the draw changes nothing.
   */
  #propose(radius: number, forbidden: readonly number[][]): Float64Array | undefined {
    const random = this.#random;
    const n = this.#movers.length;
    // How many features change: 1 with probability 1/2, 2 with 1/4, ...
    let count = 1;
    while (count < n && random.next() < 0.5) count++;
    const picked = new Set<number>();
    const order = Array.from({ length: n }, (_, i) => i);
    for (let i = 0; i < count; i++) {
      const j = i + random.int(n - i);
      [order[i], order[j]] = [order[j]!, order[i]!];
      picked.add(order[i]!);
    }
    // No superset of an earlier option's features: drop one of them at random.
    for (const set of forbidden) {
      if (set.every((i) => picked.has(i))) picked.delete(set[random.int(set.length)]!);
    }
    let left = radius * (0.5 + 0.5 * random.next()) - this.#sparsity * picked.size;
    const candidate = Float64Array.from(this.#origin);
    const numeric: Mover[] = [];
    for (const i of picked) {
      const m = this.#movers[i]!;
      if (m.numeric && !Number.isNaN(m.origin)) {
        numeric.push(m);
      } else if (left >= 1) {
        left -= 1;
        candidate[m.column] = m.numeric ? m.center : m.choices[random.int(m.choices.length)]!;
        if (m.numeric) numeric.push(m);
      }
    }
    // Exponential weights, normalised: a uniform split of the distance left (a flat Dirichlet).
    const weights = numeric.map(() => -Math.log(1 - random.next()));
    const total = weights.reduce((a, b) => a + b, 0);
    numeric.forEach((m, k) => {
      const share = Math.max(0, left) * (weights[k]! / total);
      candidate[m.column] = this.#move(m, candidate[m.column]!, share);
    });
    for (const m of this.#movers) if (changed(candidate[m.column]!, m.origin)) return candidate;
    return undefined;
  }

  /**
   * A numeric feature moved from `from` by `share` spreads, either way its bounds and monotone allow; now
   * and then to a favourable quantile within that distance instead (tree models split near them).
   */
  #move(m: Mover, from: number, share: number): number {
    const random = this.#random;
    if (random.next() < 0.2) {
      const reachable = m.anchors.filter((a) => Math.abs(a - from) <= share * m.scale);
      if (reachable.length > 0) return reachable[random.int(reachable.length)]!;
    }
    const up = m.hi > from;
    const down = m.lo < from;
    if (!up && !down) return from;
    const sign = up && down ? (random.next() < 0.5 ? -1 : 1) : up ? 1 : -1;
    const size = share * m.scale;
    // An integer moves by at least 1 when it moves at all, so small radii still propose a change.
    const step = m.spec.type === "integer" ? Math.max(size > 0 ? 1 : 0, Math.round(size)) : size;
    return snap(m, from + sign * step);
  }

  /** Sparsify and shrink until nothing moves; the result flips and no single change can be undone. */
  async #refine(start: Float64Array): Promise<Float64Array> {
    const candidate = Float64Array.from(start);
    try {
      for (let round = 0; round < 8; round++) {
        await this.#sparsify(candidate);
        if (!(await this.#shrink(candidate))) return candidate;
      }
      await this.#sparsify(candidate);
    } catch (error) {
      if (!(error instanceof OutOfBudget)) throw error;
    }
    return candidate;
  }

  /** Undo changes the flip does not need, the largest saving first. Returns whether any was undone. */
  async #sparsify(candidate: Float64Array): Promise<boolean> {
    let any = false;
    for (;;) {
      const set = this.changedFeatures(candidate);
      if (set.length <= 1) return any;
      const trials = set.map((i) => {
        const trial = Float64Array.from(candidate);
        const m = this.#movers[i]!;
        trial[m.column] = m.origin;
        return trial;
      });
      const scores = await this.#score(trials);
      let best = -1;
      let saving = 0;
      set.forEach((i, t) => {
        const m = this.#movers[i]!;
        const gain = this.#cost(m, candidate[m.column]!);
        if (this.#flips(scores[t]!) && gain > saving) {
          best = t;
          saving = gain;
        }
      });
      if (best < 0) return any;
      candidate.set(trials[best]!);
      any = true;
    }
  }

  /** Move numeric changes back toward their cheapest values while the decision stays flipped. */
  async #shrink(candidate: Float64Array): Promise<boolean> {
    const numeric = this.changedFeatures(candidate)
      .map((i) => this.#movers[i]!)
      .filter((m) => m.numeric);
    if (numeric.length === 0) return false;
    const before = this.distance(candidate);
    // Jointly along the whole change: the fraction t of every numeric change that still flips.
    if (numeric.length > 1) {
      const trials: Float64Array[] = [];
      for (let i = 1; i < GRID; i++) {
        const trial = Float64Array.from(candidate);
        for (const m of numeric) {
          const from = cheapest(m);
          trial[m.column] = snap(m, from + ((candidate[m.column]! - from) * i) / GRID);
        }
        trials.push(trial);
      }
      const scores = await this.#score(trials);
      const first = trials.findIndex((_, i) => this.#flips(scores[i]!));
      if (first >= 0 && this.distance(trials[first]!) < before) candidate.set(trials[first]!);
    }
    // Then each feature alone, the costliest first.
    numeric.sort((a, b) => this.#cost(b, candidate[b.column]!) - this.#cost(a, candidate[a.column]!));
    for (const m of numeric) await this.#shrinkFeature(candidate, m);
    return this.distance(candidate) < before - 1e-12;
  }

  /**
   * Rounds of GRID points between the cheapest value (`near`, which does not flip or is the origin) and the
   * current one (`far`, which flips): the flipping point nearest the cheap end becomes `far`, the point
   * before it `near`, until the two are one grid step apart.
   */
  async #shrinkFeature(candidate: Float64Array, m: Mover): Promise<void> {
    let near = cheapest(m);
    let far = candidate[m.column]!;
    // A missing origin's cheapest value is a change like any other: it may flip by itself.
    let includeNear = Number.isNaN(m.origin);
    for (let round = 0; round < 6 && Math.abs(far - near) > m.step; round++) {
      const values: number[] = [];
      for (let i = includeNear ? 0 : 1; i < GRID; i++) {
        const value = snap(m, near + ((far - near) * i) / GRID);
        if (value !== far && (i === 0 || value !== near) && values.at(-1) !== value) values.push(value);
      }
      includeNear = false;
      if (values.length === 0) return;
      const trials = values.map((value) => {
        const trial = Float64Array.from(candidate);
        trial[m.column] = value;
        return trial;
      });
      const scores = await this.#score(trials);
      const first = values.findIndex((_, i) => this.#flips(scores[i]!));
      if (first < 0) {
        near = values.at(-1)!;
        continue;
      }
      far = values[first]!;
      candidate[m.column] = far;
      if (first > 0) near = values[first - 1]!;
    }
  }
}

/** The features that may change, with their bounds, spreads and choices. */
function moversOf(features: readonly FeatureSpec[], stats: ReferenceStats, origin: Float64Array): Mover[] {
  const movers: Mover[] = [];
  features.forEach((spec, column) => {
    if (spec.immutable || spec.sensitive) return;
    const x = origin[column]!;
    const s = stats.features[column]!;
    if (s.name !== spec.name) {
      throw new RangeError(`the statistics' feature ${column} is ${s.name}; the model's is ${spec.name}`);
    }
    const missing = Number.isNaN(x);
    if (spec.type === "number" || spec.type === "integer") {
      if (s.kind !== "numeric") throw new RangeError(`the statistics of ${spec.name} are not numeric`);
      const scale = s.all.scale;
      const center = s.all.median ?? 0;
      let lo = spec.min ?? Math.min(s.all.min ?? center - 100 * scale, missing ? center : x);
      let hi = spec.max ?? Math.max(s.all.max ?? center + 100 * scale, missing ? center : x);
      if (!missing && spec.monotone === "increase_only") lo = Math.max(lo, x);
      if (!missing && spec.monotone === "decrease_only") hi = Math.min(hi, x);
      if (spec.type === "integer") {
        lo = Math.ceil(lo);
        hi = Math.floor(hi);
      }
      if (hi < lo || (!missing && lo === hi)) return;
      const step = spec.type === "integer" ? 1 : 10 ** Math.floor(Math.log10(scale / 100));
      const bounded = { lo, hi, step, spec };
      const anchors = [...new Set(favorableAnchors(s).map((v) => snap(bounded, v)))].filter((v) =>
        changed(v, x),
      );
      movers.push({
        column,
        spec,
        numeric: true,
        origin: x,
        lo,
        hi,
        scale,
        step,
        center: snap(bounded, center),
        anchors,
        choices: [],
      });
      return;
    }
    const codes = spec.type === "boolean" ? [0, 1] : (spec.categories ?? []).map((_, i) => i);
    const choices = codes.filter((code) => {
      if (missing) return true;
      if (code === x) return false;
      if (spec.type === "boolean" && spec.monotone === "increase_only") return code > x;
      if (spec.type === "boolean" && spec.monotone === "decrease_only") return code < x;
      return true;
    });
    if (choices.length === 0) return;
    movers.push({
      column,
      spec,
      numeric: false,
      origin: x,
      lo: 0,
      hi: 0,
      scale: 1,
      step: 1,
      center: 0,
      anchors: [],
      choices,
    });
  });
  return movers;
}

function favorableAnchors(s: ReferenceStats["features"][number]): readonly number[] {
  return s.kind === "numeric" ? s.favorable.quantiles : [];
}

/** A value on the feature's grid (integers whole, numbers a hundredth of the spread), within bounds. */
function snap(
  m: { readonly lo: number; readonly hi: number; readonly step: number; readonly spec: FeatureSpec },
  value: number,
): number {
  let v = Math.round(value / m.step) * m.step;
  // Steps below 1 are powers of ten: strip the binary noise (0.30000000000000004).
  if (m.step < 1) v = Number(v.toPrecision(12));
  return Math.min(m.hi, Math.max(m.lo, v));
}

/** The value of a numeric feature that costs least: its origin, or the typical value when missing. */
function cheapest(m: Mover): number {
  return Number.isNaN(m.origin) ? m.center : m.origin;
}

/** Whether every element of `small` is in `large` (both ascending without repeats) and `large` has more. */
function isSubset(small: readonly number[], large: readonly number[]): boolean {
  return small.length < large.length && small.every((i) => large.includes(i));
}

/** Whether an encoded value differs from the origin (NaN equals NaN: still missing). */
function changed(value: number, origin: number): boolean {
  return !(value === origin || (Number.isNaN(value) && Number.isNaN(origin)));
}

/** An encoded value back as the instance would carry it. */
function decode(spec: FeatureSpec, value: number): FeatureValue {
  if (Number.isNaN(value)) return null;
  if (spec.type === "boolean") return value === 1;
  if (spec.type === "category") return spec.categories![value]!;
  return value;
}

/**
 * A float32 input as the number that was sent: the shortest decimal that rounds to it (a request's 123.4
 * arrives as 123.40000152587890625). Null for missing.
 */
function shortestFloat32(value: number): number | null {
  if (Number.isNaN(value)) return null;
  for (let digits = 1; digits < 9; digits++) {
    const short = Number(value.toPrecision(digits));
    if (Math.fround(short) === value) return short;
  }
  return value;
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === "object") {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}
