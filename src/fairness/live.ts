/**
 * The live fairness monitor of one binary model version. At each decision the subject's sensitive attributes,
 * held in memory only, are put into the policy's groups at once (their values are never kept); the groups'
 * counts go into mergeable windows (the latest N decisions, and the last H hours, monitor/window.ts), so a
 * report costs O(buckets × groups) whatever the traffic. Outcomes arrive later: a bounded map from recent
 * decision ids to their group codes and decision lets an outcome join its decision's groups, for TPR and FPR.
 *
 * Threshold crossings (judged over the count window, after every decision and outcome) raise one alert when an
 * episode starts and one when it ends, never one per request. This is the one module of fairness/ with a clock
 * (the time window's, injectable).
 */

import type { FairnessAttribute, FairnessPolicy } from "../config/index.js";
import { countWindow, type SlidingWindow, type SummaryKind, timeWindow } from "../monitor/window.js";
import { betweenGroups, chooseReference, equalizedOdds, toReference } from "./disparity.js";
import type { GroupKey } from "./groups.js";
import { DecisionMemory } from "./memory.js";
import { CELLS, rate } from "./metrics.js";
import {
  attributeLevels,
  type CriterionVerdict,
  type FairnessCriterion,
  judge,
  levelIndex,
  overallVerdict,
  type Verdict,
} from "./policy.js";

/** An alert in the shape Alertmanager takes; `status` says whether the episode starts or ends. */
export interface FairnessAlert {
  /** `WardenFairnessDisparity`. */
  readonly name: string;
  readonly severity: "warning" | "critical";
  /** model, version, attribute, criterion, window. */
  readonly labels: Readonly<Record<string, string>>;
  /** summary, description, value, threshold. */
  readonly annotations: Readonly<Record<string, string>>;
  /** ISO-8601 UTC: when the episode started (the same on its resolution). */
  readonly startsAt: string;
  /** ISO-8601 UTC, on a resolution only: when the episode ended. */
  readonly endsAt?: string;
  readonly status: "firing" | "resolved";
}

/** Options of {@link createLiveFairness}. */
export interface LiveFairnessOptions {
  readonly model: string;
  readonly version: string;
  readonly policy: FairnessPolicy;
  /** The output label the subject hopes for: deciding it is a selection; observing it, a positive outcome. */
  readonly favourableLabel: string;
  /** The clock (ms since the epoch); default Date.now. */
  readonly now?: () => number;
  /** Called once when an episode starts (firing) and once when it ends (resolved). */
  readonly onAlert?: (alert: FairnessAlert) => void;
  /**
   * The criteria are judged for alerts after this many observations (decisions and outcomes), or sooner once
   * a second has passed since the last judgement (default 250; 1: after every observation). Judging merges the
   * window's buckets, so it is kept off the per-decision path.
   */
  readonly evaluateEvery?: number;
}

/** One group of one attribute in one window. */
export interface LiveGroupReport {
  readonly group: string;
  readonly decisions: number;
  /** Decisions of the favourable label. */
  readonly selected: number;
  readonly selection_rate: number | null;
  /** Selection rate over the reference group's (null when either is undefined or the reference's is 0). */
  readonly selection_rate_ratio_to_reference: number | null;
  /** Outcomes joined to this group's decisions (favourable label = positive). */
  readonly outcomes: number;
  readonly confusion: { readonly tn: number; readonly fp: number; readonly fn: number; readonly tp: number };
  readonly tpr: number | null;
  readonly fpr: number | null;
  /** Whether the group has min_group_size decisions (selection) and outcomes (error rates) to be compared. */
  readonly compared: { readonly selection: boolean; readonly error_rates: boolean };
}

/** A between-groups figure: largest − smallest, smallest / largest, over the compared groups. */
export interface LiveBetween {
  readonly difference: number | null;
  readonly ratio: number | null;
  readonly min_group: string | null;
  readonly max_group: string | null;
}

/** One attribute in one window. */
export interface LiveAttributeReport {
  readonly attribute: string;
  readonly reference: string | null;
  readonly groups: readonly LiveGroupReport[];
  readonly selection_rate: LiveBetween;
  readonly tpr: LiveBetween;
  readonly fpr: LiveBetween;
  readonly equalized_odds_difference: number | null;
  readonly criteria: readonly CriterionVerdict[];
  readonly verdict: Verdict;
}

/** One window. */
export interface LiveWindowReport {
  readonly decisions: number;
  readonly outcomes: number;
  readonly attributes: readonly LiveAttributeReport[];
}

