import assert from "node:assert/strict";
import { fork } from "node:child_process";
import { appendFileSync, existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import Database from "better-sqlite3";
import type { WardenError } from "../errors/index.js";
import { verifyLedgerFully } from "./backend.js";
import { journalDir } from "./journal.js";
import { loadPublicKey } from "./signing.js";
import { openLedgerReader } from "./sqlite-store.js";
import { sampleEntry, tempDir } from "./testkit.js";
import { startLedgerThread } from "./thread-writer.js";
import { verifyLedger } from "./verify.js";

test("the threaded writer journals, group-commits in order, and keeps the chain verifiable", async (t) => {
  const dir = tempDir(t);
  const commits: number[] = [];
  const writer = await startLedgerThread(dir, { onCommit: (kinds) => commits.push(kinds.length) });
  const reader = openLedgerReader(dir);
  const entries = Array.from({ length: 300 }, (_, i) => sampleEntry(i + 1));
  await Promise.all(entries.map((e) => writer.write(e)));
  // Acknowledged means journaled: the journal holds every entry before the commit is awaited.
  const journaled = readdirSync(journalDir(dir))
    .map((n) => readFileSync(join(journalDir(dir), n), "utf8"))
    .join("");
  for (const e of entries) assert.ok(journaled.includes(`${e.id}\t`), `${e.id} is journaled`);
  await writer.drain();
  // Written in one event-loop turn: one message, committed together.
  assert.ok(commits.length <= 2, `commits: ${commits.join(",")}`);
  assert.equal(reader.count(), 300);
  const records = [...reader.scan()];
  assert.deepEqual(
    records.map((r) => r.id),
    entries.map((e) => e.id),
  );
  assert.equal(records[0]!.prev_hash, "0".repeat(64));
  assert.equal(records[1]!.prev_hash, records[0]!.hash);
  assert.deepEqual(reader.get(entries[120]!.id)?.body, entries[120]!.body);
  assert.equal(writer.stats().entriesWritten, 300);
  assert.equal(writer.stats().queued, 0);
  reader.close();
  await writer.close();
  // A clean close leaves nothing to replay.
  assert.deepEqual(readdirSync(journalDir(dir)), []);
  assert.deepEqual(verifyLedger(dir), { ok: true, count: 300 });
});

test("entries with text in any script travel through several hand-offs byte for byte", async (t) => {
  const dir = tempDir(t);
  const writer = await startLedgerThread(dir, { maxBatch: 7 });
  const reader = openLedgerReader(dir);
  const texts = ["Zoë", "Ærø", "東京", "Київ", "👩🏽‍⚕️ emoji", "x".repeat(5000)];
  const entries = Array.from({ length: 40 }, (_, i) => {
    const e = sampleEntry(i + 1, { model: i % 2 === 0 ? "credit" : "crédit-ü" });
    return { ...e, body: { ...e.body, note: texts[i % texts.length]!, n: i } };
  });
  // Several turns (one journal write each, some over Node's 4 KB pool size and some under), several hand-offs.
  for (let i = 0; i < entries.length; i += 3) {
    await Promise.all(entries.slice(i, i + 3).map((e) => writer.write(e)));
  }
  await writer.drain();
  assert.equal(reader.count(), entries.length);
  const records = [...reader.scan()];
  assert.deepEqual(
    records.map((r) => r.id),
    entries.map((e) => e.id),
  );
  for (const [i, r] of records.entries()) {
    assert.equal(r.model, entries[i]!.model);
    assert.deepEqual(r.body, entries[i]!.body);
  }
  reader.close();
  await writer.close();
  assert.deepEqual(verifyLedger(dir), { ok: true, count: entries.length });
});

test("a duplicate id fails alone and is reported; the chain continues; close refuses new writes", async (t) => {
  const dir = tempDir(t);
  const errors: WardenError[] = [];
  const writer = await startLedgerThread(dir, { onError: (e) => errors.push(e) });
  await writer.write(sampleEntry(1));
  await Promise.all([
    writer.write(sampleEntry(2)),
    writer.write(sampleEntry(1)),
    writer.write(sampleEntry(3)),
  ]);
  await writer.drain();
  assert.equal(writer.stats().entriesFailed, 1);
  assert.equal(writer.stats().entriesWritten, 3);
  assert.equal(errors.length, 1);
  assert.equal(errors[0]!.code, "WARDEN_ERR_LEDGER");
  assert.match(errors[0]!.message, /UNIQUE/);
  // An id that can never be stored does not make the writer unhealthy.
  assert.equal(writer.healthy(), true);
  await writer.close();
  await assert.rejects(
    writer.write(sampleEntry(9)),
    (e: WardenError) => e.code === "WARDEN_ERR_SHUTTING_DOWN",
  );
  assert.deepEqual(verifyLedger(dir), { ok: true, count: 3 });
});

test("entries JSON cannot represent, or with line breaks in indexed fields, are refused at once", async (t) => {
  const dir = tempDir(t);
  const writer = await startLedgerThread(dir);
  const bad = { ...sampleEntry(1), body: { score: Number.NaN } };
  await assert.rejects(writer.write(bad), (e: WardenError) => e.code === "WARDEN_ERR_LEDGER");
  await assert.rejects(
    writer.write(sampleEntry(3, { model: "credit\nx" })),
    (e: WardenError) => e.code === "WARDEN_ERR_LEDGER" && e.details[0]?.field === "model",
  );
  await writer.write(sampleEntry(2));
  await writer.drain();
  assert.equal(writer.stats().entriesFailed, 2);
  await writer.close();
  assert.deepEqual(verifyLedger(dir), { ok: true, count: 1 });
});

test("drain waits for everything accepted before it; an exception in onCommit changes nothing; maxBatch sends early", async (t) => {
  const dir = tempDir(t);
  const sizes: number[] = [];
  const writer = await startLedgerThread(dir, {
    maxBatch: 4,
    onCommit: (kinds) => {
      sizes.push(kinds.length);
      throw new Error("metrics broke");
    },
  });
  const writes = Array.from({ length: 10 }, (_, i) => writer.write(sampleEntry(i + 1)));
  await writer.drain();
  assert.equal(writer.stats().queued, 0);
  await Promise.all(writes);
  assert.deepEqual(sizes, [4, 4, 2]);
  await writer.close();
  assert.deepEqual(verifyLedger(dir), { ok: true, count: 10 });
});

test("if the ledger thread dies, later writes fail, the writer reports unhealthy, close still ends, and the next start replays the journal", async (t) => {
  const dir = tempDir(t);
  // Capture the ledger thread as the writer starts it, to kill it as a crash would.
  const threads: Worker[] = [];
  const original = Worker.prototype.postMessage;
  Worker.prototype.postMessage = function (this: Worker, ...args: Parameters<Worker["postMessage"]>) {
    if (!threads.includes(this)) threads.push(this);
    return original.apply(this, args);
  };
  let writer: Awaited<ReturnType<typeof startLedgerThread>>;
  try {
    writer = await startLedgerThread(dir);
    await writer.write(sampleEntry(1));
    await writer.drain();
  } finally {
    Worker.prototype.postMessage = original;
  }
  assert.equal(writer.healthy(), true);
  await threads[0]!.terminate();
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.equal(writer.healthy(), false);
  await assert.rejects(writer.write(sampleEntry(2)), (e: WardenError) => e.code === "WARDEN_ERR_LEDGER");
  await writer.close(); // must not hang
  assert.deepEqual(verifyLedger(dir), { ok: true, count: 1 });
  const again = await startLedgerThread(dir);
  await again.write(sampleEntry(3));
  await again.close();
  assert.deepEqual(verifyLedger(dir), { ok: true, count: 2 });
});

test("acknowledged entries survive a killed process: the next start replays the journal in order, once", async (t) => {
  const dir = tempDir(t);
  // A child process writes entries and reports each acknowledgement; after 1000 it holds SQLite's write lock,
  // so the next ones are acknowledged (journaled) but not committed; it is killed (SIGKILL, no clean-up) at 2000.
  const child = fork(fileURLToPath(new URL("./testkit-crash-writer.js", import.meta.url)), [dir, "1000"], {
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const acknowledged: string[] = [];
  await new Promise<void>((resolve, reject) => {
    child.on("message", (id: string) => {
      acknowledged.push(id);
      if (acknowledged.length === 2000) child.kill("SIGKILL");
    });
    child.once("exit", () => resolve());
    child.once("error", reject);
  });
  assert.ok(acknowledged.length >= 2000);
  // Damage on disk is skipped and counted; a torn last line (no line feed) is ignored.
  const segments = readdirSync(journalDir(dir))
    .filter((name) => name.endsWith(".log"))
    .sort();
  // The killed process left its lock behind; the next start takes it over.
  assert.ok(existsSync(join(journalDir(dir), "LOCK")));
  assert.ok(segments.length > 0, "the killed writer left its journal");
  const last = join(journalDir(dir), segments[segments.length - 1]!);
  appendFileSync(last, "not\ta\tvalid\tline\tat\tall\n0190c9a2-7b3e-7def-8abc-9999");
  const writer = await startLedgerThread(dir);
  const stats = writer.stats();
  assert.equal(stats.damaged, 1);
  assert.ok(stats.replayed >= 900, `replayed ${stats.replayed}`);
  await writer.write(sampleEntry(999_999));
  await writer.close();
  const reader = openLedgerReader(dir);
  const ids = [...reader.scan()].map((r) => r.id);
  reader.close();
  // Every acknowledged entry is there, in the order written, each once, and the chain verifies.
  const stored = new Set(ids);
  for (const id of acknowledged) assert.ok(stored.has(id), `acknowledged ${id} is in the ledger`);
  assert.equal(stored.size, ids.length);
  const positions = acknowledged.map((id) => ids.indexOf(id));
  assert.deepEqual(
    positions,
    [...positions].sort((a, b) => a - b),
  );
  assert.equal(ids[ids.length - 1], sampleEntry(999_999).id);
  assert.deepEqual(verifyLedger(dir), { ok: true, count: ids.length });
  assert.equal(existsSync(last), false, "replayed segments are removed");
});

test("one process per journal: a second writer on the same data folder is refused; a lock left by a dead process is taken over", async (t) => {
  const dir = tempDir(t);
  const first = await startLedgerThread(dir);
  // Another process holding the folder (this test process's parent stands in: it is running).
  const { writeFileSync } = await import("node:fs");
  await first.close();
  writeFileSync(join(journalDir(dir), "LOCK"), `${process.ppid}\n`);
  await assert.rejects(
    startLedgerThread(dir),
    (e: WardenError) =>
      e.code === "WARDEN_ERR_LEDGER" &&
      e.message.includes(`in use by process ${process.ppid}`) &&
      e.details[0]?.field === "data_dir",
  );
  // A process that no longer runs: its lock is taken over.
  writeFileSync(join(journalDir(dir), "LOCK"), "2147483646\n");
  const again = await startLedgerThread(dir);
  await again.write(sampleEntry(1));
  await again.close();
  assert.equal(existsSync(join(journalDir(dir), "LOCK")), false, "released on close");
  assert.deepEqual(verifyLedger(dir), { ok: true, count: 1 });
});

test("the checkpoint thread reads records as they are committed, so the closing checkpoint signs them as they were read", async (t) => {
  const dir = tempDir(t);
  const signed: number[] = [];
  const errors: WardenError[] = [];
  const writer = await startLedgerThread(dir, {
    checkpoints: { keyPath: join(dir, "keys", "k.pem"), intervalMs: 0 },
    onCheckpoint: (size) => signed.push(size),
    onError: (e) => errors.push(e),
  });
  await Promise.all(Array.from({ length: 50 }, (_, i) => writer.write(sampleEntry(i + 1))));
  await writer.drain();
  // The thread reads every second; two readings later it holds all 50.
  await new Promise((resolve) => setTimeout(resolve, 2500));
  const db = new Database(join(dir, "ledger.sqlite"));
  db.pragma("busy_timeout = 5000");
  db.exec(`UPDATE records SET entry = replace(entry, '"req-10"', '"req-x"') WHERE seq = 10`);
  db.close();
  await writer.close();
  // Signed over the records as they were read: the edit made afterwards does not stop the checkpoint, and the
  // signed head, holding the original content, is what shows the edit.
  assert.deepEqual(errors, []);
  assert.deepEqual(signed, [50]);
  const full = await verifyLedgerFully(
    { kind: "sqlite", dataDir: dir },
    { publicKey: loadPublicKey(join(dir, "keys", "k.pem.pub")) },
  );
  assert.match(full.chain.ok ? "" : full.chain.firstBad.reason, /record content was altered/);
});
