import { resolve } from "node:path";
import { Type as T } from "@sinclair/typebox";
import { describeValue, type FieldProblem } from "../errors/index.js";
import type { ArtifactFormat, RiskTier, Task } from "./manifest-schema.js";
import { literalUnion } from "./manifest-schema.js";
import { schemaProblems } from "./schema-errors.js";

/**
 * When a decision carries its explanation (closed list): `always` (in every answer), `on_request` (when the
 * request asks for it, or later from the ledger), `never`.
 */
export const EXPLANATION_WHEN = ["always", "on_request", "never"] as const;
export type ExplanationWhen = (typeof EXPLANATION_WHEN)[number];

/** How feature contributions are computed: exact TreeSHAP (tree models) or sampled KernelSHAP (any model). */
export const EXPLANATION_METHODS = ["treeshap", "kernelshap"] as const;
export type ExplanationMethod = (typeof EXPLANATION_METHODS)[number];

/** Reasons given by default: four, the number adverse-action notices customarily list (Reg B, 12 CFR 1002.9). */
export const DEFAULT_MAX_REASONS = 4;
/** Counterfactual options offered by default. */
export const DEFAULT_COUNTERFACTUALS = 3;
/** Rows the model may score while searching one instance's counterfactuals, by default. */
export const DEFAULT_COUNTERFACTUAL_EVALUATIONS = 20_000;
/** KernelSHAP's background by default: a k-means summary of the reference rows in this many rows. */
export const DEFAULT_KERNELSHAP_BACKGROUND = 20;
/** Coalitions KernelSHAP evaluates by default beyond 2 × features (singles and their complements). */
export const DEFAULT_KERNELSHAP_EXTRA_SAMPLES = 256;

/** `policy.explanations` as written (every field optional). */
export const ExplanationsPolicySchema = T.Object(
  {
    when: T.Optional(literalUnion(EXPLANATION_WHEN)),
    method: T.Optional(literalUnion(EXPLANATION_METHODS)),
    max_reasons: T.Optional(
      T.Integer({ minimum: 1, maximum: 10, description: "a whole number from 1 to 10" }),
    ),
    reference: T.Optional(
      T.String({
        minLength: 1,
        description: "the path of a CSV file of reference rows, relative to the manifest",
      }),
    ),
    counterfactuals: T.Optional(
      T.Object(
        {
          enabled: T.Optional(T.Boolean({ description: "true or false" })),
          max: T.Optional(T.Integer({ minimum: 1, maximum: 10, description: "a whole number from 1 to 10" })),
          max_evaluations: T.Optional(
            T.Integer({
              minimum: 100,
              maximum: 1_000_000,
              description: "a whole number from 100 to 1000000",
            }),
          ),
        },
        { additionalProperties: false, description: "a mapping of enabled, max and max_evaluations" },
      ),
    ),
    kernelshap: T.Optional(
      T.Object(
        {
          background: T.Optional(
            T.Integer({ minimum: 1, maximum: 1000, description: "a whole number from 1 to 1000" }),
          ),
          samples: T.Optional(
            T.Integer({ minimum: 2, maximum: 100_000, description: "a whole number from 2 to 100000" }),
          ),
        },
        { additionalProperties: false, description: "a mapping of background and samples" },
      ),
    ),
  },
  {
    additionalProperties: false,
    description: "a mapping of when, method, max_reasons, reference, counterfactuals and kernelshap",
  },
);

/** A manifest's explanation policy, defaults applied. */
export interface ExplanationPolicy {
  /** Default: `always` for risk_tier high, `on_request` otherwise. */
  readonly when: ExplanationWhen;
  /** Default: `treeshap` for xgboost-json artifacts, `kernelshap` for onnx. */
  readonly method: ExplanationMethod;
  /** Most reasons given for one decision (1 to 10, default 4). */
  readonly maxReasons: number;
  /** Absolute path of the reference rows (CSV), or undefined when the manifest names none. */
  readonly referencePath: string | undefined;
  readonly counterfactuals: {
    /** Default: true when explanations are on (`when` is not `never`), a reference is named and the task is binary. */
    readonly enabled: boolean;
    /** Most options offered (1 to 10, default 3). */
    readonly max: number;
    /** Rows the model may score per instance while searching (100 to 1,000,000, default 20,000). */
    readonly maxEvaluations: number;
  };
  readonly kernelshap: {
    /** Background rows (k-means of the reference rows; 1 to 1,000, default 20). */
    readonly background: number;
    /**
     * Coalitions per explained row (2 to 100,000), or undefined for the default 2 × features + 256. Each
     * explained row costs background × coalitions model evaluations.
     */
    readonly samples: number | undefined;
  };
}

interface ExplanationContext {
  readonly riskTier: RiskTier;
  readonly task: Task;
  readonly format: ArtifactFormat;
}

type RawExplanations = {
  when?: ExplanationWhen;
  method?: ExplanationMethod;
  max_reasons?: number;
  reference?: string;
  counterfactuals?: { enabled?: boolean; max?: number; max_evaluations?: number };
  kernelshap?: { background?: number; samples?: number };
};

const AT = "/policy/explanations";

