import { type Static, Type as T } from "@sinclair/typebox";
import type { BreakerPolicy } from "./breaker-policy.js";
import type { DisclosurePolicy } from "./disclosure-policy.js";
import type { ExplanationPolicy } from "./explanation-policy.js";
import type { FairnessPolicy } from "./fairness-policy.js";
import type { PrivacyPolicy } from "./privacy-policy.js";
import type { ReviewPolicy } from "./review-policy.js";

/** Closed lists (conventions: const tuples with derived unions). */
export const RISK_TIERS = ["prohibited", "high", "limited", "minimal"] as const;
export type RiskTier = (typeof RISK_TIERS)[number];
export const TASKS = ["binary", "multiclass", "regression"] as const;
export type Task = (typeof TASKS)[number];
export const FEATURE_TYPES = ["number", "integer", "boolean", "category"] as const;
export type FeatureType = (typeof FEATURE_TYPES)[number];
export const ARTIFACT_FORMATS = ["xgboost-json", "onnx"] as const;
export type ArtifactFormat = (typeof ARTIFACT_FORMATS)[number];
export const DEVICES = ["cpu", "cuda"] as const;
export type Device = (typeof DEVICES)[number];
/** Directions a counterfactual may move a feature in (`monotone`); absent means both. */
export const MONOTONE_DIRECTIONS = ["increase_only", "decrease_only"] as const;
export type MonotoneDirection = (typeof MONOTONE_DIRECTIONS)[number];

/** A schema for one of a closed list of strings, described as "one of a, b, c" in errors. */
export const literalUnion = <L extends readonly string[]>(values: L) =>
  T.Unsafe<L[number]>(
    T.Union(
      values.map((v) => T.Literal(v)),
      { description: `one of ${values.join(", ")}` },
    ),
  );

const Name = T.String({ minLength: 1, maxLength: 128, pattern: "^[A-Za-z0-9][A-Za-z0-9_.-]*$" });

export const FeatureSchema = T.Object(
  {
    name: T.String({ minLength: 1, maxLength: 128 }),
    type: literalUnion(FEATURE_TYPES),
    description: T.Optional(T.String()),
    min: T.Optional(T.Number()),
    max: T.Optional(T.Number()),
    categories: T.Optional(T.Array(T.String({ minLength: 1 }), { minItems: 1 })),
    nullable: T.Boolean({ default: false }),
    sensitive: T.Boolean({ default: false }),
    /** Never changed by a counterfactual (a fact about the past, or not in the subject's power). */
    immutable: T.Boolean({ default: false }),
    /** The reason-code text: one text, or one per direction the value lies in against typical approvals. */
    reason: T.Optional(
      T.Union(
        [
          T.String({ minLength: 1 }),
          T.Object(
            {
              high: T.Optional(T.String({ minLength: 1 })),
              low: T.Optional(T.String({ minLength: 1 })),
              missing: T.Optional(T.String({ minLength: 1 })),
            },
            { additionalProperties: false, minProperties: 1 },
          ),
        ],
        { description: "a text, or a mapping of high, low and missing texts" },
      ),
    ),
    /** Related features reported as one reason under this name (their contributions summed). */
    group: T.Optional(
      T.String({ minLength: 1, maxLength: 128, description: "a group name (1 to 128 characters)" }),
    ),
    /** The only direction a counterfactual may move the feature in. */
    monotone: T.Optional(literalUnion(MONOTONE_DIRECTIONS)),
  },
  { additionalProperties: false },
);

