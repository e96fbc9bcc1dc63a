/**
 * Test helper process (thread-writer.test.ts): writes sample entries through a ledger writer as fast as they
 * are acknowledged, and sends each acknowledged id to its parent, until the parent kills it. After `hold`
 * acknowledgements it takes SQLite's write lock on another connection, as a slow disk or a stuck reader would,
 * so that later entries are journaled and acknowledged but cannot be committed before the kill.
 */
import Database from "better-sqlite3";
import { ledgerPath } from "./sqlite-store.js";
import { sampleEntry } from "./testkit.js";
import { startLedgerThread } from "./thread-writer.js";

const [dir, holdText] = process.argv.slice(2);
if (dir === undefined || holdText === undefined)
  throw new Error("usage: testkit-crash-writer <data-dir> <hold>");
const hold = Number(holdText);
const writer = await startLedgerThread(dir);
let acknowledged = 0;
/** The connection holding the write lock (kept referenced: a collected connection would release it). */
let lock: Database.Database | undefined;
let n = 0;
for (;;) {
  const batch = Array.from({ length: 50 }, () => sampleEntry(++n));
  await Promise.all(
    batch.map((e) =>
      writer.write(e).then(() => {
        process.send!(e.id);
        acknowledged += 1;
      }),
    ),
  );
  if (acknowledged === hold && lock === undefined) {
    await writer.drain();
    lock = new Database(ledgerPath(dir));
    lock.exec("BEGIN IMMEDIATE");
  }
}
