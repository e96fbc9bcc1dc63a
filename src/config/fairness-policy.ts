import { Type as T } from "@sinclair/typebox";
import { describeValue, type FieldProblem } from "../errors/index.js";
import type { FeatureType } from "./manifest-schema.js";
import { literalUnion } from "./manifest-schema.js";
import { schemaProblems } from "./schema-errors.js";

/** How the reference group of each comparison is chosen when an attribute names none (closed list). */
export const FAIRNESS_REFERENCE_RULES = ["largest", "best"] as const;
export type FairnessReferenceRule = (typeof FAIRNESS_REFERENCE_RULES)[number];

/** Defaults of `policy.fairness`. */
export const FAIRNESS_DEFAULTS = Object.freeze({
  reference: "largest" as FairnessReferenceRule,
  minGroupSize: 30,
  labelColumn: "label",
  /** The four-fifths rule: the lowest selection rate at least 0.8 of the highest. */
  selectionRateRatio: 0.8,
  /** Largest gap in true positive rates (favourable outcome) between groups. */
  equalOpportunityDifference: 0.1,
  /** Largest of the TPR and FPR gaps between groups. */
  equalizedOddsDifference: 0.1,
  alpha: 0.05,
  resamples: 200,
  seed: 0,
  liveWindow: 1000,
  liveHours: 24,
  outcomeMemory: 100_000,
});

/** The level a missing (null or absent) value falls in; the fairness library's own name for it. */
export const FAIRNESS_MISSING_LEVEL = "(missing)";

const AttributeSchema = T.Object(
  {
    buckets: T.Optional(
      T.Array(T.Number({ description: "a number: a bucket edge" }), {
        minItems: 1,
        maxItems: 50,
        description: "a list of 1 to 50 increasing numbers: the bucket edges",
      }),
    ),
    reference: T.Optional(
      T.String({ minLength: 1, description: "a group of this attribute (a category, a bucket label)" }),
    ),
  },
  { additionalProperties: false, description: "a mapping of buckets and reference" },
);

/** `policy.fairness` as written (every field optional). */
export const FairnessPolicySchema = T.Object(
  {
    attributes: T.Optional(
      T.Record(T.String(), AttributeSchema, {
        description: "a mapping of sensitive attribute name → {buckets, reference}",
      }),
    ),
    reference: T.Optional(literalUnion(FAIRNESS_REFERENCE_RULES)),
    min_group_size: T.Optional(
      T.Integer({ minimum: 1, maximum: 1_000_000, description: "a whole number from 1 to 1000000" }),
    ),
    label_column: T.Optional(
      T.String({ minLength: 1, maxLength: 128, description: "a column name (1 to 128 characters)" }),
    ),
    thresholds: T.Optional(
      T.Object(
        {
          selection_rate_ratio: T.Optional(
            T.Number({ exclusiveMinimum: 0, maximum: 1, description: "a ratio above 0, at most 1" }),
          ),
          equal_opportunity_difference: T.Optional(
            T.Number({ minimum: 0, maximum: 1, description: "a difference from 0 to 1" }),
          ),
          equalized_odds_difference: T.Optional(
            T.Number({ minimum: 0, maximum: 1, description: "a difference from 0 to 1" }),
          ),
        },
        {
          additionalProperties: false,
          description:
            "a mapping of selection_rate_ratio, equal_opportunity_difference and equalized_odds_difference",
        },
      ),
    ),
    alpha: T.Optional(
      T.Number({ exclusiveMinimum: 0, exclusiveMaximum: 1, description: "a level above 0, below 1" }),
    ),
    bootstrap: T.Optional(
      T.Object(
        {
          resamples: T.Optional(
            T.Integer({ minimum: 0, maximum: 100_000, description: "a whole number from 0 to 100000" }),
          ),
          seed: T.Optional(
            T.Integer({
              minimum: 0,
              maximum: 4294967295,
              description: "a whole number from 0 to 4294967295",
            }),
          ),
        },
        { additionalProperties: false, description: "a mapping of resamples and seed" },
      ),
    ),
    live: T.Optional(
      T.Object(
        {
          window: T.Optional(
            T.Integer({
              minimum: 10,
              maximum: 1_000_000,
              multipleOf: 10,
              description: "a multiple of 10 from 10 to 1000000",
            }),
          ),
          hours: T.Optional(
            T.Integer({ minimum: 1, maximum: 8760, description: "a whole number of hours from 1 to 8760" }),
          ),
          outcome_memory: T.Optional(
            T.Integer({
              minimum: 1,
              maximum: 10_000_000,
              description: "a whole number from 1 to 10000000",
            }),
          ),
        },
        { additionalProperties: false, description: "a mapping of window, hours and outcome_memory" },
      ),
    ),
  },
  {
    additionalProperties: false,
    description:
      "a mapping of attributes, reference, min_group_size, label_column, thresholds, alpha, bootstrap and live",
  },
);

