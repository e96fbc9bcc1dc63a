/**
 * A monitor report over a fixed set of decisions (a time range of the ledger, say), as the live monitor gives
 * it over its window: drift per feature and of the score against the reference profile, missing and
 * out-of-range rates, the anomaly rate and the dataset verdict (live.ts) — and, for binary models, performance:
 * realised figures over the decisions whose outcome is known, the label-free estimate (CBPE) over every
 * decision, and the estimate over the labelled decisions alone beside the realised figures, so that the
 * estimate can be judged where labels have landed.
 */
import type { FeatureSpec } from "../config/index.js";
import { createLiveMonitor, type MonitorReport } from "./live.js";
import {
  type BinaryMetrics,
  binaryMetrics,
  type EstimatedMetrics,
  estimatedBinaryMetrics,
} from "./performance.js";
import type { ReferenceProfile } from "./profile.js";

/** One decision of the range. */
export interface RangeDecision {
  /** The encoded row (model features in manifest order; NaN = missing). */
  readonly row: ArrayLike<number>;
  /** The policy score: P(positive label) for binary models. */
  readonly score: number;
  /** Binary models: whether the known outcome is the positive label; absent while unknown. */
  readonly positive?: boolean;
}

/** Performance figures as the report shows them (JSON; NaN as null). */
export interface PerformanceFigures {
  readonly count: number;
  readonly accuracy: number | null;
  readonly precision: number | null;
  readonly recall: number | null;
  readonly roc_auc: number | null;
  /** Realised only. */
  readonly brier?: number | null;
  readonly ece?: number | null;
  readonly confusion: { readonly tp: number; readonly fp: number; readonly tn: number; readonly fn: number };
}

/** Binary performance over the range. */
export interface RangePerformance {
  readonly threshold: number;
  /** Decisions in the range, and those with a known outcome. */
  readonly decisions: number;
  readonly labelled: number;
  /** Over the labelled decisions; null when none is labelled. */
  readonly realised: PerformanceFigures | null;
  /** CBPE over every decision of the range; null when there is none. */
  readonly estimated: PerformanceFigures | null;
  /** CBPE over the labelled decisions only: what the estimate said where the truth is now known. */
  readonly estimated_on_labelled: PerformanceFigures | null;
  /** realised − estimated_on_labelled, per figure (null where either is). */
  readonly estimate_error: {
    readonly accuracy: number | null;
    readonly precision: number | null;
    readonly recall: number | null;
    readonly roc_auc: number | null;
  } | null;
}

/** The report over a range. */
export interface RangeReport extends MonitorReport {
  /** Binary models only (null for others). */
  readonly performance: RangePerformance | null;
}

/** Options of {@link rangeReport}. */
export interface RangeReportOptions {
  readonly profile: ReferenceProfile | null;
  /** Binary models: the policy threshold on the score. Absent: no performance section. */
  readonly threshold?: number;
  readonly alpha?: number;
  /** The model's task, for the mean confidence. */
  readonly task?: "binary" | "multiclass" | "regression";
}

/**
 * The report over `decisions` (in time order), against `options.profile`. O(n log n) per feature.
 */
export function rangeReport(
  features: readonly FeatureSpec[],
  decisions: readonly RangeDecision[],
  options: RangeReportOptions,
): RangeReport {
  const monitor = createLiveMonitor(features, {
    window: Math.max(1, decisions.length),
    profile: options.profile,
    ...(options.task !== undefined ? { task: options.task } : {}),
    ...(options.alpha !== undefined ? { alpha: options.alpha } : {}),
  });
  for (const d of decisions) monitor.observe(d.row, d.score);
  const report = monitor.report();
  return {
    ...report,
    performance: options.threshold === undefined ? null : performanceOf(decisions, options.threshold),
  };
}

function performanceOf(decisions: readonly RangeDecision[], threshold: number): RangePerformance {
  const scores = decisions.map((d) => d.score);
  const labelled = decisions.filter((d) => d.positive !== undefined);
  const labelledScores = labelled.map((d) => d.score);
  const realised =
    labelled.length === 0
      ? null
      : realisedFigures(
          binaryMetrics(
            labelledScores,
            labelled.map((d) => (d.positive ? 1 : 0)),
            { threshold },
          ),
        );
  const estimated =
    scores.length === 0 ? null : estimatedFigures(estimatedBinaryMetrics(scores, { threshold }));
  const onLabelled =
    labelled.length === 0 ? null : estimatedFigures(estimatedBinaryMetrics(labelledScores, { threshold }));
  const gap = (a: number | null | undefined, b: number | null | undefined) =>
    a === null || a === undefined || b === null || b === undefined ? null : a - b;
  return {
    threshold,
    decisions: decisions.length,
    labelled: labelled.length,
    realised,
    estimated,
    estimated_on_labelled: onLabelled,
    estimate_error:
      realised === null || onLabelled === null
        ? null
        : {
            accuracy: gap(realised.accuracy, onLabelled.accuracy),
            precision: gap(realised.precision, onLabelled.precision),
            recall: gap(realised.recall, onLabelled.recall),
            roc_auc: gap(realised.roc_auc, onLabelled.roc_auc),
          },
  };
}

/** NaN (an undefined figure: no positives, a single class) as null, for JSON. */
const figure = (value: number): number | null => (Number.isFinite(value) ? value : null);

function realisedFigures(m: BinaryMetrics): PerformanceFigures {
  return {
    count: m.count,
    accuracy: figure(m.accuracy),
    precision: figure(m.precision),
    recall: figure(m.recall),
    roc_auc: figure(m.rocAuc),
    brier: figure(m.brier),
    ece: figure(m.ece),
    confusion: { ...m.confusion },
  };
}

function estimatedFigures(m: EstimatedMetrics): PerformanceFigures {
  return {
    count: m.count,
    accuracy: figure(m.accuracy),
    precision: figure(m.precision),
    recall: figure(m.recall),
    roc_auc: figure(m.rocAuc),
    confusion: { ...m.confusion },
  };
}
