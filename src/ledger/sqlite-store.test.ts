import assert from "node:assert/strict";
import { test } from "node:test";
import Database from "better-sqlite3";
import { WardenError } from "../errors/index.js";
import { canonicalJson, GENESIS_HASH } from "./hash.js";
import {
  LINKED_QUERY,
  ledgerPath,
  openLedgerReader,
  openSqliteLedger,
  REVIEW_SOURCES_QUERY,
} from "./sqlite-store.js";
import { sampleEntry, tempDir } from "./testkit.js";
import { verifyLedger } from "./verify.js";

const isLedgerError = (error: unknown) => error instanceof WardenError && error.code === "WARDEN_ERR_LEDGER";

test("append, get and scan round-trip entries in one hash chain", (t) => {
  const dir = tempDir(t);
  const store = openSqliteLedger(dir);
  t.after(() => store.close());
  assert.equal(store.count(), 0);
  assert.equal(store.lastHash(), GENESIS_HASH);

  const entries = [sampleEntry(1), sampleEntry(2), sampleEntry(3, { kind: "rejection", model: "fraud" })];
  const records = store.append(entries);
  assert.deepEqual(
    records.map((r) => r.seq),
    [1, 2, 3],
  );
  assert.equal(records[0]?.prev_hash, GENESIS_HASH);
  assert.equal(records[1]?.prev_hash, records[0]?.hash);
  assert.equal(records[2]?.prev_hash, records[1]?.hash);
  assert.deepEqual(records[2], {
    ...entries[2],
    seq: 3,
    prev_hash: records[1]?.hash,
    hash: records[2]?.hash,
  });
  assert.equal(store.count(), 3);
  assert.equal(store.lastHash(), records[2]?.hash);

  assert.deepEqual(store.get(entries[1]!.id), records[1]);
  assert.equal(store.get("no-such-id"), undefined);
  assert.deepEqual([...store.scan()], records);
  assert.deepEqual([...store.scan({ afterSeq: 1, limit: 1 })], [records[1]]);
  assert.deepEqual([...store.scan({ afterSeq: 3 })], []);
  assert.deepEqual([...store.scan({ limit: 0 })], []);
  assert.throws(() => store.scan({ afterSeq: -1 }), RangeError);
  assert.throws(() => store.scan({ limit: 1.5 }), RangeError);

  // The stored text is the canonical JSON that was hashed, and the indexed columns copy its fields.
  const db = new Database(ledgerPath(dir), { readonly: true });
  t.after(() => db.close());
  const row = db.prepare("SELECT kind, model, entry FROM records WHERE seq = 3").get();
  assert.deepEqual(row, { kind: "rejection", model: "fraud", entry: canonicalJson(entries[2]) });
});

test("the chain continues across close and reopen", (t) => {
  const dir = tempDir(t);
  const first = openSqliteLedger(dir);
  const [, second] = first.append([sampleEntry(1), sampleEntry(2)]);
  first.close();
  first.close(); // idempotent

  const reopened = openSqliteLedger(dir, { synchronous: "full" });
  t.after(() => reopened.close());
  assert.equal(reopened.count(), 2);
  assert.equal(reopened.lastHash(), second?.hash);
  const [third] = reopened.append([sampleEntry(3)]);
  assert.equal(third?.seq, 3);
  assert.equal(third?.prev_hash, second?.hash);
  assert.deepEqual(verifyLedger(dir), { ok: true, count: 3 });
});

test("a failed append stores nothing and the next append chains from the last committed record", (t) => {
  const dir = tempDir(t);
  const store = openSqliteLedger(dir);
  t.after(() => store.close());
  const [a] = store.append([sampleEntry(1)]);
  // The duplicate id fails after entry 2 was inserted in the same transaction: both must be rolled back.
  assert.throws(() => store.append([sampleEntry(2), sampleEntry(1)]), isLedgerError);
  assert.equal(store.count(), 1);
  assert.equal(store.lastHash(), a?.hash);
  assert.equal(store.get(sampleEntry(2).id), undefined);

  const [b] = store.append([sampleEntry(2)]);
  assert.equal(b?.seq, 2);
  assert.equal(b?.prev_hash, a?.hash);
  assert.deepEqual(verifyLedger(dir), { ok: true, count: 2 });
});

test("append refuses malformed entries with field details", (t) => {
  const store = openSqliteLedger(tempDir(t));
  t.after(() => store.close());
  const bad = { ...sampleEntry(1), kind: "maybe", model: "" } as unknown as Parameters<
    typeof store.append
  >[0][0];
  assert.throws(
    () => store.append([bad]),
    (error: unknown) =>
      isLedgerError(error) && (error as WardenError).details.map((d) => d.field).join() === "model,kind",
  );
  assert.throws(
    () => store.append([sampleEntry(2, { body: { score: Number.NaN } })]),
    (error: unknown) => isLedgerError(error) && (error as WardenError).details[0]?.field === "body.score",
  );
  assert.equal(store.count(), 0);
});

