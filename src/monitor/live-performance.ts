/**
 * A binary model version's live performance: the label-free estimate (CBPE) over its latest decisions, and
 * the realised figures over its latest outcomes beside the estimate for those same decisions, each over a
 * window by count and a window by time. O(1) per decision and per outcome (mergeable summaries in bucketed
 * windows, performance-summary.ts and window.ts); a report merges the live buckets.
 */
import type { BinaryLabel } from "./performance.js";
import {
  createPerformanceSummary,
  type PerformanceSummary,
  type SummaryEstimates,
  type SummaryMetrics,
} from "./performance-summary.js";
import { countWindow, type SlidingWindow, type SummaryKind, timeWindow } from "./window.js";

/** Decisions and outcomes a count window holds by default (in buckets of a tenth). */
export const DEFAULT_PERFORMANCE_COUNT = 1000;
/** Span of the time window by default: a day, in hourly buckets. */
export const DEFAULT_PERFORMANCE_HOURS = 24;

/** Options of {@link createLivePerformance}. */
export interface LivePerformanceOptions {
  /** The policy threshold: score ≥ threshold predicts the positive label. */
  readonly threshold: number;
  /** Observations of each count window (a multiple of 10). Default {@link DEFAULT_PERFORMANCE_COUNT}. */
  readonly count?: number;
  /** Hours of the time windows (hourly buckets). Default {@link DEFAULT_PERFORMANCE_HOURS}. */
  readonly hours?: number;
  /** The clock (ms since the epoch). Default Date.now. */
  readonly now?: () => number;
}

/** Figures of one window, as the report shows them (JSON; undefined figures as null). */
export interface WindowPerformance {
  /** Decisions in the window (the estimate's base). */
  readonly decisions: number;
  /** CBPE over those decisions; null when there is none. */
  readonly estimated: WindowFigures | null;
  /** Outcomes in the window. */
  readonly outcomes: number;
  /** Realised over the window's outcomes; null when there is none. */
  readonly realised: WindowFigures | null;
  /** CBPE over the decisions whose outcome is in the window: what the estimate said where the truth is known. */
  readonly estimated_on_labelled: WindowFigures | null;
}

/** One set of figures (estimates have no Brier score or calibration error). */
export interface WindowFigures {
  readonly accuracy: number | null;
  readonly precision: number | null;
  readonly recall: number | null;
  readonly roc_auc: number | null;
  /** The AUC comes from a 200-bin score histogram: |roc_auc − exact| ≤ this. */
  readonly roc_auc_error_bound: number | null;
  readonly brier?: number | null;
  readonly ece?: number | null;
}

/** The live performance report. */
export interface LivePerformanceReport {
  readonly threshold: number;
  /** The latest `count` decisions, and the latest `count` outcomes. */
  readonly by_count: WindowPerformance & { readonly size: number };
  /** Decisions made, and outcomes recorded, in the last `hours` hours. */
  readonly by_time: WindowPerformance & { readonly hours: number };
}

/** A live performance monitor. */
export interface LivePerformance {
  /** A decision was made with this score (P(positive)). */
  observeDecision(score: number): void;
  /** An outcome landed for a decision of this score: whether it is the positive label. */
  observeOutcome(score: number, positive: boolean): void;
  report(): LivePerformanceReport;
}

const HOUR_MS = 3_600_000;

/**
 * A live performance monitor for a binary model version.
 *
 * @throws RangeError on a threshold outside [0, 1], or window sizes that are not positive whole numbers.
 */
export function createLivePerformance(options: LivePerformanceOptions): LivePerformance {
  const { threshold } = options;
  if (!(threshold >= 0 && threshold <= 1))
    throw new RangeError(`threshold must be in [0, 1], got ${threshold}`);
  const size = options.count ?? DEFAULT_PERFORMANCE_COUNT;
  if (!Number.isInteger(size) || size < 10 || size % 10 !== 0)
    throw new RangeError(`count must be a multiple of 10, at least 10; got ${size}`);
  const hours = options.hours ?? DEFAULT_PERFORMANCE_HOURS;
  if (!Number.isInteger(hours) || hours < 1)
    throw new RangeError(`hours must be a whole number >= 1, got ${hours}`);
  const now = options.now ?? Date.now;
  // Decisions count towards the estimate; an outcome towards the realised figures and, with its score, towards
  // the estimate over the labelled decisions (the same summary: the one's estimate, the other's truth).
  const decisions: SummaryKind<PerformanceSummary, number> = {
    create: () => createPerformanceSummary({ threshold }),
    add: (summary, score) => summary.addDecision(score),
    merge: (into, from) => into.merge(from),
  };
  const outcomes: SummaryKind<PerformanceSummary, { score: number; label: BinaryLabel }> = {
    create: () => createPerformanceSummary({ threshold }),
    add: (summary, { score, label }) => {
      summary.addDecision(score);
      summary.addOutcome(score, label);
    },
    merge: (into, from) => into.merge(from),
  };
  const byCount = { bucketSize: size / 10, buckets: 10 };
  const byTime = { bucketMs: HOUR_MS, buckets: hours, now };
  const windows = {
    count: { decisions: countWindow(decisions, byCount), outcomes: countWindow(outcomes, byCount) },
    time: { decisions: timeWindow(decisions, byTime), outcomes: timeWindow(outcomes, byTime) },
  };
  const checkScore = (score: number) => {
    if (!(score >= 0 && score <= 1))
      throw new RangeError(`scores must be probabilities in [0, 1], got ${score}`);
  };
  return {
    observeDecision(score) {
      checkScore(score);
      windows.count.decisions.add(score);
      windows.time.decisions.add(score);
    },
    observeOutcome(score, positive) {
      checkScore(score);
      const observation = { score, label: positive ? 1 : 0 } as const;
      windows.count.outcomes.add(observation);
      windows.time.outcomes.add(observation);
    },
    report() {
      return {
        threshold,
        by_count: { size, ...windowReport(windows.count.decisions, windows.count.outcomes) },
        by_time: { hours, ...windowReport(windows.time.decisions, windows.time.outcomes) },
      };
    },
  };
}

function windowReport(
  decisions: SlidingWindow<PerformanceSummary, number>,
  outcomes: SlidingWindow<PerformanceSummary, { score: number; label: BinaryLabel }>,
): WindowPerformance {
  const decided = decisions.count();
  const labelled = outcomes.count();
  const outcomeSummary = labelled === 0 ? undefined : outcomes.summary();
  return {
    decisions: decided,
    estimated: decided === 0 ? null : estimatedFigures(decisions.summary().estimated()),
    outcomes: labelled,
    realised: outcomeSummary === undefined ? null : realisedFigures(outcomeSummary.realised()),
    estimated_on_labelled: outcomeSummary === undefined ? null : estimatedFigures(outcomeSummary.estimated()),
  };
}

const figure = (value: number): number | null => (Number.isFinite(value) ? value : null);

function realisedFigures(m: SummaryMetrics): WindowFigures {
  return {
    accuracy: figure(m.accuracy),
    precision: figure(m.precision),
    recall: figure(m.recall),
    roc_auc: figure(m.rocAuc),
    roc_auc_error_bound: figure(m.rocAucErrorBound),
    brier: figure(m.brier),
    ece: figure(m.ece),
  };
}

function estimatedFigures(m: SummaryEstimates): WindowFigures {
  return {
    accuracy: figure(m.accuracy),
    precision: figure(m.precision),
    recall: figure(m.recall),
    roc_auc: figure(m.rocAuc),
    roc_auc_error_bound: figure(m.rocAucErrorBound),
  };
}
