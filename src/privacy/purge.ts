/**
 * Retention purges: remove the personal data that sits outside the hash chain (a decision's salt and stored
 * subject in the vault) once its model's retention period has ended, and never before. Ledger records are never
 * deleted or changed; each purge is itself recorded, one `retention` record per model.
 */
import { createHash } from "node:crypto";
import { existsSync, readdirSync } from "node:fs";
import { v7 as uuidv7 } from "uuid";
import { WardenError } from "../errors/index.js";
import { type LedgerEntry, type LedgerLocation, openLedgerBackend } from "../ledger/index.js";
import { journalDir } from "../ledger/journal.js";
import { prepareEntry } from "../ledger/sqlite-store.js";
import { openSubjectVault, type VaultRow, vaultPath } from "./vault.js";

/** `version` of a retention record: it concerns every version of the model. */
export const RETENTION_ALL_VERSIONS = "*";
/** `artifact_sha256` of a retention record: it concerns no artifact. */
export const RETENTION_NO_ARTIFACT = "none";

/** Options of {@link purgeSubjects}. */
export interface PurgeOptions {
  /**
   * Purge only decisions made before this time (ISO-8601). Refused when any of them is still within its
   * retention period. Default: every decision whose retention period has ended.
   */
  readonly before?: string | undefined;
  /** Report what would be removed; change nothing. */
  readonly dryRun?: boolean;
  /** Where the ledger lives (default: SQLite in the data folder). */
  readonly location?: LedgerLocation;
  /** The present (tests move it forward instead of waiting months). Default: the clock. */
  readonly now?: Date;
}

/** What a purge removed (or would remove) for one model. */
export interface PurgeModelReport {
  readonly model: string;
  /** Vault payloads removed. */
  readonly count: number;
  /** Times of the oldest and newest decisions concerned. */
  readonly first_time: string;
  readonly last_time: string;
  readonly versions: Readonly<Record<string, { count: number; retention_days: number }>>;
  readonly storage: Readonly<Record<string, number>>;
  /** sha256 (hex) of the decision ids concerned, sorted, each followed by a line feed. */
  readonly decision_ids_sha256: string;
  /** Id of the `retention` ledger record (absent in a dry run). */
  readonly record_id?: string;
}

export interface PurgeReport {
  /** Decisions made before this time were considered. */
  readonly before: string;
  readonly now: string;
  readonly dryRun: boolean;
  readonly models: readonly PurgeModelReport[];
  /** Payloads removed, all models. */
  readonly total: number;
}

type Held = Pick<
  VaultRow,
  "decision_id" | "model" | "version" | "time" | "storage" | "retention_days" | "retain_until"
>;

/**
 * Purge the vault of `dataDir` per retention.
 *
 * @throws WardenError WARDEN_ERR_RETENTION when `before` reaches into a retention period (naming the model, its
 *   period, and the dates that are allowed), or when a server holds the folder; WARDEN_ERR_LEDGER when the
 *   retention record cannot be appended (nothing is removed then); WARDEN_ERR_VAULT.
 */
