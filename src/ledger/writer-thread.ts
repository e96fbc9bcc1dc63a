/**
 * Worker-thread entry of the threaded ledger writer: owns the SQLite writer connection, so hashing, inserts and
 * commits never run on the HTTP event loop. Entries arrive as journal lines the serving thread has already
 * made durable (journal.ts); on start, the thread first replays whatever an earlier run journaled but did not
 * commit.
 */
import { parentPort, workerData } from "node:worker_threads";
import { WardenError } from "../errors/index.js";
import { openSubjectVault, type SubjectVault, type VaultRow } from "../privacy/vault.js";
import { type LedgerBackend, openLedgerBackend } from "./backend.js";
import { type JournalBatch, journalDir, parseJournalText, readJournal, removeSegments } from "./journal.js";
import type { PreparedEntry } from "./sqlite-store.js";
import type {
  AppendFailure,
  LedgerThreadReply,
  LedgerThreadRequest,
  LedgerThreadStart,
} from "./thread-protocol.js";

const port = parentPort;
if (port === null) throw new Error("ledger/writer-thread.js must run as a worker thread");
const start = workerData as LedgerThreadStart;
/** Entries per transaction while replaying the journal. */
const REPLAY_CHUNK = 512;

function reply(message: LedgerThreadReply): void {
  port!.postMessage(message);
}

function failure(error: unknown, index: number): AppendFailure {
  const message = error instanceof Error ? error.message : String(error);
  return {
    index,
    code: error instanceof WardenError ? error.code : "WARDEN_ERR_LEDGER",
    message,
    // SQLite's and PostgreSQL's words for a duplicate id.
    permanent: /UNIQUE constraint failed|duplicate key value violates unique constraint/.test(message),
  };
}

/** Append what an earlier run journaled and did not commit; returns how many entries that was. */
async function replay(store: LedgerBackend, entries: readonly PreparedEntry[]): Promise<number> {
  const missing: PreparedEntry[] = [];
  for (const e of entries) if ((await store.get(e.id)) === undefined) missing.push(e);
  for (let i = 0; i < missing.length; i += REPLAY_CHUNK) {
    await store.appendPrepared(missing.slice(i, i + REPLAY_CHUNK));
  }
  return missing.length;
}

/** The subject vault, opened when the first vault row arrives (most ledgers never need it). */
let vault: SubjectVault | undefined;

/** Store vault rows before their entries are committed (again after a crash: a stored row is kept). */
function storeVaultRows(rows: readonly unknown[]): void {
  if (rows.length === 0) return;
  vault ??= openSubjectVault(start.dataDir, { synchronous: start.synchronous });
  vault.insertNow(rows as VaultRow[]);
}

/**
 * The entries of a hand-off's journal appends. Each append holds whole lines and is decoded and parsed on its
 * own: one string per append, rather than one joined string for the whole hand-off, which would be flattened
 * into a fresh large object (new pages, page faults) every time.
 */
function journalBatch(chunks: readonly Uint8Array[]): JournalBatch {
  const batch: JournalBatch = { entries: [], vaultRows: [] };
  for (const c of chunks) {
    parseJournalText(Buffer.from(c.buffer, c.byteOffset, c.byteLength).toString("utf8"), batch);
  }
  return batch;
}

async function append(
  store: LedgerBackend,
  { entries, vaultRows }: JournalBatch,
): Promise<{ committed: number; failures: AppendFailure[] }> {
  try {
    storeVaultRows(vaultRows);
  } catch (error) {
    // Not one entry of this batch may be committed without its subject: the batch fails as a store failure
    // (the writer turns unhealthy and the journal is kept for the next start).
    return {
      committed: 0,
      failures: entries.map((_, index) => ({ ...failure(error, index), permanent: false })),
    };
  }
  const failures: AppendFailure[] = [];
  try {
    // One message is one hand-off from the server: one transaction (group commit).
    await store.appendPrepared(entries);
  } catch {
    // One bad entry (a duplicate id) must not fail the unrelated decisions that shared its transaction:
    // retry them one by one, so only the culprit is refused. The store still chains from its last commit.
    for (const [index, entry] of entries.entries()) {
      try {
        await store.appendPrepared([entry]);
      } catch (error) {
        failures.push(failure(error, index));
      }
    }
  }
  return { committed: entries.length - failures.length, failures };
}

async function main(): Promise<void> {
  let store: LedgerBackend;
  try {
    // SQLite checkpoints run in their own thread (checkpoint-thread.ts), so no commit here waits for one.
    store = await openLedgerBackend(start.location, {
      synchronous: start.synchronous,
      autoCheckpoint: false,
    });
    const journal = readJournal(journalDir(start.dataDir));
    storeVaultRows(journal.vaultRows);
    const replayed = await replay(store, journal.entries);
    // Committed (and, with synchronous FULL, on disk): the segments are no longer needed.
    removeSegments(journal.segments);
    reply({ type: "ready", count: await store.count(), replayed, damaged: journal.damaged });
  } catch (error) {
    const { code, message } = failure(error, 0);
    reply({ type: "failed", code, message });
    return;
  }
  // Messages are handled one after another, in the order sent: the ledger's order is the journal's.
  let turn = Promise.resolve();
  port!.on("message", (request: LedgerThreadRequest) => {
    turn = turn.then(async () => {
      if (request.type === "close") {
        const count = await store.count().catch(() => -1);
        await store.close();
        vault?.close();
        reply({ type: "closed", count });
        port!.close();
        return;
      }
      const { committed, failures } = await append(store, journalBatch(request.chunks));
      reply({ type: "appended", batch: request.batch, committed, failures });
    });
  });
}

await main();
