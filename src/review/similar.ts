import type { FeatureSpec } from "../config/index.js";
import type { LedgerRecord } from "../ledger/index.js";
import type { Verdict } from "./store.js";

/** A past case shown to a reviewer beside the one under review. */
export interface SimilarCase {
  readonly decision_id: string;
  readonly time: string;
  readonly version: string;
  /** Standardised distance to the case under review (0: the same inputs). */
  readonly distance: number;
  readonly score: number | null;
  /** The model's decision. */
  readonly model_decision: Verdict;
  /** The final decision: a reviewer's where one resolved it, else the model's. */
  readonly final_decision: Verdict;
  readonly reviewed: boolean;
  readonly inputs: Readonly<Record<string, unknown>>;
}

type Inputs = Readonly<Record<string, unknown>>;

function inputsOf(record: LedgerRecord): Inputs {
  const inputs = record.body.inputs;
  return typeof inputs === "object" && inputs !== null && !Array.isArray(inputs) ? (inputs as Inputs) : {};
}

function scoreOf(record: LedgerRecord): number | null {
  const outputs = record.body.outputs as { score?: unknown } | undefined;
  return typeof outputs?.score === "number" ? outputs.score : null;
}

/**
 * The `k` cases nearest to `query` among `candidates`, by standardised distance over `features`: a numeric
 * feature contributes ((a − b) / sd)², sd taken over the candidates and the query (a feature that does not
 * vary contributes nothing); a category or boolean contributes 1 when the values differ; a value missing on
 * one side only contributes 1. Ties keep the newer case first. `finals` holds reviewers' decisions by
 * decision id.
 */
export function nearestCases(
  query: LedgerRecord,
  candidates: readonly LedgerRecord[],
  features: readonly Pick<FeatureSpec, "name" | "type">[],
  finals: ReadonlyMap<string, Verdict>,
  k: number,
): SimilarCase[] {
  const cases = candidates.filter((c) => c.id !== query.id);
  const all = [query, ...cases].map(inputsOf);
  const scale = features.map((f) => {
    if (f.type !== "number" && f.type !== "integer") return 0;
    const values = all.map((inputs) => inputs[f.name]).filter((v): v is number => typeof v === "number");
    if (values.length < 2) return 0;
    const mean = values.reduce((a, b) => a + b, 0) / values.length;
    const variance = values.reduce((a, b) => a + (b - mean) ** 2, 0) / (values.length - 1);
    return Math.sqrt(variance);
  });
  const q = all[0]!;
  const scored = cases.map((record, index) => {
    const inputs = all[index + 1]!;
    let sum = 0;
    features.forEach((f, j) => {
      const a = q[f.name] ?? null;
      const b = inputs[f.name] ?? null;
      if (a === null && b === null) return;
      if (a === null || b === null) {
        sum += 1;
        return;
      }
      if (typeof a === "number" && typeof b === "number") {
        const sd = scale[j]!;
        if (sd > 0) sum += ((a - b) / sd) ** 2;
        return;
      }
      if (a !== b) sum += 1;
    });
    return { record, inputs, distance: Math.sqrt(sum), order: index };
  });
  scored.sort((x, y) => x.distance - y.distance || y.record.seq - x.record.seq);
  return scored.slice(0, k).map(({ record, inputs, distance }) => {
    const model = (record.body.decision ?? null) as Verdict;
    const reviewed = finals.has(record.id);
    return {
      decision_id: record.id,
      time: record.time,
      version: record.version,
      distance: Math.round(distance * 1e6) / 1e6,
      score: scoreOf(record),
      model_decision: model,
      final_decision: reviewed ? finals.get(record.id)! : model,
      reviewed,
      inputs,
    };
  });
}
