/**
 * A model version's live monitor: the last `window` decisions' encoded rows and scores in ring buffers (one
 * decision's update is O(features), whatever the window's length), compared on demand with the version's
 * reference profile (profile.ts): per numeric feature a two-sample KS test against the profile's value sample,
 * per boolean or category feature a chi-squared goodness-of-fit against the profile's counts (missing as a
 * category of its own; bins expected to hold fewer than 5 pooled, see {@link poolSparse}), the score's KS test, missing and out-of-range rates, the share of rows the profile's
 * Isolation Forest finds anomalous, and the dataset verdict with its multiple-testing correction.
 */
import type { FeatureSpec } from "../config/index.js";
import { type IsolationForest, isolationForestFromJSON } from "./anomaly.js";
import {
  chiSquaredGoodnessOfFit,
  jensenShannonDistance,
  ksTwoSample,
  normalizedWasserstein,
  populationStabilityIndex,
  psiNumeric,
} from "./drift.js";
import { type DatasetDriftVerdict, DEFAULT_ALPHA, datasetDriftVerdict } from "./multiple-testing.js";
import type { ReferenceProfile } from "./profile.js";

/** Decisions the count window holds by default. */
export const DEFAULT_LIVE_WINDOW = 500;
/** Span of the time window by default: the last hour. */
export const DEFAULT_TIME_WINDOW_MS = 3_600_000;
/** Decisions kept for the time window by default (its cap: a busier hour is reported on its latest ones). */
export const DEFAULT_TIME_WINDOW_CAPACITY = 5000;

/** Which window a report covers: the latest decisions by count, or those of the last span of time. */
export const LIVE_WINDOWS = ["count", "time"] as const;
export type LiveWindow = (typeof LIVE_WINDOWS)[number];
/** Fewest decisions in the window before drift is tested (below it the report says so). */
export const MIN_DRIFT_OBSERVATIONS = 30;

/** One feature's state in a report. */
export interface FeatureReport {
  readonly name: string;
  readonly missing_rate: number;
  /** Present values outside the manifest's min/max (numbers only; validated requests never have any). */
  readonly out_of_range_rate: number;
  /** Against the profile; absent without one, or with too few decisions. */
  readonly drift?: {
    /** The test that decides `drifted` (after the dataset's multiple-testing correction, see `dataset`). */
    readonly test: "ks" | "chi2";
    readonly statistic: number;
    readonly p_value: number;
    readonly drifted: boolean;
    /** Numbers: Wasserstein-1 over the reference's standard deviation (Evidently's; drift from 0.1). */
    readonly wasserstein_normalized?: number;
    /** Categories: Jensen–Shannon distance, natural logarithm (Evidently's; drift from 0.1). */
    readonly jensen_shannon?: number;
    /** Population stability index (reference deciles for numbers, categories for the others; 0.1 moderate, 0.2 significant). */
    readonly psi: number;
  };
}

/** A live monitor's report (JSON). */
export interface MonitorReport {
  /** Decisions observed since start, and those in the window. */
  readonly observed: number;
  readonly window: number;
  /** `count`: the latest `window_size` decisions; `time`: those of the last `window_span_s` seconds. */
  readonly window_kind: LiveWindow;
  /** Count window: its length; time window: the most it keeps (see `window_capped`). */
  readonly window_size: number;
  /** Time window only: its span in seconds. */
  readonly window_span_s?: number;
  /**
   * Time window only: true when more decisions were made in the span than it keeps, so the report covers the
   * latest `window_size` of them.
   */
  readonly window_capped?: boolean;
  readonly alpha: number;
  /** Whether a reference profile is loaded (drift and anomalies need one), and its provenance when it is. */
  readonly profile: {
    readonly reference_sha256: string;
    readonly created_at: string;
    readonly rows: number;
  } | null;
  readonly features: readonly FeatureReport[];
  readonly score: {
    readonly mean: number | null;
    /**
     * Mean confidence: the probability of the class decided (binary: max(p, 1 − p) of the score p; multiclass:
     * the score itself); null for regression models or an empty window.
     */
    readonly mean_confidence: number | null;
    readonly drift?: { readonly statistic: number; readonly p_value: number; readonly drifted: boolean };
  };
  /** Share of the window's rows at or above the profile's anomaly threshold (null without a profile). */
  readonly anomaly_rate: number | null;
  /** The dataset-level verdict over the features' tests (null without a profile or enough decisions). */
  readonly dataset: DatasetDriftVerdict | null;
}