/** Problems with `policy.explanations` (field paths from the manifest root). */
export function explanationPolicyProblems(
  context: ExplanationContext,
  policy: Readonly<Record<string, unknown>>,
): FieldProblem[] {
  const raw = policy.explanations;
  if (raw === undefined) return [];
  const problems = schemaProblems(ExplanationsPolicySchema, raw, AT);
  if (problems.length > 0) return problems;
  const e = raw as RawExplanations;
  if (e.method === "treeshap" && context.format !== "xgboost-json") {
    problems.push({
      field: `${AT}/method`,
      expected: `kernelshap for an ${context.format} artifact (treeshap reads the trees of an xgboost-json model)`,
      found: describeValue(e.method),
      fix: "write method: kernelshap, or remove method for the default",
    });
  }
  const enabled = e.counterfactuals?.enabled;
  if (enabled === true) {
    const field = `${AT}/counterfactuals/enabled`;
    if (e.when === "never") {
      problems.push({
        field,
        expected: "false while when is never (counterfactuals are part of the explanation)",
        found: describeValue(enabled),
        fix: "set when to always or on_request, or remove counterfactuals.enabled",
      });
    }
    if (context.task !== "binary") {
      problems.push({
        field,
        expected: `false for a ${context.task} task (a counterfactual flips a binary decision)`,
        found: describeValue(enabled),
        fix: "remove counterfactuals.enabled",
      });
    }
    if (e.reference === undefined) {
      problems.push({
        field,
        expected: "a reference to go with it (counterfactual distances are scaled by the reference rows)",
        found: `${describeValue(enabled)} without ${AT}/reference`,
        fix: "add reference: <CSV of typical rows, e.g. a holdout set>, or set enabled: false",
      });
    }
  }
  return problems;
}

/**
 * The policy with defaults (call after {@link explanationPolicyProblems} found nothing). `manifestFile` is the
 * manifest's absolute path, against which `reference` is resolved.
 */
export function explanationPolicyOf(
  context: ExplanationContext,
  policy: Readonly<Record<string, unknown>>,
  manifestFile: string,
): ExplanationPolicy {
  const e = (policy.explanations ?? {}) as RawExplanations;
  const when = e.when ?? (context.riskTier === "high" ? "always" : "on_request");
  const referencePath = e.reference === undefined ? undefined : resolve(manifestFile, "..", e.reference);
  return Object.freeze({
    when,
    method: e.method ?? (context.format === "xgboost-json" ? "treeshap" : "kernelshap"),
    maxReasons: e.max_reasons ?? DEFAULT_MAX_REASONS,
    referencePath,
    counterfactuals: Object.freeze({
      enabled:
        e.counterfactuals?.enabled ??
        (when !== "never" && referencePath !== undefined && context.task === "binary"),
      max: e.counterfactuals?.max ?? DEFAULT_COUNTERFACTUALS,
      maxEvaluations: e.counterfactuals?.max_evaluations ?? DEFAULT_COUNTERFACTUAL_EVALUATIONS,
    }),
    kernelshap: Object.freeze({
      background: e.kernelshap?.background ?? DEFAULT_KERNELSHAP_BACKGROUND,
      samples: e.kernelshap?.samples,
    }),
  });
}

/** What the feature-level explanation fields need to be checked. */
interface FeatureFields {
  readonly name: string;
  readonly type: string;
  readonly nullable: boolean;
  readonly sensitive: boolean;
  readonly immutable: boolean;
  readonly reason?: string | { high?: string; low?: string; missing?: string } | undefined;
  readonly group?: string | undefined;
  readonly monotone?: string | undefined;
}

/**
 * Problems with the features' `reason`, `group`, `monotone` and `immutable` fields that the schema cannot
 * see: fields that can never apply (on a sensitive attribute, or a direction on a category), and group
 * names that would read as another feature's reason code.
 */
export function featureExplanationProblems(features: readonly FeatureFields[]): FieldProblem[] {
  const problems: FieldProblem[] = [];
  const names = new Set(features.map((f) => f.name));
  features.forEach((f, i) => {
    const at = `/features/${i}`;
    if (f.sensitive) {
      for (const key of ["reason", "group", "monotone"] as const) {
        if (f[key] !== undefined) {
          problems.push({
            field: `${at}/${key}`,
            expected: `no ${key} on a sensitive attribute (it is never fed to the model, so never a reason or a change)`,
            found: describeValue(f[key]),
            fix: `remove ${key}`,
          });
        }
      }
      return;
    }
    if (typeof f.reason === "object") {
      if (f.type === "category" && (f.reason.high !== undefined || f.reason.low !== undefined)) {
        problems.push({
          field: `${at}/reason`,
          expected: "a single text (or only missing) for a category feature: categories have no high or low",
          found: describeValue(f.reason),
          fix: 'write reason: "<text>"; the text is followed by the category',
        });
      }
      if (f.reason.missing !== undefined && !f.nullable) {
        problems.push({
          field: `${at}/reason/missing`,
          expected: "no missing text for a feature that is not nullable",
          found: describeValue(f.reason.missing),
          fix: "remove missing, or set nullable: true",
        });
      }
    }
    if (f.monotone !== undefined) {
      if (f.type === "category") {
        problems.push({
          field: `${at}/monotone`,
          expected: "no monotone on a category feature (categories have no order)",
          found: describeValue(f.monotone),
          fix: "remove monotone",
        });
      } else if (f.immutable) {
        problems.push({
          field: `${at}/monotone`,
          expected: "no monotone on an immutable feature (it never changes)",
          found: describeValue(f.monotone),
          fix: "remove monotone or immutable",
        });
      }
    }
    if (f.group !== undefined && f.group !== f.name && names.has(f.group)) {
      problems.push({
        field: `${at}/group`,
        expected: "a group name that is not another feature's name (reason codes are feature or group names)",
        found: describeValue(f.group),
        fix: "rename the group",
      });
    }
  });
  return problems;
}
