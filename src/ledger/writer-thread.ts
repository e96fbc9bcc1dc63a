/**
 * Worker-thread entry of the threaded ledger writer: owns the SQLite writer connection, so hashing, inserts,
 * commits and WAL checkpoints never run on the HTTP event loop. Entries arrive already canonicalised.
 */
import { parentPort, workerData } from "node:worker_threads";
import { WardenError } from "../errors/index.js";
import { openSqliteLedger } from "./sqlite-store.js";
import type {
  AppendResult,
  LedgerThreadReply,
  LedgerThreadRequest,
  LedgerThreadStart,
} from "./thread-protocol.js";

const port = parentPort;
if (port === null) throw new Error("ledger/writer-thread.js must run as a worker thread");
const start = workerData as LedgerThreadStart;

function reply(message: LedgerThreadReply): void {
  port!.postMessage(message);
}

function failure(error: unknown): Extract<AppendResult, { ok: false }> {
  return {
    ok: false,
    code: error instanceof WardenError ? error.code : "WARDEN_ERR_LEDGER",
    message: error instanceof Error ? error.message : String(error),
  };
}

try {
  // Checkpoints run in their own thread (checkpoint-thread.ts), so no commit here waits for one.
  const store = openSqliteLedger(start.dataDir, { synchronous: start.synchronous, autoCheckpoint: false });
  reply({ type: "ready", count: store.count() });
  port.on("message", (request: LedgerThreadRequest) => {
    if (request.type === "close") {
      const count = store.count();
      store.close();
      reply({ type: "closed", count });
      port.close();
      return;
    }
    let results: AppendResult[];
    try {
      // One message is one event-loop turn of the server: one transaction (group commit).
      results = store.appendPrepared(request.entries).map((p) => ({ ok: true, ...p }));
    } catch {
      // One bad entry (a duplicate id) must not fail the unrelated decisions that shared its transaction:
      // retry them one by one, so only the culprit is refused. The store still chains from its last commit.
      results = request.entries.map((entry) => {
        try {
          return { ok: true, ...store.appendPrepared([entry])[0]! };
        } catch (error) {
          return failure(error);
        }
      });
    }
    reply({ type: "appended", batch: request.batch, results });
  });
} catch (error) {
  const { code, message } = failure(error);
  reply({ type: "failed", code, message });
}
