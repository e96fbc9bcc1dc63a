import assert from "node:assert/strict";
import { test } from "node:test";
import { Worker } from "node:worker_threads";
import type { WardenError } from "../errors/index.js";
import { openLedgerReader } from "./sqlite-store.js";
import { sampleEntry, tempDir } from "./testkit.js";
import { startLedgerThread } from "./thread-writer.js";
import { verifyLedger } from "./verify.js";

test("the threaded writer group-commits, resolves after commit, and keeps the chain verifiable", async (t) => {
  const dir = tempDir(t);
  const commits: number[] = [];
  const writer = await startLedgerThread(dir, { onCommit: (records) => commits.push(records.length) });
  const reader = openLedgerReader(dir);
  const records = await Promise.all(Array.from({ length: 300 }, (_, i) => writer.write(sampleEntry(i + 1))));
  assert.deepEqual(
    records.map((r) => r.seq),
    Array.from({ length: 300 }, (_, i) => i + 1),
  );
  assert.equal(records[0]!.prev_hash, "0".repeat(64));
  assert.equal(records[1]!.prev_hash, records[0]!.hash);
  // Written in one event-loop turn: one message, committed together.
  assert.ok(commits.length <= 2, `commits: ${commits.join(",")}`);
  // Every resolved write is readable at once from another connection: it was committed before it resolved.
  assert.equal(reader.count(), 300);
  assert.deepEqual(reader.get(records[120]!.id), records[120]);
  assert.equal(writer.stats().entriesWritten, 300);
  reader.close();
  await writer.close();
  assert.deepEqual(verifyLedger(dir), { ok: true, count: 300 });
});

test("a bad entry fails alone; the chain continues; close refuses new writes", async (t) => {
  const dir = tempDir(t);
  const writer = await startLedgerThread(dir);
  await writer.write(sampleEntry(1));
  const results = await Promise.allSettled([
    writer.write(sampleEntry(2)),
    writer.write(sampleEntry(1)),
    writer.write(sampleEntry(3)),
  ]);
  assert.equal(results[0]!.status, "fulfilled");
  assert.equal(results[2]!.status, "fulfilled");
  assert.equal(results[1]!.status, "rejected");
  const error = (results[1] as PromiseRejectedResult).reason as WardenError;
  assert.equal(error.code, "WARDEN_ERR_LEDGER");
  assert.equal(writer.stats().entriesFailed, 1);
  await writer.drain();
  await writer.close();
  await assert.rejects(
    writer.write(sampleEntry(9)),
    (e: WardenError) => e.code === "WARDEN_ERR_SHUTTING_DOWN",
  );
  assert.deepEqual(verifyLedger(dir), { ok: true, count: 3 });
});

test("entries JSON cannot represent are refused at once without breaking the writer", async (t) => {
  const dir = tempDir(t);
  const writer = await startLedgerThread(dir);
  const bad = { ...sampleEntry(1), body: { score: Number.NaN } };
  await assert.rejects(writer.write(bad), (e: WardenError) => e.code === "WARDEN_ERR_LEDGER");
  const ok = await writer.write(sampleEntry(2));
  assert.equal(ok.seq, 1);
  await writer.close();
});

test("drain commits everything queued; an exception in onCommit does not fail the write; maxBatch sends early", async (t) => {
  const dir = tempDir(t);
  const sizes: number[] = [];
  const writer = await startLedgerThread(dir, {
    maxBatch: 4,
    onCommit: (records) => {
      sizes.push(records.length);
      throw new Error("metrics broke");
    },
  });
  const writes = Array.from({ length: 10 }, (_, i) => writer.write(sampleEntry(i + 1)));
  await writer.drain();
  assert.equal(writer.stats().queued, 0);
  assert.equal((await Promise.all(writes)).length, 10);
  assert.deepEqual(sizes, [4, 4, 2]);
  await writer.close();
  assert.deepEqual(verifyLedger(dir), { ok: true, count: 10 });
});

test("if the ledger thread dies, pending and later writes fail, the writer reports unhealthy, and close still ends", async (t) => {
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
});
