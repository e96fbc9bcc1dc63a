import assert from "node:assert/strict";
import { type TestContext, test } from "node:test";
import Database from "better-sqlite3";
import fc from "fast-check";
import { WardenError } from "../errors/index.js";
import { chainHash } from "./hash.js";
import { ledgerPath, openSqliteLedger } from "./sqlite-store.js";
import { sampleEntry, tempDir } from "./testkit.js";
import type { LedgerRecord } from "./types.js";
import { ChainVerifier, type RawRow, verifyLedger, verifyLedgerParallel } from "./verify.js";

// Every test tampers the file directly with SQL, as someone with access to the file (not to Warden) would.

function ledgerOf(t: TestContext, n: number): { dir: string; records: LedgerRecord[] } {
  const dir = tempDir(t);
  const store = openSqliteLedger(dir);
  const records = store.append(Array.from({ length: n }, (_, i) => sampleEntry(i + 1)));
  store.close();
  return { dir, records };
}

function tamper(dir: string, sql: (db: Database.Database) => void): void {
  const db = new Database(ledgerPath(dir));
  try {
    sql(db);
  } finally {
    db.close();
  }
}

/** What a careful attacker does after editing record `fromSeq`: recompute every hash from there on. */
function rehashFrom(db: Database.Database, fromSeq: number): void {
  const rows = db
    .prepare<[number], { seq: number; entry: string }>(
      "SELECT seq, entry FROM records WHERE seq >= ? ORDER BY seq",
    )
    .all(fromSeq);
  const previous = db.prepare<[number], { hash: string }>("SELECT hash FROM records WHERE seq = ?");
  let prevHash = previous.get(fromSeq - 1)?.hash ?? "0".repeat(64);
  const update = db.prepare("UPDATE records SET prev_hash = ?, hash = ? WHERE seq = ?");
  for (const row of rows) {
    const hash = chainHash(prevHash, row.entry);
    update.run(prevHash, hash, row.seq);
    prevHash = hash;
  }
}

/** Record 7 rewritten with a space after its opening brace (not canonical), every hash recomputed from it. */
function nonCanonicalAt7(db: Database.Database): void {
  db.exec(
    `UPDATE records SET entry = replace(entry, '{"artifact_sha256"', '{ "artifact_sha256"') WHERE seq = 7`,
  );
  rehashFrom(db, 7);
}

async function assertBad(
  dir: string,
  seq: number,
  reason: RegExp,
  options?: Parameters<typeof verifyLedger>[1],
): Promise<void> {
  const result = verifyLedger(dir, options);
  // The parallel verifier (ranges on threads) must find exactly the same first problem.
  assert.deepEqual(await verifyLedgerParallel(dir, { ...options, threads: 3 }), result);
  assert.equal(result.ok, false, "tampering went unnoticed");
  if (result.ok) return;
  assert.equal(result.firstBad.seq, seq);
  assert.match(result.firstBad.reason, reason);
  assert.equal(result.count, seq - 1, "count is the number of intact records before the first bad one");
}

test("a clean ledger verifies, by data directory or by open store; an empty one too", async (t) => {
  const { dir } = ledgerOf(t, 10);
  assert.deepEqual(verifyLedger(dir), { ok: true, count: 10 });
  const store = openSqliteLedger(dir);
  t.after(() => store.close());
  assert.deepEqual(verifyLedger(store), { ok: true, count: 10 });
  assert.deepEqual(verifyLedger(ledgerOf(t, 0).dir), { ok: true, count: 0 });
});

test("verifying a directory without a ledger is an error, not a pass", async (t) => {
  assert.throws(
    () => verifyLedger(tempDir(t)),
    (error: unknown) => error instanceof WardenError && error.code === "WARDEN_ERR_LEDGER",
  );
});

test("a field changed inside the stored entry is detected", async (t) => {
  const { dir, records } = ledgerOf(t, 10);
  tamper(dir, (db) =>
    db.exec(
      `UPDATE records SET entry = replace(entry, '"outcome":"deny"', '"outcome":"approve"') WHERE seq = 3`,
    ),
  );
  await assertBad(dir, 3, /^hash mismatch: record content was altered/);
  const result = verifyLedger(dir);
  assert.equal(result.ok ? undefined : result.firstBad.id, records[2]?.id);
});

