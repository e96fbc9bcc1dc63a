/**
 * The floor of the governed decision path: what a decision of the demo model costs beyond what the baseline (a)
 * already does (HTTP, JSON, encoding the row, inference), each stage run alone, in this process, with Warden's own
 * code for it and none of its plumbing (no worker hop, batcher, metrics, monitors, breakers, promises or messages
 * between threads), on the rows (b) was sent and the entries (b) recorded, best round of several.
 *
 * The serving benchmark adds these costs to the baseline's CPU time per request: with Warden's implementation of
 * these stages, 2 cores cannot give (b) more than cores / (baseline CPU + floor) requests per second, however well
 * its threads share them ({@link throughputBound}). It says how far the throughput target is from the work itself,
 * not from how Warden arranges it.
 */
import { randomBytes } from "node:crypto";
import Database from "better-sqlite3";
import { v7 as uuidv7 } from "uuid";
import type { Manifest } from "../config/index.js";
import { encodeValue, type FeatureValue, type ValidInstance, validateInstance } from "../decision/index.js";
import type { InlineExplainer } from "../explain/model-explainer.js";
import {
  CanonicalText,
  canonicalJson,
  type LedgerEntry,
  ledgerPath,
  openSqliteLedger,
} from "../ledger/index.js";
import { attachmentLine, JournalWriter, journalLine, parseJournalText } from "../ledger/journal.js";
import { prepareEntry } from "../ledger/sqlite-store.js";
import type { SealKeys } from "../privacy/seal.js";
import { sealSubject } from "../privacy/seal.js";
import { openSubjectVault, type VaultRow } from "../privacy/vault.js";
import { loadEngine } from "../runtime/engines.js";
import { inlineExplainerOf } from "../runtime/explainers.js";
import type { EngineOutput, ModelEngine } from "../runtime/types.js";
import { tempDir } from "../testing/index.js";

/** One stage of the floor. */
export interface FloorStage {
  readonly label: string;
  /** Where Warden runs it. */
  readonly thread: "serving" | "model worker" | "ledger";
  /** CPU µs per decision (the best round). */
  readonly us: number;
}

/** The floor: its stages, and their sum. */
export interface GovernanceFloor {
  readonly stages: readonly FloorStage[];
  readonly totalUs: number;
}

/** A request body as (b) was sent it (one case). */
export interface FloorRequest {
  readonly features: unknown;
  readonly subject?: unknown;
}

/** Measured rounds per stage (the fastest is kept: a floor), after {@link WARMUP_ROUNDS} unmeasured ones. */
export const FLOOR_ROUNDS = 7;
const WARMUP_ROUNDS = 2;
/** Decisions journaled per write, as a serving turn at concurrency 16 does at most. */
const TURN = 16;
/** Decision entries kept from a run's ledger for the record stages. */
export const SAMPLE_ENTRIES = 512;

/**
 * The most requests per second `cores` can answer when each request costs `baselineUs` of CPU (what (a) spends,
 * server and load generator) plus `floorUs`, every core busy all the time.
 *
 * @throws RangeError for a non-positive core count or cost.
 */
export function throughputBound(cores: number, baselineUs: number, floorUs: number): number {
  const perRequest = baselineUs + floorUs;
  if (!(cores > 0) || !(baselineUs >= 0) || !(floorUs >= 0) || !(perRequest > 0)) {
    throw new RangeError(`no bound for ${cores} cores at ${baselineUs} + ${floorUs} µs per request`);
  }
  return (cores * 1e6) / perRequest;
}

/**
 * A recorded entry as the pipeline hands it to the ledger: the same fields in the same order, its explanation
 * already canonical JSON (the model's worker writes it; see runtime/row-tasks.ts), so that canonicalising the
 * entry copies it instead of writing it again.
 */
export function asWritten(entry: LedgerEntry): LedgerEntry {
  const body: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(entry.body)) {
    body[key] = key === "explanation" ? new CanonicalText(canonicalJson(value)) : value;
  }
  return { ...entry, body };
}

/** The latest decision entries of a ledger, as recorded (for the floor's record stages). */
export function sampleEntries(dataDir: string, limit = SAMPLE_ENTRIES): LedgerEntry[] {
  const db = new Database(ledgerPath(dataDir), { readonly: true });
  try {
    const rows = db
      .prepare("SELECT entry FROM records WHERE kind = 'decision' ORDER BY seq DESC LIMIT ?")
      .all(limit) as { entry: string }[];
    return rows.map((r) => JSON.parse(r.entry) as LedgerEntry);
  } finally {
    db.close();
  }
}

