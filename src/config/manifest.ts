import { createHash } from "node:crypto";
import { accessSync, constants } from "node:fs";
import { dirname, resolve } from "node:path";
import { Value } from "@sinclair/typebox/value";
import { parseDocument } from "yaml";
import { describeValue, type FieldProblem, formatProblems, WardenError } from "../errors/index.js";
import { breakerPolicyOf, breakerPolicyProblems } from "./breaker-policy.js";
import { disclosurePolicyOf, disclosurePolicyProblems } from "./disclosure-policy.js";
import {
  explanationPolicyOf,
  explanationPolicyProblems,
  featureExplanationProblems,
} from "./explanation-policy.js";
import { fairnessPolicyOf, fairnessPolicyProblems } from "./fairness-policy.js";
import {
  checkReadableFile,
  MAX_MANIFEST_BYTES,
  MAX_REFERENCE_BYTES,
  readBoundedFile,
  sha256OfFile,
} from "./files.js";
import { type Device, type FeatureSpec, type Manifest, ManifestSchema } from "./manifest-schema.js";
import { privacyPolicyOf, privacyPolicyProblems } from "./privacy-policy.js";
import { reviewPolicyOf, reviewPolicyProblems } from "./review-policy.js";
import { schemaProblems } from "./schema-errors.js";

/** The class labels of a binary model whose manifest names none. */
const BINARY_DEFAULT_LABELS: readonly string[] = Object.freeze(["0", "1"]);

/** sha256 of a file's bytes, lower-case hex. */
export function sha256File(path: string): string {
  return sha256OfFile(path);
}

/**
 * Load a model manifest (YAML), validate it completely, check the artifact's sha256 and freeze it.
 * Every problem is reported at once as file + path + expected + found.
 *
 * @throws WardenError WARDEN_ERR_MANIFEST_INVALID, WARDEN_ERR_ARTIFACT_HASH_MISMATCH,
 *   WARDEN_ERR_MODEL_PROHIBITED, WARDEN_ERR_ARTIFACT_INVALID (artifact missing)
 */
export function loadManifest(
  manifestPath: string,
  options: {
    checkArtifact?: boolean;
    /** Overrides `runtime.device` (the `--device` flag). */
    device?: Device | undefined;
  } = {},
): Manifest {
  const file = resolve(manifestPath);
  let text: Buffer;
  try {
    text = readBoundedFile(file, MAX_MANIFEST_BYTES);
  } catch (error) {
    throw new WardenError(
      "WARDEN_ERR_MANIFEST_INVALID",
      `${file}: cannot read the manifest (${errnoText(error)})`,
      {
        details: [
          {
            field: file,
            expected: "a readable YAML file of at most 1 MiB",
            found: errnoText(error),
            fix: "give the path of the model's manifest.yaml",
          },
        ],
      },
    );
  }
  const document = parseDocument(text.toString("utf8"), { prettyErrors: true });
  if (document.errors.length > 0) {
    const details = document.errors.map((e) => ({
      field: `${file}:${e.linePos?.[0]?.line ?? "?"}:${e.linePos?.[0]?.col ?? "?"}`,
      expected: "valid YAML",
      found: e.message.split("\n")[0] ?? e.message,
    }));
    throw new WardenError(
      "WARDEN_ERR_MANIFEST_INVALID",
      `${file}: not valid YAML\n${formatProblems(details)}`,
      {
        details,
      },
    );
  }
  let raw: unknown = document.toJS();
  if (options.device !== undefined && typeof raw === "object" && raw !== null && !Array.isArray(raw)) {
    const record = raw as Record<string, unknown>;
    const runtime = typeof record.runtime === "object" && record.runtime !== null ? record.runtime : {};
    raw = { ...record, runtime: { ...runtime, device: options.device } };
  }
  const manifest = parseManifest(raw, file, createHash("sha256").update(text).digest("hex"));
  if (options.checkArtifact !== false) {
    verifyArtifact(manifest);
    verifyReference(manifest);
  }
  return manifest;
}

/**
 * Validate a manifest object (already parsed from YAML or JSON). `file` is used in messages and to
 * resolve the artifact path.
 */