/** The monitor's report. */
export interface LiveFairnessReport {
  readonly favourable_label: string;
  readonly min_group_size: number;
  readonly thresholds: FairnessPolicy["thresholds"];
  /** The latest `size` decisions, and the latest `size` outcomes joined to their decisions. */
  readonly by_count: LiveWindowReport & { readonly size: number };
  /** Decisions made, and outcomes joined, in the last `hours` hours. */
  readonly by_time: LiveWindowReport & { readonly hours: number };
  /** What became of the outcomes that arrived. */
  readonly outcomes: {
    /** Joined to a remembered decision and counted. */
    readonly counted: number;
    /** For a decision not (or no longer) in memory: older than the map, made before a restart, or elsewhere. */
    readonly unknown_decision: number;
    /** A later outcome of a decision already counted (corrections are not counted twice). */
    readonly repeated: number;
    /** Decisions remembered now, and at most. */
    readonly remembered: number;
    readonly capacity: number;
  };
  /** The lowest selection-rate ratio over the attributes (count window); null when none is defined. */
  readonly worst_selection_rate_ratio: number | null;
  /** Alerts firing now. */
  readonly firing: readonly FairnessAlert[];
}

/** The live fairness monitor of one model version. */
export interface LiveFairness {
  /** A decision was made (the model's decision, also when held for review). The subject is not kept. */
  observeDecision(
    decisionId: string,
    subject: Readonly<Record<string, unknown>>,
    decision: string | null,
  ): void;
  /** An outcome arrived for a decision. */
  observeOutcome(decisionId: string, outcome: unknown): "counted" | "unknown_decision" | "repeated";
  report(): LiveFairnessReport;
  /** The lowest selection-rate ratio over the attributes in the count window (null: none defined yet). */
  worstRatio(): number | null;
  /** Decisions in the count window (behind {@link worstRatio}). */
  decisions(): number;
  /** Alerts firing now. */
  firing(): readonly FairnessAlert[];
}

const HOUR_MS = 3_600_000;
/** Observations between two judgements of the criteria for alerts, by default. */
export const DEFAULT_EVALUATE_EVERY = 250;

interface Observation {
  /** Group code per attribute. */
  readonly codes: readonly number[];
  /** 2·y + ŷ. */
  readonly cell: number;
}

const num = (x: number): number | null => (Number.isFinite(x) ? x : null);

/**
 * A live fairness monitor over the policy's attributes.
 *
 * @throws RangeError when the policy has no attribute.
 */
