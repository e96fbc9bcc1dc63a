import { stringify as stringifyCsv } from "csv-stringify/sync";
import type { LedgerRecord } from "../ledger/index.js";
import {
  ChunkedWriter,
  csvCell,
  type ExportFormat,
  type ExportSink,
  type SnapshotReader,
  snapshot,
} from "./export.js";

/** A decision's label for training, and where it came from. */
export interface TrainingLabel {
  /** The label (classification) or value (regression). */
  readonly value: string | number;
  /** What set it: an outcome record, or a reviewer's final decision (a `review` record). */
  readonly kind: "outcome" | "review";
  /** Who or what reported it: the outcome's `source`, or `human_review:<reviewer>[+<reviewer>]`. */
  readonly source: string;
  /** Id of the ledger record that set it. */
  readonly record_id: string;
  /** When it was observed (the outcome's `observed_at`, the review record's time). */
  readonly observed_at: string;
  /** Ledger position of that record: among labels of one kind, the later one wins. */
  readonly seq: number;
}

/** The label an outcome record gives its decision, or undefined when the record is not a usable outcome. */
export function labelFromOutcome(record: LedgerRecord): TrainingLabel | undefined {
  if (record.kind !== "outcome") return undefined;
  const { outcome, source, observed_at } = record.body;
  if (typeof outcome !== "string" && typeof outcome !== "number") return undefined;
  return {
    value: outcome,
    kind: "outcome",
    source: typeof source === "string" ? source : "",
    record_id: record.id,
    observed_at: typeof observed_at === "string" ? observed_at : "",
    seq: record.seq,
  };
}

/**
 * The label a reviewer's final decision gives (a `review` record with `final: true`), or undefined. First
 * judgements of four-eyes reviews and disagreements are not final, and give none.
 */
export function labelFromReview(record: LedgerRecord): TrainingLabel | undefined {
  if (record.kind !== "review" || record.body.final !== true) return undefined;
  const { decision, reviewers, reviewer } = record.body;
  if (typeof decision !== "string" && typeof decision !== "number") return undefined;
  const who = Array.isArray(reviewers) ? reviewers.join("+") : typeof reviewer === "string" ? reviewer : "";
  return {
    value: decision,
    kind: "review",
    source: `human_review:${who}`,
    record_id: record.id,
    observed_at: record.time,
    seq: record.seq,
  };
}

/** The decision a label record points to. */
export function labelledDecisionId(record: LedgerRecord): string | undefined {
  const id = record.body.decision_id;
  return typeof id === "string" ? id : undefined;
}

/**
 * Which of two labels for one decision is final: the later record in the ledger, whatever its kind. A
 * reviewer's decision labels the case until an outcome observed later corrects it, and a review made after
 * an outcome (an appeal settled) overrides that outcome.
 */
export function preferLabel(current: TrainingLabel | undefined, next: TrainingLabel): TrainingLabel {
  if (current === undefined) return next;
  return next.seq > current.seq ? next : current;
}

/** The training file's fixed columns before and after the features. */
export const TRAINING_HEAD = ["decision_id", "time", "version"] as const;
export const TRAINING_TAIL = ["label", "label_source", "label_record_id", "label_observed_at"] as const;
const TRAINING_RESERVED = new Set<string>([...TRAINING_HEAD, ...TRAINING_TAIL]);

/** Options of {@link exportTraining}. */
export interface TrainingExportOptions {
  readonly model: string;
  /** Decision times, milliseconds since the epoch: `since` inclusive, `until` exclusive. */
  readonly since?: number | undefined;
  readonly until?: number | undefined;
  readonly format: ExportFormat;
  /**
   * Feature names in the model's order (its manifest's non-sensitive features). Without it, features are in
   * sorted order. Features the decisions carry beyond these follow, sorted.
   */
  readonly featureOrder?: readonly string[] | undefined;
}

/** What an export wrote. */
export interface TrainingExportSummary {
  /** Rows written: decisions of the model in the window with a label. */
  readonly rows: number;
  /** Decisions of the model in the window without one. */
  readonly unlabelled: number;
  readonly columns: readonly string[];
}

function inWindow(record: LedgerRecord, options: TrainingExportOptions): boolean {
  if (options.since === undefined && options.until === undefined) return true;
  const time = Date.parse(record.time);
  return (
    (options.since === undefined || time >= options.since) &&
    (options.until === undefined || time < options.until)
  );
}

function inputsOf(record: LedgerRecord): Readonly<Record<string, unknown>> {
  const inputs = record.body.inputs;
  return typeof inputs === "object" && inputs !== null && !Array.isArray(inputs)
    ? (inputs as Record<string, unknown>)
    : {};
}

/** A feature's CSV column: its name, or `feature.<name>` when that is one of the fixed columns. */
export function featureColumn(name: string): string {
  return TRAINING_RESERVED.has(name) ? `feature.${name}` : name;
}

/**
 * Join a model's decision inputs with their final labels: one row per labelled decision, in ledger order,
 * with decision_id, time, version, the input features (not the subject's sensitive attributes), the label
 * and where it came from.
 *
 * Two passes over the same snapshot of the ledger, so memory grows with the number of labels, not with the
 * ledger: the first keeps the final label of each decision (and the names of the features seen), the
 * second streams the decisions and writes those that have one.
 */
export async function exportTraining(
  reader: SnapshotReader,
  options: TrainingExportOptions,
  sink: ExportSink,
): Promise<TrainingExportSummary> {
  const records = await snapshot(reader);
  const labels = new Map<string, TrainingLabel>();
  const seen = new Set<string>();
  for await (const record of records()) {
    if (record.model !== options.model) continue;
    if (record.kind === "decision") {
      if (inWindow(record, options)) for (const name of Object.keys(inputsOf(record))) seen.add(name);
      continue;
    }
    const label = labelFromOutcome(record) ?? labelFromReview(record);
    const decisionId = label === undefined ? undefined : labelledDecisionId(record);
    if (label !== undefined && decisionId !== undefined) {
      labels.set(decisionId, preferLabel(labels.get(decisionId), label));
    }
  }

  const ordered = options.featureOrder ?? [];
  const known = new Set(ordered);
  const features = [...ordered, ...[...seen].filter((name) => !known.has(name)).sort()];
  const columns = [...TRAINING_HEAD, ...features.map(featureColumn), ...TRAINING_TAIL];
  const out = new ChunkedWriter(sink);
  if (options.format === "csv") await out.add(stringifyCsv([columns]));

  let rows = 0;
  let unlabelled = 0;
  for await (const record of records()) {
    if (out.stopped) break;
    if (record.kind !== "decision" || record.model !== options.model || !inWindow(record, options)) continue;
    const label = labels.get(record.id);
    if (label === undefined) {
      unlabelled++;
      continue;
    }
    rows++;
    const inputs = inputsOf(record);
    if (options.format === "csv") {
      await out.add(
        stringifyCsv([
          [
            record.id,
            record.time,
            record.version,
            ...features.map((name) => csvCell(inputs[name])),
            csvCell(label.value),
            label.source,
            label.record_id,
            label.observed_at,
          ],
        ]),
      );
    } else {
      const row: Record<string, unknown> = {};
      for (const name of features) if (Object.hasOwn(inputs, name)) row[name] = inputs[name];
      await out.add(
        `${JSON.stringify({
          decision_id: record.id,
          time: record.time,
          version: record.version,
          features: row,
          label: label.value,
          label_source: label.source,
          label_record_id: label.record_id,
          label_observed_at: label.observed_at,
        })}\n`,
      );
    }
  }
  await out.flush();
  return { rows, unlabelled, columns };
}
