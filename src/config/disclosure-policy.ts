import { Type as T } from "@sinclair/typebox";
import type { FieldProblem } from "../errors/index.js";
import { schemaProblems } from "./schema-errors.js";

/**
 * What a decision's answer discloses of the model's output (`policy.disclosure`): a defence against model
 * extraction and membership inference, which feed on exact scores. The ledger always keeps the exact values.
 *
 * - `full` (default): score and probabilities as computed;
 * - `rounded`: score and probabilities rounded to `decimals` places (default 2);
 * - `label`: the decision only (score and probabilities left out; reasons still given when adverse).
 */
export const DISCLOSURES = ["full", "rounded", "label"] as const;
export type Disclosure = (typeof DISCLOSURES)[number];

export const DisclosurePolicySchema = T.Object(
  {
    scores: T.Optional(
      T.Union(
        DISCLOSURES.map((d) => T.Literal(d)),
        { description: "one of full, rounded, label" },
      ),
    ),
    decimals: T.Optional(T.Integer({ minimum: 0, maximum: 6, description: "a whole number from 0 to 6" })),
  },
  { additionalProperties: false, description: "a mapping of scores and decimals" },
);

/** `policy.disclosure` with its defaults. */
export interface DisclosurePolicy {
  readonly scores: Disclosure;
  readonly decimals: number;
}

const AT = "/policy/disclosure";

export function disclosurePolicyProblems(policy: Readonly<Record<string, unknown>>): FieldProblem[] {
  const raw = policy.disclosure;
  if (raw === undefined) return [];
  const problems = schemaProblems(DisclosurePolicySchema, raw, AT);
  if (problems.length > 0) return problems;
  const d = raw as { scores?: Disclosure; decimals?: number };
  if (d.decimals !== undefined && d.scores !== "rounded") {
    return [
      {
        field: `${AT}/decimals`,
        expected: "decimals only with scores: rounded",
        found: `scores: ${d.scores ?? "full"}`,
        fix: "set scores: rounded, or leave decimals out",
      },
    ];
  }
  return [];
}

export function disclosurePolicyOf(policy: Readonly<Record<string, unknown>>): DisclosurePolicy {
  const d = (policy.disclosure ?? {}) as { scores?: Disclosure; decimals?: number };
  return Object.freeze({ scores: d.scores ?? "full", decimals: d.decimals ?? 2 });
}

/** A number as disclosed under `rounded` (half away from zero, as people round). */
export function roundTo(value: number, decimals: number): number {
  const factor = 10 ** decimals;
  return (Math.sign(value) * Math.round(Math.abs(value) * factor)) / factor;
}