/** A live monitor. */
export interface LiveMonitor {
  /**
   * Record one decision: its encoded row (NaN = missing), its policy score, and when it was made (default:
   * the monitor's clock). O(features).
   */
  observe(row: ArrayLike<number>, score: number, time?: number): void;
  /** Compare a window (default `count`) with the profile (O(window · log window) per feature). */
  report(window?: LiveWindow): MonitorReport;
  /**
   * A window's decisions copied out (O(window · features)), for {@link computeReport} elsewhere (another
   * thread): `report` without the maths.
   */
  snapshot(window?: LiveWindow): WindowSnapshot;
  /** The profile in use (null: none). */
  profile(): ReferenceProfile | null;
  /** A counter that moves whenever a report could change (a decision, a profile). */
  changes(): number;
  /** Use this profile from now on (null: none). */
  setProfile(profile: ReferenceProfile | null): void;
  /**
   * Whether the profile's Isolation Forest finds this encoded row anomalous (undefined without a profile):
   * one forest score, O(trees · depth). Used per request by human review (`policy.review.anomalies`) and by
   * the circuit breaker's `anomaly_rate`.
   */
  isAnomalous(row: ArrayLike<number>): boolean | undefined;
}

/** The decisions of one window, latest first, as {@link computeReport} takes them. */
export interface WindowSnapshot {
  /** `n` rows of the model's features (row-major), and their scores. */
  readonly rows: Float64Array;
  readonly scores: Float64Array;
  readonly n: number;
  /** Decisions observed since start. */
  readonly observed: number;
  readonly alpha: number;
  /** The model's task, for the mean confidence (none: not reported). */
  readonly task?: "binary" | "multiclass" | "regression" | undefined;
  readonly window: Pick<MonitorReport, "window_kind" | "window_size" | "window_span_s" | "window_capped">;
}

/** Options of {@link createLiveMonitor}. */
export interface LiveMonitorOptions {
  /** Decisions in the count window. Default {@link DEFAULT_LIVE_WINDOW}. */
  readonly window?: number;
  /** Span of the time window, ms. Default {@link DEFAULT_TIME_WINDOW_MS}. */
  readonly timeWindowMs?: number;
  /** Most decisions the time window keeps (≥ window). Default {@link DEFAULT_TIME_WINDOW_CAPACITY}. */
  readonly timeWindowCapacity?: number;
  readonly profile?: ReferenceProfile | null;
  readonly alpha?: number;
  /** The model's task: binary and multiclass reports give the mean confidence. */
  readonly task?: "binary" | "multiclass" | "regression";
  /** The clock, ms since the epoch. Default Date.now. */
  readonly now?: () => number;
}

/**
 * A live monitor over `features` (the manifest's model features, in order): one ring buffer of the latest
 * decisions (rows, scores, times) serves both windows, the count window reading its latest `window` entries
 * and the time window those within its span; and the profile to compare with, when there is one.
 */
