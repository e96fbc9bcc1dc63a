/**
 * The fairness audit: per-group metrics, disparities between groups and to a reference group, the named criteria
 * (demographic parity, equalized odds, equal opportunity, predictive parity, the four-fifths rule), individual
 * fairness from the benefits, significance tests of each group against the reference with a multiple-comparison
 * correction, and seeded bootstrap percentile intervals for every figure.
 *
 * Every figure is computed from counts gathered in one pass: the (group × y × ŷ) cells, and with scores the
 * score sums and (group × score bin × y) counts. The point estimate and each bootstrap resample go through the
 * same function of those counts ({@link AuditStatistics}), so they cannot disagree.
 */

import { seededRandom } from "../explain/index.js";
import { adjustPValues, type PValueAdjustment } from "../monitor/index.js";
import { type PercentileInterval, percentileInterval, sampleMultinomial } from "./bootstrap.js";
import {
  betweenGroups,
  chooseReference,
  type DisparityMetric,
  type EqualizedOddsAggregate,
  equalizedOdds,
  passesFourFifths,
  type ReferenceGroup,
  toReference,
} from "./disparity.js";
import { encodeGroups, type GroupEncoding, type GroupKey, type SensitiveAttribute } from "./groups.js";
import { betweenGroupGeneralizedEntropyFromCells, generalizedEntropyFromCells } from "./individual.js";
import {
  type BinaryLabels,
  CELLS,
  countOutcomes,
  type OutcomeCounts,
  RATE_DEFINITIONS,
  RATE_METRICS,
  type RateMetric,
  rate,
  rateCounts,
  type UndefinedReason,
} from "./metrics.js";
import { type ProportionTest, proportionTestPValue } from "./significance.js";

/** The rows audited. */
export interface FairnessAuditInput {
  /** The sensitive attributes (their intersection is the group), or rows already encoded by encodeGroups. */
  readonly groups: GroupEncoding | readonly SensitiveAttribute[];
  /** Observed outcomes, 0 or 1. */
  readonly yTrue: BinaryLabels;
  /** Decisions, 0 or 1 (1: the positive prediction). */
  readonly yPred: BinaryLabels;
  /** Scores in [0, 1], for the mean score and calibration; optional. */
  readonly scores?: ArrayLike<number>;
}

/** Bootstrap settings. */
export interface BootstrapOptions {
  /** Resamples (default 200; 0 for none). */
  readonly resamples?: number;
  /** Seed of the stream (default 0): the same seed and rows give the same intervals. */
  readonly seed?: number;
  /** Interval level (default 0.95). */
  readonly level?: number;
  /**
   * Resample within each group, keeping group sizes fixed (default true: the figures are conditional on who is
   * in which group); false resamples all rows together, so group sizes vary too.
   */
  readonly stratify?: boolean;
}

/** Audit settings; every one has a default. */
export interface FairnessAuditOptions {
  /** Groups with fewer rows are flagged "small" (default 30). */
  readonly minGroupSize?: number;
  /**
   * "flag" (default): small groups take part in everything, flagged. "exclude": they are left out of the
   * between-groups figures, the reference choice, the criteria and the tests (their own figures stay).
   * Empty groups are always left out of those, and always flagged.
   */
  readonly smallGroups?: "flag" | "exclude";
  /** Reference group rule (default "largest"). */
  readonly reference?: ReferenceGroup;
  /** Whether ŷ = 1 is the favourable outcome, for the "best" reference rule (default true). */
  readonly positiveIsFavourable?: boolean;
  /** Equalized odds aggregate (default "worst"). */
  readonly equalizedOdds?: EqualizedOddsAggregate;
  /** Calibration bins (default 10). */
  readonly calibrationBins?: number;
  /** α of the generalized entropy index (default 2, as AI Fairness 360); the Theil index (α = 1) is always given. */
  readonly entropyAlpha?: number;
  /** Bootstrap settings, or false for none. */
  readonly bootstrap?: BootstrapOptions | false;
  /** Test of each group's rate against the reference's (default "fisher"). */
  readonly test?: ProportionTest;
  /** Rates tested (default selection rate, TPR, FPR, precision; complements such as FNR give the same p-value). */
  readonly testedMetrics?: readonly RateMetric[];
  /** Multiple-comparison correction over all the tests of the audit (default "holm"). */
  readonly correction?: PValueAdjustment;
  /** Significance level of the corrected p-values (default 0.05). */
  readonly alpha?: number;
}

