/**
 * The ledger in PostgreSQL, for several Warden processes writing one ledger.
 *
 * One chain for everyone: an append locks the single `head` row (`SELECT ... FOR UPDATE`), chains its
 * entries from the head it finds, inserts them, moves the head and commits. Appends from different processes
 * are therefore serialised (each process still groups many entries per transaction), and the ledger keeps
 * one total order that `verifyPostgresLedger` checks exactly as it checks SQLite: contiguous sequence
 * numbers, each record's prev_hash the previous record's hash, each hash sha256(prev_hash ‖ entry). Every
 * record also names the writer (process) that appended it.
 *
 * The schema is created and migrated on open, under an advisory lock so that processes starting together
 * do not race; applied migrations are listed in `<schema>.schema_migrations`.
 */
import { hostname } from "node:os";
import pg from "pg";
import { WardenError } from "../errors/index.js";
import type { LedgerBackend } from "./backend.js";
import { type CheckpointSource, parseCheckpoint } from "./checkpoints.js";
import { GENESIS_HASH } from "./hash.js";
import {
  type ChainPosition,
  chainPositions,
  checkStretch,
  type PreparedEntry,
  type ScanOptions,
} from "./sqlite-store.js";
import {
  type LedgerEntry,
  type LedgerRecord,
  LINKED_KINDS,
  REVIEW_MARK,
  type ReviewSources,
} from "./types.js";
import type { RawRow } from "./verify.js";

const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;
/** Records fetched per round trip while scanning. */
const PAGE = 2000;

/** The linked kinds as an SQL list. */
const LINKED_SQL = `kind IN (${LINKED_KINDS.map((k) => `'${k}'`).join(", ")})`;

/**
 * The query behind LedgerBackend.linked, for the schema quoted as `s` (exported for the test of its plan). It
 * reads the `decision_id` column, which the writer fills from the entry's `body.decision_id` for the linked
 * kinds (JSON is never parsed in SQL: PostgreSQL's jsonb refuses text such as `\u0000` that a client's free
 * text may hold, and one such record would then stop every append), and the verifier checks against the entry.
 */
export function linkedQuery(s: string): string {
  return `SELECT seq, entry, prev_hash, hash FROM ${s}.records WHERE decision_id = $1 AND seq > $2 ORDER BY seq LIMIT $3`;
}

/**
 * What the review queue's catch-up reads (LedgerBackend.reviewSources): appeals, and decisions whose text holds
 * the mark, searched by PostgreSQL over a range of the primary key (see sqlite-store.ts).
 */
const REVIEW_SOURCES_SQL = `(kind = 'appeal' OR (kind = 'decision' AND strpos(entry, '${REVIEW_MARK}') > 0))`;

/** The query behind LedgerBackend.reviewSources, for the schema quoted as `s` (exported for the test of its plan). */
export function reviewSourcesQuery(s: string): string {
  return `SELECT seq, entry, prev_hash, hash FROM ${s}.records WHERE ${REVIEW_SOURCES_SQL} AND seq > $1 AND seq <= $2 ORDER BY seq`;
}

/** The decision a linked record points to (`body.decision_id`, a string), else null: the `decision_id` column. */
export function linkedDecisionOf(kind: string, canonical: string): string | null {
  if (!(LINKED_KINDS as readonly string[]).includes(kind)) return null;
  const body = (JSON.parse(canonical) as { body?: { decision_id?: unknown } }).body;
  return typeof body?.decision_id === "string" ? body.decision_id : null;
}

/**
 * Migrations in order; each runs once per schema, in a transaction. `$S` is the quoted schema name; `after`,
 * when given, runs next in the same transaction (data the SQL cannot make).
 */
