/**
 * Per-row work a model's worker thread does beside inference, so the serving thread does not: today, sealing a
 * protected decision's subject (privacy/seal.ts). A task travels with its row through the dynamic batcher and
 * comes back with the row's result, in the same messages as the batch: no extra hop between threads.
 */
import type { Manifest } from "../config/index.js";
import type { FeatureValue } from "../decision/input.js";
import { WardenError } from "../errors/index.js";
import { type SealedSubject, type SealKeys, sealSubject } from "../privacy/seal.js";

/** Seal this subject for this decision (the model's `policy.subject_storage` says how). */
export interface SealTask {
  readonly decisionId: string;
  /** The decision's time (ISO-8601 UTC), as its ledger entry records it. */
  readonly time: string;
  readonly subject: Readonly<Record<string, FeatureValue>>;
}

/** What to do for one row besides predicting it. */
export interface RowTask {
  readonly seal?: SealTask;
}

/** The outcome of a row's tasks. */
export interface RowTaskResult {
  readonly sealed?: SealedSubject;
}

/**
 * Run one batch's tasks (one entry per row, `null` for none) for `manifest`, with `keys` when the server has
 * subject keys.
 *
 * @throws WardenError WARDEN_ERR_VAULT when a subject must be sealed and there are no keys, or the model keeps
 *   subjects in clear (the serving thread never asks then).
 */
export function runRowTasks(
  manifest: Manifest,
  keys: SealKeys | undefined,
  tasks: readonly (RowTask | null)[],
): (RowTaskResult | null)[] {
  const storage = manifest.privacy.subjectStorage;
  return tasks.map((task) => {
    if (task === null || task.seal === undefined) return null;
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
    return {
      sealed: sealSubject(
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
      ),
    };
  });
}