/** Groups with fewer rows are flagged "small" unless `minGroupSize` says otherwise. */
export const DEFAULT_MIN_GROUP_SIZE = 30;
/** Bootstrap resamples unless `bootstrap.resamples` says otherwise. */
export const DEFAULT_RESAMPLES = 200;
/** Rates tested against the reference unless `testedMetrics` says otherwise. */
export const DEFAULT_TESTED_METRICS: readonly RateMetric[] = Object.freeze([
  "selection_rate",
  "tpr",
  "fpr",
  "precision",
]);

/** A number with, when it is NaN, the reason, and with its bootstrap interval when one was asked for. */
export interface Figure {
  readonly value: number;
  readonly reason?: UndefinedReason;
  readonly interval?: PercentileInterval;
}

/** What a group can be flagged: no rows, fewer than minGroupSize rows, left out of the comparisons. */
export const GROUP_FLAGS = ["empty", "small", "excluded"] as const;
export type GroupFlag = (typeof GROUP_FLAGS)[number];

/** One calibration bin of one group: [lower, upper), the last bin closed at 1. */
export interface CalibrationBinReport {
  readonly lower: number;
  readonly upper: number;
  readonly count: number;
  /** Mean score of the bin's rows (NaN when empty). */
  readonly meanScore: number;
  /** Share of the bin's rows with y = 1. */
  readonly observedRate: Figure;
}

/** One group's counts, flags and figures. */
export interface GroupReport {
  readonly group: GroupKey;
  readonly count: number;
  readonly confusion: { readonly tn: number; readonly fp: number; readonly fn: number; readonly tp: number };
  /** "empty": no rows; "small": fewer than minGroupSize; "excluded": left out of comparisons. */
  readonly flags: readonly GroupFlag[];
  readonly metrics: Readonly<Record<RateMetric, Figure>>;
  readonly meanScore?: Figure;
  readonly calibration?: readonly CalibrationBinReport[];
}

/**
 * One metric across groups. Signs: `difference` to the reference is group − reference, `ratio` group / reference;
 * between groups, max − min (≥ 0) and min / max (in [0, 1]).
 */
export interface DisparityReport {
  readonly metric: DisparityMetric;
  /** The reference group, or null when no eligible group has the metric defined. */
  readonly reference: string | null;
  /** Largest − smallest and smallest / largest over eligible groups with the metric defined. */
  readonly betweenGroups: {
    readonly difference: Figure;
    readonly ratio: Figure;
    readonly minGroup: string | null;
    readonly maxGroup: string | null;
  };
  /** Every group: group − reference, group / reference. */
  readonly toReference: readonly {
    readonly group: string;
    readonly difference: Figure;
    readonly ratio: Figure;
  }[];
}

/** A named criterion as a between-groups difference (max − min) and ratio (min / max). */
export interface CriterionReport {
  readonly difference: Figure;
  readonly ratio: Figure;
}

/** The four-fifths rule on selection rates against the reference group. */
export interface FourFifthsReport {
  readonly reference: string | null;
  /** Each eligible group's selection-rate ratio to the reference and whether it lies in [0.8, 1.25]. */
  readonly groups: readonly {
    readonly group: string;
    readonly ratio: Figure;
    readonly passes: boolean | null;
  }[];
  /** Every eligible group passes; null when some ratio is undefined and none fails. */
  readonly passes: boolean | null;
}

/** One group's rate tested against the reference group's (two-sided), with its corrected p-value. */
export interface GroupTestResult {
  readonly metric: RateMetric;
  readonly group: string;
  readonly reference: string;
  readonly successes: number;
  readonly trials: number;
  readonly referenceSuccesses: number;
  readonly referenceTrials: number;
  /** NaN (with reason) when the group or the reference has no trials for this rate. */
  readonly pValue: number;
  readonly adjustedPValue: number;
  readonly significant: boolean;
  readonly reason?: UndefinedReason;
}

