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
import { chiSquaredGoodnessOfFit, ksTwoSample } from "./drift.js";
import { type DatasetDriftVerdict, DEFAULT_ALPHA, datasetDriftVerdict } from "./multiple-testing.js";
import type { ReferenceProfile } from "./profile.js";

/** Decisions a live monitor keeps by default. */
export const DEFAULT_LIVE_WINDOW = 500;
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
    readonly test: "ks" | "chi2";
    readonly statistic: number;
    readonly p_value: number;
    readonly drifted: boolean;
  };
}

/** A live monitor's report (JSON). */
export interface MonitorReport {
  /** Decisions observed since start, and those in the window. */
  readonly observed: number;
  readonly window: number;
  readonly window_size: number;
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
    readonly drift?: { readonly statistic: number; readonly p_value: number; readonly drifted: boolean };
  };
  /** Share of the window's rows at or above the profile's anomaly threshold (null without a profile). */
  readonly anomaly_rate: number | null;
  /** The dataset-level verdict over the features' tests (null without a profile or enough decisions). */
  readonly dataset: DatasetDriftVerdict | null;
}

/** A live monitor. */
export interface LiveMonitor {
  /** Record one decision: its encoded row (NaN = missing) and its policy score. O(features). */
  observe(row: ArrayLike<number>, score: number): void;
  /** Compare the window with the profile (O(window · log window) per feature). */
  report(): MonitorReport;
  /** Use this profile from now on (null: none). */
  setProfile(profile: ReferenceProfile | null): void;
  /**
   * Whether the profile's Isolation Forest finds this encoded row anomalous (undefined without a profile):
   * the per-request signal of the circuit breaker's `anomaly_rate`. O(trees · depth).
   */
  isAnomalous(row: ArrayLike<number>): boolean | undefined;
}

/**
 * A live monitor over `features` (the manifest's model features, in order), with `window` decisions (default
 * {@link DEFAULT_LIVE_WINDOW}) and the profile to compare with, when there is one.
 */
export function createLiveMonitor(
  features: readonly FeatureSpec[],
  options: {
    readonly window?: number;
    readonly profile?: ReferenceProfile | null;
    readonly alpha?: number;
  } = {},
): LiveMonitor {
  const size = options.window ?? DEFAULT_LIVE_WINDOW;
  if (!Number.isInteger(size) || size < 1)
    throw new RangeError(`window must be a whole number >= 1, got ${size}`);
  const alpha = options.alpha ?? DEFAULT_ALPHA;
  const width = features.length;
  const rows = new Float64Array(size * width);
  const scores = new Float64Array(size);
  let next = 0;
  let filled = 0;
  let observed = 0;
  let profile: ReferenceProfile | null = null;
  let forest: IsolationForest | null = null;
  /** The last report, until a decision or a profile changes what it would say (scrapes of an idle model are free). */
  let cached: MonitorReport | undefined;
  const setProfile = (p: ReferenceProfile | null) => {
    cached = undefined;
    if (p !== null && p.features.length !== width) {
      throw new RangeError(`the profile has ${p.features.length} features, the model ${width}`);
    }
    profile = p;
    forest = p === null ? null : isolationForestFromJSON(p.anomaly);
  };
  setProfile(options.profile ?? null);

  const column = (j: number): number[] => {
    const out: number[] = [];
    for (let i = 0; i < filled; i++) out.push(rows[i * width + j]!);
    return out;
  };

  return {
    observe(row, score) {
      if (row.length !== width) throw new RangeError(`a row of ${row.length} values; the model has ${width}`);
      const at = next * width;
      for (let j = 0; j < width; j++) rows[at + j] = row[j]!;
      scores[next] = score;
      next = (next + 1) % size;
      if (filled < size) filled++;
      observed++;
      cached = undefined;
    },
    setProfile,
    isAnomalous(row) {
      if (forest === null) return undefined;
      return forest.isAnomalous(forest.score(row));
    },
    report() {
      cached ??= compute();
      return cached;
    },
  };

  function compute(): MonitorReport {
    const enough = profile !== null && filled >= MIN_DRIFT_OBSERVATIONS;
    const reports: FeatureReport[] = features.map((f, j) => {
      const values = column(j);
      const present = values.filter((v) => !Number.isNaN(v));
      const missingRate = filled === 0 ? 0 : (filled - present.length) / filled;
      const numeric = f.type === "number" || f.type === "integer";
      const outside = numeric
        ? present.filter((v) => (f.min !== undefined && v < f.min) || (f.max !== undefined && v > f.max))
            .length
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
          drift: { test: "ks", statistic: ks.statistic, p_value: ks.pValue, drifted: ks.pValue < alpha },
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
        drift: { test: "chi2", statistic: chi.statistic, p_value: chi.pValue, drifted: chi.pValue < alpha },
      };
    });
    const windowScores = Array.from(scores.subarray(0, filled));
    const mean = filled === 0 ? null : windowScores.reduce((a, b) => a + b, 0) / filled;
    let scoreDrift: MonitorReport["score"]["drift"];
    if (enough && profile!.score.sample.values.length > 0) {
      const ks = ksTwoSample(windowScores, profile!.score.sample.values);
      scoreDrift = { statistic: ks.statistic, p_value: ks.pValue, drifted: ks.pValue < alpha };
    }
    let anomalyRate: number | null = null;
    if (forest !== null && filled > 0) {
      let anomalous = 0;
      for (let i = 0; i < filled; i++) {
        if (forest.isAnomalous(forest.score(rows.subarray(i * width, (i + 1) * width)))) anomalous++;
      }
      anomalyRate = anomalous / filled;
    }
    const tested = reports.filter((r) => r.drift !== undefined);
    return {
      observed,
      window: filled,
      window_size: size,
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
      score: { mean, ...(scoreDrift ? { drift: scoreDrift } : {}) },
      anomaly_rate: anomalyRate,
      dataset: enough
        ? datasetDriftVerdict(
            tested.map((r) => ({ feature: r.name, drifted: r.drift!.drifted, pValue: r.drift!.p_value })),
            { alpha },
          )
        : null,
    };
  }
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
