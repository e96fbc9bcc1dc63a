import { stringify as stringifyCsv } from "csv-stringify/sync";
import type { LedgerReader, LedgerRecord, RecordKind } from "../ledger/index.js";

/** Formats of the exports. */
export const EXPORT_FORMATS = ["ndjson", "csv"] as const;
export type ExportFormat = (typeof EXPORT_FORMATS)[number];

/** Which records an export takes. Times are milliseconds since the epoch; `since` is inclusive, `until` not. */
export interface RecordFilter {
  readonly model?: string | undefined;
  readonly since?: number | undefined;
  readonly until?: number | undefined;
  /** Any of these kinds (all kinds when absent or empty). */
  readonly kinds?: readonly RecordKind[] | undefined;
}

/**
 * Where an export writes: a promise that resolves once the sink can take more (backpressure), to false when
 * the reader has gone (a closed pipe) and the export should stop.
 */
export type ExportSink = (text: string) => Promise<boolean | undefined>;

/** Text gathered before one write to the sink: large enough to be cheap, small enough to bound memory. */
const CHUNK_CHARS = 64 * 1024;

/** Gathers text and hands it to the sink in chunks of about CHUNK_CHARS, waiting for the sink each time. */
export class ChunkedWriter {
  readonly #sink: ExportSink;
  #parts: string[] = [];
  #size = 0;
  #stopped = false;

  constructor(sink: ExportSink) {
    this.#sink = sink;
  }

  /** Whether the sink said it takes no more: stop reading records. */
  get stopped(): boolean {
    return this.#stopped;
  }