/** The result of {@link fairnessAudit}; NaN figures become null in JSON, each with its reason. */
export interface FairnessAudit {
  readonly rows: number;
  readonly attributes: readonly string[];
  readonly minGroupSize: number;
  readonly groups: readonly GroupReport[];
  readonly disparities: readonly DisparityReport[];
  readonly criteria: {
    readonly demographicParity: CriterionReport;
    readonly equalOpportunity: CriterionReport;
    readonly predictiveParity: CriterionReport;
    readonly equalizedOdds: CriterionReport & { readonly aggregate: EqualizedOddsAggregate };
    readonly fourFifths: FourFifthsReport;
  };
  readonly individual: {
    readonly alpha: number;
    readonly generalizedEntropy: Figure;
    readonly theil: Figure;
    readonly betweenGroupGeneralizedEntropy: Figure;
    readonly betweenGroupTheil: Figure;
  };
  readonly tests: {
    readonly method: ProportionTest;
    readonly correction: PValueAdjustment;
    readonly alpha: number;
    readonly results: readonly GroupTestResult[];
  };
  readonly bootstrap: {
    readonly resamples: number;
    readonly seed: number;
    readonly level: number;
    readonly stratified: boolean;
    /** "cell-counts": multinomial counts per (group × y × ŷ) cell; "rows": rows drawn one by one (with scores). */
    readonly scheme: "cell-counts" | "rows";
  } | null;
}

const M = RATE_METRICS.length;

/**
 * The layout of every figure of an audit in one Float64Array, and the function that fills it from counts.
 * Point estimates and bootstrap replicates both go through {@link AuditStatistics.compute}.
 */
export interface AuditStatistics {
  readonly size: number;
  readonly metrics: readonly DisparityMetric[];
  rateAt(group: number, metric: number): number;
  meanScoreAt(group: number): number;
  calibrationAt(group: number, bin: number): number;
  betweenAt(metric: number): number;
  toReferenceAt(metric: number, group: number): number;
  readonly equalizedOddsAt: number;
  readonly individualAt: number;
  compute(
    cells: Float64Array,
    scoreSums: Float64Array | null,
    calibration: Float64Array | null,
    out: Float64Array,
  ): void;
}