export async function purgeSubjects(dataDir: string, options: PurgeOptions = {}): Promise<PurgeReport> {
  const now = options.now ?? new Date();
  const nowIso = now.toISOString();
  const before = options.before ?? nowIso;
  const dryRun = options.dryRun === true;
  if (before > nowIso) {
    throw new WardenError("WARDEN_ERR_RETENTION", `--before ${before} lies in the future (it is ${nowIso})`, {
      details: [
        {
          field: "--before",
          expected: `a time no later than now (${nowIso})`,
          found: before,
          fix: "leave --before out to purge everything whose retention period has ended",
        },
      ],
    });
  }
  if (!existsSync(vaultPath(dataDir))) return { before, now: nowIso, dryRun, models: [], total: 0 };
  if (!dryRun) refuseWhileServing(dataDir);
  const vault = openSubjectVault(dataDir, { mustExist: true });
  try {
    const db = vault.db;
    // Too early: decisions before `before` whose retention has not ended.
    const young =
      options.before === undefined
        ? []
        : db
            .prepare<
              [string, string],
              { model: string; count: number; newest: string; oldest: string; days: number; until: string }
            >(
              `SELECT model, COUNT(*) AS count, MAX(time) AS newest, MIN(time) AS oldest, MAX(retention_days) AS days,
                MAX(retain_until) AS until
           FROM subjects WHERE payload IS NOT NULL AND time < ? AND retain_until > ? GROUP BY model ORDER BY model`,
            )
            .all(before, nowIso);
    if (young.length > 0) {
      const details = young.map((y) => ({
        field: `model ${y.model}`,
        expected: `only decisions older than ${y.days} days (policy.retention_days)`,
        found: `${y.count} decision${y.count === 1 ? "" : "s"} made before ${before} still within it, the newest from ${y.newest}`,
        fix: `this purge is allowed from ${y.until}; today, use --before ${y.oldest} or earlier, or leave --before out`,
      }));
      const first = young[0]!;
      throw new WardenError(
        "WARDEN_ERR_RETENTION",
        `refused: model ${first.model} keeps subject data for ${first.days} days (policy.retention_days), and ${first.count} of its decisions made before ${before} are younger than that (the newest from ${first.newest}); the earliest date this purge is allowed is ${first.until}; the latest --before allowed today is ${first.oldest}${young.length > 1 ? ` (and ${young.length - 1} more model${young.length > 2 ? "s" : ""}: see below)` : ""}. Nothing was removed.`,
        { details },
      );
    }
    const held = db
      .prepare<[string, string], Held>(
        `SELECT decision_id, model, version, time, storage, retention_days, retain_until FROM subjects
          WHERE payload IS NOT NULL AND time < ? AND retain_until <= ? ORDER BY model, time`,
      )
      .all(before, nowIso);
    const byModel = new Map<string, Held[]>();
    for (const row of held) {
      const list = byModel.get(row.model);
      if (list === undefined) byModel.set(row.model, [row]);
      else list.push(row);
    }
    const models: PurgeModelReport[] = [];
    if (byModel.size === 0) return { before, now: nowIso, dryRun, models, total: 0 };
    const ledger = dryRun
      ? undefined
      : await openLedgerBackend(options.location ?? { kind: "sqlite", dataDir });
    try {
      const clear = db.prepare(
        "UPDATE subjects SET salt = NULL, payload = NULL, purged_at = ?, purge_record = ? WHERE decision_id = ? AND payload IS NOT NULL",
      );
      for (const [model, rows] of byModel) {
        const report = summarise(model, rows);
        if (ledger === undefined) {
          models.push(report);
          continue;
        }
        const id = uuidv7();
        const entry: LedgerEntry = {
          id,
          kind: "retention",
          time: nowIso,
          model,
          version: RETENTION_ALL_VERSIONS,
          artifact_sha256: RETENTION_NO_ARTIFACT,
          body: {
            action: "purge",
            before,
            count: report.count,
            decision_ids_sha256: report.decision_ids_sha256,
            first_time: report.first_time,
            last_time: report.last_time,
            removed: "salt and stored subject (subject vault); the ledger's commitments stay",
            storage: report.storage,
            versions: report.versions,
          },
        };
        // The vault rows and the ledger record go together: the rows are cleared in a transaction that commits
        // only once the record is appended, and rolls back if it is not.
        db.exec("BEGIN IMMEDIATE");
        try {
          for (const row of rows) clear.run(nowIso, id, row.decision_id);
          await ledger.appendPrepared([prepareEntry(entry)]);
          db.exec("COMMIT");
        } catch (error) {
          db.exec("ROLLBACK");
          throw error;
        }
        models.push({ ...report, record_id: id });
      }
    } finally {
      await ledger?.close();
    }
    return { before, now: nowIso, dryRun, models, total: models.reduce((n, m) => n + m.count, 0) };
  } finally {
    vault.close();
  }
}

function summarise(model: string, rows: readonly Held[]): PurgeModelReport {
  const versions: Record<string, { count: number; retention_days: number }> = {};
  const storage: Record<string, number> = {};
  for (const row of rows) {
    const v = versions[row.version];
    versions[row.version] = {
      count: (v?.count ?? 0) + 1,
      retention_days: Math.max(v?.retention_days ?? 0, row.retention_days),
    };
    storage[row.storage] = (storage[row.storage] ?? 0) + 1;
  }
  const ids = rows.map((r) => r.decision_id).sort();
  return {
    model,
    count: rows.length,
    first_time: rows[0]!.time,
    last_time: rows[rows.length - 1]!.time,
    versions: sortKeys(versions),
    storage: sortKeys(storage),
    decision_ids_sha256: createHash("sha256")
      .update(ids.map((id) => `${id}\n`).join(""))
      .digest("hex"),
  };
}

function sortKeys<T>(record: Record<string, T>): Record<string, T> {
  return Object.fromEntries(Object.entries(record).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/**
 * A server writing this folder keeps a journal segment open (deleted when it stops cleanly): appending from here
 * too would fork the chain, so a purge waits until it has stopped.
 */
function refuseWhileServing(dataDir: string): void {
  let segments: string[] = [];
  try {
    segments = readdirSync(journalDir(dataDir)).filter((n) => n.endsWith(".log"));
  } catch {
    return;
  }
  if (segments.length === 0) return;
  throw new WardenError(
    "WARDEN_ERR_RETENTION",
    `refused: ${journalDir(dataDir)} holds ${segments.length} journal segment${segments.length === 1 ? "" : "s"}: a server is running on ${dataDir}, or stopped without committing its journal. Nothing was removed.`,
    {
      details: [
        {
          field: "--data-dir",
          expected: "a data folder no server is running on",
          found: `${segments.length} journal segment${segments.length === 1 ? "" : "s"}`,
          fix: "stop the server (SIGTERM) and purge then; after a crash, start and stop the server once so it commits its journal",
        },
      ],
    },
  );
}
