/**
 * Per-row work a model's worker thread does beside inference, so the serving thread does not: sealing a
 * protected decision's subject (privacy/seal.ts), and explaining the row inline (TreeSHAP and reason codes,
 * explain/model-explainer.ts). A task travels with its row through the dynamic batcher and
 * comes back with the row's result, in the same messages as the batch: no extra hop between threads.
 */
import type { Manifest } from "../config/index.js";
import type { FeatureValue } from "../decision/input.js";
import { WardenError } from "../errors/index.js";
import {
  type ExplanationRecord,
  type InlineExplainer,
  type ReasonSummary,
  reasonSummary,
} from "../explain/model-explainer.js";
import { canonicalJson } from "../ledger/hash.js";
import { type SealedSubject, type SealKeys, sealSubject } from "../privacy/seal.js";
import type { EngineOutput } from "./types.js";

/** Seal this subject for this decision (the model's `policy.subject_storage` says how). */
export interface SealTask {
  readonly decisionId: string;
  /** The decision's time (ISO-8601 UTC), as its ledger entry records it. */
  readonly time: string;
  readonly subject: Readonly<Record<string, FeatureValue>>;
}

/** Explain this row inline (TreeSHAP; see explain/model-explainer.ts). */
export interface ExplainTask {
  /** The row's model-feature values as validated, for the reason texts. */
  readonly values: Readonly<Record<string, FeatureValue>>;
  /**
   * `record` (the default): the {@link ExplanationRecord} comes back as an object. `ledger`: it comes back as the
   * ledger will record it, canonical JSON written here ({@link RecordedExplanation}), so the serving thread
   * neither receives its object graph nor walks it again to write the entry.
   */
  readonly form?: "record" | "ledger";
}

/** An explanation in the `ledger` form: its canonical JSON, and what the decision's answer needs of it. */
export interface RecordedExplanation {
  /** The {@link ExplanationRecord} as canonical JSON (ledger/hash.ts), for the entry's `body.explanation`. */
  readonly json: string;
  /** Whether the decision is the adverse outcome (binary models). */
  readonly adverse: boolean;
  /** An adverse decision's principal reasons as its answer gives them; absent otherwise. */
  readonly reasons?: readonly ReasonSummary[];
}

/** What to do for one row besides predicting it. */
export interface RowTask {
  readonly seal?: SealTask;
  readonly explain?: ExplainTask;
}

/** The outcome of a row's tasks. */
export interface RowTaskResult {
  readonly sealed?: SealedSubject;
  readonly explanation?: ExplanationRecord;
  /** The explanation in the `ledger` form (instead of `explanation`). */
  readonly recorded?: RecordedExplanation;
  /** Why the row's tasks failed (then nothing else is set): only this row's request fails, not its batch. */
  readonly error?: { readonly code: string; readonly message: string };
}

/** What a worker holds for its row tasks. */
export interface RowTaskContext {
  readonly manifest: Manifest;
  /** Subject keys, when the server has them. */
  readonly keys: SealKeys | undefined;
  /** The model's inline explainer (TreeSHAP), when it is an XGBoost model whose policy explains. */
  readonly explainer: InlineExplainer | undefined;
}

/**
 * Run one batch's tasks (one entry per row, `null` for none), after the engine answered the batch (`input`,
 * `output`).
 *
 * A row whose task fails gets `{error}` (WARDEN_ERR_VAULT when a subject must be sealed and there are no keys, or
 * the model keeps subjects in clear — the serving thread never asks then; WARDEN_ERR_EXPLANATION_UNAVAILABLE
 * when it asks for an explanation the model cannot give inline; whatever an explainer raised): the batcher
 * fails that row's request only.
 */
export function runRowTasks(
  context: RowTaskContext,
  tasks: readonly (RowTask | null)[],
  input: Float32Array,
  output: EngineOutput,
): (RowTaskResult | null)[] {
  return tasks.map((task, r) => {
    if (task === null) return null;
    try {
      return runRowTask(context, task, r, input, output);
    } catch (error) {
      return {
        error:
          error instanceof WardenError
            ? { code: error.code, message: error.message }
            : {
                code: "WARDEN_ERR_INTERNAL",
                message: error instanceof Error ? error.message : String(error),
              },
      };
    }
  });
}

function runRowTask(
  context: RowTaskContext,
  task: RowTask,
  r: number,
  input: Float32Array,
  output: EngineOutput,
): RowTaskResult {
  const { manifest, keys, explainer } = context;
  const storage = manifest.privacy.subjectStorage;
  {
    let sealed: SealedSubject | undefined;
    if (task.seal !== undefined) {
      if (keys === undefined || storage === "clear") {
        // Never fall back to clear storage.
        throw new WardenError(
          "WARDEN_ERR_VAULT",
          keys === undefined
            ? `model ${manifest.name} ${manifest.version} stores subjects ${storage}, and this server has no subject keys`
            : `model ${manifest.name} ${manifest.version} stores subjects in clear; there is nothing to seal`,
        );
      }
      const { decisionId, time, subject } = task.seal;
      sealed = sealSubject(
        keys,
        {
          model: manifest.name,
          version: manifest.version,
          storage,
          retentionDays: manifest.privacy.retentionDays,
        },
        decisionId,
        time,
        subject,
      );
    }
    let explanation: ExplanationRecord | undefined;
    if (task.explain !== undefined) {
      if (explainer === undefined) {
        throw new WardenError(
          "WARDEN_ERR_EXPLANATION_UNAVAILABLE",
          `model ${manifest.name} ${manifest.version} has no inline explainer (policy.explanations: ${manifest.explanations.when}, method ${manifest.explanations.method})`,
        );
      }
      explanation = explainer.explain(input, r, output, task.explain.values);
      if (task.explain.form === "ledger") {
        const adverse = explanation.adverse === true;
        const recorded: RecordedExplanation = {
          json: canonicalJson(explanation),
          adverse,
          ...(adverse && explanation.reasons !== undefined
            ? { reasons: explanation.reasons.map(reasonSummary) }
            : {}),
        };
        return { ...(sealed === undefined ? {} : { sealed }), recorded };
      }
    }
    return {
      ...(sealed === undefined ? {} : { sealed }),
      ...(explanation === undefined ? {} : { explanation }),
    };
  }
}