/** One audited sensitive attribute: its groups, in order, and its reference group if named. */
export interface FairnessAttribute {
  readonly name: string;
  readonly type: FeatureType;
  /** Numbers: the bucket edges (bucket k is [edge k−1, edge k)); undefined for categories and booleans. */
  readonly buckets: readonly number[] | undefined;
  /** The groups, in order (without {@link FAIRNESS_MISSING_LEVEL}, which follows them when values are missing). */
  readonly levels: readonly string[];
  /** The named reference group; undefined: the policy's rule. */
  readonly reference: string | undefined;
}

/** A manifest's fairness policy, defaults applied. */
export interface FairnessPolicy {
  /** Whether the manifest has a `policy.fairness` section. */
  readonly configured: boolean;
  /** The audited attributes, in the manifest's feature order. */
  readonly attributes: readonly FairnessAttribute[];
  /** Numeric sensitive attributes left out because no buckets are given (only without the section). */
  readonly unbucketed: readonly string[];
  readonly reference: FairnessReferenceRule;
  readonly minGroupSize: number;
  /** The labelled CSV's column holding the observed outcome (one of the output labels). */
  readonly labelColumn: string;
  readonly thresholds: {
    readonly selectionRateRatio: number;
    readonly equalOpportunityDifference: number;
    readonly equalizedOddsDifference: number;
  };
  readonly alpha: number;
  readonly bootstrap: { readonly resamples: number; readonly seed: number };
  readonly live: { readonly window: number; readonly hours: number; readonly outcomeMemory: number };
}

/** The labels of numeric buckets with these edges: `<e1`, `e1-e2`, ..., `>=ek`. */
export function bucketLabels(edges: readonly number[]): string[] {
  const labels = [`<${edges[0]}`];
  for (let i = 1; i < edges.length; i++) labels.push(`${edges[i - 1]}-${edges[i]}`);
  labels.push(`>=${edges[edges.length - 1]}`);
  return labels;
}

interface FeatureLike {
  readonly name: string;
  readonly type: FeatureType;
  readonly sensitive: boolean;
  readonly categories?: readonly string[] | undefined;
}

type RawFairness = {
  attributes?: Record<string, { buckets?: number[]; reference?: string }>;
  reference?: FairnessReferenceRule;
  min_group_size?: number;
  label_column?: string;
  thresholds?: {
    selection_rate_ratio?: number;
    equal_opportunity_difference?: number;
    equalized_odds_difference?: number;
  };
  alpha?: number;
  bootstrap?: { resamples?: number; seed?: number };
  live?: { window?: number; hours?: number; outcome_memory?: number };
};

const AT = "/policy/fairness";
const NUMERIC = new Set<FeatureType>(["number", "integer"]);

function levelsOf(feature: FeatureLike, buckets: readonly number[] | undefined): string[] {
  if (feature.type === "boolean") return ["false", "true"];
  if (feature.type === "category") return [...(feature.categories ?? [])];
  return bucketLabels(buckets!);
}

