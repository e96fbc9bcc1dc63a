import { mkdirSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { WardenError } from "../errors/index.js";

/** An item's state as stored; `claimed` is derived from a live claim (see {@link effectiveStatus}). */
export const STORED_STATUSES = ["pending", "awaiting_second", "resolved"] as const;
export type StoredStatus = (typeof STORED_STATUSES)[number];
/** An item's state as the API shows it. */
export const REVIEW_STATUSES = ["pending", "claimed", "awaiting_second", "resolved"] as const;
export type ReviewStatus = (typeof REVIEW_STATUSES)[number];

/** A decision's label (classification) or value (regression), as a reviewer or the model gave it. */
export type Verdict = string | number | null;

/** One review item as stored. Times are milliseconds since the epoch. */
export interface ReviewItem {
  readonly seq: number;
  readonly id: string;
  readonly decision_id: string;
  readonly model: string;
  readonly version: string;
  /** Why it is in the queue, in the order met: borderline, all, anomaly, breaker_open, appeal. */
  readonly reasons: readonly string[];
  readonly created_at: number;
  readonly due_at: number;
  readonly status: StoredStatus;
  readonly four_eyes: boolean;
  readonly claimed_by: string | null;
  readonly claim_expires_at: number | null;
  /** Four-eyes: the first judgement, waiting for a second reviewer to agree. */
  readonly first: { reviewer: string; decision: Verdict; reason_code: string; at: number } | null;
  readonly disagreements: number;
  readonly escalated_at: number | null;
  /** The model's (provisional) decision and score. */
  readonly model_decision: Verdict;
  readonly score: number | null;
  readonly final_decision: Verdict;
  readonly reason_code: string | null;
  readonly resolved_by: readonly string[];
  readonly resolved_at: number | null;
  /** Ledger id of the final `review` record. */
  readonly review_record_id: string | null;
  /** The latest appeal that put the item in the queue (or joined it), when one did. */
  readonly appeal_id: string | null;
}

interface ItemRow {
  seq: number;
  id: string;
  decision_id: string;
  model: string;
  version: string;
  reasons: string;
  created_at: number;
  due_at: number;
  status: string;
  four_eyes: number;
  claimed_by: string | null;
  claim_expires_at: number | null;
  first: string | null;
  disagreements: number;
  escalated_at: number | null;
  model_decision: string;
  score: number | null;
  final_decision: string | null;
  reason_code: string | null;
  resolved_by: string;
  resolved_at: number | null;
  review_record_id: string | null;
  appeal_id: string | null;
}

const toItem = (row: ItemRow): ReviewItem => ({
  ...row,
  reasons: JSON.parse(row.reasons) as string[],
  status: row.status as StoredStatus,
  four_eyes: row.four_eyes === 1,
  first: row.first === null ? null : (JSON.parse(row.first) as ReviewItem["first"]),
  model_decision: JSON.parse(row.model_decision) as Verdict,
  final_decision: row.final_decision === null ? null : (JSON.parse(row.final_decision) as Verdict),
  resolved_by: JSON.parse(row.resolved_by) as string[],
});

/** The status the API shows: `claimed` while a claim is live (a lapsed claim frees the item). */
export function effectiveStatus(item: ReviewItem, now: number): ReviewStatus {
  if (item.status === "resolved") return "resolved";
  if (item.claimed_by !== null && item.claim_expires_at !== null && item.claim_expires_at > now)
    return "claimed";
  return item.status;
}

/** A new item. */
export interface NewItem {
  readonly id: string;
  readonly decision_id: string;
  readonly model: string;
  readonly version: string;
  readonly reasons: readonly string[];
  readonly created_at: number;
  readonly due_at: number;
  readonly four_eyes: boolean;
  readonly model_decision: Verdict;
  readonly score: number | null;
  readonly appeal_id: string | null;
}

/** One reviewer's part in a final decision (for the override counts). */
export interface Judgement {
  readonly item_id: string;
  readonly reviewer: string;
  readonly model: string;
  readonly version: string;
  readonly decision: Verdict;
  readonly override: boolean;
  readonly time: number;
}

/** Filters of {@link ReviewStore.list}. */
export interface ListFilter {
  readonly model?: string | undefined;
  readonly status?: ReviewStatus | undefined;
  readonly reason?: string | undefined;
  /** Items after this position (the previous page's `next_cursor`). */
  readonly afterSeq?: number | undefined;
  readonly limit: number;
  readonly now: number;
}

/** Resolved items and overrides, per model and per reviewer. */
export interface OverrideCounts {
  readonly models: { model: string; resolved: number; overrides: number }[];
  readonly reviewers: { reviewer: string; model: string; resolved: number; overrides: number }[];
}

/**
 * The review queue in `<dataDir>/review.sqlite` (better-sqlite3, WAL): items, the ledger records that put
 * them there (`sources`), reviewers' final judgements, and how far the ledger has been read for items.
 */
export interface ReviewStore {
  get(id: string): ReviewItem | undefined;
  /** Every item of a decision, oldest first. */
  ofDecision(decisionId: string): ReviewItem[];
  /** The decision's open (unresolved) item. */
  openOf(decisionId: string): ReviewItem | undefined;
  /** Whether a ledger record (a held decision, an appeal) already put an item in the queue. */
  hasSource(sourceId: string): boolean;
  /**
   * Put a decision in the queue for `sourceId`: a new item, or the reasons added to its open item. Returns the
   * item and whether it is new. Idempotent per source.
   */
  enqueue(item: NewItem, sourceId: string): { item: ReviewItem; created: boolean };
  list(filter: ListFilter): ReviewItem[];
  /** Unresolved items due at or before `now`, not yet escalated. */
  overdue(now: number): ReviewItem[];
  /** Mark an item escalated; false when another call already did. */
  markEscalated(id: string, now: number): boolean;
  update(id: string, fields: Partial<Omit<ReviewItem, "seq" | "id">>): ReviewItem;
  addJudgements(judgements: readonly Judgement[]): void;
  overrideCounts(model?: string): OverrideCounts;
  statusCounts(now: number, model?: string): Record<ReviewStatus, number>;
  /** Final decisions by decision id (the latest resolved item of each). */
  finals(decisionIds: readonly string[]): Map<string, Verdict>;
  /** Resolved items of a model, newest first. */
  resolvedOf(model: string, limit: number): ReviewItem[];
  /** The ledger position read up to for items (0 at first). */
  watermark(): number;
  /** The hash of the ledger record at the watermark, when it was recorded with it. */
  watermarkHash(): string | undefined;
  setWatermark(seq: number, hash?: string): void;
  close(): void;
}

/** The item's status as the API shows it, in SQL (`@now` = now). */
const STATUS_SQL =
  "CASE WHEN status = 'resolved' THEN 'resolved' WHEN claimed_by IS NOT NULL AND claim_expires_at > @now THEN 'claimed' ELSE status END";

/** A trigger statement adding `delta` to the resolved count of the `row` (old or new) item's model. */
function countResolved(row: "old" | "new", delta: 1 | -1, when?: string): string {
  // An UPSERT from a SELECT needs a WHERE clause (SQLite's parser would read ON as a join's).
  const guard = ` WHERE ${when ?? "true"}`;
  return `INSERT INTO resolved_counts (model, n) SELECT ${row}.model, ${delta}${guard}
          ON CONFLICT (model) DO UPDATE SET n = n + excluded.n;`;
}

/** A trigger statement adding `delta` to the open count of the `row` (old or new) item's model and status. */
function countOpen(row: "old" | "new", delta: 1 | -1, when?: string): string {
  const guard = ` WHERE ${when ?? "true"}`;
  return `INSERT INTO open_counts (model, status, n) SELECT ${row}.model, ${row}.status, ${delta}${guard}
          ON CONFLICT (model, status) DO UPDATE SET n = n + excluded.n;`;
}

const JSON_FIELDS = new Set(["reasons", "first", "model_decision", "final_decision", "resolved_by"]);

/** Open (creating if needed) the review store in `dataDir`. */
export function openReviewStore(dataDir: string): ReviewStore {
  let db: Database.Database;
  try {
    mkdirSync(dataDir, { recursive: true });
    db = new Database(join(dataDir, "review.sqlite"));
  } catch (error) {
    throw new WardenError(
      "WARDEN_ERR_CONFIG_INVALID",
      `cannot open the review database in ${dataDir}: ${(error as Error).message}`,
      { cause: error },
    );
  }
  db.pragma("journal_mode = WAL");
  db.pragma("synchronous = FULL");
  db.exec(`
    CREATE TABLE IF NOT EXISTS items (
      seq INTEGER PRIMARY KEY AUTOINCREMENT,
      id TEXT NOT NULL UNIQUE,
      decision_id TEXT NOT NULL,
      model TEXT NOT NULL,
      version TEXT NOT NULL,
      reasons TEXT NOT NULL,
      created_at INTEGER NOT NULL,
      due_at INTEGER NOT NULL,
      status TEXT NOT NULL CHECK (status IN ('pending', 'awaiting_second', 'resolved')),
      four_eyes INTEGER NOT NULL,
      claimed_by TEXT,
      claim_expires_at INTEGER,
      first TEXT,
      disagreements INTEGER NOT NULL DEFAULT 0,
      escalated_at INTEGER,
      model_decision TEXT NOT NULL,
      score REAL,
      final_decision TEXT,
      reason_code TEXT,
      resolved_by TEXT NOT NULL DEFAULT '[]',
      resolved_at INTEGER,
      review_record_id TEXT,
      appeal_id TEXT
    );
    CREATE INDEX IF NOT EXISTS items_decision ON items (decision_id, seq);
    CREATE INDEX IF NOT EXISTS items_model ON items (model, seq);
    CREATE UNIQUE INDEX IF NOT EXISTS items_one_open ON items (decision_id) WHERE status != 'resolved';
    CREATE TABLE IF NOT EXISTS sources (source_id TEXT PRIMARY KEY, item_id TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS judgements (
      seq INTEGER PRIMARY KEY AUTOINCREMENT,
      item_id TEXT NOT NULL,
      reviewer TEXT NOT NULL,
      model TEXT NOT NULL,
      version TEXT NOT NULL,
      decision TEXT NOT NULL,
      override INTEGER NOT NULL,
      time INTEGER NOT NULL
    );
    CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    -- Open items (the queue) apart from resolved ones (the history, which only grows): the SLA check, the
    -- status counts and lists by status read only these.
    CREATE INDEX IF NOT EXISTS items_open ON items (seq) WHERE status != 'resolved';
    CREATE INDEX IF NOT EXISTS items_open_model ON items (model, seq) WHERE status != 'resolved';
    -- The SLA check: open items not yet escalated, by due time (it reads only those due).
    CREATE INDEX IF NOT EXISTS items_due ON items (due_at) WHERE status != 'resolved' AND escalated_at IS NULL;
  `);
  // Resolved items per model, kept by triggers in the same transactions as the items, so that counting the
  // queue by status never counts the history. Filled once from the items when the table is new.
  // IMMEDIATE: two processes opening one store at once take turns instead of one failing with SQLITE_BUSY.
  db.transaction(() => {
    const fresh =
      db.prepare("SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'resolved_counts'").get() ===
      undefined;
    db.exec(`
      CREATE TABLE IF NOT EXISTS resolved_counts (model TEXT PRIMARY KEY, n INTEGER NOT NULL);
      CREATE TRIGGER IF NOT EXISTS resolved_count_insert AFTER INSERT ON items WHEN new.status = 'resolved'
      BEGIN ${countResolved("new", 1)} END;
      CREATE TRIGGER IF NOT EXISTS resolved_count_delete AFTER DELETE ON items WHEN old.status = 'resolved'
      BEGIN ${countResolved("old", -1)} END;
      CREATE TRIGGER IF NOT EXISTS resolved_count_update AFTER UPDATE OF status, model ON items
      WHEN old.status = 'resolved' OR new.status = 'resolved'
      BEGIN
        ${countResolved("old", -1, "old.status = 'resolved'")}
        ${countResolved("new", 1, "new.status = 'resolved'")}
      END;
    `);
    if (fresh) {
      db.exec(
        "INSERT INTO resolved_counts (model, n) SELECT model, COUNT(*) FROM items WHERE status = 'resolved' GROUP BY model",
      );
    }
    // Open items per model and stored status (pending, awaiting_second), kept the same way: the queue gauge
    // reads these and the live claims (a short range of items_claimed), never every open item.
    const freshOpen =
      db.prepare("SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'open_counts'").get() ===
      undefined;
    db.exec(`
      CREATE TABLE IF NOT EXISTS open_counts (
        model TEXT NOT NULL, status TEXT NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (model, status)
      ) WITHOUT ROWID;
      CREATE TRIGGER IF NOT EXISTS open_count_insert AFTER INSERT ON items WHEN new.status != 'resolved'
      BEGIN ${countOpen("new", 1)} END;
      CREATE TRIGGER IF NOT EXISTS open_count_delete AFTER DELETE ON items WHEN old.status != 'resolved'
      BEGIN ${countOpen("old", -1)} END;
      CREATE TRIGGER IF NOT EXISTS open_count_update AFTER UPDATE OF status, model ON items
      BEGIN
        ${countOpen("old", -1, "old.status != 'resolved'")}
        ${countOpen("new", 1, "new.status != 'resolved'")}
      END;
      CREATE INDEX IF NOT EXISTS items_claimed ON items (claim_expires_at)
        WHERE status != 'resolved' AND claimed_by IS NOT NULL;
    `);
    if (freshOpen) {
      db.exec(
        "INSERT INTO open_counts (model, status, n) SELECT model, status, COUNT(*) FROM items WHERE status != 'resolved' GROUP BY model, status",
      );
    }
    // Each item's reasons, one row each, kept by triggers: a list by reason (and model) reads the items that
    // have it, not every item ever queued. Filled from the items when the table is new (or of an earlier form).
    const columns = db.prepare("SELECT name FROM pragma_table_info('item_reasons')").all() as {
      name: string;
    }[];
    const freshReasons = !columns.some((c) => c.name === "model");
    if (freshReasons) {
      db.exec(`
        DROP TRIGGER IF EXISTS item_reasons_insert;
        DROP TRIGGER IF EXISTS item_reasons_update;
        DROP TRIGGER IF EXISTS item_reasons_delete;
        DROP TABLE IF EXISTS item_reasons;
      `);
    }
    db.exec(`
      CREATE TABLE IF NOT EXISTS item_reasons (
        reason TEXT NOT NULL, seq INTEGER NOT NULL, model TEXT NOT NULL, PRIMARY KEY (reason, seq)
      ) WITHOUT ROWID;
      CREATE INDEX IF NOT EXISTS item_reasons_model ON item_reasons (reason, model, seq);
      CREATE TRIGGER IF NOT EXISTS item_reasons_insert AFTER INSERT ON items
      BEGIN
        INSERT OR IGNORE INTO item_reasons (reason, seq, model) SELECT value, new.seq, new.model FROM json_each(new.reasons);
      END;
      CREATE TRIGGER IF NOT EXISTS item_reasons_update AFTER UPDATE OF reasons, model ON items
      BEGIN
        DELETE FROM item_reasons WHERE seq = old.seq;
        INSERT OR IGNORE INTO item_reasons (reason, seq, model) SELECT value, new.seq, new.model FROM json_each(new.reasons);
      END;
      CREATE TRIGGER IF NOT EXISTS item_reasons_delete AFTER DELETE ON items
      BEGIN DELETE FROM item_reasons WHERE seq = old.seq; END;
    `);
    if (freshReasons) {
      db.exec(
        "INSERT OR IGNORE INTO item_reasons (reason, seq, model) SELECT j.value, items.seq, items.model FROM items, json_each(items.reasons) AS j",
      );
    }
    // Overrides per model (each resolved item once) and per reviewer, kept by a trigger as judgements come in,
    // so the summary never groups every judgement ever made. Filled from the judgements when new.
    const freshOverrides =
      db
        .prepare("SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'override_counts_model'")
        .get() === undefined;
    db.exec(`
      CREATE TABLE IF NOT EXISTS judgement_items (
        item_id TEXT NOT NULL, model TEXT NOT NULL, override INTEGER NOT NULL, PRIMARY KEY (item_id, model)
      ) WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS override_counts_model (
        model TEXT PRIMARY KEY, resolved INTEGER NOT NULL, overrides INTEGER NOT NULL
      );
      CREATE TABLE IF NOT EXISTS override_counts_reviewer (
        reviewer TEXT NOT NULL, model TEXT NOT NULL, resolved INTEGER NOT NULL, overrides INTEGER NOT NULL,
        PRIMARY KEY (reviewer, model)
      ) WITHOUT ROWID;
      CREATE TRIGGER IF NOT EXISTS override_counts AFTER INSERT ON judgements
      BEGIN
        INSERT INTO override_counts_reviewer (reviewer, model, resolved, overrides)
          SELECT new.reviewer, new.model, 1, new.override WHERE true
          ON CONFLICT (reviewer, model) DO UPDATE SET resolved = resolved + 1, overrides = overrides + excluded.overrides;
        INSERT INTO override_counts_model (model, resolved, overrides)
          SELECT new.model, 1, new.override
          WHERE NOT EXISTS (SELECT 1 FROM judgement_items WHERE item_id = new.item_id AND model = new.model)
          ON CONFLICT (model) DO UPDATE SET resolved = resolved + 1, overrides = overrides + excluded.overrides;
        UPDATE override_counts_model SET overrides = overrides + 1
          WHERE model = new.model AND new.override = 1
            AND EXISTS (SELECT 1 FROM judgement_items WHERE item_id = new.item_id AND model = new.model AND override = 0);
        INSERT INTO judgement_items (item_id, model, override) VALUES (new.item_id, new.model, new.override)
          ON CONFLICT (item_id, model) DO UPDATE SET override = MAX(override, excluded.override);
      END;
    `);
    if (freshOverrides) {
      db.exec(`
        DELETE FROM judgement_items;
        INSERT INTO judgement_items (item_id, model, override)
          SELECT item_id, model, MAX(override) FROM judgements GROUP BY item_id, model;
        INSERT INTO override_counts_model (model, resolved, overrides)
          SELECT model, COUNT(*), SUM(override) FROM judgement_items GROUP BY model;
        INSERT INTO override_counts_reviewer (reviewer, model, resolved, overrides)
          SELECT reviewer, model, COUNT(*), SUM(override) FROM judgements GROUP BY reviewer, model;
      `);
    }
  }).immediate();
  const q = {
    get: db.prepare("SELECT * FROM items WHERE id = ?"),
    ofDecision: db.prepare("SELECT * FROM items WHERE decision_id = ? ORDER BY seq"),
    openOf: db.prepare("SELECT * FROM items WHERE decision_id = ? AND status != 'resolved'"),
    hasSource: db.prepare("SELECT 1 FROM sources WHERE source_id = ?"),
    addSource: db.prepare("INSERT OR IGNORE INTO sources (source_id, item_id) VALUES (?, ?)"),
    insert: db.prepare(
      `INSERT INTO items (id, decision_id, model, version, reasons, created_at, due_at, status, four_eyes,
         model_decision, score, appeal_id)
       VALUES (@id, @decision_id, @model, @version, @reasons, @created_at, @due_at, 'pending', @four_eyes,
         @model_decision, @score, @appeal_id)`,
    ),
    overdue: db.prepare(
      "SELECT * FROM items INDEXED BY items_due WHERE status != 'resolved' AND escalated_at IS NULL AND due_at <= ? ORDER BY seq",
    ),
    escalate: db.prepare("UPDATE items SET escalated_at = ? WHERE id = ? AND escalated_at IS NULL"),
    judgement: db.prepare(
      `INSERT INTO judgements (item_id, reviewer, model, version, decision, override, time)
       VALUES (@item_id, @reviewer, @model, @version, @decision, @override, @time)`,
    ),
    resolvedOf: db.prepare(
      "SELECT * FROM items WHERE model = ? AND status = 'resolved' ORDER BY seq DESC LIMIT ?",
    ),
    openCounts: db.prepare("SELECT status, SUM(n) AS n FROM open_counts GROUP BY status"),
    openCountsOf: db.prepare("SELECT status, n FROM open_counts WHERE model = ?"),
    liveClaims: db.prepare(
      "SELECT status, COUNT(*) AS n FROM items INDEXED BY items_claimed WHERE status != 'resolved' AND claimed_by IS NOT NULL AND claim_expires_at > @now GROUP BY status",
    ),
    liveClaimsOf: db.prepare(
      "SELECT status, COUNT(*) AS n FROM items INDEXED BY items_claimed WHERE status != 'resolved' AND claimed_by IS NOT NULL AND claim_expires_at > @now AND model = @model GROUP BY status",
    ),
    resolvedCount: db.prepare("SELECT SUM(n) AS n FROM resolved_counts"),
    resolvedCountOf: db.prepare("SELECT n FROM resolved_counts WHERE model = ?"),
    meta: db.prepare("SELECT value FROM meta WHERE key = ?"),
    deleteMeta: db.prepare("DELETE FROM meta WHERE key = ?"),
    setMeta: db.prepare(
      "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    ),
  };
  const get = (id: string): ReviewItem | undefined => {
    const row = q.get.get(id) as ItemRow | undefined;
    return row === undefined ? undefined : toItem(row);
  };
  const enqueue = db.transaction((item: NewItem, sourceId: string) => {
    const known = q.hasSource.get(sourceId) as unknown;
    const open = q.openOf.get(item.decision_id) as ItemRow | undefined;
    if (known !== undefined) {
      const row = (open ?? q.ofDecision.all(item.decision_id).at(-1)) as ItemRow;
      return { item: toItem(row), created: false };
    }
    if (open !== undefined) {
      const reasons = JSON.parse(open.reasons) as string[];
      const merged = [...reasons, ...item.reasons.filter((r) => !reasons.includes(r))];
      db.prepare("UPDATE items SET reasons = ?, appeal_id = COALESCE(?, appeal_id) WHERE id = ?").run(
        JSON.stringify(merged),
        item.appeal_id,
        open.id,
      );
      q.addSource.run(sourceId, open.id);
      return { item: get(open.id)!, created: false };
    }
    q.insert.run({
      ...item,
      reasons: JSON.stringify(item.reasons),
      four_eyes: item.four_eyes ? 1 : 0,
      model_decision: JSON.stringify(item.model_decision),
    });
    q.addSource.run(sourceId, item.id);
    return { item: get(item.id)!, created: true };
  });
  return {
    get,
    ofDecision: (decisionId) => (q.ofDecision.all(decisionId) as ItemRow[]).map(toItem),
    openOf(decisionId) {
      const row = q.openOf.get(decisionId) as ItemRow | undefined;
      return row === undefined ? undefined : toItem(row);
    },
    hasSource: (sourceId) => q.hasSource.get(sourceId) !== undefined,
    enqueue(item, sourceId) {
      // Taking a ledger record (a held decision, an appeal) into the queue is not fsynced: the ledger is its
      // source, and the catch-up reads the ledger from the watermark and takes in whatever a power cut
      // lost (a watermark moved past it is a later, fsynced commit, which would have carried this one too). This runs on the serving thread for every held
      // decision, where an fsync would block every other request (about 0.2 ms here, more on many disks).
      // WAL loses only a suffix of commits, so a reviewer's later fsynced change still covers it.
      // (SQLite refuses to change the level inside a transaction: a caller's transaction keeps its own.)
      if (db.inTransaction) return enqueue(item, sourceId);
      db.pragma("synchronous = NORMAL");
      try {
        return enqueue(item, sourceId);
      } finally {
        db.pragma("synchronous = FULL");
      }
    },
    list(filter) {
      const params = {
        after: filter.afterSeq ?? 0,
        model: filter.model,
        status: filter.status,
        reason: filter.reason,
        limit: filter.limit,
        now: filter.now,
      };
      // A status other than resolved is the queue's: read through the open items' index, not the history.
      const open = filter.status !== undefined && filter.status !== "resolved";
      const where: string[] = [];
      if (filter.model !== undefined) where.push("items.model = @model");
      if (open) where.push("items.status != 'resolved'");
      if (filter.status !== undefined) where.push(`(${STATUS_SQL}) = @status`);
      let rows: ItemRow[];
      if (filter.reason !== undefined && !open) {
        // By reason (and model): walk the items that have it, in order (item_reasons), until the page is full.
        const index = filter.model === undefined ? "" : "INDEXED BY item_reasons_model";
        const byModel = filter.model === undefined ? "" : "AND item_reasons.model = @model";
        rows = db
          .prepare(
            `SELECT items.* FROM item_reasons ${index} CROSS JOIN items ON items.seq = item_reasons.seq
             WHERE item_reasons.reason = @reason ${byModel} AND item_reasons.seq > @after
             ${where.map((w) => `AND ${w}`).join(" ")} ORDER BY item_reasons.seq LIMIT @limit`,
          )
          .all(params) as ItemRow[];
      } else {
        if (filter.reason !== undefined) {
          where.push("EXISTS (SELECT 1 FROM item_reasons WHERE reason = @reason AND seq = items.seq)");
        }
        const index = open
          ? `INDEXED BY ${filter.model === undefined ? "items_open" : "items_open_model"}`
          : "";
        rows = db
          .prepare(
            `SELECT * FROM items ${index} WHERE items.seq > @after ${where.map((w) => `AND ${w}`).join(" ")}
             ORDER BY items.seq LIMIT @limit`,
          )
          .all(params) as ItemRow[];
      }
      return rows.map(toItem);
    },
    overdue: (now) => (q.overdue.all(now) as ItemRow[]).map(toItem),
    markEscalated: (id, now) => q.escalate.run(now, id).changes === 1,
    update(id, fields) {
      const names = Object.keys(fields);
      if (names.length > 0) {
        const values: Record<string, unknown> = { id };
        for (const name of names) {
          const value = (fields as Record<string, unknown>)[name];
          values[name] =
            JSON_FIELDS.has(name) && value !== null
              ? JSON.stringify(value)
              : typeof value === "boolean"
                ? Number(value)
                : value;
        }
        db.prepare(`UPDATE items SET ${names.map((n) => `${n} = @${n}`).join(", ")} WHERE id = @id`).run(
          values,
        );
      }
      return get(id)!;
    },
    addJudgements: db.transaction((judgements: readonly Judgement[]) => {
      for (const j of judgements) {
        q.judgement.run({ ...j, decision: JSON.stringify(j.decision), override: j.override ? 1 : 0 });
      }
    }),
    overrideCounts(model) {
      const filter = model === undefined ? "" : "WHERE model = @model";
      const models = db
        .prepare(`SELECT model, resolved, overrides FROM override_counts_model ${filter} ORDER BY model`)
        .all({ model }) as { model: string; resolved: number; overrides: number }[];
      const reviewers = db
        .prepare(
          `SELECT reviewer, model, resolved, overrides FROM override_counts_reviewer ${filter} ORDER BY reviewer, model`,
        )
        .all({ model }) as { reviewer: string; model: string; resolved: number; overrides: number }[];
      return { models, reviewers };
    },
    statusCounts(now, model) {
      // From the kept counts and the live claims: never a walk of the queue or the history. An item under a live
      // claim shows as claimed, whatever its stored status.
      const counts = Object.fromEntries(REVIEW_STATUSES.map((s) => [s, 0])) as Record<ReviewStatus, number>;
      const stored = (model === undefined ? q.openCounts.all() : q.openCountsOf.all(model)) as {
        status: ReviewStatus;
        n: number;
      }[];
      for (const row of stored) counts[row.status] += row.n;
      const claims = (
        model === undefined ? q.liveClaims.all({ now }) : q.liveClaimsOf.all({ now, model })
      ) as {
        status: ReviewStatus;
        n: number;
      }[];
      for (const row of claims) {
        counts[row.status] -= row.n;
        counts.claimed += row.n;
      }
      const resolved = (model === undefined ? q.resolvedCount.get() : q.resolvedCountOf.get(model)) as
        | { n: number | null }
        | undefined;
      counts.resolved = resolved?.n ?? 0;
      return counts;
    },
    finals(decisionIds) {
      const out = new Map<string, Verdict>();
      const select = db.prepare(
        "SELECT final_decision FROM items WHERE decision_id = ? AND status = 'resolved' ORDER BY seq DESC LIMIT 1",
      );
      for (const id of decisionIds) {
        const row = select.get(id) as { final_decision: string } | undefined;
        if (row !== undefined) out.set(id, JSON.parse(row.final_decision) as Verdict);
      }
      return out;
    },
    resolvedOf: (model, limit) => (q.resolvedOf.all(model, limit) as ItemRow[]).map(toItem),
    watermark() {
      const row = q.meta.get("ledger_seq") as { value: string } | undefined;
      return row === undefined ? 0 : Number(row.value);
    },
    watermarkHash() {
      return (q.meta.get("ledger_hash") as { value: string } | undefined)?.value;
    },
    setWatermark: db.transaction((seq: number, hash?: string) => {
      q.setMeta.run("ledger_seq", String(seq));
      if (hash === undefined) q.deleteMeta.run("ledger_hash");
      else q.setMeta.run("ledger_hash", hash);
    }),
    close: () => db.close(),
  };
}