export function createLiveFairness(options: LiveFairnessOptions): LiveFairness {
  const { policy, favourableLabel, model, version } = options;
  const now = options.now ?? Date.now;
  const attributes = policy.attributes;
  if (attributes.length === 0) throw new RangeError("the fairness policy has no attribute to monitor");
  const levels = attributes.map(attributeLevels);
  const offsets: number[] = [];
  let size = 0;
  for (const l of levels) {
    offsets.push(size);
    size += l.length * CELLS;
  }
  const kind: SummaryKind<Float64Array, Observation> = {
    create: () => new Float64Array(size),
    add(summary, { codes, cell }) {
      codes.forEach((code, a) => {
        summary[offsets[a]! + code * CELLS + cell]!++;
      });
    },
    merge(into, from) {
      for (let i = 0; i < size; i++) into[i]! += from[i]!;
    },
  };
  const { window, hours, outcomeMemory } = policy.live;
  const byCount = { bucketSize: window / 10, buckets: 10 };
  const byTime = { bucketMs: HOUR_MS, buckets: hours, now };
  const windows = {
    count: { decisions: countWindow(kind, byCount), outcomes: countWindow(kind, byCount) },
    time: { decisions: timeWindow(kind, byTime), outcomes: timeWindow(kind, byTime) },
  };
  // Typed arrays, first in first out (memory.ts): no object per decision for the collector to copy and sweep.
  const memory = new DecisionMemory(outcomeMemory, attributes.length);
  const tally = { counted: 0, unknown_decision: 0, repeated: 0 };
  const groupKeys: GroupKey[][] = attributes.map((a, i) =>
    levels[i]!.map((label) => ({ label, values: { [a.name]: label } })),
  );

  const attributeReport = (
    a: number,
    decisions: Float64Array,
    outcomes: Float64Array,
  ): LiveAttributeReport => {
    const attribute = attributes[a]!;
    const G = levels[a]!.length;
    const d = decisions.subarray(offsets[a], offsets[a]! + G * CELLS);
    const o = outcomes.subarray(offsets[a], offsets[a]! + G * CELLS);
    const sizes = new Float64Array(G);
    const outcomeSizes = new Float64Array(G);
    for (let g = 0; g < G; g++) {
      for (let c = 0; c < CELLS; c++) {
        sizes[g]! += d[g * CELLS + c]!;
        outcomeSizes[g]! += o[g * CELLS + c]!;
      }
    }
    const min = policy.minGroupSize;
    const selectionEligible = Array.from(sizes, (n) => n >= min && n > 0);
    const errorEligible = Array.from(outcomeSizes, (n) => n >= min && n > 0);
    const selection = Float64Array.from({ length: G }, (_, g) => rate("selection_rate", d, g));
    const tpr = Float64Array.from({ length: G }, (_, g) => rate("tpr", o, g));
    const fpr = Float64Array.from({ length: G }, (_, g) => rate("fpr", o, g));
    const named = referenceOf(attribute, levels[a]!);
    const ref = chooseReference(
      named ?? policy.reference,
      "selection_rate",
      selection,
      sizes,
      selectionEligible,
      groupKeys[a]!,
      true,
    );
    const between = (values: Float64Array, eligible: boolean[]): LiveBetween => {
      const b = betweenGroups(values, eligible);
      return {
        difference: num(b.difference),
        ratio: num(b.ratio),
        min_group: b.minGroup < 0 ? null : levels[a]![b.minGroup]!,
        max_group: b.maxGroup < 0 ? null : levels[a]![b.maxGroup]!,
      };
    };
    const sel = betweenGroups(selection, selectionEligible);
    const t = betweenGroups(tpr, errorEligible);
    const f = betweenGroups(fpr, errorEligible);
    const eo = equalizedOdds(t, f);
    const criteria: CriterionVerdict[] = [
      judge("demographic_parity", sel.ratio, policy.thresholds, { reason: sel.ratioReason }),
      judge("equal_opportunity", t.difference, policy.thresholds, { reason: t.differenceReason }),
      judge("equalized_odds", eo.difference, policy.thresholds, {
        reason: t.differenceReason ?? f.differenceReason,
      }),
    ];
    return {
      attribute: attribute.name,
      reference: ref < 0 ? null : levels[a]![ref]!,
      groups: levels[a]!.map((group, g) => ({
        group,
        decisions: sizes[g]!,
        selected: d[g * CELLS + 1]! + d[g * CELLS + 3]!,
        selection_rate: num(selection[g]!),
        selection_rate_ratio_to_reference:
          ref < 0 ? null : num(toReference(selection[g]!, selection[ref]!).ratio),
        outcomes: outcomeSizes[g]!,
        confusion: {
          tn: o[g * CELLS]!,
          fp: o[g * CELLS + 1]!,
          fn: o[g * CELLS + 2]!,
          tp: o[g * CELLS + 3]!,
        },
        tpr: num(tpr[g]!),
        fpr: num(fpr[g]!),
        compared: { selection: selectionEligible[g]!, error_rates: errorEligible[g]! },
      })),
      selection_rate: between(selection, selectionEligible),
      tpr: between(tpr, errorEligible),
      fpr: between(fpr, errorEligible),
      equalized_odds_difference: num(eo.difference),
      criteria,
      verdict: overallVerdict(criteria),
    };
  };

  const windowReport = (
    decisions: SlidingWindow<Float64Array, Observation>,
    outcomes: SlidingWindow<Float64Array, Observation>,
  ): LiveWindowReport => {
    const d = decisions.summary();
    const o = outcomes.summary();
    return {
      decisions: decisions.count(),
      outcomes: outcomes.count(),
      attributes: attributes.map((_, a) => attributeReport(a, d, o)),
    };
  };

  // Alert episodes, one per (attribute, criterion), judged over the count window.
  const episodes = new Map<string, FairnessAlert>();
  const every = options.evaluateEvery ?? DEFAULT_EVALUATE_EVERY;
  if (!Number.isInteger(every) || every < 1)
    throw new RangeError(`evaluateEvery must be a whole number >= 1, got ${every}`);
  let unjudged = 0;
  let judgedAt = Number.NEGATIVE_INFINITY;
  const maybeEvaluate = () => {
    unjudged++;
    const t = now();
    if (unjudged < every && t - judgedAt < 1000) return;
    unjudged = 0;
    judgedAt = t;
    evaluate();
  };
  const evaluate = () => {
    const report = windowReport(windows.count.decisions, windows.count.outcomes);
    const at = new Date(now()).toISOString();
    for (const attribute of report.attributes) {
      for (const c of attribute.criteria) {
        const key = `${attribute.attribute}\u0000${c.criterion}`;
        const open = episodes.get(key);
        if (c.verdict === "fail" && open === undefined) {
          const alert = fairnessAlert(model, version, attribute.attribute, c, at, "firing", at);
          episodes.set(key, alert);
          options.onAlert?.(alert);
        } else if (c.verdict === "pass" && open !== undefined) {
          episodes.delete(key);
          options.onAlert?.(
            fairnessAlert(model, version, attribute.attribute, c, open.startsAt, "resolved", at),
          );
        }
        // insufficient: no verdict either way, the episode (or its absence) goes on.
      }
    }
  };

  const codesOf = (subject: Readonly<Record<string, unknown>>): number[] =>
    attributes.map((a) => levelIndex(a, Object.hasOwn(subject, a.name) ? subject[a.name] : undefined));

  return {
    observeDecision(decisionId, subject, decision) {
      const codes = codesOf(subject);
      const selected = decision === favourableLabel ? 1 : 0;
      const observation = { codes, cell: selected };
      windows.count.decisions.add(observation);
      windows.time.decisions.add(observation);
      memory.remember(decisionId, codes, selected);
      maybeEvaluate();
    },
    observeOutcome(decisionId, outcome) {
      const remembered = memory.recall(decisionId);
      if (remembered === undefined) {
        tally.unknown_decision++;
        return "unknown_decision";
      }
      if (remembered.counted) {
        tally.repeated++;
        return "repeated";
      }
      memory.markCounted(remembered.slot);
      tally.counted++;
      const y = outcome === favourableLabel ? 1 : 0;
      const observation = { codes: memory.codes(remembered.slot), cell: 2 * y + remembered.selected };
      windows.count.outcomes.add(observation);
      windows.time.outcomes.add(observation);
      maybeEvaluate();
      return "counted";
    },
    report() {
      const byCount = windowReport(windows.count.decisions, windows.count.outcomes);
      return {
        favourable_label: favourableLabel,
        min_group_size: policy.minGroupSize,
        thresholds: policy.thresholds,
        by_count: { size: window, ...byCount },
        by_time: { hours, ...windowReport(windows.time.decisions, windows.time.outcomes) },
        outcomes: { ...tally, remembered: memory.size, capacity: outcomeMemory },
        worst_selection_rate_ratio: worstOf(byCount),
        firing: [...episodes.values()],
      };
    },
    worstRatio() {
      return worstOf(windowReport(windows.count.decisions, windows.count.outcomes));
    },
    decisions: () => windows.count.decisions.count(),
    firing: () => [...episodes.values()],
  };
}

