/**
 * Worker-thread entry that checkpoints the ledger's WAL into the database file, so the writer thread's commits
 * never pay for a checkpoint (in SQLite's default mode, one commit in ~1000 does, and every decision waiting
 * on it is delayed by milliseconds). A PASSIVE checkpoint takes no lock the writer needs: appends go on while
 * it copies pages. Once a checkpoint has caught up, the writer starts the WAL over, so it stays bounded.
 */
import { parentPort, workerData } from "node:worker_threads";
import Database from "better-sqlite3";

const port = parentPort;
if (port === null) throw new Error("ledger/checkpoint-thread.js must run as a worker thread");
const { file, intervalMs } = workerData as { file: string; intervalMs: number };

const db = new Database(file, { fileMustExist: true });
db.pragma("busy_timeout = 100");
const checkpoint = () => {
  try {
    db.pragma("wal_checkpoint(PASSIVE)");
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
