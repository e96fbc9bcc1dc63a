import assert from "node:assert/strict";
import { test } from "node:test";
import { WardenError } from "../errors/index.js";
import { openSqliteLedger } from "./sqlite-store.js";
import { sampleEntry, tempDir } from "./testkit.js";
import type { LedgerRecord } from "./types.js";
import { verifyLedger } from "./verify.js";
import { createLedgerWriter } from "./writer.js";

const hasCode = (code: string) => (error: unknown) => error instanceof WardenError && error.code === code;

test("concurrent writes are group-committed in few transactions, in call order", async (t) => {
  const dir = tempDir(t);
  const store = openSqliteLedger(dir);
  const batchSizes: number[] = [];
  const writer = createLedgerWriter(store, { onCommit: (records) => batchSizes.push(records.length) });
  t.after(() => writer.close());

  const records = await Promise.all(Array.from({ length: 1000 }, (_, i) => writer.write(sampleEntry(i))));
  assert.deepEqual(
    records.map((r) => r.seq),
    Array.from({ length: 1000 }, (_, i) => i + 1),
  );
  assert.deepEqual(
    records.map((r) => r.id),
    Array.from({ length: 1000 }, (_, i) => sampleEntry(i).id),
  );
  // 1000 writes in one event-loop turn: one transaction per 512 (the default maxBatch).
  assert.deepEqual(batchSizes, [512, 488]);
  assert.deepEqual(writer.stats(), {
    entriesWritten: 1000,
    entriesFailed: 0,
    batches: 2,
    lastBatchSize: 488,
    queued: 0,
  });
  assert.deepEqual(verifyLedger(dir), { ok: true, count: 1000 });
});

test("each write resolves only after its transaction committed", async (t) => {
  const store = openSqliteLedger(tempDir(t));
  const writer = createLedgerWriter(store, { maxBatch: 10 });
  t.after(() => writer.close());
  const writes = Array.from({ length: 25 }, (_, i) =>
    writer.write(sampleEntry(i)).then((record) => {
      // When the promise resolves, the record is readable from the file through another connection.
      assert.deepEqual(store.get(record.id), record);
      return record;
    }),
  );
  assert.equal(
    writer.stats().queued,
    5,
    "two full batches of 10 committed synchronously, 5 wait for the tick",
  );
  await Promise.all(writes);
  assert.equal(writer.stats().batches, 3);
});

test("drain commits everything queued", async (t) => {
  const store = openSqliteLedger(tempDir(t));
  const writer = createLedgerWriter(store);
  t.after(() => writer.close());
  const writes = [1, 2, 3].map((i) => writer.write(sampleEntry(i)));
  assert.equal(store.count(), 0);
  await writer.drain();
  assert.equal(store.count(), 3);
  assert.equal(writer.stats().queued, 0);
  await Promise.all(writes);
  await writer.drain(); // nothing queued: resolves at once
});

test("close commits the queue, then refuses writes and closes the store", async (t) => {
  const dir = tempDir(t);
  const store = openSqliteLedger(dir);
  const writer = createLedgerWriter(store);
  const queued = writer.write(sampleEntry(1));
  const closing = writer.close();
  assert.equal(writer.close(), closing, "close is idempotent");
  await assert.rejects(writer.write(sampleEntry(2)), hasCode("WARDEN_ERR_SHUTTING_DOWN"));
  await closing;
  assert.equal((await queued).seq, 1);
  assert.throws(() => store.append([sampleEntry(3)]), /is closed/);
  assert.deepEqual(verifyLedger(dir), { ok: true, count: 1 });
});

test("a failing entry is rejected alone; its batch-mates and later batches chain from the last commit", async (t) => {
  const dir = tempDir(t);
  const store = openSqliteLedger(dir);
  const writer = createLedgerWriter(store);
  t.after(() => writer.close());
  const first = await writer.write(sampleEntry(1));

  // A duplicate id and an unrepresentable value make the batch's transaction fail and roll back.
  const results = await Promise.allSettled([
    writer.write(sampleEntry(2)),
    writer.write(sampleEntry(1)),
    writer.write(sampleEntry(3, { body: { score: Number.POSITIVE_INFINITY } })),
    writer.write(sampleEntry(4)),
  ]);
  assert.deepEqual(
    results.map((r) => r.status),
    ["fulfilled", "rejected", "rejected", "fulfilled"],
  );
  for (const r of results) if (r.status === "rejected") assert.ok(hasCode("WARDEN_ERR_LEDGER")(r.reason));
  const stored = results.flatMap((r) => (r.status === "fulfilled" ? [r.value] : []));
  assert.deepEqual(
    stored.map((r) => [r.seq, r.prev_hash]),
    [
      [2, first.hash],
      [3, stored[0]?.hash],
    ],
  );

  // A batch of one that fails, then a fresh batch: still one unbroken chain.
  await assert.rejects(writer.write(sampleEntry(2)), hasCode("WARDEN_ERR_LEDGER"));
  const next: LedgerRecord = await writer.write(sampleEntry(5));
  assert.equal(next.seq, 4);
  assert.equal(next.prev_hash, stored[1]?.hash);
  assert.equal(writer.stats().entriesFailed, 3);
  assert.deepEqual(verifyLedger(dir), { ok: true, count: 4 });
});

test("an exception in onCommit does not fail the write", async (t) => {
  const store = openSqliteLedger(tempDir(t));
  const writer = createLedgerWriter(store, {
    onCommit: () => {
      throw new Error("metrics broke");
    },
  });
  t.after(() => writer.close());
  assert.equal((await writer.write(sampleEntry(1))).seq, 1);
});

test("maxBatch must be a positive integer", (t) => {
  const store = openSqliteLedger(tempDir(t));
  t.after(() => store.close());
  assert.throws(() => createLedgerWriter(store, { maxBatch: 0 }), RangeError);
});