export function createLiveMonitor(
  features: readonly FeatureSpec[],
  options: LiveMonitorOptions = {},
): LiveMonitor {
  const size = options.window ?? DEFAULT_LIVE_WINDOW;
  if (!Number.isInteger(size) || size < 1)
    throw new RangeError(`window must be a whole number >= 1, got ${size}`);
  const span = options.timeWindowMs ?? DEFAULT_TIME_WINDOW_MS;
  if (!Number.isInteger(span) || span < 1)
    throw new RangeError(`timeWindowMs must be a whole number >= 1, got ${span}`);
  const capacity = Math.max(size, options.timeWindowCapacity ?? DEFAULT_TIME_WINDOW_CAPACITY);
  if (!Number.isInteger(capacity))
    throw new RangeError(`timeWindowCapacity must be a whole number, got ${capacity}`);
  const now = options.now ?? Date.now;
  const alpha = options.alpha ?? DEFAULT_ALPHA;
  const task = options.task;
  const width = features.length;
  const rows = new Float64Array(capacity * width);
  const scores = new Float64Array(capacity);
  const times = new Float64Array(capacity);
  /** Next slot to write; slots are written in time order, so the latest k are the k before `next`. */
  let next = 0;
  let filled = 0;
  let observed = 0;
  /** Time of the last decision the ring pushed out (−∞ before the first). */
  let evicted = Number.NEGATIVE_INFINITY;
  let profile: ReferenceProfile | null = null;
  let forest: IsolationForest | null = null;
  /**
   * The last count report, until a decision or a profile changes what it would say (scrapes of an idle model
   * are free); the time window's, also until its oldest decision leaves the span.
   */
  let cached: MonitorReport | undefined;
  let cachedTime: { report: MonitorReport; validUntil: number } | undefined;
  let changes = 0;
  const setProfile = (p: ReferenceProfile | null) => {
    cached = undefined;
    cachedTime = undefined;
    changes++;
    if (p !== null && p.features.length !== width) {
      throw new RangeError(`the profile has ${p.features.length} features, the model ${width}`);
    }
    profile = p;
    forest = p === null ? null : isolationForestFromJSON(p.anomaly);
  };
  setProfile(options.profile ?? null);

  /** Slot of the i-th latest decision (0: the latest). */
  const slot = (i: number): number => (next - 1 - i + capacity) % capacity;

  return {
    observe(row, score, time) {
      if (row.length !== width) throw new RangeError(`a row of ${row.length} values; the model has ${width}`);
      const at = next * width;
      if (filled === capacity) evicted = times[next]!;
      for (let j = 0; j < width; j++) rows[at + j] = row[j]!;
      scores[next] = score;
      times[next] = time ?? now();
      next = (next + 1) % capacity;
      if (filled < capacity) filled++;
      observed++;
      changes++;
      cached = undefined;
      cachedTime = undefined;
    },
    setProfile,
    isAnomalous(row) {
      if (forest === null || row.length !== width) return undefined;
      return forest.isAnomalous(forest.score(row));
    },
    profile: () => profile,
    changes: () => changes,
    snapshot(window = "count") {
      return window === "count" ? countSnapshot() : timeSnapshot().snapshot;
    },
    report(window = "count") {
      if (window === "count") {
        cached ??= computeReport(features, countSnapshot(), profile, forest);
        return cached;
      }
      if (cachedTime !== undefined && now() < cachedTime.validUntil) return cachedTime.report;
      const { snapshot, validUntil } = timeSnapshot();
      const report = computeReport(features, snapshot, profile, forest);
      cachedTime = { report, validUntil };
      return report;
    },
  };

  function copy(n: number): { rows: Float64Array; scores: Float64Array } {
    const out = { rows: new Float64Array(n * width), scores: new Float64Array(n) };
    for (let i = 0; i < n; i++) {
      const at = slot(i);
      out.rows.set(rows.subarray(at * width, (at + 1) * width), i * width);
      out.scores[i] = scores[at]!;
    }
    return out;
  }

  function countSnapshot(): WindowSnapshot {
    const n = Math.min(size, filled);
    return { ...copy(n), n, observed, alpha, task, window: { window_kind: "count", window_size: size } };
  }

  /** The time window's snapshot, and until when it stays the same if nothing is observed. */
  function timeSnapshot(): { snapshot: WindowSnapshot; validUntil: number } {
    // The latest decisions within the span (times are in order: stop at the first one outside it).
    const from = now() - span;
    let n = 0;
    while (n < filled && times[slot(n)]! > from) n++;
    const snapshot: WindowSnapshot = {
      ...copy(n),
      n,
      observed,
      alpha,
      task,
      window: {
        window_kind: "time",
        window_size: capacity,
        window_span_s: span / 1000,
        // Full of decisions in the span, and the last one pushed out was in it too.
        window_capped: n === capacity && evicted > from,
      },
    };
    // Until the oldest decision in the window leaves the span (or forever while the window is empty).
    return { snapshot, validUntil: n === 0 ? Number.POSITIVE_INFINITY : times[slot(n - 1)]! + span };
  }
}

