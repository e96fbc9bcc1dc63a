/**
 * The floor of the governed decision path: what a decision of the demo model must cost beyond what the baseline
 * (a) already does (HTTP, JSON, inference), each stage run alone, in this process, with the product's own code and
 * none of its plumbing (no worker hop, batcher, metrics, monitors, breakers, promises or messages between threads).
 *
 * The serving benchmark adds these costs to the baseline's CPU time per request: no implementation of the same
 * work can spend less, so 2 cores cannot give (b) more than cores / (baseline CPU + floor) requests per second,
 * however well its threads share them. It says how far the throughput target is from the work itself, not from
 * how Warden arranges it.
 */
import { randomBytes } from "node:crypto";
import Database from "better-sqlite3";
import { v7 as uuidv7 } from "uuid";
import type { Manifest } from "../config/index.js";
import { type ValidInstance, validateInstance } from "../decision/index.js";
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
import type { EngineOutput } from "../runtime/types.js";
import { holdoutInstances, tempDir } from "../testing/index.js";
import { median } from "./suite.js";

/** One stage of the floor. */
export interface FloorStage {
  readonly label: string;
  /** Where Warden runs it. */
  readonly thread: "serving" | "model worker" | "ledger";
  /** CPU µs per decision (median of the rounds). */
  readonly us: number;
}

/** The floor: its stages, and their sum. */
export interface GovernanceFloor {
  readonly stages: readonly FloorStage[];
  readonly totalUs: number;
}

/** Rounds per stage (the median is kept), after one unmeasured round. */
const ROUNDS = 5;
/** Decisions journaled per write, as a serving turn at concurrency 16 does. */
const TURN = 16;
/** Decision entries kept from a run's ledger for the record stages. */
export const SAMPLE_ENTRIES = 512;

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

/** CPU µs per item of `run(items)` (it handles every item once): the median of the rounds. */
function perItem(items: number, run: (round: number) => void): number {
  run(0);
  const rounds: number[] = [];
  for (let round = 1; round <= ROUNDS; round++) {
    const started = process.cpuUsage();
    run(round);
    const used = process.cpuUsage(started);
    rounds.push((used.user + used.system) / items);
  }
  return median(rounds);
}

/** Repeat `fn` until it has run at least this many items, so that a round lasts long enough to time. */
const MIN_ITEMS_PER_ROUND = 2048;

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
 * Measure the floor for `manifest` (an XGBoost model whose policy explains every decision and seals subjects),
 * on its holdout rows, and on `entries`: decision entries as a run recorded them.
 *
 * @throws Error when the model cannot explain inline or the sample is empty.
 */
export async function measureGovernanceFloor(
  manifest: Manifest,
  entries: readonly LedgerEntry[],
): Promise<GovernanceFloor> {
  if (entries.length === 0) throw new Error("the floor needs decision entries from a run's ledger");
  const engine = await loadEngine(manifest);
  const explainer: InlineExplainer | undefined = await inlineExplainerOf(manifest, engine);
  if (explainer === undefined) throw new Error(`${manifest.name} has no inline explainer`);
  const dir = tempDir("bench-floor");
  try {
    const rows = holdoutInstances(manifest);
    const valid: ValidInstance[] = [];
    for (const row of rows) {
      const checked = validateInstance(manifest, row.features, row.subject, "");
      if (checked.instance !== undefined) valid.push(checked.instance);
    }
    const features = manifest.modelFeatures.length;
    const input = new Float32Array(valid.length * features);
    valid.forEach((v, i) => {
      input.set(v.row, i * features);
    });
    const output: EngineOutput = await engine.predict(input, valid.length);
    const stages: FloorStage[] = [];

    const validate = repeated(rows.length, () => {
      for (const row of rows)
        sink += validateInstance(manifest, row.features, row.subject, "").problems.length;
    });
    stages.push({
      label: "validate the request",
      thread: "serving",
      us: perItem(validate.items, validate.run),
    });

    const explain = repeated(valid.length, () => {
      for (let r = 0; r < valid.length; r++)
        sink += explainer.explain(input, r, output, valid[r]!.inputs).base;
    });
    stages.push({
      label: "TreeSHAP and reason codes",
      thread: "model worker",
      us: perItem(explain.items, explain.run),
    });

    const records = valid.map((v, r) => explainer.explain(input, r, output, v.inputs));
    const write = repeated(records.length, () => {
      for (const record of records) sink += canonicalJson(record).length;
    });
    stages.push({
      label: "the explanation as canonical JSON",
      thread: "model worker",
      us: perItem(write.items, write.run),
    });

    const keys: SealKeys = {
      encryption: { id: "bench-encryption", key: randomBytes(32) },
      pseudonym: { id: "bench-pseudonym", key: randomBytes(32) },
    };
    const storage = manifest.privacy.subjectStorage;
    if (storage === "clear") throw new Error(`${manifest.name} keeps subjects in clear: nothing to seal`);
    const target = {
      model: manifest.name,
      version: manifest.version,
      storage,
      retentionDays: manifest.privacy.retentionDays,
    };
    const time = new Date().toISOString();
    const ids = valid.map(() => uuidv7());
    const seal = repeated(valid.length, () => {
      for (let i = 0; i < valid.length; i++)
        sink += sealSubject(keys, target, ids[i]!, time, valid[i]!.subject).commitments.length;
    });
    stages.push({
      label: "seal the subject (commitments, AES-256-GCM)",
      thread: "model worker",
      us: perItem(seal.items, seal.run),
    });

    // The record stages use the sample with fresh ids each round (ids are unique in a ledger), each entry with
    // a vault row sealed for it and its explanation already written (the worker wrote it, timed above), as the
    // pipeline journals them.
    const rounds = Array.from({ length: ROUNDS + 1 }, () =>
      entries.map((entry, i) => {
        const id = uuidv7();
        const vault = sealSubject(keys, target, id, entry.time, valid[i % valid.length]!.subject).vaultJson!;
        // Key order kept: the pipeline writes its entries with their keys in order.
        const written: Record<string, unknown> = {};
        for (const [key, value] of Object.entries(entry.body)) {
          written[key] = key === "explanation" ? new CanonicalText(canonicalJson(value)) : value;
        }
        return { entry: { ...entry, id, body: written }, vault };
      }),
    );
    const lines = rounds.map((round) =>
      round.map(({ entry, vault }) => attachmentLine(vault) + journalLine(prepareEntry(entry))),
    );
    stages.push({
      label: "the entry as canonical JSON and journal lines",
      thread: "serving",
      us: perItem(entries.length, (round) => {
        for (const { entry, vault } of rounds[round]!)
          sink += (attachmentLine(vault) + journalLine(prepareEntry(entry))).length;
      }),
    });

    const journal = new JournalWriter(`${dir.path}/journal`, false);
    let batch = 0;
    stages.push({
      label: `journal write (one per ${TURN} decisions)`,
      thread: "serving",
      us: perItem(entries.length, (round) => {
        const all = lines[round]!;
        for (let i = 0; i < all.length; i += TURN) journal.append(all.slice(i, i + TURN).join(""), ++batch);
      }),
    });
    journal.close(true);

    const store = openSqliteLedger(`${dir.path}/ledger`, { autoCheckpoint: false });
    const vault = openSubjectVault(`${dir.path}/ledger`);
    const texts = lines.map((all) => all.join(""));
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
      store.close();
    }
    if (!Number.isFinite(sink)) throw new Error("the floor's loops produced no finite result");
    return { stages, totalUs: stages.reduce((sum, s) => sum + s.us, 0) };
  } finally {
    await engine.close();
    dir.remove();
  }
}
