/**
 * Reference numbers and texts for tests of the explanations, worked out here from their definitions and from
 * files made by other programs (XGBoost's pred_contribs and predictions, scikit-learn's probabilities), never
 * from the explainers' own code: the credit demo's Shapley fixture, the decoding of encoded rows back to
 * request values, and the reason codes and texts that docs/manifest.md (Explanations) describes.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { FeatureSpec, Manifest } from "../config/index.js";
import type { FeatureValue } from "../decision/index.js";
import { REPO_ROOT } from "./index.js";

/** fixtures/shap/credit-demo.json (scripts/fixtures/make_shap_fixtures.py, XGBoost 1.7.4). */
export interface CreditShapFixture {
  /** Holdout row index of each fixture row. */
  readonly rows: readonly number[];
  /** Encoded model inputs (model-feature order, categories as indexes, booleans 0/1, null missing). */
  readonly inputs: readonly (readonly (number | null)[])[];
  /** XGBoost's pred_contribs: one value per model feature, then the bias. Float32 arithmetic. */
  readonly contribs: readonly (readonly number[])[];
  /** The same Shapley values by enumeration of every coalition, float64. */
  readonly exact: readonly (readonly number[])[];
  /** XGBoost's output_margin (log-odds of class 1), float32. */
  readonly margins: readonly number[];
}

export function creditShapFixture(): CreditShapFixture {
  return JSON.parse(readFileSync(join(REPO_ROOT, "fixtures/shap/credit-demo.json"), "utf8"));
}

/** Encoded holdout rows and a reference model's P(class 1) for each (the demos' reference files). */
export interface ScoredRows {
  readonly inputs: readonly (readonly (number | null)[])[];
  readonly scores: readonly number[];
}

/** The holdout rows with XGBoost's own predictions (fixtures/xgboost/credit-demo-holdout-reference.json). */
export function xgboostScoredHoldout(): ScoredRows {
  const file = join(REPO_ROOT, "fixtures/xgboost/credit-demo-holdout-reference.json");
  const data = JSON.parse(readFileSync(file, "utf8")) as {
    inputs: (number | null)[][];
    predictions: number[];
  };
  return { inputs: data.inputs, scores: data.predictions };
}

/** The holdout rows with scikit-learn's probabilities for the ONNX demo's MLP (float64). */
export function onnxScoredHoldout(): ScoredRows {
  const file = join(REPO_ROOT, "fixtures/onnx/credit-demo-onnx-reference.json");
  const data = JSON.parse(readFileSync(file, "utf8")) as {
    inputs: (number | null)[][];
    probabilities: [number, number][];
  };
  return { inputs: data.inputs, scores: data.probabilities.map((p) => p[1]) };
}

/** An encoded row as request values: a category's index gives its name, a boolean is 1 or 0, null is missing. */
export function decodeRow(
  manifest: Manifest,
  encoded: readonly (number | null)[],
): Record<string, FeatureValue> {
  const values: Record<string, FeatureValue> = {};
  manifest.modelFeatures.forEach((f, j) => {
    const v = encoded[j];
    if (v === null || v === undefined) values[f.name] = null;
    else if (f.type === "category") values[f.name] = f.categories![v]!;
    else if (f.type === "boolean") values[f.name] = v === 1;
    else values[f.name] = v;
  });
  return values;
}

/** The log-odds of a probability. */
export const logit = (p: number): number => Math.log(p / (1 - p));

/** An expected reason: a feature or a group, its contribution toward the adverse outcome and its members. */
export interface ExpectedReason {
  readonly code: string;
  readonly kind: "feature" | "group";
  readonly contribution: number;
  /** Members whose own contribution pushes toward the adverse outcome, largest first. */
  readonly pushing: readonly string[];
}

/**
 * The reasons docs/manifest.md describes for contributions toward the adverse outcome (model-feature order):
 * a group's members summed, only positive totals, largest first, at most `policy.explanations.max_reasons`.
 */
export function expectedReasons(manifest: Manifest, contributions: readonly number[]): ExpectedReason[] {
  const totals = new Map<string, { kind: "feature" | "group"; total: number; members: [string, number][] }>();
  manifest.modelFeatures.forEach((f, j) => {
    const code = f.group ?? f.name;
    const entry = totals.get(code) ?? {
      kind: f.group === undefined ? "feature" : "group",
      total: 0,
      members: [],
    };
    entry.total += contributions[j]!;
    entry.members.push([f.name, contributions[j]!]);
    totals.set(code, entry);
  });
  return [...totals]
    .filter(([, e]) => e.total > 1e-9)
    .sort(([, a], [, b]) => b.total - a.total)
    .slice(0, manifest.explanations.maxReasons)
    .map(([code, e]) => ({
      code,
      kind: e.kind,
      contribution: e.total,
      pushing: e.members
        .filter(([, c]) => c > 1e-9)
        .sort(([, a], [, b]) => b - a)
        .map(([name]) => name),
    }));
}

/** What the rows a reference model decides favourably look like, per model feature. */
export interface FavourableProfile {
  /** Numbers: the favourable rows' present values, sorted. */
  readonly numbers: ReadonlyMap<string, readonly number[]>;
  /** Categories and booleans: the favourable rows' count per value, in the feature's order. */
  readonly counts: ReadonlyMap<string, readonly [FeatureValue, number][]>;
}