const MIGRATIONS: readonly {
  readonly version: number;
  readonly sql: string;
  readonly after?: (client: pg.PoolClient, s: string) => Promise<void>;
}[] = [
  {
    version: 1,
    sql: `
      CREATE TABLE $S.records (
        seq BIGINT PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        kind TEXT NOT NULL,
        time TEXT NOT NULL,
        model TEXT NOT NULL,
        version TEXT NOT NULL,
        entry TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL,
        writer TEXT NOT NULL,
        appended_at TIMESTAMPTZ NOT NULL DEFAULT now()
      );
      CREATE INDEX records_model_time ON $S.records (model, time);
      CREATE TABLE $S.head (
        one BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one),
        seq BIGINT NOT NULL,
        hash TEXT NOT NULL
      );
      INSERT INTO $S.head (one, seq, hash) VALUES (TRUE, 0, '${GENESIS_HASH}');
    `,
  },
  {
    version: 2,
    sql: `
      CREATE TABLE $S.checkpoints (
        tree_size BIGINT PRIMARY KEY,
        sth TEXT NOT NULL,
        frontier TEXT NOT NULL,
        made_at TIMESTAMPTZ NOT NULL DEFAULT now()
      );
    `,
  },
  {
    // Outcomes, appeals and reviews by the decision they point to (LedgerBackend.linked): a column the writer
    // fills for those kinds only, and a partial index over it, so appending a decision costs nothing more.
    // Existing records get it from their entries (read in JavaScript, a page at a time).
    version: 3,
    sql: `
      ALTER TABLE $S.records ADD COLUMN decision_id TEXT;
      CREATE INDEX records_linked ON $S.records (decision_id, seq) WHERE decision_id IS NOT NULL;
    `,
    after: backfillLinks,
  },
];

/** Fill `decision_id` for the linked records stored before migration 3. */
async function backfillLinks(client: pg.PoolClient, s: string): Promise<void> {
  let after = 0;
  for (;;) {
    const { rows } = await client.query<{ seq: string; kind: string; entry: string }>(
      `SELECT seq, kind, entry FROM ${s}.records WHERE ${LINKED_SQL} AND seq > $1 ORDER BY seq LIMIT $2`,
      [after, PAGE],
    );
    const seqs: string[] = [];
    const ids: string[] = [];
    for (const row of rows) {
      let id: string | null;
      try {
        id = linkedDecisionOf(row.kind, row.entry);
      } catch {
        continue; // not JSON: left without a link, for verification to report the record itself
      }
      if (id === null) continue;
      seqs.push(row.seq);
      ids.push(id);
    }
    if (seqs.length > 0) {
      await client.query(
        `UPDATE ${s}.records AS r SET decision_id = u.d FROM UNNEST($1::bigint[], $2::text[]) AS u(s, d) WHERE r.seq = u.s`,
        [seqs, ids],
      );
    }
    if (rows.length < PAGE) return;
    after = Number(rows[rows.length - 1]!.seq);
  }
}

/** Options of {@link openPostgresLedger}. */
export interface PostgresLedgerOptions {
  /** Schema holding the tables (default `warden`): lower-case letters, digits and `_`. */
  readonly schema?: string;
  /** Recorded with each record this store appends (default `<host>:<pid>`). */
  readonly writer?: string;
  /** Connections in the pool (default 4). */
  readonly poolSize?: number;
}

interface Row {
  readonly seq: string;
  readonly entry: string;
  readonly prev_hash: string;
  readonly hash: string;
}

/**
 * Connect to PostgreSQL at `url`, create or migrate the ledger schema, and return the store.
 *
 * @throws WardenError WARDEN_ERR_LEDGER when the server cannot be reached or the schema is invalid or newer
 *   than this Warden.
 */
export async function openPostgresLedger(
  url: string,
  options: PostgresLedgerOptions = {},
): Promise<LedgerBackend> {
  const schema = options.schema ?? "warden";
  if (!SCHEMA_NAME.test(schema)) {
    throw new WardenError("WARDEN_ERR_LEDGER", `invalid PostgreSQL schema name ${JSON.stringify(schema)}`, {
      details: [
        {
          field: "ledger.postgres.schema",
          expected: "lower-case letters, digits and _, starting with a letter or _, at most 63 characters",
          found: JSON.stringify(schema),
        },
      ],
    });
  }
  const pool = new pg.Pool({ connectionString: url, max: options.poolSize ?? 4 });
  // An idle client that loses its connection must not crash the process: the next query reports it.
  pool.on("error", () => {});
  try {
    await migrate(pool, schema);
  } catch (error) {
    await pool.end().catch(() => undefined);
    throw asLedgerError(error, `cannot open the PostgreSQL ledger ${describe(url, schema)}`);
  }
  return new PostgresLedger(
    pool,
    schema,
    options.writer ?? `${hostname()}:${process.pid}`,
    describe(url, schema),
  );
}

