/**
 * Reason codes: the principal reasons for a decision, in the manner of an adverse-action notice (Reg B,
 * 12 CFR 1002.9: "the specific reasons", customarily up to four), from a feature attribution.
 *
 * A reason is a feature, or a group of related features (`group` in the manifest), whose contribution
 * pushes the decision toward the adverse outcome. Contributions in the same group are summed (a group of
 * loan amount and goods price is one reason, "loan size", even when its parts pull apart); only reasons with
 * a positive total count, largest first. Each reason's text comes from the manifest (`reason`, else the
 * description) and quotes the subject's value against the values typical of favourable decisions (reference
 * statistics): "Outstanding debt too high (1,200; typically at most 450 when favourable)".
 *
 * A favourable decision gets the same list (what held it back), marked `adverse: false`: the caller decides
 * whether to show it.
 */
import type { FeatureSpec, Manifest } from "../config/index.js";
import type { FeatureValue } from "../decision/index.js";
import { binaryOutcomes } from "./outcome.js";
import {
  type FeatureStats,
  favorableQuantile,
  type NumericStats,
  type ReferenceStats,
} from "./reference-stats.js";
import type { Attribution } from "./types.js";

/**
 * Where a value lies, which picks the text (`reason.high`, `reason.low`, `reason.missing`): a number above or
 * below the median of favourable decisions, a boolean true (high) or false (low), or no value.
 */
export const REASON_DIRECTIONS = ["high", "low", "missing"] as const;
export type ReasonDirection = (typeof REASON_DIRECTIONS)[number];

/** Contributions at or below this (margin units) are not reasons: numerical noise, not an effect. */
export const MIN_REASON_CONTRIBUTION = 1e-9;

/** One feature's part in a reason. */
export interface ReasonFactor {
  readonly feature: string;
  /** The subject's value (null: not provided). */
  readonly value: FeatureValue;
  /** Contribution toward the adverse outcome, in margin units (log-odds for a logistic model). */
  readonly contribution: number;
  /** Where the value lies; undefined for a category, or a number at the typical median or without statistics. */
  readonly direction: ReasonDirection | undefined;
  /** "Income too low (90; typically at least 100 when favourable)". */
  readonly text: string;
}

/** One reason: a feature, or a group of features. */
export interface ReasonCode {
  /** Stable code: the feature's name, or the group's name. */
  readonly code: string;
  readonly kind: "feature" | "group";
  /** Contribution toward the adverse outcome (a group's members summed), margin units, > 0. */
  readonly contribution: number;
  readonly text: string;
  /** The features behind it, largest contribution first (a group lists every member). */
  readonly factors: readonly ReasonFactor[];
}

/** The reasons for one decision. */
export interface ReasonCodes {
  /** The decision explained, and whether it is the adverse outcome. */
  readonly decision: string;
  readonly adverse: boolean;
  /** At most `maxReasons` reasons, largest contribution first (ties by code). */
  readonly reasons: readonly ReasonCode[];
}

/** What is explained. */
export interface ReasonInput {
  /** One contribution per model feature, in the margin space of class `attributionClass`. */
  readonly attribution: Attribution;
  /** The instance's model-feature values as validated (`ValidInstance.inputs`); absent or null = not provided. */
  readonly values: Readonly<Record<string, FeatureValue | undefined>>;
  /** The label the policy decided. */
  readonly decision: string;
}

export interface ReasonOptions {
  /** Typical values to quote (default: none; texts then give the value alone). */
  readonly stats?: ReferenceStats | undefined;
  /**
   * The class whose margin the attribution explains (default 1: an XGBoost binary margin is the log-odds of
   * class 1). Contributions are turned toward the adverse outcome: negated when it is the other class.
   */
  readonly attributionClass?: 0 | 1;
  /** Most reasons (default `manifest.explanations.maxReasons`). */
  readonly maxReasons?: number;
}

/**
 * The principal reasons for a binary decision.
 *
 * @throws RangeError when the manifest is not binary, the decision is not one of its labels, the attribution
 *   has the wrong length or a non-finite value, or maxReasons is not a whole number ≥ 0.
 */