test("a changed hash column is detected", async (t) => {
  const { dir } = ledgerOf(t, 10);
  tamper(dir, (db) => db.exec(`UPDATE records SET hash = '${"ab".repeat(32)}' WHERE seq = 4`));
  await assertBad(dir, 4, /^hash mismatch: the stored hash was altered/);

  const last = ledgerOf(t, 10).dir;
  tamper(last, (db) => db.exec(`UPDATE records SET hash = '${"ab".repeat(32)}' WHERE seq = 10`));
  await assertBad(last, 10, /^hash mismatch: record content or its stored hash was altered/);
});

test("a changed prev_hash is detected", async (t) => {
  const { dir, records } = ledgerOf(t, 10);
  tamper(dir, (db) => db.prepare("UPDATE records SET prev_hash = ? WHERE seq = 5").run(records[2]?.hash));
  await assertBad(dir, 5, /^broken link: prev_hash does not equal the hash of record 4/);

  const first = ledgerOf(t, 3).dir;
  tamper(first, (db) => db.exec(`UPDATE records SET prev_hash = '${"1".repeat(64)}' WHERE seq = 1`));
  await assertBad(first, 1, /^broken link: prev_hash does not equal the genesis hash/);
});

test("a deleted record is detected, first or in the middle", async (t) => {
  const { dir } = ledgerOf(t, 10);
  tamper(dir, (db) => db.exec("DELETE FROM records WHERE seq IN (5, 6)"));
  await assertBad(dir, 5, /^sequence gap: records 5 to 6 are missing/);
  const result = verifyLedger(dir);
  assert.equal(result.ok ? "" : result.firstBad.id, undefined, "a missing record has no id");

  const head = ledgerOf(t, 10).dir;
  tamper(head, (db) => db.exec("DELETE FROM records WHERE seq = 1"));
  await assertBad(head, 1, /^sequence gap: record 1 is missing/);
});

test("renumbering records to close a gap is detected", async (t) => {
  const { dir } = ledgerOf(t, 10);
  tamper(dir, (db) => {
    db.exec("DELETE FROM records WHERE seq = 5");
    db.exec("UPDATE records SET seq = seq - 1 WHERE seq > 5");
  });
  await assertBad(dir, 5, /^broken link/);
});

test("records cut off the end are not detected by the chain alone, but are against an anchor", async (t) => {
  const { dir, records } = ledgerOf(t, 10);
  tamper(dir, (db) => db.exec("DELETE FROM records WHERE seq > 8"));
  // A hash chain only proves each record follows its predecessor; the shortened ledger is a valid chain.
  // Only a head (count, last hash) kept elsewhere reveals the cut.
  assert.deepEqual(verifyLedger(dir), { ok: true, count: 8 });
  await assertBad(dir, 9, /^truncated: the ledger ends at record 8, but the anchor says record 10 exists/, {
    anchor: { seq: 10, hash: records[9]!.hash },
  });
  assert.deepEqual(verifyLedger(dir, { anchor: { seq: 8, hash: records[7]!.hash } }), { ok: true, count: 8 });
});

test("a chain rewritten with recomputed hashes is only detected against an anchor", async (t) => {
  const { dir, records } = ledgerOf(t, 10);
  tamper(dir, (db) => {
    db.exec(
      `UPDATE records SET entry = replace(entry, '"outcome":"deny"', '"outcome":"approve"') WHERE seq = 3`,
    );
    rehashFrom(db, 3);
  });
  assert.deepEqual(verifyLedger(dir), { ok: true, count: 10 });
  await assertBad(dir, 10, /^anchor mismatch/, { anchor: { seq: 10, hash: records[9]!.hash } });
});

test("two records whose contents were swapped are detected", async (t) => {
  const { dir } = ledgerOf(t, 10);
  const columns = ["id", "kind", "time", "model", "version", "entry", "prev_hash", "hash"];
  const swap = (db: Database.Database, moved: string[]) => {
    const get = db.prepare<[number], Record<string, string>>(
      `SELECT ${moved.join(", ")} FROM records WHERE seq = ?`,
    );
    const set = db.prepare(
      `UPDATE records SET ${moved.map((c) => `${c} = @${c}`).join(", ")} WHERE seq = @seq`,
    );
    const [four, five] = [get.get(4)!, get.get(5)!];
    db.prepare("UPDATE records SET id = 'temporary' WHERE seq = 4").run(); // ids are unique
    set.run({ ...four, seq: 5 });
    set.run({ ...five, seq: 4 });
  };
  // Whole rows moved, hashes and links included: the links no longer line up.
  tamper(dir, (db) => swap(db, columns));
  await assertBad(dir, 4, /^broken link/);

  // Only the contents moved, the chain columns stayed: the hashes no longer match.
  const other = ledgerOf(t, 10).dir;
  tamper(other, (db) => swap(db, columns.slice(0, 6)));
  await assertBad(other, 4, /^hash mismatch/);
});