/** What the timed loops produce, kept so that no compiler can drop their work as unused. */
let sink = 0;

/**
 * CPU µs per item of `run(round)` (each round handles `items` items): the fastest measured round. Rounds
 * 0 … WARMUP_ROUNDS − 1 are not measured. The process's CPU time includes the collections the stage's own
 * allocations cause.
 */
function perItem(items: number, run: (round: number) => void): number {
  for (let round = 0; round < WARMUP_ROUNDS; round++) run(round);
  let best = Number.POSITIVE_INFINITY;
  for (let round = WARMUP_ROUNDS; round < WARMUP_ROUNDS + FLOOR_ROUNDS; round++) {
    const started = process.cpuUsage();
    run(round);
    const used = process.cpuUsage(started);
    best = Math.min(best, (used.user + used.system) / items);
  }
  return best;
}

/** Repeat `fn` until it has run at least this many items, so that a round lasts long enough to time. */
const MIN_ITEMS_PER_ROUND = 4096;

function repeated(items: number, fn: () => void): { items: number; run: () => void } {
  const times = Math.max(1, Math.ceil(MIN_ITEMS_PER_ROUND / items));
  return {
    items: items * times,
    run: () => {
      for (let t = 0; t < times; t++) fn();
    },
  };
}

/**
 * Measure the floor for `manifest` (an XGBoost model whose policy explains every decision inline and seals
 * subjects) on `requests` (the bodies (b) was sent) and `entries` (decision entries as (b) recorded them).
 *
 * @throws Error when there are no valid requests or no entries, the model cannot explain inline, or it keeps
 *   subjects in clear.
 */
export async function measureGovernanceFloor(
  manifest: Manifest,
  requests: readonly FloorRequest[],
  entries: readonly LedgerEntry[],
): Promise<GovernanceFloor> {
  if (entries.length === 0) throw new Error("the floor needs decision entries from a run's ledger");
  const valid: ValidInstance[] = [];
  for (const r of requests) {
    const checked = validateInstance(manifest, r.features, r.subject, "");
    if (checked.instance !== undefined) valid.push(checked.instance);
  }
  if (valid.length === 0) throw new Error("the floor needs requests the model accepts");
  const storage = manifest.privacy.subjectStorage;
  if (storage === "clear") throw new Error(`${manifest.name} keeps subjects in clear: nothing to seal`);
  const engine = await loadEngine(manifest);
  const dir = tempDir("bench-floor");
  try {
    const explainer = await inlineExplainerOf(manifest, engine);
    if (explainer === undefined) throw new Error(`${manifest.name} has no inline explainer`);
    const stages: FloorStage[] = [];
    stages.push(validationStage(manifest, requests));
    stages.push(...(await workerStages(manifest, engine, explainer, valid, storage)));
    stages.push(...recordStages(manifest, valid, storage, entries, dir.path));
    if (!Number.isFinite(sink)) throw new Error("the floor's loops produced no finite result");
    return { stages, totalUs: stages.reduce((sum, s) => sum + s.us, 0) };
  } finally {
    await engine.close();
    dir.remove();
  }
}

/**
 * Validation beyond what (a) does: (a) encodes each feature into the row as well, so that part (timed alone, the
 * baseline's loop) is taken off.
 */
function validationStage(manifest: Manifest, requests: readonly FloorRequest[]): FloorStage {
  const features = manifest.modelFeatures;
  const validate = repeated(requests.length, () => {
    for (const r of requests) sink += validateInstance(manifest, r.features, r.subject, "").problems.length;
  });
  const encode = repeated(requests.length, () => {
    for (const r of requests) {
      const input = r.features as Record<string, FeatureValue | undefined>;
      const row = new Float32Array(features.length);
      for (let j = 0; j < features.length; j++)
        row[j] = encodeValue(features[j]!, input[features[j]!.name] ?? null);
      sink += row[0]!;
    }
  });
  const us = perItem(validate.items, validate.run) - perItem(encode.items, encode.run);
  return { label: "validate the request (beyond encoding its row)", thread: "serving", us: Math.max(0, us) };
}