export const ManifestSchema = T.Object(
  {
    name: Name,
    version: T.String({ minLength: 1, maxLength: 64, pattern: "^[A-Za-z0-9][A-Za-z0-9_.+-]*$" }),
    description: T.Optional(T.String()),
    owner: T.String({ minLength: 1 }),
    intended_use: T.String({ minLength: 1 }),
    risk_tier: literalUnion(RISK_TIERS),
    task: literalUnion(TASKS),
    artifact: T.Object(
      {
        path: T.String({ minLength: 1 }),
        format: literalUnion(ARTIFACT_FORMATS),
        sha256: T.String({ pattern: "^[0-9a-f]{64}$", description: "64 lower-case hex digits" }),
        /** ONNX only: the input tensor name (default: the model's first input). */
        input: T.Optional(T.String({ minLength: 1 })),
        /** ONNX only: the output tensor name holding probabilities or values (default: see docs). */
        output: T.Optional(T.String({ minLength: 1 })),
      },
      { additionalProperties: false },
    ),
    runtime: T.Object(
      {
        device: T.Union([T.Literal("cpu"), T.Literal("cuda")], {
          default: "cpu",
          description: "cpu or cuda",
        }),
        instances: T.Integer({ minimum: 1, maximum: 64, default: 1 }),
        intra_op_threads: T.Integer({ minimum: 1, maximum: 64, default: 1 }),
      },
      { additionalProperties: false, default: {} },
    ),
    batching: T.Object(
      {
        max_batch_size: T.Integer({ minimum: 1, maximum: 65536, default: 64 }),
        max_queue_delay_us: T.Integer({ minimum: 0, maximum: 10_000_000, default: 0 }),
        preferred_batch_sizes: T.Array(T.Integer({ minimum: 1 }), { default: [] }),
        max_queue_size: T.Integer({ minimum: 1, maximum: 10_000_000, default: 4096 }),
        timeout_ms: T.Integer({ minimum: 1, maximum: 3_600_000, default: 5000 }),
      },
      { additionalProperties: false, default: {} },
    ),
    features: T.Array(FeatureSchema, { minItems: 1 }),
    output: T.Object(
      {
        labels: T.Optional(T.Array(T.String({ minLength: 1 }), { minItems: 2 })),
        positive_label: T.Optional(T.String({ minLength: 1 })),
        threshold: T.Number({ minimum: 0, maximum: 1, default: 0.5 }),
        /** Binary: the label of the outcome the subject hopes for (default: the label that is not positive_label). */
        favorable_label: T.Optional(T.String({ minLength: 1 })),
      },
      { additionalProperties: false, default: {} },
    ),
    policy: T.Record(T.String(), T.Unknown(), { default: {} }),
  },
  { additionalProperties: false },
);

/** One feature of a manifest, validated and frozen. */
export interface FeatureSpec extends Readonly<Omit<Static<typeof FeatureSchema>, "categories">> {
  readonly categories?: readonly string[] | undefined;
}
type RawManifest = Static<typeof ManifestSchema>;

/** A validated, frozen manifest with resolved paths and derived fields. */
export interface Manifest
  extends Readonly<Omit<RawManifest, "features" | "output" | "artifact" | "runtime" | "batching">> {
  readonly artifact: Readonly<RawManifest["artifact"]> & {
    /** Absolute path of the artifact file. */
    readonly absolutePath: string;
  };
  readonly runtime: Readonly<RawManifest["runtime"]>;
  readonly batching: Readonly<Omit<RawManifest["batching"], "preferred_batch_sizes">> & {
    readonly preferred_batch_sizes: readonly number[];
  };
  readonly features: readonly FeatureSpec[];
  /** The features fed to the model, in order (every non-sensitive feature). */
  readonly modelFeatures: readonly FeatureSpec[];
  /** Sensitive attributes: recorded as the subject, never fed to the model. */
  readonly sensitiveFeatures: readonly FeatureSpec[];
  readonly output: {
    /** Class labels in the model's class order (binary without labels: "0", "1"); undefined for regression. */
    readonly labels: readonly string[] | undefined;
    readonly positive_label: string | undefined;
    /** Index of positive_label in labels (binary). */
    readonly positiveIndex: number;
    readonly threshold: number;
    /** Binary: the favourable outcome's label (default: the label that is not positive_label); else undefined. */
    readonly favorable_label: string | undefined;
    /** Index of favorable_label in labels (binary), -1 otherwise. */
    readonly favorableIndex: number;
  };
  /** `policy.explanations`, defaults for the risk tier and artifact format applied. */
  readonly explanations: ExplanationPolicy;
  /** `policy.retention_days` and `policy.subject_storage`, defaults for the risk tier applied. */
  readonly privacy: PrivacyPolicy;
  /** `policy.breaker`, defaults applied; undefined when the manifest configures no circuit breaker. */
  readonly breaker: BreakerPolicy | undefined;
  /** `policy.review`, defaults applied (routing nothing when the manifest has no such section). */
  readonly review: ReviewPolicy;
  /** `policy.disclosure`: how much of the output answers disclose (the ledger keeps it all). */
  readonly disclosure: DisclosurePolicy;
  /** `policy.fairness`, defaults applied (see docs/fairness.md): what the audit and the live monitor compare. */
  readonly fairness: FairnessPolicy;
  /** Absolute path of the manifest file. */
  readonly manifestPath: string;
  /** sha256 of the manifest file's bytes. */
  readonly manifestSha256: string;
  /** The manifest as written (before defaults), frozen: what `parseManifest` accepts again. */
  readonly source: unknown;
}