export function reasonCodes(
  manifest: Manifest,
  input: ReasonInput,
  options: ReasonOptions = {},
): ReasonCodes {
  const outcomes = binaryOutcomes(manifest);
  const features = manifest.modelFeatures;
  const { attribution, values, decision } = input;
  if (decision !== outcomes.favorable && decision !== outcomes.adverse) {
    throw new RangeError(
      `decision ${JSON.stringify(decision)} is not one of ${outcomes.favorable}, ${outcomes.adverse}`,
    );
  }
  if (attribution.values.length !== features.length) {
    throw new RangeError(
      `the attribution has ${attribution.values.length} values; the model has ${features.length} features`,
    );
  }
  const maxReasons = options.maxReasons ?? manifest.explanations.maxReasons;
  if (!Number.isInteger(maxReasons) || maxReasons < 0) {
    throw new RangeError(`maxReasons must be a whole number >= 0, got ${maxReasons}`);
  }
  const adverseIndex = manifest.output.labels!.indexOf(outcomes.adverse);
  const sign = (options.attributionClass ?? 1) === adverseIndex ? 1 : -1;
  const { reasons: plan, contributions } = reasonPlan(manifest, options.stats);

  // Contributions toward the adverse outcome, and each reason's total (its members summed in model-feature
  // order). Factors and texts are made only for the reasons given: this runs for every explained decision.
  for (let j = 0; j < features.length; j++) {
    const raw = attribution.values[j]!;
    if (!Number.isFinite(raw)) throw new RangeError(`the attribution of ${features[j]!.name} is ${raw}`);
    contributions[j] = sign * raw;
  }
  const candidates: { readonly reason: PlannedReason; readonly total: number }[] = [];
  for (const reason of plan) {
    let total = 0;
    for (const member of reason.members) total += contributions[member.index]!;
    if (total > MIN_REASON_CONTRIBUTION) candidates.push({ reason, total });
  }
  candidates.sort(
    (x, y) =>
      y.total - x.total || (x.reason.code < y.reason.code ? -1 : x.reason.code > y.reason.code ? 1 : 0),
  );
  const reasons = candidates.slice(0, maxReasons).map(({ reason, total }): ReasonCode => {
    // Stable sort: equal contributions keep model-feature order.
    const members =
      reason.members.length === 1
        ? reason.members
        : [...reason.members].sort((a, b) => contributions[b.index]! - contributions[a.index]!);
    const factors = members.map(({ index, spec, stats }): ReasonFactor => {
      const value = values[spec.name] ?? null;
      const direction = directionOf(value, stats);
      return Object.freeze({
        feature: spec.name,
        value,
        contribution: contributions[index]!,
        direction,
        text: factorText(spec, value, direction, stats),
      });
    });
    const text =
      reason.kind === "feature"
        ? factors[0]!.text
        : `${capitalise(reason.code)}: ${factors
            .filter((x) => x.contribution > MIN_REASON_CONTRIBUTION)
            .map((x) => x.text)
            .join("; ")}`;
    return Object.freeze({
      code: reason.code,
      kind: reason.kind,
      contribution: total,
      text,
      factors: Object.freeze(factors),
    });
  });
  return Object.freeze({ decision, adverse: decision === outcomes.adverse, reasons: Object.freeze(reasons) });
}

/** A reason as the manifest defines it: a feature, or a group, with its members in model-feature order. */
interface PlannedReason {
  readonly code: string;
  readonly kind: "feature" | "group";
  readonly members: readonly {
    /** Model-feature index. */
    readonly index: number;
    readonly spec: FeatureSpec;
    /** Its reference statistics, when there are any. */
    readonly stats: FeatureStats | undefined;
  }[];
}

const NO_STATS: object = Object.freeze({});
/**
 * The reasons a model can give, in order of first appearance among its features, per manifest and statistics; and
 * a scratch array for one call's contributions (calls are synchronous and the array never leaves the call), so
 * that a decision allocates no typed array of its own.
 */
interface ReasonPlan {
  readonly reasons: readonly PlannedReason[];
  readonly contributions: Float64Array;
}
const plans = new WeakMap<Manifest, WeakMap<object, ReasonPlan>>();

function reasonPlan(manifest: Manifest, stats: ReferenceStats | undefined): ReasonPlan {
  let byStats = plans.get(manifest);
  if (byStats === undefined) {
    byStats = new WeakMap();
    plans.set(manifest, byStats);
  }
  const key = stats ?? NO_STATS;
  let plan = byStats.get(key);
  if (plan === undefined) {
    const statsByName = new Map(stats?.features.map((s) => [s.name, s]));
    const reasons = new Map<
      string,
      { kind: "feature" | "group"; members: PlannedReason["members"][number][] }
    >();
    manifest.modelFeatures.forEach((spec, index) => {
      const code = spec.group ?? spec.name;
      let reason = reasons.get(code);
      if (reason === undefined) {
        reason = { kind: spec.group === undefined ? "feature" : "group", members: [] };
        reasons.set(code, reason);
      }
      reason.members.push(Object.freeze({ index, spec, stats: statsByName.get(spec.name) }));
    });
    plan = {
      reasons: Object.freeze(
        [...reasons].map(([code, r]) =>
          Object.freeze({ code, kind: r.kind, members: Object.freeze(r.members) }),
        ),
      ),
      contributions: new Float64Array(manifest.modelFeatures.length),
    };
    byStats.set(key, plan);
  }
  return plan;
}

function directionOf(value: FeatureValue, stats: FeatureStats | undefined): ReasonDirection | undefined {
  if (value === null) return "missing";
  if (typeof value === "boolean") return value ? "high" : "low";
  if (typeof value !== "number" || stats?.kind !== "numeric") return undefined;
  const median = favorableQuantile(stats, 0.5);
  if (median === undefined) return undefined;
  return value > median ? "high" : value < median ? "low" : undefined;
}

/** The manifest's text for a direction: `reason` as a string, its matching key, else the description or name. */
export function reasonLabel(f: FeatureSpec, direction: ReasonDirection | undefined): string {
  if (typeof f.reason === "string") return f.reason;
  const specific = direction === undefined ? undefined : f.reason?.[direction];
  return specific ?? f.description ?? f.name;
}