/**
 * The favourable rows' values: a row is favourable when the reference score of the positive label is below
 * the manifest's threshold (the positive label being the adverse one, as in both demos).
 */
export function favourableProfile(manifest: Manifest, scored: ScoredRows): FavourableProfile {
  const favourable = scored.inputs
    .filter((_, i) => scored.scores[i]! < manifest.output.threshold)
    .map((row) => decodeRow(manifest, row));
  const numbers = new Map<string, number[]>();
  const counts = new Map<string, [FeatureValue, number][]>();
  for (const f of manifest.modelFeatures) {
    const present = favourable.map((r) => r[f.name]!).filter((v) => v !== null);
    if (f.type === "number" || f.type === "integer") {
      numbers.set(
        f.name,
        (present as number[]).slice().sort((a, b) => a - b),
      );
    } else {
      const order: FeatureValue[] = f.type === "boolean" ? [false, true] : [...f.categories!];
      counts.set(
        f.name,
        order.map((value) => [value, present.filter((v) => v === value).length]),
      );
    }
  }
  return { numbers, counts };
}

/** Quantile by linear interpolation between order statistics (numpy's default). */
export function quantile(sorted: readonly number[], level: number): number {
  const h = (sorted.length - 1) * level;
  const lo = Math.floor(h);
  const hi = Math.min(lo + 1, sorted.length - 1);
  return sorted[lo]! + (h - lo) * (sorted[hi]! - sorted[lo]!);
}

const CENTS = new Intl.NumberFormat("en-US", { maximumFractionDigits: 2 });
const SMALL = new Intl.NumberFormat("en-US", { maximumSignificantDigits: 3 });

/** A value as a reason text shows it (docs/manifest.md): thousands separators, yes/no, "not provided". */
export function shownValue(f: FeatureSpec, value: FeatureValue): string {
  if (value === null) return "not provided";
  if (typeof value === "boolean") return value ? "yes" : "no";
  if (typeof value === "string") return value;
  const n = f.type === "integer" ? Math.round(value) : value;
  return (Math.abs(n) >= 1 ? CENTS : SMALL).format(n === 0 ? 0 : n);
}

/**
 * The text of one feature's part in a reason, as docs/manifest.md describes it: the manifest's `reason` for
 * where the value lies (a number above or below the favourable median, a boolean true or false, a missing
 * value), then the value, then the values typical of favourable decisions.
 */
export function expectedFactorText(
  manifest: Manifest,
  profile: FavourableProfile,
  name: string,
  value: FeatureValue,
): string {
  const f = manifest.modelFeatures.find((x) => x.name === name)!;
  const sorted = profile.numbers.get(name);
  let direction: "high" | "low" | "missing" | undefined;
  if (value === null) direction = "missing";
  else if (typeof value === "boolean") direction = value ? "high" : "low";
  else if (typeof value === "number" && sorted !== undefined && sorted.length > 0) {
    const median = quantile(sorted, 0.5);
    direction = value > median ? "high" : value < median ? "low" : undefined;
  }
  let typical: string | undefined;
  if (sorted !== undefined) {
    if (sorted.length > 0) {
      const [q25, q50, q75] = [0.25, 0.5, 0.75].map((level) => quantile(sorted, level)) as [
        number,
        number,
        number,
      ];
      const show = (n: number) => shownValue({ ...f, type: "number" }, n);
      if (typeof value === "number" && direction === "high" && value > q75) typical = `at most ${show(q75)}`;
      else if (typeof value === "number" && direction === "low" && value < q25)
        typical = `at least ${show(q25)}`;
      else typical = q25 === q75 ? show(q50) : `${show(q25)} to ${show(q75)}`;
    }
  } else {
    let mode: FeatureValue | undefined;
    let best = 0;
    for (const [v, count] of profile.counts.get(name) ?? []) {
      if (count > best) {
        mode = v;
        best = count;
      }
    }
    if (mode !== undefined && mode !== value) typical = shownValue(f, mode);
  }
  const typicalPart = typical === undefined ? undefined : `typically ${typical} when favourable`;
  const reason = f.reason;
  if (direction === "missing" && typeof reason === "object" && reason.missing !== undefined) {
    return typicalPart === undefined ? reason.missing : `${reason.missing} (${typicalPart})`;
  }
  const label =
    typeof reason === "string"
      ? reason
      : ((direction === undefined ? undefined : reason?.[direction]) ?? f.description ?? f.name);
  const shown = shownValue(f, value);
  return `${label} (${typicalPart === undefined ? shown : `${shown}; ${typicalPart}`})`;
}

/** A whole reason's text: a feature's own text, or a group's name followed by its pushing members' texts. */
export function expectedReasonText(
  manifest: Manifest,
  profile: FavourableProfile,
  reason: ExpectedReason,
  values: Readonly<Record<string, FeatureValue>>,
): string {
  if (reason.kind === "feature")
    return expectedFactorText(manifest, profile, reason.code, values[reason.code]!);
  const texts = reason.pushing.map((name) => expectedFactorText(manifest, profile, name, values[name]!));
  return `${reason.code[0]!.toUpperCase()}${reason.code.slice(1)}: ${texts.join("; ")}`;
}