/**
 * Several replicas' windows of one model version as one: their decisions put together (a window is a set of
 * decisions, so the union is exact, not an approximation), the counts added. The report of the result is the
 * verdict over every replica's traffic at once.
 *
 * @throws RangeError when there is no window, or the windows differ in kind, row width or alpha.
 */
export function mergeWindowSnapshots(snapshots: readonly WindowSnapshot[], width: number): WindowSnapshot {
  const first = snapshots[0];
  if (first === undefined) throw new RangeError("no window to merge");
  for (const s of snapshots) {
    if (s.window.window_kind !== first.window.window_kind)
      throw new RangeError(`windows of kinds ${first.window.window_kind} and ${s.window.window_kind}`);
    if (s.alpha !== first.alpha) throw new RangeError(`windows with alpha ${first.alpha} and ${s.alpha}`);
    if (s.rows.length !== s.n * width || s.scores.length !== s.n)
      throw new RangeError(
        `a window of ${s.n} decisions holds ${s.rows.length} values for ${width} features`,
      );
  }
  const n = snapshots.reduce((total, s) => total + s.n, 0);
  const rows = new Float64Array(n * width);
  const scores = new Float64Array(n);
  let at = 0;
  for (const s of snapshots) {
    rows.set(s.rows, at * width);
    scores.set(s.scores, at);
    at += s.n;
  }
  return {
    rows,
    scores,
    n,
    observed: snapshots.reduce((total, s) => total + s.observed, 0),
    alpha: first.alpha,
    task: first.task,
    window: {
      ...first.window,
      window_size: snapshots.reduce((total, s) => total + s.window.window_size, 0),
      ...(first.window.window_kind === "time"
        ? { window_capped: snapshots.some((s) => s.window.window_capped === true) }
        : {}),
    },
  };
}

/**
 * A window's report against `profile` (and its Isolation Forest, built from the profile when not given):
 * the maths of {@link LiveMonitor.report}, for any thread. O(n · log n) per feature.
 */