/** The URL without its password, and the schema. */
function describe(url: string, schema: string): string {
  try {
    const parsed = new URL(url);
    parsed.password = "";
    return `${parsed.toString()} (schema ${schema})`;
  } catch {
    return `(schema ${schema})`;
  }
}

async function migrate(pool: pg.Pool, schema: string): Promise<void> {
  const client = await pool.connect();
  try {
    // One migrator at a time across processes; the lock ends with the session's transaction.
    await client.query("BEGIN");
    await client.query("SELECT pg_advisory_xact_lock(hashtext($1))", [`warden-ledger-migrate:${schema}`]);
    await client.query(`CREATE SCHEMA IF NOT EXISTS "${schema}"`);
    await client.query(
      `CREATE TABLE IF NOT EXISTS "${schema}".schema_migrations (version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())`,
    );
    const applied = new Set(
      (await client.query<{ version: number }>(`SELECT version FROM "${schema}".schema_migrations`)).rows.map(
        (r) => r.version,
      ),
    );
    const known = Math.max(...MIGRATIONS.map((m) => m.version));
    const newest = Math.max(0, ...applied);
    if (newest > known) {
      throw new WardenError(
        "WARDEN_ERR_LEDGER",
        `the ledger schema "${schema}" is at migration ${newest}; this Warden knows migrations up to ${known}: upgrade Warden`,
      );
    }
    for (const migration of MIGRATIONS) {
      if (applied.has(migration.version)) continue;
      await client.query(migration.sql.replaceAll("$S", `"${schema}"`));
      await migration.after?.(client, `"${schema}"`);
      await client.query(`INSERT INTO "${schema}".schema_migrations (version) VALUES ($1)`, [
        migration.version,
      ]);
    }
    await client.query("COMMIT");
  } catch (error) {
    await client.query("ROLLBACK").catch(() => undefined);
    throw error;
  } finally {
    client.release();
  }
}

class PostgresLedger implements LedgerBackend {
  readonly description: string;
  readonly #pool: pg.Pool;
  readonly #s: string;
  readonly #writer: string;
  readonly checkpoints: CheckpointSource;
  #closed = false;

  constructor(pool: pg.Pool, schema: string, writer: string, description: string) {
    this.#pool = pool;
    this.#s = `"${schema}"`;
    this.#writer = writer;
    this.description = description;
    const s = this.#s;
    this.checkpoints = {
      rows: (afterSeq) => this.rows(afterSeq),
      page: (afterSeq, limit) => this.#page(afterSeq, limit),
      checkpoints: async () => {
        this.#assertOpen();
        const { rows } = await pool.query<{ sth: string; frontier: string }>(
          `SELECT sth, frontier FROM ${s}.checkpoints ORDER BY tree_size`,
        );
        return rows.map(parseCheckpoint);
      },
      latestCheckpoint: async () => {
        this.#assertOpen();
        const { rows } = await pool.query<{ sth: string; frontier: string }>(
          `SELECT sth, frontier FROM ${s}.checkpoints ORDER BY tree_size DESC LIMIT 1`,
        );
        return rows[0] === undefined ? undefined : parseCheckpoint(rows[0]);
      },
      saveCheckpoint: async (c) => {
        this.#assertOpen();
        await pool.query(
          `INSERT INTO ${s}.checkpoints (tree_size, sth, frontier) VALUES ($1, $2, $3) ON CONFLICT (tree_size) DO NOTHING`,
          [c.sth.tree_size, JSON.stringify(c.sth), JSON.stringify(c.frontier)],
        );
      },
    };
  }