export function parseManifest(raw: unknown, file: string, manifestSha256 = ""): Manifest {
  const fail = (problems: FieldProblem[]): never => {
    throw new WardenError(
      "WARDEN_ERR_MANIFEST_INVALID",
      `${file}: invalid manifest (${problems.length} problem${problems.length === 1 ? "" : "s"})\n${formatProblems(problems)}`,
      { details: problems.map((p) => ({ ...p, field: `${file}#${p.field}` })) },
    );
  };
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    fail([
      { field: "/", expected: "a mapping with name, version, features, ...", found: describeValue(raw) },
    ]);
  }
  const withDefaults = Value.Default(ManifestSchema, structuredClone(raw));
  const problems = schemaProblems(ManifestSchema, withDefaults);
  if (problems.length > 0) fail(problems);
  const m = withDefaults as import("@sinclair/typebox").Static<typeof ManifestSchema>;
  problems.push(...semanticProblems(m));
  if (problems.length > 0) fail(problems);

  if (m.risk_tier === "prohibited") {
    throw new WardenError(
      "WARDEN_ERR_MODEL_PROHIBITED",
      `${file}: model ${m.name} has risk_tier "prohibited" (EU AI Act Art. 5 practice) and may not be served`,
      {
        details: [
          {
            field: `${file}#/risk_tier`,
            expected: "high, limited or minimal",
            found: '"prohibited"',
            fix: "a prohibited practice cannot be deployed; remove the model",
          },
        ],
      },
    );
  }

  // A binary model without labels has classes "0" and "1".
  const labels = m.task === "binary" ? (m.output.labels ?? BINARY_DEFAULT_LABELS) : m.output.labels;
  const positiveIndex =
    m.task === "binary" ? labels!.indexOf(m.output.positive_label ?? (labels![1] as string)) : -1;
  const features = m.features.map((f) => deepFreeze({ ...f, categories: freezeArray(f.categories) }));
  // The favourable outcome is by default the one that is not scored: models usually score the risk.
  const favorableIndex =
    m.task === "binary"
      ? m.output.favorable_label !== undefined
        ? labels!.indexOf(m.output.favorable_label)
        : 1 - positiveIndex
      : -1;
  const manifest: Manifest = {
    ...m,
    artifact: Object.freeze({ ...m.artifact, absolutePath: resolve(dirname(file), m.artifact.path) }),
    runtime: Object.freeze({ ...m.runtime }),
    batching: Object.freeze({
      ...m.batching,
      preferred_batch_sizes: Object.freeze([...m.batching.preferred_batch_sizes]),
    }),
    features: Object.freeze(features),
    modelFeatures: Object.freeze(features.filter((f) => !f.sensitive)),
    sensitiveFeatures: Object.freeze(features.filter((f) => f.sensitive)),
    output: Object.freeze({
      labels: freezeArray(labels),
      positive_label: m.task === "binary" ? (m.output.positive_label ?? labels?.[1]) : undefined,
      positiveIndex,
      threshold: m.output.threshold,
      favorable_label: favorableIndex >= 0 ? labels![favorableIndex] : undefined,
      favorableIndex,
    }),
    policy: deepFreeze(structuredClone(m.policy)),
    privacy: privacyPolicyOf(m.risk_tier, m.policy),
    explanations: explanationPolicyOf(explanationContext(m), m.policy, file),
    breaker: breakerPolicyOf(m.policy),
    review: reviewPolicyOf(m.policy),
    disclosure: disclosurePolicyOf(m.policy),
    fairness: fairnessPolicyOf(m.features, m.policy),
    manifestPath: file,
    manifestSha256,
    source: deepFreeze(structuredClone(raw)),
  };
  return Object.freeze(manifest);
}

