/**
 * Worker-thread entry of the threaded ledger writer: owns the SQLite writer connection, so hashing, inserts and
 * commits never run on the HTTP event loop. Entries arrive as journal lines the serving thread has already
 * made durable (journal.ts); on start, the thread first replays whatever an earlier run journaled but did not
 * commit.
 */
import { parentPort, workerData } from "node:worker_threads";
import { WardenError } from "../errors/index.js";
import { journalDir, parseJournalText, readJournal, removeSegments } from "./journal.js";
import { type LedgerStore, openSqliteLedger, type PreparedEntry } from "./sqlite-store.js";
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
    permanent: message.includes("UNIQUE constraint failed"),
  };
}

/** Append what an earlier run journaled and did not commit; returns how many entries that was. */
function replay(store: LedgerStore, entries: readonly PreparedEntry[]): number {
  const missing = entries.filter((e) => store.get(e.id) === undefined);
  for (let i = 0; i < missing.length; i += REPLAY_CHUNK) {
    store.appendPrepared(missing.slice(i, i + REPLAY_CHUNK));
  }
  return missing.length;
}

try {
  // Checkpoints run in their own thread (checkpoint-thread.ts), so no commit here waits for one.
  const store = openSqliteLedger(start.dataDir, { synchronous: start.synchronous, autoCheckpoint: false });
  const journal = readJournal(journalDir(start.dataDir));
  const replayed = replay(store, journal.entries);
  // Committed (and, with synchronous FULL, on disk): the segments are no longer needed.
  removeSegments(journal.segments);
  reply({ type: "ready", count: store.count(), replayed, damaged: journal.damaged });
  port.on("message", (request: LedgerThreadRequest) => {
    if (request.type === "close") {
      const count = store.count();
      store.close();
      reply({ type: "closed", count });
      port.close();
      return;
    }
    const entries = parseJournalText(request.text);
    const failures: AppendFailure[] = [];
    try {
      // One message is one event-loop turn of the server: one transaction (group commit).
      store.appendPrepared(entries);
    } catch {
      // One bad entry (a duplicate id) must not fail the unrelated decisions that shared its transaction:
      // retry them one by one, so only the culprit is refused. The store still chains from its last commit.
      entries.forEach((entry, index) => {
        try {
          store.appendPrepared([entry]);
        } catch (error) {
          failures.push(failure(error, index));
        }
      });
    }
    reply({ type: "appended", batch: request.batch, committed: entries.length - failures.length, failures });
  });
} catch (error) {
  const { code, message } = failure(error, 0);
  reply({ type: "failed", code, message });
}
