import { mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import Database from "better-sqlite3";
import { describeValue, type FieldProblem, WardenError } from "../errors/index.js";
import { canonicalJson, chainHash, GENESIS_HASH } from "./hash.js";
import {
  type LedgerEntry,
  type LedgerRecord,
  LINKED_KINDS,
  RECORD_KINDS,
  REVIEW_MARK,
  type ReviewSources,
} from "./types.js";

/** Version of the table layout below, kept in SQLite's `PRAGMA user_version`. Bump it with a migration. */
const SCHEMA_VERSION = 1;

// `entry` holds the canonical JSON of the LedgerEntry, byte for byte what was hashed. The other columns copy
// fields of that entry so they can be indexed; verifyLedger checks they agree with it. STRICT makes SQLite
// refuse values of the wrong type instead of converting them.
const SCHEMA = `
  CREATE TABLE records (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    time TEXT NOT NULL,
    model TEXT NOT NULL,
    version TEXT NOT NULL,
    entry TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
  ) STRICT;
  CREATE INDEX records_model_time ON records (model, time);
  PRAGMA user_version = ${SCHEMA_VERSION};
`;

/** The linked kinds as an SQL list; the index and the query must spell the condition alike to use the index. */
const LINKED_SQL = `kind IN (${LINKED_KINDS.map((k) => `'${k}'`).join(", ")})`;
const LINKED_KEY = "json_extract(entry, '$.body.decision_id')";
/**
 * Outcomes, appeals and reviews by the decision they point to (LedgerReader.linked). A partial index: only those
 * records are in it, so appending a decision costs nothing more. Not part of the schema version: a ledger made
 * before it gets it when a writer next opens it, and a reader without it still answers, by a scan.
 */
const LINKED_INDEX = `CREATE INDEX IF NOT EXISTS records_linked ON records (${LINKED_KEY}) WHERE ${LINKED_SQL}`;
/**
 * What the review queue's catch-up reads (LedgerReader.reviewSources): appeals, and decisions whose text holds
 * {@link REVIEW_MARK}, searched by SQLite over a range of the primary key, so that only they are parsed. No
 * index: it would search every decision's text as it is inserted, on the ledger thread, and the catch-up reads
 * little (see review/service.ts).
 */
const REVIEW_SOURCES_SQL = `(kind = 'appeal' OR (kind = 'decision' AND instr(entry, '${REVIEW_MARK}') > 0))`;
/** The query behind LedgerReader.reviewSources (exported for the test of its plan). */
export const REVIEW_SOURCES_QUERY = `SELECT seq, entry, prev_hash, hash FROM records WHERE ${REVIEW_SOURCES_SQL} AND seq > ? AND seq <= ? ORDER BY seq`;
/** The query behind LedgerReader.linked (exported for the test of its plan). */
export const LINKED_QUERY = `SELECT seq, entry, prev_hash, hash FROM records WHERE ${LINKED_SQL} AND ${LINKED_KEY} = ? AND seq > ? ORDER BY seq LIMIT ?`;
/** The latest linked record of one kind (through the same index, newest first). */
const LATEST_LINKED_QUERY = `SELECT seq, entry, prev_hash, hash FROM records WHERE ${LINKED_SQL} AND ${LINKED_KEY} = ? AND kind = ? ORDER BY seq DESC LIMIT 1`;

/** Where a ledger lives inside a data directory. */
export function ledgerPath(dataDir: string): string {
  return resolve(join(dataDir, "ledger.sqlite"));
}

/** Options of {@link openSqliteLedger}. */
export interface SqliteLedgerOptions {
  /**
   * How hard a commit waits for the disk. `"normal"` (the default; SQLite `synchronous=NORMAL` in WAL mode):
   * a committed record survives a crash of the process, but the last commits before a power loss or kernel
   * crash may be lost (the file stays consistent). `"full"` (`synchronous=FULL`): every commit is fsynced, so
   * it also survives power loss, at the cost of one fsync per transaction.
   */
  readonly synchronous?: "normal" | "full";
  /**
   * Whether commits checkpoint the WAL into the database file themselves (SQLite's default, every 1000
   * pages). A writer whose checkpoints run elsewhere (the ledger thread: see thread-writer.ts) turns this off, so that no
   * commit waits for a checkpoint. Default true.
   */
  readonly autoCheckpoint?: boolean;
}

/** Which records {@link LedgerStore.scan} yields. */
export interface ScanOptions {
  /** Start after this sequence number (default 0: from the first record). */
  readonly afterSeq?: number;
  /** Yield at most this many records (default: all). */
  readonly limit?: number;
}

/** An entry ready to store: its indexed fields and its canonical JSON (exactly the text that is hashed). */
export interface PreparedEntry {
  readonly id: string;
  readonly kind: string;
  readonly time: string;
  readonly model: string;
  readonly version: string;
  readonly canonical: string;
}

/** Where a record landed in the chain. */
export interface ChainPosition {
  readonly seq: number;
  readonly prev_hash: string;
  readonly hash: string;
}

/**
 * Chain entries onto a ledger whose last record is (`lastSeq`, `lastHash`): each one's sequence number, the
 * hash it links to, and its own hash. Every store appends exactly this.
 */
export function chainPositions(
  entries: readonly PreparedEntry[],
  lastSeq: number,
  lastHash: string,
): ChainPosition[] {
  let seq = lastSeq;
  let prevHash = lastHash;
  return entries.map((entry) => {
    const hash = chainHash(prevHash, entry.canonical);
    seq += 1;
    const position: ChainPosition = { seq, prev_hash: prevHash, hash };
    prevHash = hash;
    return position;
  });
}

/**
 * Check an entry and canonicalise it: what an append hashes and stores.
 *
 * @throws WardenError WARDEN_ERR_LEDGER when a field is missing or the body is not plain JSON data.
 */
export function prepareEntry(input: LedgerEntry): PreparedEntry {
  const entry = pickEntry(input);
  return {
    id: entry.id,
    kind: entry.kind,
    time: entry.time,
    model: entry.model,
    version: entry.version,
    canonical: canonicalJson(entry),
  };
}

/** Read access to a ledger: what a process that does not write it (or writes it from another thread) uses. */
export interface LedgerReader {
  /** Absolute path of the SQLite file. */
  readonly file: string;
  /**
   * The record with this decision id, or undefined.
   *
   * @throws WardenError WARDEN_ERR_LEDGER when the reader is closed.
   */
  get(id: string): LedgerRecord | undefined;
  /**
   * Records in sequence order, read lazily (one row at a time): appends may continue while a scan is open,
   * and the scan sees the ledger as it was when iteration began. Finish or break out of the loop so the read
   * snapshot is released.
   *
   * @throws RangeError when `afterSeq` or `limit` is not an integer ≥ 0; WardenError WARDEN_ERR_LEDGER,
   *   while iterating, when the reader is (or gets) closed.
   */
  scan(options?: ScanOptions): IterableIterator<LedgerRecord>;
  /**
   * Every outcome, appeal and review ({@link LINKED_KINDS}) that points to the decision `decisionId`, after
   * sequence number `afterSeq` (default 0), in ledger order. Read through an index: the cost follows the
   * records found, not the size of the ledger.
   *
   * @throws WardenError WARDEN_ERR_LEDGER when the reader is closed.
   */
  linked(decisionId: string, afterSeq?: number, limit?: number): LedgerRecord[];
  /** The latest record of `kind` that points to the decision, or undefined (through the same index). */
  latestLinked(decisionId: string, kind: string): LedgerRecord | undefined;
  /**
   * The records after `afterSeq`, up to `limit` of them, that may have put a decision in the review queue
   * (see {@link ReviewSources}), picked by SQLite over a range of the primary key: only they are parsed.
   *
   * A `limit` of 0 reads nothing and says where the ledger ends.
   *
   * @throws RangeError when `afterSeq` or `limit` is not an integer ≥ 0.
   */
  reviewSources(afterSeq: number, limit: number): ReviewSources;
  /** Number of records (equal to the last sequence number, since sequence numbers are contiguous from 1). */
  count(): number;
  /** Close, ending open scans; later calls of the other methods throw. Idempotent. */
  close(): void;
}

/** An append-only, hash-chained store of ledger records. One writer (one store) per file. */
export interface LedgerStore extends LedgerReader {
  /**
   * Append entries in one transaction, chaining each to the previous record. All or none are stored.
   * The returned records carry the caller's entry fields plus `seq`, `prev_hash` and `hash`.
   *
   * @throws WardenError WARDEN_ERR_LEDGER (invalid entry, duplicate id, disk error, store closed)
   */
  append(entries: readonly LedgerEntry[]): LedgerRecord[];
  /**
   * Append entries already checked and canonicalised by {@link prepareEntry} (for a writer that prepares them
   * in another thread), in one transaction. Returns each one's place in the chain.
   *
   * @throws WardenError WARDEN_ERR_LEDGER (duplicate id, disk error, store closed)
   */
  appendPrepared(entries: readonly PreparedEntry[]): ChainPosition[];
  /** Hash of the last record, or {@link GENESIS_HASH} when the ledger is empty. */
  lastHash(): string;
}

/**
 * Open (creating it and `dataDir` if missing) the ledger at `<dataDir>/ledger.sqlite`, in WAL mode.
 * The chain head (last sequence number and hash) is read once here and then kept in memory, so only this
 * store may append to the file; a second writer would fail on the duplicate sequence number rather than
 * fork the chain.
 *
 * @throws WardenError WARDEN_ERR_LEDGER when the file cannot be opened or is not a ledger of a known version.
 */
export function openSqliteLedger(dataDir: string, options: SqliteLedgerOptions = {}): LedgerStore {
  const file = ledgerPath(dataDir);
  let db: Database.Database | undefined;
  try {
    mkdirSync(dataDir, { recursive: true });
    db = new Database(file);
    // WAL lets readers (scans, verification) run alongside the writer. SQLite answers with the mode it kept.
    const mode = db.pragma("journal_mode = WAL", { simple: true });
    if (mode !== "wal") {
      throw new Error(`the file system does not support WAL mode (journal_mode is ${String(mode)})`);
    }
    db.pragma(`synchronous = ${options.synchronous === "full" ? "FULL" : "NORMAL"}`);
    if (options.autoCheckpoint === false) db.pragma("wal_autocheckpoint = 0");
    if (db.pragma("user_version", { simple: true }) === 0 && isEmpty(db)) db.exec(`BEGIN;${SCHEMA}COMMIT;`);
    checkSchema(db, file);
    if (!hasIndex(db, "records_linked")) db.exec(LINKED_INDEX);
    return new SqliteLedgerStore(file, db, new SqliteLedgerReader(file, openReader(file)));
  } catch (error) {
    db?.close();
    throw asLedgerError(error, `cannot open the ledger at ${file}`);
  }
}

/**
 * Open an existing ledger at `<dataDir>/ledger.sqlite` for reading only (for example beside a writer that
 * runs in another thread). `count()` reads the last sequence number from the file.
 *
 * @throws WardenError WARDEN_ERR_LEDGER when the file is missing, unreadable or not a known ledger version.
 */
export function openLedgerReader(dataDir: string): LedgerReader {
  const file = ledgerPath(dataDir);
  return new SqliteLedgerReader(file, openReader(file));
}

/**
 * A read-only connection to an existing ledger file, after checking its schema version.
 *
 * @throws WardenError WARDEN_ERR_LEDGER when the file is missing, unreadable or not a known ledger version.
 */
export function openReader(file: string): Database.Database {
  let db: Database.Database | undefined;
  try {
    db = new Database(file, { readonly: true, fileMustExist: true });
    checkSchema(db, file);
    return db;
  } catch (error) {
    db?.close();
    throw asLedgerError(error, `cannot read the ledger at ${file}`);
  }
}

interface Row {
  readonly seq: number;
  readonly entry: string;
  readonly prev_hash: string;
  readonly hash: string;
}

const RECORD_COLUMNS = "seq, entry, prev_hash, hash";

class SqliteLedgerReader implements LedgerReader {
  readonly file: string;
  readonly #db: Database.Database;
  readonly #get: Database.Statement<[string], Row>;
  readonly #last: Database.Statement<[], { seq: number | null }>;
  readonly #linked: Database.Statement<[string, number, number], Row>;
  readonly #latestLinked: Database.Statement<[string, string], Row>;
  readonly #sources: Database.Statement<[number, number], Row>;
  readonly #hashAt: Database.Statement<[number], { hash: string }>;
  readonly #scans = new Set<IterableIterator<Row>>();
  #closed = false;

  constructor(file: string, db: Database.Database) {
    this.file = file;
    this.#db = db;
    this.#get = db.prepare(`SELECT ${RECORD_COLUMNS} FROM records WHERE id = ?`);
    this.#last = db.prepare("SELECT MAX(seq) AS seq FROM records");
    this.#linked = db.prepare(LINKED_QUERY);
    this.#latestLinked = db.prepare(LATEST_LINKED_QUERY);
    this.#sources = db.prepare(REVIEW_SOURCES_QUERY);
    this.#hashAt = db.prepare("SELECT hash FROM records WHERE seq = ?");
  }

  reviewSources(afterSeq: number, limit: number): ReviewSources {
    this.assertOpen();
    checkStretch(afterSeq, limit);
    // The end first: records commit in sequence order, so every record up to it is there to read. (No
    // transaction: this connection may have a scan open.)
    const end = this.#last.get()?.seq ?? 0;
    const through = Math.max(afterSeq, Math.min(afterSeq + limit, end));
    const throughHash = this.#hashAt.get(through)?.hash;
    if (through === afterSeq) return { records: [], through, end, throughHash };
    return { records: this.#sources.all(afterSeq, through).map(toRecord), through, end, throughHash };
  }

  linked(decisionId: string, afterSeq = 0, limit = -1): LedgerRecord[] {
    this.assertOpen();
    // SQLite: a negative LIMIT means no limit.
    return this.#linked.all(decisionId, afterSeq, limit).map(toRecord);
  }

  latestLinked(decisionId: string, kind: string): LedgerRecord | undefined {
    this.assertOpen();
    const row = this.#latestLinked.get(decisionId, kind);
    return row === undefined ? undefined : toRecord(row);
  }

  get(id: string): LedgerRecord | undefined {
    this.assertOpen();
    const row = this.#get.get(id);
    return row === undefined ? undefined : toRecord(row);
  }

  scan(options: ScanOptions = {}): IterableIterator<LedgerRecord> {
    const afterSeq = options.afterSeq ?? 0;
    const limit = options.limit;
    if (!Number.isSafeInteger(afterSeq) || afterSeq < 0) {
      throw new RangeError("afterSeq must be an integer ≥ 0");
    }
    if (limit !== undefined && (!Number.isSafeInteger(limit) || limit < 0)) {
      throw new RangeError("limit must be an integer ≥ 0");
    }
    return this.#read(afterSeq, limit ?? -1); // SQLite: a negative LIMIT means no limit
  }

  // A generator, so no statement runs and no snapshot is taken before the first record is asked for.
  *#read(afterSeq: number, limit: number): IterableIterator<LedgerRecord> {
    this.assertOpen();
    // A fresh statement per scan: one better-sqlite3 statement cannot serve two open iterators.
    const rows = this.#db
      .prepare<[number, number], Row>(
        `SELECT ${RECORD_COLUMNS} FROM records WHERE seq > ? ORDER BY seq LIMIT ?`,
      )
      .iterate(afterSeq, limit);
    this.#scans.add(rows);
    try {
      for (const row of rows) yield toRecord(row);
      // close() ends open scans and forgets them; say so rather than pass for the end of the ledger.
      if (!this.#scans.has(rows)) {
        throw new WardenError("WARDEN_ERR_LEDGER", `the ledger at ${this.file} was closed during a scan`);
      }
    } finally {
      this.#scans.delete(rows);
    }
  }

  count(): number {
    this.assertOpen();
    return this.#last.get()?.seq ?? 0;
  }

  assertOpen(): void {
    if (this.#closed) throw new WardenError("WARDEN_ERR_LEDGER", `the ledger at ${this.file} is closed`);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    // SQLite cannot close a connection with a statement still running.
    for (const rows of this.#scans) rows.return?.();
    this.#scans.clear();
    this.#db.close();
  }
}

class SqliteLedgerStore implements LedgerStore {
  readonly file: string;
  readonly #db: Database.Database;
  // Reads go through their own connection: better-sqlite3 refuses writes on a connection while one of its
  // iterators is open, and a scan may be consumed slowly (a streamed HTTP export) while decisions keep coming.
  readonly #reader: SqliteLedgerReader;
  readonly #insert: Database.Statement;
  readonly #appendAll: (entries: readonly PreparedEntry[]) => ChainPosition[];
  #lastSeq: number;
  #lastHash: string;
  #closed = false;

  constructor(file: string, db: Database.Database, reader: SqliteLedgerReader) {
    this.file = file;
    this.#db = db;
    this.#reader = reader;
    const head = db
      .prepare<[], Pick<Row, "seq" | "hash">>("SELECT seq, hash FROM records ORDER BY seq DESC LIMIT 1")
      .get();
    this.#lastSeq = head?.seq ?? 0;
    this.#lastHash = head?.hash ?? GENESIS_HASH;
    this.#insert = db.prepare(
      "INSERT INTO records (seq, id, kind, time, model, version, entry, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    );
    this.#appendAll = db.transaction((entries: readonly PreparedEntry[]) => this.#insertAll(entries));
  }

  append(entries: readonly LedgerEntry[]): LedgerRecord[] {
    const positions = this.appendPrepared(entries.map(prepareEntry));
    return entries.map((input, i) => ({ ...pickEntry(input), ...positions[i]! }));
  }

  appendPrepared(entries: readonly PreparedEntry[]): ChainPosition[] {
    this.#assertOpen();
    if (entries.length === 0) return [];
    try {
      const positions = this.#appendAll(entries);
      // Only now that the transaction has committed does the in-memory head move; after a rollback it still
      // points at the last committed record, so the next append continues the stored chain.
      const last = positions[positions.length - 1]!;
      this.#lastSeq = last.seq;
      this.#lastHash = last.hash;
      return positions;
    } catch (error) {
      throw asLedgerError(error, `cannot append ${entries.length} entries to the ledger at ${this.file}`);
    }
  }

  #insertAll(entries: readonly PreparedEntry[]): ChainPosition[] {
    const positions = chainPositions(entries, this.#lastSeq, this.#lastHash);
    entries.forEach((entry, i) => {
      const { seq, prev_hash, hash } = positions[i]!;
      this.#insert.run(
        seq,
        entry.id,
        entry.kind,
        entry.time,
        entry.model,
        entry.version,
        entry.canonical,
        prev_hash,
        hash,
      );
    });
    return positions;
  }

  get(id: string): LedgerRecord | undefined {
    this.#assertOpen();
    return this.#reader.get(id);
  }

  scan(options: ScanOptions = {}): IterableIterator<LedgerRecord> {
    return this.#reader.scan(options);
  }

  linked(decisionId: string, afterSeq = 0, limit?: number): LedgerRecord[] {
    this.#assertOpen();
    return this.#reader.linked(decisionId, afterSeq, limit);
  }

  latestLinked(decisionId: string, kind: string): LedgerRecord | undefined {
    this.#assertOpen();
    return this.#reader.latestLinked(decisionId, kind);
  }

  reviewSources(afterSeq: number, limit: number): ReviewSources {
    this.#assertOpen();
    return this.#reader.reviewSources(afterSeq, limit);
  }

  count(): number {
    this.#assertOpen();
    return this.#lastSeq;
  }

  lastHash(): string {
    this.#assertOpen();
    return this.#lastHash;
  }

  #assertOpen(): void {
    if (this.#closed) throw new WardenError("WARDEN_ERR_LEDGER", `the ledger at ${this.file} is closed`);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#reader.close();
    this.#db.close();
  }
}

/**
 * Exactly the LedgerEntry fields, checked, in a fresh object: extra properties (say, a LedgerRecord's seq and
 * hash passed back in) must not slip into the hashed text.
 */
function pickEntry(input: LedgerEntry): LedgerEntry {
  const problems: FieldProblem[] = [];
  const text = (field: keyof LedgerEntry) => {
    const value: unknown = input[field];
    if (typeof value !== "string" || value === "") {
      problems.push({ field, expected: "a non-empty string", found: describeValue(value) });
    }
  };
  text("id");
  text("time");
  text("model");
  text("version");
  text("artifact_sha256");
  if (!(RECORD_KINDS as readonly unknown[]).includes(input.kind)) {
    problems.push({
      field: "kind",
      expected: `one of ${RECORD_KINDS.join(", ")}`,
      found: describeValue(input.kind),
    });
  }
  const body: unknown = input.body;
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    problems.push({ field: "body", expected: "a JSON object", found: describeValue(body) });
  }
  if (problems.length > 0) {
    throw new WardenError("WARDEN_ERR_LEDGER", `invalid ledger entry ${String(input.id)}`, {
      details: problems,
    });
  }
  const { id, kind, time, model, version, artifact_sha256 } = input;
  // Keys in code-unit order: with a body in order too, canonicalJson writes the entry with JSON.stringify.
  return { artifact_sha256, body: input.body, id, kind, model, time, version };
}

function toRecord(row: Row): LedgerRecord {
  const entry = JSON.parse(row.entry) as LedgerEntry;
  return { ...entry, seq: row.seq, prev_hash: row.prev_hash, hash: row.hash };
}

/** @throws RangeError when the stretch asked of reviewSources is not one. */
export function checkStretch(afterSeq: number, limit: number): void {
  if (!Number.isSafeInteger(afterSeq) || afterSeq < 0)
    throw new RangeError("afterSeq must be an integer ≥ 0");
  if (!Number.isSafeInteger(limit) || limit < 0) throw new RangeError("limit must be an integer ≥ 0");
}

function hasIndex(db: Database.Database, name: string): boolean {
  return db.prepare("SELECT 1 FROM sqlite_schema WHERE type = 'index' AND name = ?").get(name) !== undefined;
}

function isEmpty(db: Database.Database): boolean {
  return db.prepare("SELECT 1 FROM sqlite_schema LIMIT 1").get() === undefined;
}

function checkSchema(db: Database.Database, file: string): void {
  const version = db.pragma("user_version", { simple: true });
  if (version === SCHEMA_VERSION) return;
  throw new WardenError(
    "WARDEN_ERR_LEDGER",
    version === 0
      ? `${file} is not a Warden ledger (an SQLite file without a ledger schema version)`
      : `${file} has ledger schema version ${String(version)}; this Warden reads version ${SCHEMA_VERSION}`,
  );
}

function asLedgerError(error: unknown, context: string): WardenError {
  if (error instanceof WardenError) return error;
  const reason = error instanceof Error ? error.message : String(error);
  return new WardenError("WARDEN_ERR_LEDGER", `${context}: ${reason}`, { cause: error });
}