export function computeReport(
  features: readonly FeatureSpec[],
  snapshot: WindowSnapshot,
  profile: ReferenceProfile | null,
  forest: IsolationForest | null = profile === null ? null : isolationForestFromJSON(profile.anomaly),
): MonitorReport {
  const { rows, scores, n, observed, alpha } = snapshot;
  const width = features.length;
  const column = (j: number): number[] => {
    const out: number[] = new Array(n);
    for (let i = 0; i < n; i++) out[i] = rows[i * width + j]!;
    return out;
  };
  const enough = profile !== null && n >= MIN_DRIFT_OBSERVATIONS;
  const reports: FeatureReport[] = features.map((f, j) => {
    const values = column(j);
    const present = values.filter((v) => !Number.isNaN(v));
    const missingRate = n === 0 ? 0 : (n - present.length) / n;
    const numeric = f.type === "number" || f.type === "integer";
    const outside = numeric
      ? present.filter((v) => (f.min !== undefined && v < f.min) || (f.max !== undefined && v > f.max)).length
      : 0;
    const base = {
      name: f.name,
      missing_rate: missingRate,
      out_of_range_rate: present.length === 0 ? 0 : outside / present.length,
    };
    if (!enough) return base;
    const reference = profile!.features[j]!;
    if (reference.kind === "numeric") {
      if (present.length === 0 || reference.sample.values.length === 0) return base;
      const ks = ksTwoSample(present, reference.sample.values);
      return {
        ...base,
        drift: {
          test: "ks",
          statistic: ks.statistic,
          p_value: ks.pValue,
          drifted: ks.pValue < alpha,
          wasserstein_normalized: normalizedWasserstein(reference.sample.values, present),
          psi: psiNumeric(reference.sample.values, present),
        },
      };
    }
    // Categories (booleans as false/true) in the profile's order, missing as one more.
    const levels = Object.keys(reference.counts.counts);
    const expected = [...levels.map((l) => reference.counts.counts[l]!), reference.counts.missing];
    const seen = new Array<number>(levels.length + 1).fill(0);
    for (const v of values) {
      if (Number.isNaN(v)) seen[levels.length]! += 1;
      else seen[v]! += 1;
    }
    const chi = chiSquaredGoodnessOfFit(...poolSparse(seen, expected));
    return {
      ...base,
      drift: {
        test: "chi2",
        statistic: chi.statistic,
        p_value: chi.pValue,
        drifted: chi.pValue < alpha,
        jensen_shannon: jensenShannonDistance(expected, seen),
        psi: populationStabilityIndex(expected, seen),
      },
    };
  });
  const windowScores = Array.from(scores);
  const mean = n === 0 ? null : windowScores.reduce((a, b) => a + b, 0) / n;
  const task = snapshot.task;
  const meanConfidence =
    n === 0 || task === undefined || task === "regression"
      ? null
      : windowScores.reduce((a, p) => a + (task === "binary" ? Math.max(p, 1 - p) : p), 0) / n;
  let scoreDrift: MonitorReport["score"]["drift"];
  if (enough && profile!.score.sample.values.length > 0) {
    const ks = ksTwoSample(windowScores, profile!.score.sample.values);
    scoreDrift = { statistic: ks.statistic, p_value: ks.pValue, drifted: ks.pValue < alpha };
  }
  let anomalyRate: number | null = null;
  if (forest !== null && n > 0) {
    let anomalous = 0;
    for (let i = 0; i < n; i++) {
      if (forest.isAnomalous(forest.score(rows.subarray(i * width, (i + 1) * width)))) anomalous++;
    }
    anomalyRate = anomalous / n;
  }
  const tested = reports.filter((r) => r.drift !== undefined);
  return {
    observed,
    window: n,
    ...snapshot.window,
    alpha,
    profile:
      profile === null
        ? null
        : {
            reference_sha256: profile.provenance.referenceSha256,
            created_at: profile.provenance.createdAt,
            rows: profile.provenance.rows,
          },
    features: reports,
    score: { mean, mean_confidence: meanConfidence, ...(scoreDrift ? { drift: scoreDrift } : {}) },
    anomaly_rate: anomalyRate,
    dataset: enough
      ? datasetDriftVerdict(
          tested.map((r) => ({ feature: r.name, drifted: r.drift!.drifted, pValue: r.drift!.p_value })),
          { alpha },
        )
      : null,
  };
}

/** Smallest expected count a chi-squared bin may have (Cochran's rule); sparser bins are pooled. */
export const MIN_EXPECTED_COUNT = 5;

/**
 * Pool the bins whose expected count (the reference's share scaled to the current total) is below
 * {@link MIN_EXPECTED_COUNT} into one bin, and that bin into the sparsest other one while it is still below:
 * rare categories would otherwise dominate the statistic and flag drift that is noise. Returns the current
 * and reference counts of the pooled bins.
 */
export function poolSparse(current: readonly number[], reference: readonly number[]): [number[], number[]] {
  const total = current.reduce((a, b) => a + b, 0);
  const referenceTotal = reference.reduce((a, b) => a + b, 0);
  if (total === 0 || referenceTotal === 0) return [[...current], [...reference]];
  const expectedOf = (count: number) => (count * total) / referenceTotal;
  const keptCurrent: number[] = [];
  const keptReference: number[] = [];
  let pooledCurrent = 0;
  let pooledReference = 0;
  current.forEach((c, i) => {
    const r = reference[i]!;
    if (expectedOf(r) < MIN_EXPECTED_COUNT) {
      pooledCurrent += c;
      pooledReference += r;
    } else {
      keptCurrent.push(c);
      keptReference.push(r);
    }
  });
  if (pooledCurrent > 0 || pooledReference > 0) {
    if (expectedOf(pooledReference) >= MIN_EXPECTED_COUNT || keptReference.length === 0) {
      keptCurrent.push(pooledCurrent);
      keptReference.push(pooledReference);
    } else {
      let sparsest = 0;
      for (let i = 1; i < keptReference.length; i++)
        if (keptReference[i]! < keptReference[sparsest]!) sparsest = i;
      keptCurrent[sparsest]! += pooledCurrent;
      keptReference[sparsest]! += pooledReference;
    }
  }
  return [keptCurrent, keptReference];
}
