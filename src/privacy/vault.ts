/**
 * The subject vault: `<dataDir>/vault.sqlite`, beside the ledger and outside its hash chain. One row per decision
 * whose model stores its subject `pseudonymised` or `encrypted`: the salt of the decision's commitments and the
 * stored form (pseudonyms or the AES-256-GCM box), with the retention that applied when it was made. Retention
 * purges null the salt and the payload and keep the row as a tombstone (when, and by which `retention` ledger
 * record); ledger records are never touched, so the chain still verifies.
 *
 * Durability: a decision's row travels with its ledger entry through the ledger's write-ahead journal, and the
 * ledger thread stores it here (`insertNow`) before it commits the entry; a restart replays both. So every entry
 * the ledger holds has its row, in the same `synchronous` mode as the ledger.
 */
import { existsSync, mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import Database from "better-sqlite3";
import type { SubjectStorage } from "../config/index.js";
import { WardenError } from "../errors/index.js";

export { addDays } from "./seal.js";

const SCHEMA_VERSION = 1;
const SCHEMA = `
  CREATE TABLE subjects (
    decision_id TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    version TEXT NOT NULL,
    time TEXT NOT NULL,
    storage TEXT NOT NULL,
    retention_days INTEGER NOT NULL,
    retain_until TEXT NOT NULL,
    salt TEXT,
    payload TEXT,
    purged_at TEXT,
    purge_record TEXT
  ) STRICT;
  CREATE INDEX subjects_held ON subjects (model, time) WHERE payload IS NOT NULL;
  PRAGMA user_version = ${SCHEMA_VERSION};
`;

/** Where the vault lives inside a data directory. */
export function vaultPath(dataDir: string): string {
  return resolve(join(dataDir, "vault.sqlite"));
}

/** One decision's protected subject. */
export interface VaultRow {
  readonly decision_id: string;
  readonly model: string;
  readonly version: string;
  /** The decision's time (ISO-8601 UTC, as in the ledger). */
  readonly time: string;
  readonly storage: Exclude<SubjectStorage, "clear">;
  readonly retention_days: number;
  /** time + retention_days: the payload may be purged from then on, never before. */
  readonly retain_until: string;
  /** null once purged. */
  readonly salt: string | null;
  /** JSON text (pseudonyms, or the sealed box); null once purged. */
  readonly payload: string | null;
  readonly purged_at: string | null;
  /** Id of the `retention` ledger record of the purge. */
  readonly purge_record: string | null;
}

/** Options of {@link openSubjectVault}. */
export interface VaultOptions {
  /** As the ledger's (default "normal"): "full" fsyncs every transaction. */
  readonly synchronous?: "normal" | "full";
  /** Open an existing vault only (default false: create it). */
  readonly mustExist?: boolean;
}

/**
 * Open (creating it unless `mustExist`) the vault of a data folder.
 *
 * @throws WardenError WARDEN_ERR_VAULT when it cannot be opened or is not a vault.
 */
export function openSubjectVault(dataDir: string, options: VaultOptions = {}): SubjectVault {
  const file = vaultPath(dataDir);
  if (options.mustExist && !existsSync(file)) {
    throw new WardenError("WARDEN_ERR_VAULT", `no subject vault at ${file}`);
  }
  let db: Database.Database;
  try {
    mkdirSync(dataDir, { recursive: true });
    db = new Database(file);
    db.pragma("journal_mode = WAL");
    db.pragma(`synchronous = ${options.synchronous === "full" ? "FULL" : "NORMAL"}`);
    db.pragma("busy_timeout = 5000");
    const version = db.pragma("user_version", { simple: true });
    if (version === 0 && db.prepare("SELECT 1 FROM sqlite_schema LIMIT 1").get() === undefined)
      db.exec(SCHEMA);
    else if (version !== SCHEMA_VERSION) {
      db.close();
      throw new WardenError(
        "WARDEN_ERR_VAULT",
        version === 0
          ? `${file} is not a Warden subject vault`
          : `${file} has vault schema version ${String(version)}; this Warden reads version ${SCHEMA_VERSION}`,
      );
    }
  } catch (error) {
    if (error instanceof WardenError) throw error;
    throw new WardenError(
      "WARDEN_ERR_VAULT",
      `cannot open the subject vault ${file}: ${(error as Error).message}`,
      {
        cause: error,
      },
    );
  }
  return new SubjectVault(file, db);
}

/** The vault: rows are stored by the ledger thread ({@link SubjectVault.insertNow}); reads are synchronous. */
export class SubjectVault {
  readonly file: string;
  readonly db: Database.Database;
  readonly #get: Database.Statement<[string], VaultRow>;
  readonly #insertOrKeepAll: (rows: readonly VaultRow[]) => void;
  #closed = false;

  constructor(file: string, db: Database.Database) {
    this.file = file;
    this.db = db;
    this.#get = db.prepare<[string], VaultRow>("SELECT * FROM subjects WHERE decision_id = ?");
    const keep = db.prepare(
      "INSERT OR IGNORE INTO subjects (decision_id, model, version, time, storage, retention_days, retain_until, salt, payload, purged_at, purge_record) VALUES (@decision_id, @model, @version, @time, @storage, @retention_days, @retain_until, @salt, @payload, @purged_at, @purge_record)",
    );
    this.#insertOrKeepAll = db.transaction((rows: readonly VaultRow[]) => {
      for (const row of rows) keep.run(row);
    });
  }

  /**
   * Store rows now, in one transaction, keeping any row already there (a replay after a crash writes rows
   * again). For the ledger thread, which stores the rows that travel with entries in its journal.
   *
   * @throws Error from SQLite (disk full, I/O error).
   */
  insertNow(rows: readonly VaultRow[]): void {
    this.#insertOrKeepAll(rows);
  }

  /** A decision's row, or undefined. */
  get(decisionId: string): VaultRow | undefined {
    if (this.#closed) throw new WardenError("WARDEN_ERR_VAULT", `the subject vault ${this.file} is closed`);
    return this.#get.get(decisionId);
  }

  /** Close. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.db.close();
  }
}