function auditStatistics(
  groupCount: number,
  bins: number | null,
  eligible: readonly boolean[],
  references: readonly number[],
  aggregate: EqualizedOddsAggregate,
  entropyAlpha: number,
): AuditStatistics {
  const G = groupCount;
  const hasScores = bins !== null;
  const metrics: DisparityMetric[] = [...RATE_METRICS, ...(hasScores ? (["mean_score"] as const) : [])];
  const D = metrics.length;
  const meanBase = G * M;
  const calibrationBase = meanBase + (hasScores ? G : 0);
  const betweenBase = calibrationBase + (hasScores ? G * bins : 0);
  const toReferenceBase = betweenBase + 2 * D;
  const equalizedOddsAt = toReferenceBase + 2 * D * G;
  const individualAt = equalizedOddsAt + 2;
  const size = individualAt + 4;
  const values = new Float64Array(G);
  const tprIndex = RATE_METRICS.indexOf("tpr");
  const fprIndex = RATE_METRICS.indexOf("fpr");
  return {
    size,
    metrics,
    rateAt: (g, m) => g * M + m,
    meanScoreAt: (g) => meanBase + g,
    calibrationAt: (g, b) => calibrationBase + g * bins! + b,
    betweenAt: (d) => betweenBase + 2 * d,
    toReferenceAt: (d, g) => toReferenceBase + 2 * (d * G + g),
    equalizedOddsAt,
    individualAt,
    compute(cells, scoreSums, calibration, out) {
      for (let g = 0; g < G; g++) {
        for (let m = 0; m < M; m++) out[g * M + m] = rate(RATE_METRICS[m]!, cells, g);
        if (scoreSums !== null) {
          let n = 0;
          for (let c = 0; c < CELLS; c++) n += cells[g * CELLS + c]!;
          out[meanBase + g] = n === 0 ? Number.NaN : scoreSums[g]! / n;
        }
        if (calibration !== null) {
          for (let b = 0; b < bins!; b++) {
            const at = (g * bins! + b) * 3;
            const n = calibration[at]!;
            out[calibrationBase + g * bins! + b] = n === 0 ? Number.NaN : calibration[at + 1]! / n;
          }
        }
      }
      for (let d = 0; d < D; d++) {
        for (let g = 0; g < G; g++) values[g] = d < M ? out[g * M + d]! : out[meanBase + g]!;
        const between = betweenGroups(values, eligible);
        out[betweenBase + 2 * d] = between.difference;
        out[betweenBase + 2 * d + 1] = between.ratio;
        const ref = references[d]!;
        const refValue = ref < 0 ? Number.NaN : values[ref]!;
        for (let g = 0; g < G; g++) {
          const r = toReference(values[g]!, refValue);
          out[toReferenceBase + 2 * (d * G + g)] = r.difference;
          out[toReferenceBase + 2 * (d * G + g) + 1] = r.ratio;
        }
      }
      const at = (d: number) => ({
        difference: out[betweenBase + 2 * d]!,
        ratio: out[betweenBase + 2 * d + 1]!,
      });
      const eo = equalizedOdds(at(tprIndex), at(fprIndex), aggregate);
      out[equalizedOddsAt] = eo.difference;
      out[equalizedOddsAt + 1] = eo.ratio;
      out[individualAt] = generalizedEntropyFromCells(cells, entropyAlpha);
      out[individualAt + 1] = generalizedEntropyFromCells(cells, 1);
      out[individualAt + 2] = betweenGroupGeneralizedEntropyFromCells(cells, entropyAlpha);
      out[individualAt + 3] = betweenGroupGeneralizedEntropyFromCells(cells, 1);
    },
  };
}

function checkOptions(options: FairnessAuditOptions): void {
  const minGroupSize = options.minGroupSize ?? DEFAULT_MIN_GROUP_SIZE;
  if (!(Number.isInteger(minGroupSize) && minGroupSize >= 1)) {
    throw new RangeError(`minGroupSize must be an integer ≥ 1, got ${minGroupSize}`);
  }
  const alpha = options.alpha ?? 0.05;
  if (!(alpha > 0 && alpha < 1)) throw new RangeError(`alpha must lie in (0, 1), got ${alpha}`);
  const entropyAlpha = options.entropyAlpha ?? 2;
  if (!Number.isFinite(entropyAlpha))
    throw new RangeError(`entropyAlpha must be finite, got ${entropyAlpha}`);
  if (options.bootstrap) {
    const { resamples = DEFAULT_RESAMPLES, level = 0.95 } = options.bootstrap;
    if (!(Number.isInteger(resamples) && resamples >= 0 && resamples <= 100_000)) {
      throw new RangeError(`bootstrap.resamples must be an integer in [0, 100000], got ${resamples}`);
    }
    if (!(level > 0 && level < 1)) throw new RangeError(`bootstrap.level must lie in (0, 1), got ${level}`);
  }
}