function semanticProblems(m: import("@sinclair/typebox").Static<typeof ManifestSchema>): FieldProblem[] {
  const problems: FieldProblem[] = [];
  const names = new Set<string>();
  m.features.forEach((f, i) => {
    const at = `/features/${i}`;
    if (names.has(f.name)) {
      problems.push({ field: `${at}/name`, expected: "a unique feature name", found: describeValue(f.name) });
    }
    names.add(f.name);
    if (f.type === "category") {
      if (f.categories === undefined) {
        problems.push({
          field: `${at}/categories`,
          expected: "the list of allowed categories for a category feature",
          found: "missing",
        });
      } else if (new Set(f.categories).size !== f.categories.length) {
        problems.push({
          field: `${at}/categories`,
          expected: "distinct categories",
          found: "a repeated category",
        });
      }
    } else if (f.categories !== undefined) {
      problems.push({
        field: `${at}/categories`,
        expected: `no categories for a ${f.type} feature`,
        found: describeValue(f.categories),
        fix: 'set type: category or remove "categories"',
      });
    }
    if ((f.type === "boolean" || f.type === "category") && (f.min !== undefined || f.max !== undefined)) {
      problems.push({
        field: `${at}/${f.min !== undefined ? "min" : "max"}`,
        expected: `no min/max for a ${f.type} feature`,
        found: describeValue(f.min ?? f.max),
      });
    }
    if (f.min !== undefined && f.max !== undefined && f.min > f.max) {
      problems.push({
        field: `${at}/max`,
        expected: `a number >= min (${f.min})`,
        found: describeValue(f.max),
      });
    }
  });
  if (!m.features.some((f) => !f.sensitive)) {
    problems.push({
      field: "/features",
      expected: "at least one feature that is not sensitive (sensitive features are never fed to the model)",
      found: "only sensitive features",
    });
  }
  const labels = m.output.labels;
  if (labels !== undefined && new Set(labels).size !== labels.length) {
    problems.push({ field: "/output/labels", expected: "distinct labels", found: "a repeated label" });
  }
  if (m.task === "binary") {
    if (labels !== undefined && labels.length !== 2) {
      problems.push({
        field: "/output/labels",
        expected: "exactly 2 labels for a binary task (class 0, class 1)",
        found: describeValue(labels),
      });
    }
    const classes = labels ?? BINARY_DEFAULT_LABELS;
    if (m.output.positive_label !== undefined && !classes.includes(m.output.positive_label)) {
      problems.push({
        field: "/output/positive_label",
        expected: `one of the labels (${classes.join(", ")})`,
        found: describeValue(m.output.positive_label),
        ...(labels === undefined ? { fix: 'without output.labels the classes are "0" and "1"' } : {}),
      });
    }
  } else if (m.task === "multiclass") {
    if (labels === undefined) {
      problems.push({
        field: "/output/labels",
        expected: "the class labels, in the model's class order, for a multiclass task",
        found: "missing",
      });
    }
    if (m.output.positive_label !== undefined) {
      problems.push({
        field: "/output/positive_label",
        expected: "no positive_label for a multiclass task",
        found: describeValue(m.output.positive_label),
      });
    }
  } else if (labels !== undefined || m.output.positive_label !== undefined) {
    problems.push({
      field: labels !== undefined ? "/output/labels" : "/output/positive_label",
      expected: "no labels for a regression task",
      found: describeValue(labels ?? m.output.positive_label),
    });
  }
  if (m.output.favorable_label !== undefined) {
    if (m.task !== "binary") {
      problems.push({
        field: "/output/favorable_label",
        expected: `no favorable_label for a ${m.task} task`,
        found: describeValue(m.output.favorable_label),
      });
    } else {
      const classes = labels ?? BINARY_DEFAULT_LABELS;
      if (!classes.includes(m.output.favorable_label)) {
        problems.push({
          field: "/output/favorable_label",
          expected: `one of the labels (${classes.join(", ")})`,
          found: describeValue(m.output.favorable_label),
          fix: "name the outcome the subject hopes for, or remove it: the default is the label that is not positive_label",
        });
      }
    }
  }
  problems.push(...featureExplanationProblems(m.features));
  problems.push(...privacyPolicyProblems(m.risk_tier, m.policy));
  problems.push(...explanationPolicyProblems(explanationContext(m), m.policy));
  problems.push(...breakerPolicyProblems(m.version, m.policy));
  problems.push(...reviewPolicyProblems(m.task, m.policy));
  problems.push(...disclosurePolicyProblems(m.policy));
  problems.push(...fairnessPolicyProblems(m.features, m.policy));
  const b = m.batching;
  if (b.timeout_ms * 1000 <= b.max_queue_delay_us) {
    // A request arriving alone would wait out the delay and then time out, every time.
    problems.push({
      field: "/batching/timeout_ms",
      expected: `more than max_queue_delay_us (${b.max_queue_delay_us} µs = ${b.max_queue_delay_us / 1000} ms)`,
      found: describeValue(b.timeout_ms),
      fix: "raise timeout_ms well above the queue delay plus an inference, or lower max_queue_delay_us",
    });
  }
  b.preferred_batch_sizes.forEach((size, i) => {
    if (size > b.max_batch_size) {
      problems.push({
        field: `/batching/preferred_batch_sizes/${i}`,
        expected: `a size <= max_batch_size (${b.max_batch_size})`,
        found: describeValue(size),
      });
    }
  });
  return problems;
}