  async appendPrepared(entries: readonly PreparedEntry[]): Promise<ChainPosition[]> {
    this.#assertOpen();
    if (entries.length === 0) return [];
    const client = await this.#pool.connect();
    try {
      await client.query("BEGIN");
      // The head row is the chain's lock: writers in other processes wait here until this commits.
      const head = (
        await client.query<{ seq: string; hash: string }>(`SELECT seq, hash FROM ${this.#s}.head FOR UPDATE`)
      ).rows[0];
      if (head === undefined) throw new WardenError("WARDEN_ERR_LEDGER", "the ledger's head row is missing");
      const positions = chainPositions(entries, Number(head.seq), head.hash);
      const columns: (string | null)[][] = [[], [], [], [], [], [], [], [], [], []];
      entries.forEach((entry, i) => {
        const { seq, prev_hash, hash } = positions[i]!;
        const values = [
          String(seq),
          entry.id,
          entry.kind,
          entry.time,
          entry.model,
          entry.version,
          entry.canonical,
          prev_hash,
          hash,
          linkedDecisionOf(entry.kind, entry.canonical),
        ];
        for (let c = 0; c < values.length; c++) columns[c]!.push(values[c]!);
      });
      const last = positions[positions.length - 1]!;
      await client.query(
        `INSERT INTO ${this.#s}.records (seq, id, kind, time, model, version, entry, prev_hash, hash, decision_id, writer)
         SELECT s, i, k, t, m, v, e, p, h, d, $11
         FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[])
           AS u(s, i, k, t, m, v, e, p, h, d)`,
        [...columns, this.#writer],
      );
      await client.query(`UPDATE ${this.#s}.head SET seq = $1, hash = $2`, [last.seq, last.hash]);
      await client.query("COMMIT");
      return positions;
    } catch (error) {
      await client.query("ROLLBACK").catch(() => undefined);
      throw asLedgerError(error, `cannot append ${entries.length} entries to the ledger ${this.description}`);
    } finally {
      client.release();
    }
  }

  async get(id: string): Promise<LedgerRecord | undefined> {
    this.#assertOpen();
    const { rows } = await this.#pool.query<Row>(
      `SELECT seq, entry, prev_hash, hash FROM ${this.#s}.records WHERE id = $1`,
      [id],
    );
    return rows[0] === undefined ? undefined : toRecord(rows[0]);
  }

