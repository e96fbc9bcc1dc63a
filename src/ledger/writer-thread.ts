/**
 * Worker-thread entry of the threaded ledger writer: owns the SQLite writer connection, so hashing,
 * canonical JSON, inserts, commits and WAL checkpoints never run on the HTTP event loop.
 */
import { parentPort, workerData } from "node:worker_threads";
import { WardenError } from "../errors/index.js";
import { openSqliteLedger } from "./sqlite-store.js";
import type { LedgerThreadReply, LedgerThreadRequest, LedgerThreadStart } from "./thread-protocol.js";
import { createLedgerWriter } from "./writer.js";

const port = parentPort;
if (port === null) throw new Error("ledger/writer-thread.js must run as a worker thread");
const start = workerData as LedgerThreadStart;

function reply(message: LedgerThreadReply): void {
  port!.postMessage(message);
}

try {
  const store = openSqliteLedger(start.dataDir, { synchronous: start.synchronous });
  const writer = createLedgerWriter(store, { maxBatch: start.maxBatch });
  reply({ type: "ready", count: store.count() });
  port.on("message", (request: LedgerThreadRequest) => {
    if (request.type === "close") {
      void writer.close().then(() => {
        reply({ type: "closed", count: store.count() });
        port.close();
      });
      return;
    }
    // Every entry of the message is queued in this tick, so the writer commits them in one transaction.
    const settled = request.entries.map((entry) => writer.write(entry));
    void Promise.allSettled(settled).then((results) => {
      reply({
        type: "appended",
        batch: request.batch,
        results: results.map((r) =>
          r.status === "fulfilled"
            ? { ok: true, seq: r.value.seq, prev_hash: r.value.prev_hash, hash: r.value.hash }
            : {
                ok: false,
                code: r.reason instanceof WardenError ? r.reason.code : "WARDEN_ERR_LEDGER",
                message: r.reason instanceof Error ? r.reason.message : String(r.reason),
              },
        ),
      });
    });
  });
} catch (error) {
  reply({
    type: "failed",
    code: error instanceof WardenError ? error.code : "WARDEN_ERR_LEDGER",
    message: error instanceof Error ? error.message : String(error),
  });
}