test("an indexed column that disagrees with the entry is detected", async (t) => {
  const { dir } = ledgerOf(t, 10);
  tamper(dir, (db) => db.exec("UPDATE records SET model = 'fraud' WHERE seq = 6"));
  await assertBad(
    dir,
    6,
    /^column model disagrees with the entry: the column says "fraud", the entry "credit"/,
  );

  const ids = ledgerOf(t, 10).dir;
  tamper(ids, (db) => db.exec("UPDATE records SET id = 'someone-else' WHERE seq = 2"));
  await assertBad(ids, 2, /^column id disagrees/);
});

test("a non-canonical entry is detected even when its hash was recomputed", async (t) => {
  const { dir } = ledgerOf(t, 10);
  tamper(dir, nonCanonicalAt7);
  await assertBad(dir, 7, /^the stored entry is not canonical JSON/);
});

test("any JSON body verifies after a round trip through the ledger", async (t) => {
  // Exercises verify's fast canonical check against canonicalize on unusual keys (integer-like, astral,
  // "__proto__") and numbers (-0, exponents).
  const store = openSqliteLedger(tempDir(t));
  t.after(() => store.close());
  let n = 0;
  fc.assert(
    fc.property(fc.dictionary(fc.string({ unit: "binary" }), fc.jsonValue()), (body) => {
      n += 1;
      store.append([sampleEntry(n, { body })]);
      const result = verifyLedger(store);
      assert.deepEqual(result, { ok: true, count: n });
    }),
    { numRuns: 200 },
  );
  store.append([sampleEntry(n + 1, { body: { "10": 1, "9": 2, b: { "2": 0, "10": [] } } })]);
  assert.deepEqual(verifyLedger(store), { ok: true, count: n + 1 });
});

test("the parallel verifier agrees with the single-threaded one on clean ledgers of any size", async (t) => {
  for (const n of [0, 1, 2, 5, 17]) {
    const { dir, records } = ledgerOf(t, n);
    for (const threads of [1, 2, 3, 4]) {
      assert.deepEqual(await verifyLedgerParallel(dir, { threads }), { ok: true, count: n });
    }
    if (n > 0) {
      const anchor = { seq: n, hash: records[n - 1]!.hash };
      assert.deepEqual(await verifyLedgerParallel(dir, { threads: 2, anchor }), { ok: true, count: n });
      const wrong = await verifyLedgerParallel(dir, { threads: 2, anchor: { seq: n, hash: "f".repeat(64) } });
      assert.equal(wrong.ok, false);
      const beyond = await verifyLedgerParallel(dir, {
        threads: 2,
        anchor: { seq: n + 3, hash: "f".repeat(64) },
      });
      assert.match(beyond.ok ? "" : beyond.firstBad.reason, /^truncated/);
    }
  }
});

test("a chain-only verifier (what checkpoints use) checks links and hashes, not each entry's content", async (t) => {
  const { dir } = ledgerOf(t, 10);
  tamper(dir, nonCanonicalAt7);
  const rows = () => {
    const db = new Database(ledgerPath(dir), { readonly: true });
    try {
      return db
        .prepare(
          "SELECT seq, id, kind, time, model, version, entry, prev_hash, hash FROM records ORDER BY seq",
        )
        .raw(true)
        .all() as RawRow[];
    } finally {
      db.close();
    }
  };
  const run = (verifier: ChainVerifier) => {
    for (const row of rows()) {
      const problem = verifier.push(row);
      if (problem !== undefined) return problem;
    }
    return verifier.finish();
  };
  // The full verifier finds the non-canonical entry; the chain-only one accepts it (its hash is right) ...
  const full = run(new ChainVerifier(undefined));
  assert.equal(full.ok, false);
  assert.deepEqual(run(new ChainVerifier(undefined, undefined, { content: false })), { ok: true, count: 10 });
  // ... and still refuses an entry whose hash does not match.
  tamper(dir, (db) => db.exec(`UPDATE records SET entry = replace(entry, 'req-3', 'req-x') WHERE seq = 3`));
  const broken = run(new ChainVerifier(undefined, undefined, { content: false }));
  assert.equal(broken.ok, false);
  if (!broken.ok) {
    assert.equal(broken.firstBad.seq, 3);
    assert.match(broken.firstBad.reason, /hash mismatch/);
  }
});