  async *scan(options: ScanOptions = {}): AsyncIterableIterator<LedgerRecord> {
    const afterSeq = options.afterSeq ?? 0;
    const limit = options.limit;
    if (!Number.isSafeInteger(afterSeq) || afterSeq < 0)
      throw new RangeError("afterSeq must be an integer ≥ 0");
    if (limit !== undefined && (!Number.isSafeInteger(limit) || limit < 0)) {
      throw new RangeError("limit must be an integer ≥ 0");
    }
    // Keyset pages: each page is a short query, so a slow consumer holds no snapshot or connection open.
    let after = afterSeq;
    let left = limit ?? Number.POSITIVE_INFINITY;
    while (left > 0) {
      this.#assertOpen();
      const { rows } = await this.#pool.query<Row>(
        `SELECT seq, entry, prev_hash, hash FROM ${this.#s}.records WHERE seq > $1 ORDER BY seq LIMIT $2`,
        [after, Math.min(PAGE, left)],
      );
      for (const row of rows) yield toRecord(row);
      if (rows.length < Math.min(PAGE, left)) return;
      left -= rows.length;
      after = Number(rows[rows.length - 1]!.seq);
    }
  }

  async linked(decisionId: string, afterSeq = 0, limit?: number): Promise<LedgerRecord[]> {
    this.#assertOpen();
    // PostgreSQL: LIMIT NULL means no limit.
    const { rows } = await this.#pool.query<Row>(linkedQuery(this.#s), [decisionId, afterSeq, limit ?? null]);
    return rows.map(toRecord);
  }

  async latestLinked(decisionId: string, kind: string): Promise<LedgerRecord | undefined> {
    this.#assertOpen();
    const { rows } = await this.#pool.query<Row>(
      `SELECT seq, entry, prev_hash, hash FROM ${this.#s}.records WHERE decision_id = $1 AND kind = $2 ORDER BY seq DESC LIMIT 1`,
      [decisionId, kind],
    );
    return rows[0] === undefined ? undefined : toRecord(rows[0]);
  }

  async reviewSources(afterSeq: number, limit: number): Promise<ReviewSources> {
    this.#assertOpen();
    checkStretch(afterSeq, limit);
    // The head first: it commits with the records it counts, so every record up to it is there to read.
    const end = await this.count();
    const through = Math.max(afterSeq, Math.min(afterSeq + limit, end));
    const { rows: at } = await this.#pool.query<{ hash: string }>(
      `SELECT hash FROM ${this.#s}.records WHERE seq = $1`,
      [through],
    );
    const throughHash = at[0]?.hash;
    if (through === afterSeq) return { records: [], through, end, throughHash };
    const { rows } = await this.#pool.query<Row>(reviewSourcesQuery(this.#s), [afterSeq, through]);
    return { records: rows.map(toRecord), through, end, throughHash };
  }

  /**
   * The first record whose `decision_id` column disagrees with its entry (what {@link linkedDecisionOf} reads
   * from it), or undefined: a column outside the hashed text, so verification checks it. Reads the records
   * that have the column or are of a linked kind, a page at a time.
   */
  async linkProblem(): Promise<{ seq: number; id: string; reason: string } | undefined> {
    let after = 0;
    for (;;) {
      this.#assertOpen();
      const { rows } = await this.#pool.query<{
        seq: string;
        id: string;
        kind: string;
        entry: string;
        decision_id: string | null;
      }>(
        `SELECT seq, id, kind, entry, decision_id FROM ${this.#s}.records
         WHERE (${LINKED_SQL} OR decision_id IS NOT NULL) AND seq > $1 ORDER BY seq LIMIT $2`,
        [after, PAGE],
      );
      for (const row of rows) {
        let expected: string | null;
        try {
          expected = linkedDecisionOf(row.kind, row.entry);
        } catch {
          continue; // not JSON: the chain check reports the record itself
        }
        if (row.decision_id !== expected) {
          return {
            seq: Number(row.seq),
            id: row.id,
            reason: `column decision_id is ${JSON.stringify(row.decision_id)}, the entry's body.decision_id is ${JSON.stringify(expected)}`,
          };
        }
      }
      if (rows.length < PAGE) return undefined;
      after = Number(rows[rows.length - 1]!.seq);
    }
  }

  /** Raw rows for verification, a page at a time. */
  async *rows(afterSeq = 0): AsyncIterableIterator<RawRow> {
    let after = afterSeq;
    for (;;) {
      const rows = await this.#page(after, PAGE);
      yield* rows;
      if (rows.length < PAGE) return;
      after = rows[rows.length - 1]![0];
    }
  }

  /** At most `limit` raw rows after `afterSeq`, in sequence order. */
  async #page(afterSeq: number, limit: number): Promise<RawRow[]> {
    this.#assertOpen();
    const { rows } = await this.#pool.query({
      text: `SELECT seq, id, kind, time, model, version, entry, prev_hash, hash FROM ${this.#s}.records WHERE seq > $1 ORDER BY seq LIMIT $2`,
      values: [afterSeq, limit],
      rowMode: "array",
    });
    return (rows as [string, string, string, string, string, string, string, string, string][]).map(
      (row) => [Number(row[0]), row[1], row[2], row[3], row[4], row[5], row[6], row[7], row[8]] as const,
    );
  }

  async count(): Promise<number> {
    this.#assertOpen();
    const { rows } = await this.#pool.query<{ seq: string }>(`SELECT seq FROM ${this.#s}.head`);
    return Number(rows[0]?.seq ?? 0);
  }

  async lastHash(): Promise<string> {
    this.#assertOpen();
    const { rows } = await this.#pool.query<{ hash: string }>(`SELECT hash FROM ${this.#s}.head`);
    return rows[0]?.hash ?? GENESIS_HASH;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#pool.end();
  }

  #assertOpen(): void {
    if (this.#closed) throw new WardenError("WARDEN_ERR_LEDGER", `the ledger ${this.description} is closed`);
  }
}

function toRecord(row: Row): LedgerRecord {
  const entry = JSON.parse(row.entry) as LedgerEntry;
  return { ...entry, seq: Number(row.seq), prev_hash: row.prev_hash, hash: row.hash };
}

function asLedgerError(error: unknown, context: string): WardenError {
  if (error instanceof WardenError) return error;
  const reason = error instanceof Error ? error.message : String(error);
  return new WardenError("WARDEN_ERR_LEDGER", `${context}: ${reason}`, { cause: error });
}

/** Whether a store is the PostgreSQL one (it offers raw rows for verification). */
export function isPostgresLedger(
  store: LedgerBackend,
): store is LedgerBackend & Pick<PostgresLedger, "rows" | "linkProblem"> {
  return store instanceof PostgresLedger;
}
