import { mkdirSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { WardenError } from "../errors/index.js";

/** How a model's traffic is split between its production and candidate versions. */
export const TRAFFIC_POLICIES = ["single", "canary", "shadow"] as const;
export type TrafficPolicy = (typeof TRAFFIC_POLICIES)[number];

/** A version known to the registry (loaded or not). */
export interface RegisteredVersion {
  readonly model: string;
  readonly version: string;
  readonly manifest_path: string;
  readonly manifest_sha256: string;
  readonly artifact_sha256: string;
  readonly registered_at: string;
  readonly registered_by: string;
}

/** Which versions the aliases point to, and how traffic is split. */
export interface DeploymentState {
  readonly model: string;
  readonly production: string | null;
  readonly candidate: string | null;
  readonly policy: TrafficPolicy;
  /** Canary only: the share of subjects (0–100 %) the candidate answers. */
  readonly canary_percent: number;
  readonly updated_at: string;
}

/** One change to a model's deployment. */
export interface HistoryEntry {
  readonly seq: number;
  readonly model: string;
  readonly time: string;
  /** register, alias, promote, rollback, policy, load, unload. */
  readonly action: string;
  /** The alias that changed (production, candidate), or null. */
  readonly alias: string | null;
  readonly from_version: string | null;
  readonly to_version: string | null;
  readonly actor: string;
  readonly reason: string | null;
  /** Id of the ledger record of this change. */
  readonly ledger_id: string;
}

/**
 * The deployment state in `<dataDir>/registry.sqlite`: registered versions, aliases, traffic policies and
 * the history of every change. Separate from the ledger (which records the same changes, hash-chained).
 */
export interface DeploymentStore {
  versions(model?: string): RegisteredVersion[];
  version(model: string, version: string): RegisteredVersion | undefined;
  addVersion(v: RegisteredVersion): void;
  state(model: string): DeploymentState | undefined;
  states(): DeploymentState[];
  /** Write a new state and its history entry in one transaction. */
  change(state: DeploymentState, entry: Omit<HistoryEntry, "seq">): HistoryEntry;
  /** History entries, oldest first (one model, or all). */
  history(model?: string): HistoryEntry[];
  close(): void;
}

interface StateRow {
  model: string;
  production: string | null;
  candidate: string | null;
  policy: string;
  canary_percent: number;
  updated_at: string;
}

const toState = (row: StateRow): DeploymentState => ({ ...row, policy: row.policy as TrafficPolicy });

/** Open (creating if needed) the deployment store in `dataDir`. */
export function createDeploymentStore(dataDir: string): DeploymentStore {
  let db: Database.Database;
  try {
    mkdirSync(dataDir, { recursive: true });
    db = new Database(join(dataDir, "registry.sqlite"));
  } catch (error) {
    throw new WardenError(
      "WARDEN_ERR_CONFIG_INVALID",
      `cannot open the registry database in ${dataDir}: ${(error as Error).message}`,
      { cause: error },
    );
  }
  db.pragma("journal_mode = WAL");
  db.pragma("synchronous = FULL");
  db.exec(`
    CREATE TABLE IF NOT EXISTS versions (
      model TEXT NOT NULL,
      version TEXT NOT NULL,
      manifest_path TEXT NOT NULL,
      manifest_sha256 TEXT NOT NULL,
      artifact_sha256 TEXT NOT NULL,
      registered_at TEXT NOT NULL,
      registered_by TEXT NOT NULL,
      PRIMARY KEY (model, version)
    );
    CREATE TABLE IF NOT EXISTS deployments (
      model TEXT PRIMARY KEY,
      production TEXT,
      candidate TEXT,
      policy TEXT NOT NULL CHECK (policy IN ('single', 'canary', 'shadow')),
      canary_percent REAL NOT NULL CHECK (canary_percent >= 0 AND canary_percent <= 100),
      updated_at TEXT NOT NULL
    );
    CREATE TABLE IF NOT EXISTS history (
      seq INTEGER PRIMARY KEY AUTOINCREMENT,
      model TEXT NOT NULL,
      time TEXT NOT NULL,
      action TEXT NOT NULL,
      alias TEXT,
      from_version TEXT,
      to_version TEXT,
      actor TEXT NOT NULL,
      reason TEXT,
      ledger_id TEXT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS history_model ON history (model, seq);
  `);
  const q = {
    versionsAll: db.prepare("SELECT * FROM versions ORDER BY model, registered_at, rowid"),
    versionsOf: db.prepare("SELECT * FROM versions WHERE model = ? ORDER BY registered_at, rowid"),
    version: db.prepare("SELECT * FROM versions WHERE model = ? AND version = ?"),
    addVersion: db.prepare(
      `INSERT INTO versions (model, version, manifest_path, manifest_sha256, artifact_sha256, registered_at, registered_by)
       VALUES (@model, @version, @manifest_path, @manifest_sha256, @artifact_sha256, @registered_at, @registered_by)`,
    ),
    state: db.prepare("SELECT * FROM deployments WHERE model = ?"),
    states: db.prepare("SELECT * FROM deployments ORDER BY model"),
    putState: db.prepare(
      `INSERT INTO deployments (model, production, candidate, policy, canary_percent, updated_at)
       VALUES (@model, @production, @candidate, @policy, @canary_percent, @updated_at)
       ON CONFLICT (model) DO UPDATE SET production = excluded.production, candidate = excluded.candidate,
         policy = excluded.policy, canary_percent = excluded.canary_percent, updated_at = excluded.updated_at`,
    ),
    addHistory: db.prepare(
      `INSERT INTO history (model, time, action, alias, from_version, to_version, actor, reason, ledger_id)
       VALUES (@model, @time, @action, @alias, @from_version, @to_version, @actor, @reason, @ledger_id)`,
    ),
    historyAll: db.prepare("SELECT * FROM history ORDER BY seq"),
    historyOf: db.prepare("SELECT * FROM history WHERE model = ? ORDER BY seq"),
  };
  const change = db.transaction((state: DeploymentState, entry: Omit<HistoryEntry, "seq">) => {
    q.putState.run(state);
    const info = q.addHistory.run(entry);
    return { seq: Number(info.lastInsertRowid), ...entry };
  });
  return {
    versions: (model) =>
      (model === undefined ? q.versionsAll.all() : q.versionsOf.all(model)) as RegisteredVersion[],
    version: (model, version) => q.version.get(model, version) as RegisteredVersion | undefined,
    addVersion: (v) => {
      q.addVersion.run(v);
    },
    state: (model) => {
      const row = q.state.get(model) as StateRow | undefined;
      return row === undefined ? undefined : toState(row);
    },
    states: () => (q.states.all() as StateRow[]).map(toState),
    change: (state, entry) => change(state, entry),
    history: (model) => (model === undefined ? q.historyAll.all() : q.historyOf.all(model)) as HistoryEntry[],
    close: () => db.close(),
  };
}