function worstOf(report: LiveWindowReport): number | null {
  let worst: number | null = null;
  for (const a of report.attributes) {
    const r = a.selection_rate.ratio;
    if (r !== null && (worst === null || r < worst)) worst = r;
  }
  return worst;
}

function referenceOf(attribute: FairnessAttribute, levels: readonly string[]): { group: string } | undefined {
  return attribute.reference !== undefined && levels.includes(attribute.reference)
    ? { group: attribute.reference }
    : undefined;
}

const FIGURE_TEXT: Readonly<Record<FairnessCriterion, string>> = {
  demographic_parity: "lowest selection rate over the highest",
  equal_opportunity: "largest gap in true positive rates",
  equalized_odds: "largest gap in true or false positive rates",
};

function fairnessAlert(
  model: string,
  version: string,
  attribute: string,
  c: CriterionVerdict,
  startsAt: string,
  status: "firing" | "resolved",
  at: string,
): FairnessAlert {
  const value = c.value === null ? "undefined" : c.value.toFixed(4);
  return {
    name: "WardenFairnessDisparity",
    severity: "warning",
    labels: { model, version, attribute, criterion: c.criterion, window: "count" },
    annotations: {
      summary:
        status === "firing"
          ? `${model} ${version}: ${c.criterion} fails for ${attribute}`
          : `${model} ${version}: ${c.criterion} passes again for ${attribute}`,
      description: `${FIGURE_TEXT[c.criterion]} between the groups of ${attribute} over the latest decisions is ${value}; the policy requires ${c.comparison} ${c.threshold}`,
      value,
      threshold: String(c.threshold),
    },
    startsAt,
    ...(status === "resolved" ? { endsAt: at } : {}),
    status,
  };
}