/** Problems with `policy.fairness` (field paths from the manifest root). */
export function fairnessPolicyProblems(
  features: readonly FeatureLike[],
  policy: Readonly<Record<string, unknown>>,
): FieldProblem[] {
  const raw = policy.fairness;
  if (raw === undefined) return [];
  const problems = schemaProblems(FairnessPolicySchema, raw, AT);
  if (problems.length > 0) return problems;
  const r = raw as RawFairness;
  const byName = new Map(features.map((f) => [f.name, f]));
  const sensitive = features.filter((f) => f.sensitive);
  if (r.attributes === undefined) {
    if (sensitive.length === 0) {
      problems.push({
        field: `${AT}`,
        expected: "a model with sensitive attributes to audit (features with sensitive: true)",
        found: "no sensitive feature",
        fix: "mark the protected attributes sensitive: true, or remove policy.fairness",
      });
    }
    for (const f of sensitive) {
      if (NUMERIC.has(f.type)) {
        problems.push({
          field: `${AT}/attributes`,
          expected: `buckets for the numeric sensitive attribute ${f.name} (every sensitive feature is audited by default)`,
          found: "missing",
          fix: `add attributes: { ${f.name}: { buckets: [25, 35, 50] } } with the edges that suit it`,
        });
      }
    }
    return problems;
  }
  const names = Object.keys(r.attributes);
  if (names.length === 0) {
    problems.push({
      field: `${AT}/attributes`,
      expected: "at least one sensitive attribute",
      found: "an empty mapping",
      fix: "name the attributes to audit, or leave attributes out to audit every sensitive feature",
    });
  }
  for (const name of names) {
    const at = `${AT}/attributes/${name}`;
    const spec = r.attributes[name]!;
    const feature = byName.get(name);
    if (feature === undefined || !feature.sensitive) {
      problems.push({
        field: at,
        expected: `a sensitive feature of the manifest (${sensitive.map((f) => f.name).join(", ") || "none"})`,
        found: describeValue(name),
        fix:
          feature === undefined
            ? "check the spelling, or declare the feature with sensitive: true"
            : `${name} is a model input: only sensitive attributes (recorded as the subject) are audited`,
      });
      continue;
    }
    const numeric = NUMERIC.has(feature.type);
    if (numeric && spec.buckets === undefined) {
      problems.push({
        field: `${at}/buckets`,
        expected: `bucket edges for the ${feature.type} attribute ${name} (a list of increasing numbers)`,
        found: "missing",
        fix: "add buckets, e.g. [25, 35, 50] for the groups <25, 25-35, 35-50, >=50",
      });
      continue;
    }
    if (!numeric && spec.buckets !== undefined) {
      problems.push({
        field: `${at}/buckets`,
        expected: `no buckets for the ${feature.type} attribute ${name} (its values are its groups)`,
        found: describeValue(spec.buckets),
        fix: "remove buckets",
      });
      continue;
    }
    if (spec.buckets !== undefined) {
      const edges = spec.buckets;
      const bad = edges.findIndex((e, i) => !Number.isFinite(e) || (i > 0 && !(e > edges[i - 1]!)));
      if (bad >= 0) {
        problems.push({
          field: `${at}/buckets/${bad}`,
          expected:
            bad === 0 ? "a finite number" : `a finite number above ${edges[bad - 1]} (edges increase)`,
          found: describeValue(edges[bad]),
          fix: "list the edges in increasing order, each once",
        });
        continue;
      }
    }
    if (spec.reference !== undefined) {
      const levels = [...levelsOf(feature, spec.buckets), FAIRNESS_MISSING_LEVEL];
      if (!levels.includes(spec.reference)) {
        problems.push({
          field: `${at}/reference`,
          expected: `one of ${name}'s groups: ${levels.join(", ")}`,
          found: describeValue(spec.reference),
          fix: "name a group exactly as listed, or remove reference to use the policy's rule",
        });
      }
    }
  }
  return problems;
}

/** The fairness policy with defaults (call after {@link fairnessPolicyProblems} found nothing). */
export function fairnessPolicyOf(
  features: readonly FeatureLike[],
  policy: Readonly<Record<string, unknown>>,
): FairnessPolicy {
  const r = (policy.fairness ?? {}) as RawFairness;
  const configured = policy.fairness !== undefined;
  const chosen = r.attributes;
  const attributes: FairnessAttribute[] = [];
  const unbucketed: string[] = [];
  for (const f of features) {
    if (!f.sensitive) continue;
    if (chosen !== undefined && !Object.hasOwn(chosen, f.name)) continue;
    const spec = chosen?.[f.name] ?? {};
    if (NUMERIC.has(f.type) && spec.buckets === undefined) {
      unbucketed.push(f.name);
      continue;
    }
    const buckets = spec.buckets === undefined ? undefined : Object.freeze([...spec.buckets]);
    attributes.push(
      Object.freeze({
        name: f.name,
        type: f.type,
        buckets,
        levels: Object.freeze(levelsOf(f, buckets)),
        reference: spec.reference,
      }),
    );
  }
  const t = r.thresholds ?? {};
  const d = FAIRNESS_DEFAULTS;
  return Object.freeze({
    configured,
    attributes: Object.freeze(attributes),
    unbucketed: Object.freeze(unbucketed),
    reference: r.reference ?? d.reference,
    minGroupSize: r.min_group_size ?? d.minGroupSize,
    labelColumn: r.label_column ?? d.labelColumn,
    thresholds: Object.freeze({
      selectionRateRatio: t.selection_rate_ratio ?? d.selectionRateRatio,
      equalOpportunityDifference: t.equal_opportunity_difference ?? d.equalOpportunityDifference,
      equalizedOddsDifference: t.equalized_odds_difference ?? d.equalizedOddsDifference,
    }),
    alpha: r.alpha ?? d.alpha,
    bootstrap: Object.freeze({
      resamples: r.bootstrap?.resamples ?? d.resamples,
      seed: r.bootstrap?.seed ?? d.seed,
    }),
    live: Object.freeze({
      window: r.live?.window ?? d.liveWindow,
      hours: r.live?.hours ?? d.liveHours,
      outcomeMemory: r.live?.outcome_memory ?? d.outcomeMemory,
    }),
  });
}