/** Check that the artifact exists and matches the manifest's sha256. */
export function verifyArtifact(manifest: Manifest): void {
  let actual: string;
  try {
    actual = sha256File(manifest.artifact.absolutePath);
  } catch (error) {
    throw new WardenError(
      "WARDEN_ERR_ARTIFACT_INVALID",
      `${manifest.manifestPath}: artifact ${manifest.artifact.absolutePath} cannot be read (${errnoText(error)})`,
      {
        details: [
          {
            field: `${manifest.manifestPath}#/artifact/path`,
            expected: "a readable file, relative to the manifest",
            found: describeValue(manifest.artifact.path),
          },
        ],
      },
    );
  }
  if (actual !== manifest.artifact.sha256) {
    throw new WardenError(
      "WARDEN_ERR_ARTIFACT_HASH_MISMATCH",
      `${manifest.manifestPath}: artifact ${manifest.artifact.absolutePath} has sha256 ${actual}, the manifest says ${manifest.artifact.sha256}`,
      {
        details: [
          {
            field: `${manifest.manifestPath}#/artifact/sha256`,
            expected: actual,
            found: manifest.artifact.sha256,
            fix: "the artifact changed since the manifest was written: restore it, or update sha256 after review",
          },
        ],
      },
    );
  }
}

/** Check that the explanation reference rows named by the manifest can be read. */
function verifyReference(manifest: Manifest): void {
  const path = manifest.explanations.referencePath;
  if (path === undefined) return;
  try {
    accessSync(path, constants.R_OK);
    // A device or a pipe would block the reading thread, or fill memory, when the rows are read.
    checkReadableFile(path, MAX_REFERENCE_BYTES);
  } catch (error) {
    const problem = {
      field: "/policy/explanations/reference",
      expected: `a readable CSV file of reference rows of at most ${MAX_REFERENCE_BYTES / (1024 * 1024)} MiB, relative to the manifest`,
      found: `${describeValue((manifest.policy.explanations as { reference?: unknown }).reference)}: ${errnoText(error)}`,
      fix: "fix the path, or remove reference (explanations then have no typical values or counterfactuals)",
    };
    throw new WardenError(
      "WARDEN_ERR_MANIFEST_INVALID",
      `${manifest.manifestPath}: invalid manifest (1 problem)\n${formatProblems([problem])}`,
      { details: [{ ...problem, field: `${manifest.manifestPath}#${problem.field}` }] },
    );
  }
}

function explanationContext(m: import("@sinclair/typebox").Static<typeof ManifestSchema>) {
  return { riskTier: m.risk_tier, task: m.task, format: m.artifact.format };
}

function errnoText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function freezeArray<T>(values: readonly T[] | undefined): readonly T[] | undefined {
  return values === undefined ? undefined : Object.freeze([...values]);
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === "object") {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}

/** Features of a manifest by name. */
export function featureIndex(manifest: Manifest): ReadonlyMap<string, FeatureSpec> {
  return new Map(manifest.features.map((f) => [f.name, f]));
}