/** What the model's worker does for a decision besides inference: explain it, write the explanation, seal. */
async function workerStages(
  manifest: Manifest,
  engine: ModelEngine,
  explainer: InlineExplainer,
  valid: readonly ValidInstance[],
  storage: "pseudonymised" | "encrypted",
): Promise<FloorStage[]> {
  const features = manifest.modelFeatures.length;
  const input = new Float32Array(valid.length * features);
  valid.forEach((v, i) => {
    input.set(v.row, i * features);
  });
  const output: EngineOutput = await engine.predict(input, valid.length);
  const explain = repeated(valid.length, () => {
    for (let r = 0; r < valid.length; r++) sink += explainer.explain(input, r, output, valid[r]!.inputs).base;
  });
  const records = valid.map((v, r) => explainer.explain(input, r, output, v.inputs));
  const write = repeated(records.length, () => {
    for (const record of records) sink += canonicalJson(record).length;
  });
  const keys = benchKeys();
  const target = sealTarget(manifest, storage);
  const time = new Date().toISOString();
  const ids = valid.map(() => uuidv7());
  const seal = repeated(valid.length, () => {
    for (let i = 0; i < valid.length; i++)
      sink += sealSubject(keys, target, ids[i]!, time, valid[i]!.subject).commitments.length;
  });
  return [
    { label: "TreeSHAP and reason codes", thread: "model worker", us: perItem(explain.items, explain.run) },
    {
      label: "the explanation as canonical JSON",
      thread: "model worker",
      us: perItem(write.items, write.run),
    },
    {
      label: "seal the subject (commitments, AES-256-GCM)",
      thread: "model worker",
      us: perItem(seal.items, seal.run),
    },
  ];
}

/**
 * Recording: the entry's canonical JSON and journal lines and the journal write (serving thread), then the hash
 * chain, vault rows and SQLite commit (ledger thread), each round on fresh ids (ids are unique in a ledger) with a
 * vault row sealed for each entry.
 */
function recordStages(
  manifest: Manifest,
  valid: readonly ValidInstance[],
  storage: "pseudonymised" | "encrypted",
  entries: readonly LedgerEntry[],
  dir: string,
): FloorStage[] {
  const keys = benchKeys();
  const target = sealTarget(manifest, storage);
  const rounds = Array.from({ length: WARMUP_ROUNDS + FLOOR_ROUNDS }, () =>
    entries.map((entry, i) => {
      const id = uuidv7();
      const vault = sealSubject(keys, target, id, entry.time, valid[i % valid.length]!.subject).vaultJson!;
      return { entry: asWritten({ ...entry, id }), vault };
    }),
  );
  const lines = rounds.map((round) =>
    round.map(({ entry, vault }) => attachmentLine(vault) + journalLine(prepareEntry(entry))),
  );
  const stages: FloorStage[] = [
    {
      label: "the entry as canonical JSON and journal lines",
      thread: "serving",
      us: perItem(entries.length, (round) => {
        for (const { entry, vault } of rounds[round]!)
          sink += (attachmentLine(vault) + journalLine(prepareEntry(entry))).length;
      }),
    },
  ];
  const journal = new JournalWriter(`${dir}/journal`, false);
  try {
    let batch = 0;
    stages.push({
      label: `journal write (one per ${TURN} decisions)`,
      thread: "serving",
      us: perItem(entries.length, (round) => {
        const all = lines[round]!;
        for (let i = 0; i < all.length; i += TURN) journal.append(all.slice(i, i + TURN).join(""), ++batch);
      }),
    });
  } finally {
    journal.close(true);
  }
  const texts = lines.map((all) => all.join(""));
  const store = openSqliteLedger(`${dir}/ledger`, { autoCheckpoint: false });
  try {
    const vault = openSubjectVault(`${dir}/ledger`);
    try {
      stages.push({
        label: `hash chain, vault row, SQLite commit (${entries.length} per transaction)`,
        thread: "ledger",
        us: perItem(entries.length, (round) => {
          const parsed = parseJournalText(texts[round]!);
          vault.insertNow(parsed.vaultRows as VaultRow[]);
          store.appendPrepared(parsed.entries);
        }),
      });
    } finally {
      vault.close();
    }
  } finally {
    store.close();
  }
  return stages;
}

/** Throw-away subject keys. */
function benchKeys(): SealKeys {
  return {
    encryption: { id: "bench-encryption", key: randomBytes(32) },
    pseudonym: { id: "bench-pseudonym", key: randomBytes(32) },
  };
}

function sealTarget(manifest: Manifest, storage: "pseudonymised" | "encrypted") {
  return {
    model: manifest.name,
    version: manifest.version,
    storage,
    retentionDays: manifest.privacy.retentionDays,
  };
}
