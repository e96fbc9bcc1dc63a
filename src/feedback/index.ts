/**
 * Feedback from the world back into Warden: outcomes (ground truth) and appeals that point to earlier
 * decisions, how they are found again, and the exports built on the ledger (every record; training rows
 * that join a model's decision inputs with their final labels).
 */

export {
  ChunkedWriter,
  CSV_BODY_FIRST,
  CSV_GROUPS,
  CSV_HEAD,
  CSV_TAIL,
  CsvColumns,
  csvCell,
  csvCells,
  EXPORT_FORMATS,
  type ExportFormat,
  type ExportSink,
  exportLedger,
  flattenBody,
  matchesFilter,
  ndjsonLine,
  type RecordFilter,
  readerSource,
  type SnapshotReader,
  snapshot,
} from "./export.js";
export { LINKED_KINDS, type LinkedKind, linkedDecisionId } from "./linked.js";
export { ISO_TIME_EXPECTED, parseIsoTime } from "./time.js";
export {
  exportTraining,
  featureColumn,
  labelFromOutcome,
  labelFromReview,
  labelledDecisionId,
  preferLabel,
  TRAINING_HEAD,
  TRAINING_TAIL,
  type TrainingExportOptions,
  type TrainingExportSummary,
  type TrainingLabel,
} from "./training.js";
