/**
 * Worker-thread entry that checkpoints the ledger's WAL into the database file, so the writer thread's commits
 * never pay for a checkpoint (in SQLite's default mode, one commit in ~1000 does, and every decision waiting
 * on it is delayed by milliseconds). A PASSIVE checkpoint takes no lock the writer needs: appends go on while
 * it copies pages. Once a checkpoint has caught up, the writer starts the WAL over, so it stays bounded.
 */
import { parentPort, workerData } from "node:worker_threads";
import Database from "better-sqlite3";
import { lowerThisThread } from "./thread-priority.js";

const port = parentPort;
if (port === null) throw new Error("ledger/checkpoint-thread.js must run as a worker thread");
const { file, intervalMs } = workerData as { file: string; intervalMs: number };
// Copying the WAL into the database file is background work: the serving threads come first.
lowerThisThread();

/**
 * WAL size (in pages) past which a checkpoint also restarts the log. Under steady writes a PASSIVE checkpoint
 * copies pages but the writer never finds the log fully copied, so the log would grow without end; a TRUNCATE
 * checkpoint briefly holds the writer off, but the pages are mostly copied already, so the wait is short.
 */
const RESTART_PAGES = 16_384; // 64 MiB at 4 KiB pages

const db = new Database(file, { fileMustExist: true });
db.pragma("busy_timeout = 1000");
const checkpoint = () => {
  try {
    const [status] = db.pragma("wal_checkpoint(PASSIVE)") as { log: number }[];
    if (status !== undefined && status.log > RESTART_PAGES) db.pragma("wal_checkpoint(TRUNCATE)");
  } catch {
    // Busy or interrupted: the next round catches up.
  }
};
const timer = setInterval(checkpoint, intervalMs);
port.on("message", () => {
  clearInterval(timer);
  db.close();
  port.close();
});
