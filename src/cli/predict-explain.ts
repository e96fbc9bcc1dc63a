/**
 * `warden predict --explain`: explanations of batch rows through the same runtime as the server's decisions.
 * A model whose policy explains with TreeSHAP (XGBoost) is explained on its worker thread beside inference
 * (row tasks, runtime/row-tasks.ts); a KernelSHAP model in an explainer thread of its own
 * (runtime/explainer-pool.ts), after its rows were scored.
 */
import type { Manifest } from "../config/index.js";
import type { FeatureValue, ValidInstance } from "../decision/index.js";
import { WardenError } from "../errors/index.js";
import type { ExplanationRecord } from "../explain/model-explainer.js";
import { createExplainerPool, type ExplainerPool } from "../runtime/explainer-pool.js";
import type { RowResult } from "../runtime/index.js";
import type { RowTask } from "../runtime/row-tasks.js";
import { UsageError } from "./index.js";

/** Rows per explainer-thread job: small enough that a job stays far inside the pool's timeout. */
export const KERNEL_JOB_ROWS = 64;

/** Input rows read and scored at a time under KernelSHAP, so that results come every few seconds. */
const KERNEL_CHUNK_ROWS = 256;

/** What `--explain`, `--explain-samples` and `--explain-seed` asked for. */
export interface ExplainFlags {
  readonly explain?: boolean | undefined;
  readonly explainSamples?: number | undefined;
  readonly explainSeed?: number | undefined;
}

/** Explains the valid rows of a chunk. */
export interface BatchExplainer {
  /** Input rows to read and score at a time, when fewer than predict's usual chunk suit the explainer. */
  readonly rowsPerChunk: number | undefined;
  /** The row tasks to submit with the rows (inline TreeSHAP), or undefined when explained afterwards. */
  tasksFor(instances: readonly ValidInstance[]): RowTask[] | undefined;
  /** One explanation per row, once the batcher answered them (`results`, in the same order). */
  explain(instances: readonly ValidInstance[], results: readonly RowResult[]): Promise<ExplanationRecord[]>;
  close(): Promise<void>;
}

/**
 * Check the flags against each other (before the manifest is read).
 *
 * @throws UsageError for `--explain-samples` or `--explain-seed` without `--explain`.
 */
export function checkExplainFlags(flags: ExplainFlags): void {
  if (flags.explain === true) return;
  for (const [name, value] of [
    ["--explain-samples", flags.explainSamples],
    ["--explain-seed", flags.explainSeed],
  ] as const) {
    if (value !== undefined) throw new UsageError(`${name} applies to explanations: add --explain`);
  }
}

/**
 * The explainer `--explain` asks for on this model, or undefined without `--explain`.
 *
 * @throws WardenError WARDEN_ERR_EXPLANATION_UNAVAILABLE when the model's policy gives no explanations.
 * @throws UsageError for KernelSHAP settings on a TreeSHAP model, or fewer samples than KernelSHAP needs.
 */
export function batchExplainerFor(manifest: Manifest, flags: ExplainFlags): BatchExplainer | undefined {
  if (flags.explain !== true) return undefined;
  const policy = manifest.explanations;
  if (policy.when === "never") {
    throw new WardenError(
      "WARDEN_ERR_EXPLANATION_UNAVAILABLE",
      `model ${manifest.name} ${manifest.version} gives no explanations (policy.explanations.when: never)`,
      {
        details: [
          {
            field: "--explain",
            expected: "absent for this model",
            found: "given",
            fix: "leave out --explain, or set policy.explanations.when in the model's manifest",
          },
        ],
      },
    );
  }
  if (policy.method === "treeshap") {
    for (const [name, value] of [
      ["--explain-samples", flags.explainSamples],
      ["--explain-seed", flags.explainSeed],
    ] as const) {
      if (value !== undefined) {
        throw new UsageError(
          `${name} applies to KernelSHAP; model ${manifest.name} explains with exact TreeSHAP, which samples nothing`,
        );
      }
    }
    return inlineExplainer();
  }
  // Below the singles and their complements, the regression has fewer equations than unknowns.
  const least = 2 * manifest.modelFeatures.length;
  if (flags.explainSamples !== undefined && flags.explainSamples < least) {
    throw new UsageError(
      `--explain-samples must be at least ${least} for model ${manifest.name} (2 × its ${least / 2} features); got ${flags.explainSamples}`,
    );
  }
  return kernelExplainer(manifest, createExplainerPool(manifest), flags);
}

/** TreeSHAP on the model's worker: each row carries its task, and its result the explanation. */
function inlineExplainer(): BatchExplainer {
  return {
    rowsPerChunk: undefined,
    tasksFor: (instances) => instances.map((i) => ({ explain: { values: i.inputs } })),
    async explain(_instances, results) {
      return results.map((r, i) => {
        const explanation = r.task?.explanation;
        if (explanation === undefined) {
          throw new WardenError(
            "WARDEN_ERR_INTERNAL",
            `row ${i} of a batch came back without its explanation`,
          );
        }
        return explanation;
      });
    },
    async close() {},
  };
}

/** KernelSHAP in the model's explainer thread, in jobs of {@link KERNEL_JOB_ROWS} rows. */
function kernelExplainer(manifest: Manifest, pool: ExplainerPool, flags: ExplainFlags): BatchExplainer {
  const width = manifest.modelFeatures.length;
  return {
    rowsPerChunk: KERNEL_CHUNK_ROWS,
    tasksFor: () => undefined,
    async explain(instances) {
      const records: ExplanationRecord[] = [];
      for (let start = 0; start < instances.length; start += KERNEL_JOB_ROWS) {
        const part = instances.slice(start, start + KERNEL_JOB_ROWS);
        const input = new Float32Array(part.length * width);
        part.forEach((instance, i) => {
          input.set(instance.row, i * width);
        });
        const values: Readonly<Record<string, FeatureValue>>[] = part.map((i) => i.inputs);
        const result = await pool.run({
          kind: "kernelshap",
          input,
          rows: part.length,
          values,
          seed: flags.explainSeed,
          nsamples: flags.explainSamples,
        });
        records.push(...(result as ExplanationRecord[]));
      }
      return records;
    },
    close: () => pool.close(),
  };
}

/** The CSV columns of an explanation: one contribution per model feature (manifest order), base, reasons. */
export function explanationHeader(manifest: Manifest): string[] {
  return [...manifest.modelFeatures.map((f) => `contribution_${f.name}`), "base", "reasons", "reason_codes"];
}

/** An explanation's CSV cells, in {@link explanationHeader}'s order; empty cells for a row without one. */
export function explanationCells(
  manifest: Manifest,
  record: ExplanationRecord | undefined,
): (string | number)[] {
  if (record === undefined) return [...manifest.modelFeatures.map(() => ""), "", "", ""];
  const reasons = record.reasons ?? [];
  return [
    ...manifest.modelFeatures.map((f) => record.contributions[f.name] ?? ""),
    record.base,
    reasons.map((r) => r.text).join(" | "),
    reasons.map((r) => r.code).join("|"),
  ];
}
