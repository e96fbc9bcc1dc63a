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

/** {@link WireTasks} `kinds` flags. */
const SEAL = 1;
const EXPLAIN = 2;
const LEDGER_FORM = 4;

/**
 * One batch's row tasks as they travel to a model's worker: columns of primitives rather than an object graph
 * per row. Structured cloning rebuilds every object of a message property by property on the receiving
 * thread; subjects and feature values have the same few key lists row after row, so these travel once per
 * batch and each row sends only its values.
 */
export interface WireTasks {
  /** Per row: 0 for no task, else SEAL | EXPLAIN | LEDGER_FORM flags. */
  readonly kinds: Uint8Array;
  /** The distinct key lists of the rows' subjects and feature values, referred to by index in `cells`. */
  readonly keys: readonly (readonly string[])[];
  /**
   * The rows' tasks in row order. A seal: decision id, time, its subject's key-list index, then one value per
   * key; an explanation: its values' key-list index, then one value per key.
   */
  readonly cells: readonly (FeatureValue | undefined)[];
}

/** A batch's tasks (one per row, `null` for none) for the trip to the worker: see {@link WireTasks}. */
export function encodeRowTasks(tasks: readonly (RowTask | null)[]): WireTasks {
  const kinds = new Uint8Array(tasks.length);
  const keys: string[][] = [];
  const cells: (FeatureValue | undefined)[] = [];
  const record = (values: Readonly<Record<string, FeatureValue>>) => {
    const names = Object.keys(values);
    let index = keys.findIndex((list) => sameKeys(list, names));
    if (index < 0) index = keys.push(names) - 1;
    cells.push(index);
    for (const name of names) cells.push(values[name]);
  };
  for (let r = 0; r < tasks.length; r++) {
    const task = tasks[r];
    if (task === null || task === undefined) continue;
    let kind = 0;
    if (task.seal !== undefined) {
      kind |= SEAL;
      cells.push(task.seal.decisionId, task.seal.time);
      record(task.seal.subject);
    }
    if (task.explain !== undefined) {
      kind |= EXPLAIN | (task.explain.form === "ledger" ? LEDGER_FORM : 0);
      record(task.explain.values);
    }
    kinds[r] = kind;
  }
  return { kinds, keys, cells };
}

function sameKeys(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * The tasks {@link encodeRowTasks} encoded, one per row (`null` for none).
 *
 * @throws WardenError WARDEN_ERR_INTERNAL when the columns do not add up (never from {@link encodeRowTasks}).
 */
export function decodeRowTasks(wire: WireTasks): (RowTask | null)[] {
  const { kinds, keys, cells } = wire;
  let at = 0;
  const next = () => {
    if (at >= cells.length) throw new WardenError("WARDEN_ERR_INTERNAL", "row tasks end early");
    return cells[at++];
  };
  const record = (): Record<string, FeatureValue> => {
    const names = keys[next() as number];
    if (names === undefined) throw new WardenError("WARDEN_ERR_INTERNAL", "row tasks name no key list");
    const values: Record<string, FeatureValue> = {};
    for (const name of names) values[name] = next() as FeatureValue;
    return values;
  };
  const tasks: (RowTask | null)[] = [];
  for (let r = 0; r < kinds.length; r++) {
    const kind = kinds[r]!;
    if (kind === 0) {
      tasks.push(null);
      continue;
    }
    let seal: SealTask | undefined;
    if ((kind & SEAL) !== 0) {
      const decisionId = next() as string;
      const time = next() as string;
      seal = { decisionId, time, subject: record() };
    }
    const explain: ExplainTask | undefined =
      (kind & EXPLAIN) !== 0
        ? { values: record(), ...((kind & LEDGER_FORM) !== 0 ? { form: "ledger" as const } : {}) }
        : undefined;
    tasks.push({ ...(seal ? { seal } : {}), ...(explain ? { explain } : {}) });
  }
  if (at !== cells.length) throw new WardenError("WARDEN_ERR_INTERNAL", "row tasks hold extra values");
  return tasks;
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