/** B × size replicate matrix. */
function bootstrapReplicates(
  counts: OutcomeCounts,
  codes: Uint32Array,
  scores: ArrayLike<number> | undefined,
  statistics: AuditStatistics,
  resamples: number,
  seed: number,
  stratify: boolean,
): Float64Array {
  const random = seededRandom(seed);
  const G = counts.groupCount;
  const S = statistics.size;
  const replicates = new Float64Array(resamples * S);
  const cells = new Float64Array(G * CELLS);
  const out = new Float64Array(S);
  const n = codes.length;
  if (counts.scores === undefined || scores === undefined) {
    for (let r = 0; r < resamples; r++) {
      if (stratify) {
        for (let g = 0; g < G; g++) {
          sampleMultinomial(random, counts.sizes[g]!, counts.cells, cells, g * CELLS, g * CELLS, CELLS);
        }
      } else {
        sampleMultinomial(random, n, counts.cells, cells, 0, 0, G * CELLS);
      }
      statistics.compute(cells, null, null, out);
      replicates.set(out, r * S);
    }
    return replicates;
  }
  // Rows drawn one by one. Each group's scores and cells are first copied into contiguous arrays, so that a
  // draw reads two neighbouring arrays of the group's own rows instead of four scattered ones.
  const { bins } = counts.scores;
  const sums = new Float64Array(G);
  const calibration = new Float64Array(G * bins * 3);
  const rowCells = counts.rowCells;
  const orderedScores = new Float64Array(n);
  const orderedCells = new Uint8Array(n);
  const starts = new Float64Array(G + 1);
  if (stratify) {
    for (let g = 0; g < G; g++) starts[g + 1] = starts[g]! + counts.sizes[g]!;
    const next = starts.slice(0, G);
    for (let i = 0; i < n; i++) {
      const at = next[codes[i]!]!++;
      orderedScores[at] = scores[i]!;
      orderedCells[at] = rowCells[i]!;
    }
  }
  for (let r = 0; r < resamples; r++) {
    cells.fill(0);
    sums.fill(0);
    calibration.fill(0);
    for (let g = 0; g < (stratify ? G : 1); g++) {
      const start = starts[g]!;
      const size = stratify ? counts.sizes[g]! : n;
      for (let k = 0; k < size; k++) {
        const j = start + Math.floor(random.next() * size);
        const group = stratify ? g : codes[j]!;
        const s = stratify ? orderedScores[j]! : scores[j]!;
        const cell = stratify ? orderedCells[j]! : rowCells[j]!;
        cells[group * CELLS + cell]!++;
        sums[group]! += s;
        const at = (group * bins + Math.min(Math.floor(s * bins), bins - 1)) * 3;
        calibration[at]!++;
        calibration[at + 1]! += cell >> 1;
      }
    }
    statistics.compute(cells, sums, calibration, out);
    replicates.set(out, r * S);
  }
  return replicates;
}

/**
 * Audit decisions for fairness across the groups of one or more sensitive attributes (intersectional when
 * several). See docs/fairness.md for every definition, the sign conventions and the choices made.
 *
 * @example
 * fairnessAudit({ groups: [{ name: "sex", values: sex }], yTrue, yPred }, { bootstrap: { seed: 7 } })
 */