test("only the LedgerEntry fields are hashed: a record passed back in does not smuggle seq or hash", (t) => {
  const dir = tempDir(t);
  const store = openSqliteLedger(dir);
  t.after(() => store.close());
  const [record] = store.append([sampleEntry(1)]);
  const [copy] = store.append([{ ...record!, id: sampleEntry(2).id }]);
  assert.equal(copy?.seq, 2);
  const db = new Database(ledgerPath(dir), { readonly: true });
  t.after(() => db.close());
  const entry = db.prepare<[], { entry: string }>("SELECT entry FROM records WHERE seq = 2").get()!.entry;
  assert.deepEqual(Object.keys(JSON.parse(entry) as object), [
    "artifact_sha256",
    "body",
    "id",
    "kind",
    "model",
    "time",
    "version",
  ]);
});

test("a scan is lazy, reads a snapshot and does not block appends", (t) => {
  const store = openSqliteLedger(tempDir(t));
  t.after(() => store.close());
  store.append([sampleEntry(1), sampleEntry(2)]);
  const scan = store.scan();
  assert.equal(scan.next().value?.seq, 1);
  // better-sqlite3 refuses writes on a connection with an open iterator; the store reads on another one.
  store.append([sampleEntry(3)]);
  assert.deepEqual(
    [...scan].map((r) => r.seq),
    [2],
  );
  assert.deepEqual(
    [...store.scan()].map((r) => r.seq),
    [1, 2, 3],
  );
});

test("opening refuses files that are not a ledger of this schema version", (t) => {
  const dir = tempDir(t);
  openSqliteLedger(dir).close();
  const db = new Database(ledgerPath(dir));
  db.pragma("user_version = 2");
  db.close();
  assert.throws(() => openSqliteLedger(dir), /schema version 2; this Warden reads version 1/);

  const other = tempDir(t);
  const foreign = new Database(ledgerPath(other));
  foreign.exec("CREATE TABLE t (x)");
  foreign.close();
  assert.throws(() => openSqliteLedger(other), /is not a Warden ledger/);
});

test("a closed store refuses appends", (t) => {
  const store = openSqliteLedger(tempDir(t));
  store.close();
  assert.throws(() => store.append([sampleEntry(1)]), /is closed/);
});

test("closing the store ends open scans with an error instead of a silently short result", (t) => {
  const store = openSqliteLedger(tempDir(t));
  store.append([sampleEntry(1), sampleEntry(2)]);
  const open = store.scan();
  const notStarted = store.scan();
  assert.equal(open.next().value?.seq, 1);
  store.close();
  assert.throws(() => open.next(), /was closed during a scan/);
  assert.throws(() => notStarted.next(), /is closed/);
  assert.throws(() => store.get(sampleEntry(1).id), /is closed/);
});

test("linked reads through its partial index, which a ledger made without it gets when a writer opens it; reviewSources reads a range of the primary key", (t) => {
  const dir = tempDir(t);
  const store = openSqliteLedger(dir);
  const decision = sampleEntry(1);
  store.append([
    decision,
    sampleEntry(2, { kind: "outcome", body: { decision_id: decision.id } }),
    sampleEntry(3),
  ]);
  store.close();
  const plan = (db: Database.Database) =>
    (db.prepare(`EXPLAIN QUERY PLAN ${LINKED_QUERY}`).all("x", 0, -1) as { detail: string }[])
      .map((r) => r.detail)
      .join("; ");
  // The plan of the query the store runs.
  const db = new Database(ledgerPath(dir));
  assert.match(plan(db), /USING INDEX records_linked/);
  const sourcesPlan = (
    db.prepare(`EXPLAIN QUERY PLAN ${REVIEW_SOURCES_QUERY}`).all(0, 10) as { detail: string }[]
  )
    .map((r) => r.detail)
    .join("; ");
  assert.match(sourcesPlan, /USING INTEGER PRIMARY KEY/);
  // A ledger from before the index: still answered (by a scan), and the next writer adds the index.
  db.exec("DROP INDEX records_linked");
  assert.doesNotMatch(plan(db), /records_linked/);
  db.close();
  const reader = openLedgerReader(dir);
  assert.deepEqual(
    reader.linked(decision.id).map((r) => r.seq),
    [2],
  );
  reader.close();
  const reopened = openSqliteLedger(dir);
  assert.deepEqual(
    reopened.linked(decision.id, 1).map((r) => r.seq),
    [2],
  );
  reopened.close();
  const again = new Database(ledgerPath(dir), { readonly: true });
  assert.match(plan(again), /USING INDEX records_linked/);
  again.close();
  assert.equal(verifyLedger(dir).ok, true);
});