function factorText(
  f: FeatureSpec,
  value: FeatureValue,
  direction: ReasonDirection | undefined,
  stats: FeatureStats | undefined,
): string {
  const typical = typicalText(f, value, direction, stats);
  const typicalPart = typical === undefined ? undefined : `typically ${typical} when favourable`;
  // A text written for a missing value already says so: "Income not provided (typically 100 to 450 ...)".
  if (direction === "missing" && typeof f.reason === "object" && f.reason.missing !== undefined) {
    return typicalPart === undefined ? f.reason.missing : `${f.reason.missing} (${typicalPart})`;
  }
  const shown = formatValue(f, value);
  return `${reasonLabel(f, direction)} (${typicalPart === undefined ? shown : `${shown}; ${typicalPart}`})`;
}

/**
 * The values typical of favourable decisions, phrased against the subject's value: "at most 450" for a
 * value above the upper quartile, "at least 100" below the lower one, else the middle half "100 to 450" (or
 * one value when the quartiles agree); for booleans and categories the most frequent value, when it is not
 * the subject's. Undefined without statistics.
 */
function typicalText(
  f: FeatureSpec,
  value: FeatureValue,
  direction: ReasonDirection | undefined,
  stats: FeatureStats | undefined,
): string | undefined {
  if (stats === undefined) return undefined;
  if (stats.kind === "numeric") {
    const quartiles = quartilesOf(stats);
    if (quartiles === undefined) return undefined;
    const { q25, q75, text } = quartiles;
    if (typeof value === "number" && direction === "high" && value > q75) return `at most ${text.q75}`;
    if (typeof value === "number" && direction === "low" && value < q25) return `at least ${text.q25}`;
    return q25 === q75 ? text.q50 : `${text.q25} to ${text.q75}`;
  }
  let mode: string | undefined;
  let best = 0;
  for (const [name, count] of Object.entries(stats.favorable.counts)) {
    if (count > best) {
      mode = name;
      best = count;
    }
  }
  if (mode === undefined) return undefined;
  const modeValue: FeatureValue = f.type === "boolean" ? mode === "true" : mode;
  return modeValue === value ? undefined : formatValue(f, modeValue);
}

/** Favourable quartiles of a feature, and their texts, worked out once per statistics object. */
interface Quartiles {
  readonly q25: number;
  readonly q50: number;
  readonly q75: number;
  readonly text: { readonly q25: string; readonly q50: string; readonly q75: string };
}
const quartileCache = new WeakMap<NumericStats, Quartiles | null>();

function quartilesOf(stats: NumericStats): Quartiles | undefined {
  let cached = quartileCache.get(stats);
  if (cached === undefined) {
    const [q25, q50, q75] = [0.25, 0.5, 0.75].map((level) => favorableQuantile(stats, level));
    cached =
      q25 === undefined || q50 === undefined || q75 === undefined
        ? null
        : { q25, q50, q75, text: { q25: formatNumber(q25), q50: formatNumber(q50), q75: formatNumber(q75) } };
    quartileCache.set(stats, cached);
  }
  return cached ?? undefined;
}

/**
 * A value as a person reads it: "not provided" for null, yes/no for booleans, the category's name, numbers
 * with thousands separators (en-US, fixed so texts do not depend on the server's locale) and at most two
 * decimals (integer features none; below 1, three significant digits).
 */
export function formatValue(f: FeatureSpec, value: FeatureValue): string {
  if (value === null) return "not provided";
  if (typeof value === "boolean") return value ? "yes" : "no";
  if (typeof value === "string") return value;
  return f.type === "integer" ? formatNumber(Math.round(value)) : formatNumber(value);
}

const NUMBER_FORMATS = {
  cents: new Intl.NumberFormat("en-US", { maximumFractionDigits: 2 }),
  small: new Intl.NumberFormat("en-US", { maximumSignificantDigits: 3 }),
};

/** A number as {@link formatValue} shows it. */
export function formatNumber(value: number): string {
  // Whole numbers (most feature values and typical values) are grouped here: Intl costs microseconds a call,
  // and reason texts are written for every explained decision. The same text as Intl's (tested).
  if (Number.isSafeInteger(value)) return groupThousands(value);
  const format = Math.abs(value) >= 1 ? NUMBER_FORMATS.cents : NUMBER_FORMATS.small;
  // -0 would read "-0".
  return format.format(value === 0 ? 0 : value);
}

/** A safe integer with en-US thousands separators ("-1,234,567"; -0 as "0"). */
function groupThousands(value: number): string {
  const digits = String(Math.abs(value));
  if (digits.length <= 3) return value < 0 ? `-${digits}` : digits;
  let out = digits.slice(0, ((digits.length - 1) % 3) + 1);
  for (let i = out.length; i < digits.length; i += 3) out += `,${digits.slice(i, i + 3)}`;
  return value < 0 ? `-${out}` : out;
}

function capitalise(text: string): string {
  return text.length > 0 ? text[0]!.toUpperCase() + text.slice(1) : text;
}