export function fairnessAudit(input: FairnessAuditInput, options: FairnessAuditOptions = {}): FairnessAudit {
  checkOptions(options);
  const encoding = "codes" in input.groups ? input.groups : encodeGroups(input.groups);
  const counts = countOutcomes(encoding, input.yTrue, input.yPred, {
    ...(input.scores === undefined ? {} : { scores: input.scores }),
    ...(options.calibrationBins === undefined ? {} : { calibrationBins: options.calibrationBins }),
  });
  const G = counts.groupCount;
  const minGroupSize = options.minGroupSize ?? DEFAULT_MIN_GROUP_SIZE;
  const excludeSmall = options.smallGroups === "exclude";
  const rule = options.reference ?? "largest";
  const positiveIsFavourable = options.positiveIsFavourable ?? true;
  const aggregate = options.equalizedOdds ?? "worst";
  const entropyAlpha = options.entropyAlpha ?? 2;
  const labels = encoding.groups.map((g) => g.label);
  const sizes = counts.sizes;
  const eligible = Array.from(sizes, (n) => n > 0 && !(excludeSmall && n < minGroupSize));
  const flags = Array.from(sizes, (n, g): GroupFlag[] => {
    const f: GroupFlag[] = [];
    if (n === 0) f.push("empty");
    else if (n < minGroupSize) f.push("small");
    if (!eligible[g]) f.push("excluded");
    return f;
  });

  // Reference per disparity metric, from the point estimates (kept fixed in the bootstrap).
  const bins = counts.scores?.bins ?? null;
  const metricList: DisparityMetric[] = [
    ...RATE_METRICS,
    ...(bins === null ? [] : (["mean_score"] as const)),
  ];
  const groupValues = (metric: DisparityMetric) =>
    Float64Array.from({ length: G }, (_, g) =>
      metric === "mean_score"
        ? sizes[g] === 0
          ? Number.NaN
          : counts.scores!.sums[g]! / sizes[g]!
        : rate(metric, counts.cells, g),
    );
  const references = metricList.map((metric) =>
    chooseReference(
      rule,
      metric,
      groupValues(metric),
      sizes,
      eligible,
      encoding.groups,
      positiveIsFavourable,
    ),
  );
  const statistics = auditStatistics(G, bins, eligible, references, aggregate, entropyAlpha);
  const point = new Float64Array(statistics.size);
  statistics.compute(counts.cells, counts.scores?.sums ?? null, counts.scores?.calibration ?? null, point);

  // Bootstrap.
  const bootstrapOptions = options.bootstrap === false ? null : (options.bootstrap ?? {});
  const resamples = bootstrapOptions === null ? 0 : (bootstrapOptions.resamples ?? DEFAULT_RESAMPLES);
  const level = bootstrapOptions?.level ?? 0.95;
  const seed = bootstrapOptions?.seed ?? 0;
  const stratify = bootstrapOptions?.stratify ?? true;
  let intervalOf: (index: number) => PercentileInterval | undefined = () => undefined;
  if (resamples > 0) {
    const replicates = bootstrapReplicates(
      counts,
      encoding.codes,
      input.scores,
      statistics,
      resamples,
      seed,
      stratify,
    );
    const column = new Float64Array(resamples);
    const S = statistics.size;
    intervalOf = (index) => {
      for (let r = 0; r < resamples; r++) column[r] = replicates[r * S + index]!;
      return percentileInterval(column, level);
    };
  }
  const figure = (index: number, reason?: UndefinedReason): Figure => {
    const value = point[index]!;
    const interval = intervalOf(index);
    return {
      value,
      ...(Number.isNaN(value) && reason !== undefined ? { reason } : {}),
      ...(interval === undefined ? {} : { interval }),
    };
  };

  // Groups.
  const groups: GroupReport[] = encoding.groups.map((group, g) => {
    const at = g * CELLS;
    const empty = sizes[g] === 0;
    const metrics = Object.fromEntries(
      RATE_METRICS.map((metric, m) => [
        metric,
        figure(statistics.rateAt(g, m), empty ? "empty-group" : RATE_DEFINITIONS[metric].whenUndefined),
      ]),
    ) as Record<RateMetric, Figure>;
    const report: GroupReport = {
      group,
      count: sizes[g]!,
      confusion: {
        tn: counts.cells[at]!,
        fp: counts.cells[at + 1]!,
        fn: counts.cells[at + 2]!,
        tp: counts.cells[at + 3]!,
      },
      flags: Object.freeze(flags[g]!),
      metrics,
    };
    if (bins === null) return report;
    const calibration = counts.scores!.calibration;
    return {
      ...report,
      meanScore: figure(statistics.meanScoreAt(g), "empty-group"),
      calibration: Array.from({ length: bins }, (_, b) => {
        const c = (g * bins + b) * 3;
        return {
          lower: b / bins,
          upper: (b + 1) / bins,
          count: calibration[c]!,
          meanScore: calibration[c]! === 0 ? Number.NaN : calibration[c + 2]! / calibration[c]!,
          observedRate: figure(statistics.calibrationAt(g, b), "no-rows-in-bin"),
        };
      }),
    };
  });

  // Disparities.
  const disparities: DisparityReport[] = metricList.map((metric, d) => {
    const values = groupValues(metric);
    const between = betweenGroups(values, eligible);
    const ref = references[d]!;
    const refValue = ref < 0 ? Number.NaN : values[ref]!;
    const at = statistics.betweenAt(d);
    return {
      metric,
      reference: ref < 0 ? null : labels[ref]!,
      betweenGroups: {
        difference: figure(at, between.differenceReason),
        ratio: figure(at + 1, between.ratioReason),
        minGroup: between.minGroup < 0 ? null : labels[between.minGroup]!,
        maxGroup: between.maxGroup < 0 ? null : labels[between.maxGroup]!,
      },
      toReference: labels.map((label, g) => {
        const r = toReference(values[g]!, refValue);
        const where = statistics.toReferenceAt(d, g);
        return { group: label, difference: figure(where, r.reason), ratio: figure(where + 1, r.ratioReason) };
      }),
    };
  });
  const byMetric = (metric: DisparityMetric) => disparities.find((x) => x.metric === metric)!;
  const criterion = (metric: DisparityMetric): CriterionReport => ({
    difference: byMetric(metric).betweenGroups.difference,
    ratio: byMetric(metric).betweenGroups.ratio,
  });
  const tprBetween = byMetric("tpr").betweenGroups;
  const fprBetween = byMetric("fpr").betweenGroups;
  const eoReason = tprBetween.difference.reason ?? fprBetween.difference.reason;
  const eoRatioReason = tprBetween.ratio.reason ?? fprBetween.ratio.reason;
  const selection = byMetric("selection_rate");
  const fourFifthsGroups = selection.toReference
    .filter((_, g) => eligible[g])
    .map((entry) => ({
      group: entry.group,
      ratio: entry.ratio,
      passes: passesFourFifths(entry.ratio.value),
    }));
  const verdicts = fourFifthsGroups.map((x) => x.passes);
  const fourFifthsPasses = verdicts.includes(false) ? false : verdicts.includes(null) ? null : true;

  // Significance tests against the reference.
  const method = options.test ?? "fisher";
  const correction = options.correction ?? "holm";
  const alpha = options.alpha ?? 0.05;
  const pending: Omit<GroupTestResult, "adjustedPValue" | "significant">[] = [];
  for (const metric of options.testedMetrics ?? DEFAULT_TESTED_METRICS) {
    const ref = references[metricList.indexOf(metric)]!;
    if (ref < 0) continue;
    const reference = rateCounts(metric, counts.cells, ref);
    for (let g = 0; g < G; g++) {
      if (g === ref || !eligible[g]) continue;
      const own = rateCounts(metric, counts.cells, g);
      const pValue = proportionTestPValue(
        method,
        own.successes,
        own.trials,
        reference.successes,
        reference.trials,
      );
      pending.push({
        metric,
        group: labels[g]!,
        reference: labels[ref]!,
        successes: own.successes,
        trials: own.trials,
        referenceSuccesses: reference.successes,
        referenceTrials: reference.trials,
        pValue,
        ...(Number.isNaN(pValue) ? { reason: RATE_DEFINITIONS[metric].whenUndefined } : {}),
      });
    }
  }
  const defined = pending.filter((t) => !Number.isNaN(t.pValue));
  const adjusted = adjustPValues(
    defined.map((t) => t.pValue),
    correction,
  );
  const adjustedOf = new Map(defined.map((t, i) => [t, adjusted[i]!]));
  const results: GroupTestResult[] = pending.map((t) => {
    const adjustedPValue = adjustedOf.get(t) ?? Number.NaN;
    return { ...t, adjustedPValue, significant: adjustedPValue < alpha };
  });

  const individualAt = statistics.individualAt;
  return {
    rows: encoding.codes.length,
    attributes: encoding.attributes,
    minGroupSize,
    groups,
    disparities,
    criteria: {
      demographicParity: criterion("selection_rate"),
      equalOpportunity: criterion("tpr"),
      predictiveParity: criterion("precision"),
      equalizedOdds: {
        aggregate,
        difference: figure(statistics.equalizedOddsAt, eoReason),
        ratio: figure(statistics.equalizedOddsAt + 1, eoRatioReason),
      },
      fourFifths: { reference: selection.reference, groups: fourFifthsGroups, passes: fourFifthsPasses },
    },
    individual: {
      alpha: entropyAlpha,
      generalizedEntropy: figure(individualAt, "zero-mean-benefit"),
      theil: figure(individualAt + 1, "zero-mean-benefit"),
      betweenGroupGeneralizedEntropy: figure(individualAt + 2, "zero-mean-benefit"),
      betweenGroupTheil: figure(individualAt + 3, "zero-mean-benefit"),
    },
    tests: { method, correction, alpha, results },
    bootstrap:
      resamples === 0
        ? null
        : {
            resamples,
            seed,
            level,
            stratified: stratify,
            scheme: counts.scores === undefined ? "cell-counts" : "rows",
          },
  };
}