  async add(text: string): Promise<void> {
    if (this.#stopped) return;
    this.#parts.push(text);
    this.#size += text.length;
    if (this.#size >= CHUNK_CHARS) await this.flush();
  }

  async flush(): Promise<void> {
    if (this.#parts.length === 0 || this.#stopped) return;
    const text = this.#parts.join("");
    this.#parts = [];
    this.#size = 0;
    if ((await this.#sink(text)) === false) this.#stopped = true;
  }
}

/** Whether a record passes the filter. */
export function matchesFilter(record: LedgerRecord, filter: RecordFilter): boolean {
  if (filter.model !== undefined && record.model !== filter.model) return false;
  if (filter.kinds !== undefined && filter.kinds.length > 0 && !filter.kinds.includes(record.kind))
    return false;
  if (filter.since !== undefined || filter.until !== undefined) {
    const time = Date.parse(record.time);
    if (filter.since !== undefined && !(time >= filter.since)) return false;
    if (filter.until !== undefined && !(time < filter.until)) return false;
  }
  return true;
}

/**
 * The records committed when the export starts, in sequence order, read lazily (one at a time). Every pass
 * of a multi-pass export reads exactly these, even while a server keeps appending.
 */
export async function snapshot(reader: SnapshotReader): Promise<() => AsyncIterable<LedgerRecord>> {
  const last = await reader.count();
  return () => reader.scan({ limit: last });
}

/** What an export reads: any ledger store (SQLite or PostgreSQL), or a SQLite reader through {@link readerSource}. */
export interface SnapshotReader {
  count(): Promise<number>;
  scan(options: { limit?: number }): AsyncIterable<LedgerRecord>;
}

/** A synchronous SQLite reader as a {@link SnapshotReader}. */
export function readerSource(reader: LedgerReader): SnapshotReader {
  return {
    count: async () => reader.count(),
    async *scan(options) {
      yield* reader.scan(options);
    },
  };
}

/** One record as an NDJSON line: every field, in the ledger's order, with its place in the hash chain. */
export function ndjsonLine(record: LedgerRecord): string {
  return `${JSON.stringify({
    seq: record.seq,
    id: record.id,
    kind: record.kind,
    time: record.time,
    model: record.model,
    version: record.version,
    artifact_sha256: record.artifact_sha256,
    body: record.body,
    prev_hash: record.prev_hash,
    hash: record.hash,
  })}\n`;
}

/** The CSV's first columns: the record's own fields. */
export const CSV_HEAD = ["seq", "id", "kind", "time", "model", "version"] as const;
/** Then these body fields, always present (empty where a record has none): what most readers look for. */
export const CSV_BODY_FIRST = [
  "decision_id",
  "decision",
  "outputs.score",
  "threshold",
  "outcome",
  "source",
  "observed_at",
  "note",
  "reason",
  "contact",
  "requested_action",
] as const;
/** Body fields flattened by prefix, in the order the export first meets them, after CSV_BODY_FIRST. */
export const CSV_GROUPS = ["inputs.", "subject.", "outputs."] as const;
/** The last columns: the record's place in the hash chain. */
export const CSV_TAIL = ["artifact_sha256", "prev_hash", "hash"] as const;

const RESERVED = new Set<string>([...CSV_HEAD, ...CSV_TAIL]);

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * A body as flat `column → value` pairs: nested objects become dotted names (`inputs.Income`,
 * `outputs.probabilities.bad`) and empty objects vanish; arrays stay whole (written as JSON). A top-level body field named like one
 * of the record's own columns (`id`, `time`, ...) is prefixed `body.`.
 */
export function flattenBody(body: Readonly<Record<string, unknown>>): Map<string, unknown> {
  const flat = new Map<string, unknown>();
  const walk = (value: Record<string, unknown>, prefix: string) => {
    for (const [key, inner] of Object.entries(value)) {
      const name = prefix === "" && RESERVED.has(key) ? `body.${key}` : `${prefix}${key}`;
      // An empty object (a decision without sensitive attributes has `subject: {}`) adds no column.
      if (isPlainObject(inner)) walk(inner, `${name}.`);
      else flat.set(name, inner);
    }
  };
  walk(body, "");
  return flat;
}

/** A value as a CSV cell: text as is, numbers and booleans as JSON writes them, null empty, the rest JSON. */
export function csvCell(value: unknown): string {
  if (value === undefined || value === null) return "";
  if (typeof value === "string") return value;
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  return JSON.stringify(value);
}

/** Collects the body columns of the records an export will write, for the CSV header (first pass). */
export class CsvColumns {
  readonly #seen = new Set<string>();

  add(record: LedgerRecord): void {
    for (const name of flattenBody(record.body).keys()) this.#seen.add(name);
  }

  /** The header: CSV_HEAD, CSV_BODY_FIRST, the CSV_GROUPS in first-seen order, other fields sorted, CSV_TAIL. */
  columns(): string[] {
    const fixed = new Set<string>(CSV_BODY_FIRST);
    const rest = [...this.#seen].filter((c) => !fixed.has(c));
    const grouped = CSV_GROUPS.flatMap((prefix) => rest.filter((c) => c.startsWith(prefix)));
    const others = rest.filter((c) => !CSV_GROUPS.some((prefix) => c.startsWith(prefix))).sort();
    return [...CSV_HEAD, ...CSV_BODY_FIRST, ...grouped, ...others, ...CSV_TAIL];
  }
}

/** One record as CSV cells in `columns` order. */
export function csvCells(record: LedgerRecord, columns: readonly string[]): string[] {
  const flat = flattenBody(record.body);
  return columns.map((column) => {
    switch (column) {
      case "seq":
        return String(record.seq);
      case "id":
      case "kind":
      case "time":
      case "model":
      case "version":
      case "artifact_sha256":
      case "prev_hash":
      case "hash":
        return record[column];
      default:
        return csvCell(flat.get(column));
    }
  });
}

/** Rows stringified together (csv-stringify per row costs more than the row itself). */
const CSV_ROWS_PER_CALL = 256;

/**
 * Stream the ledger's records that pass `filter`, in sequence order, to `sink`. Memory stays bounded by a
 * chunk of output (and, for CSV, the set of column names): records are read one at a time and every write
 * waits for the sink. CSV reads the ledger twice, first for its columns.
 *
 * @returns how many records were written.
 */
export async function exportLedger(
  reader: SnapshotReader,
  options: { readonly filter: RecordFilter; readonly format: ExportFormat },
  sink: ExportSink,
): Promise<number> {
  const records = await snapshot(reader);
  const out = new ChunkedWriter(sink);
  let written = 0;
  if (options.format === "ndjson") {
    for await (const record of records()) {
      if (out.stopped) break;
      if (!matchesFilter(record, options.filter)) continue;
      written++;
      await out.add(ndjsonLine(record));
    }
    await out.flush();
    return written;
  }
  const collector = new CsvColumns();
  for await (const record of records()) if (matchesFilter(record, options.filter)) collector.add(record);
  const columns = collector.columns();
  await out.add(stringifyCsv([columns]));
  let rows: string[][] = [];
  for await (const record of records()) {
    if (out.stopped) break;
    if (!matchesFilter(record, options.filter)) continue;
    written++;
    rows.push(csvCells(record, columns));
    if (rows.length === CSV_ROWS_PER_CALL) {
      await out.add(stringifyCsv(rows));
      rows = [];
    }
  }
  if (rows.length > 0) await out.add(stringifyCsv(rows));
  await out.flush();
  return written;
}
