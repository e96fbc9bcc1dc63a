import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import Database from "better-sqlite3";
import type { WardenError } from "../errors/index.js";
import { openLedgerBackend, verifyLedgerFully } from "./backend.js";
import {
  CheckpointBuilder,
  type CheckpointSource,
  defaultSigningKeyPath,
  makeCheckpoint,
  proveConsistency,
  proveInclusion,
  sqliteCheckpoints,
} from "./checkpoints.js";
import { chainHash } from "./hash.js";
import {
  fromHex,
  leafHash,
  proofFromHex,
  rootOf,
  toHex,
  verifyConsistency,
  verifyInclusion,
} from "./merkle.js";
import { loadOrCreateSigningKey, type SigningKey, verifyTreeHead } from "./signing.js";
import { ledgerPath, openSqliteLedger } from "./sqlite-store.js";
import { sampleEntry, tempDir } from "./testkit.js";

/** A ledger of 35 records with checkpoints at 20 and 35, signed by a fresh key. */
async function checkpointed(t: TestContext): Promise<{ dir: string; key: SigningKey }> {
  const dir = tempDir(t);
  const key = loadOrCreateSigningKey(defaultSigningKeyPath(dir));
  const store = openSqliteLedger(dir);
  store.append(Array.from({ length: 20 }, (_, i) => sampleEntry(i + 1)));
  const source = sqliteCheckpoints(ledgerPath(dir));
  await makeCheckpoint(source, key);
  store.append(Array.from({ length: 15 }, (_, i) => sampleEntry(i + 21)));
  await makeCheckpoint(source, key);
  source.close();
  store.close();
  return { dir, key };
}

function tamper(dir: string, sql: (db: Database.Database) => void): void {
  const db = new Database(ledgerPath(dir));
  try {
    sql(db);
  } finally {
    db.close();
  }
}

/** A careful attacker: after changing records, recompute every chain hash so the chain alone verifies. */
function rehashAll(db: Database.Database): void {
  const rows = db
    .prepare<[], { seq: number; entry: string }>("SELECT seq, entry FROM records ORDER BY seq")
    .all();
  const update = db.prepare("UPDATE records SET seq = ?, prev_hash = ?, hash = ? WHERE seq = ?");
  let prev = "0".repeat(64);
  rows.forEach((row, i) => {
    const hash = chainHash(prev, row.entry);
    update.run(i + 1, prev, hash, row.seq);
    prev = hash;
  });
}

test("checkpoints are signed tree heads over the records; proofs of inclusion and consistency check independently", async (t) => {
  const { dir, key } = await checkpointed(t);
  const source = sqliteCheckpoints(ledgerPath(dir), { readonly: true });
  t.after(() => source.close());
  const stored = await source.checkpoints();
  assert.deepEqual(
    stored.map((c) => c.sth.tree_size),
    [20, 35],
  );
  for (const c of stored) assert.equal(verifyTreeHead(c.sth, key.publicKey).ok, true);

  for (const n of [1, 7, 20, 21, 35]) {
    const id = sampleEntry(n).id;
    const evidence = await proveInclusion(source, id);
    assert.equal(evidence.seq, n);
    assert.equal(evidence.tree_size, 35);
    // Checked from the evidence alone: the leaf is the entry's hash, the path leads to the signed root.
    assert.equal(evidence.leaf_hash, leafHash(evidence.entry).toString("hex"));
    assert.equal(JSON.parse(evidence.entry).id, id);
    const check = verifyInclusion(
      fromHex(evidence.leaf_hash),
      evidence.leaf_index,
      evidence.tree_size,
      proofFromHex(evidence.inclusion_proof),
      fromHex(evidence.checkpoint.root_hash),
    );
    assert.deepEqual(check, { ok: true });
  }
  const old = await proveInclusion(source, sampleEntry(3).id, 20);
  assert.equal(old.tree_size, 20);
  await assert.rejects(
    proveInclusion(source, sampleEntry(30).id, 20),
    (e: WardenError) => e.code === "WARDEN_ERR_DECISION_NOT_FOUND",
  );
  await assert.rejects(proveInclusion(source, sampleEntry(3).id, 25), /no checkpoint of size 25/);

  const consistency = await proveConsistency(source, 20, 35);
  assert.deepEqual(
    verifyConsistency(
      20,
      35,
      fromHex(consistency.old_checkpoint.root_hash),
      fromHex(consistency.new_checkpoint.root_hash),
      proofFromHex(consistency.consistency_proof),
    ),
    { ok: true },
  );
  const full = await verifyLedgerFully({ kind: "sqlite", dataDir: dir }, { publicKey: key.publicKey });
  assert.deepEqual(full, {
    chain: { ok: true, count: 35 },
    checkpoints: 2,
    latestCheckpoint: 35,
    signaturesChecked: true,
  });
});

test("a checkpoint with nothing new returns the last one; a broken chain is never signed", async (t) => {
  const { dir, key } = await checkpointed(t);
  const source = sqliteCheckpoints(ledgerPath(dir));
  t.after(() => source.close());
  const again = await makeCheckpoint(source, key);
  assert.equal(again.sth.tree_size, 35);
  const all = await source.checkpoints();
  assert.equal(all.length, 2);
  // The latest (what the next checkpoint extends) is the largest tree, read alone.
  assert.deepEqual(await source.latestCheckpoint(), all[1]);
  const store = openSqliteLedger(dir);
  store.append([sampleEntry(36)]);
  store.close();
  tamper(dir, (db) =>
    db.exec(`UPDATE records SET entry = replace(entry, '"req-36"', '"req-x"') WHERE seq = 36`),
  );
  await assert.rejects(
    makeCheckpoint(source, key),
    /refusing to sign a checkpoint: record 36: hash mismatch/,
  );
});

/**
 * The Merkle root over every record of an SQLite ledger, its leaves hashed here with node:crypto directly
 * (SHA-256 of 0x00 ‖ the entry's UTF-8 bytes), not with the code under test.
 */
function rootOfLedger(dir: string): string {
  const db = new Database(ledgerPath(dir), { readonly: true });
  try {
    const entries = db.prepare<[], { entry: string }>("SELECT entry FROM records ORDER BY seq").all();
    const leaves = entries.map((r) =>
      createHash("sha256")
        .update(Buffer.from([0]))
        .update(r.entry, "utf8")
        .digest(),
    );
    return toHex(rootOf(leaves));
  } finally {
    db.close();
  }
}

/** A checkpoint source that counts the records it hands out, and the queries (their limits). */
function counting(source: CheckpointSource): CheckpointSource & { read: number; limits: number[] } {
  const counted = {
    ...source,
    read: 0,
    limits: [] as number[],
    page: async (afterSeq: number, limit: number) => {
      const rows = await source.page(afterSeq, limit);
      counted.read += rows.length;
      counted.limits.push(limit);
      return rows;
    },
  };
  return counted;
}

test("a checkpoint builder reads only the records committed since its last reading, page by page, and signs the tree of them all", async (t) => {
  const dir = tempDir(t);
  const key = loadOrCreateSigningKey(defaultSigningKeyPath(dir));
  const store = openSqliteLedger(dir);
  t.after(() => store.close());
  const plain = sqliteCheckpoints(ledgerPath(dir));
  t.after(() => plain.close());
  const source = counting(plain);
  const append = (from: number, count: number) =>
    store.append(Array.from({ length: count }, (_, i) => sampleEntry(from + i)));

  // More than one page (512 records) at a time, and readings between appends.
  append(1, 700);
  const builder = await CheckpointBuilder.open(source);
  assert.equal(await builder.catchUp(), 700);
  assert.equal(source.read, 700);
  assert.deepEqual(source.limits, [512, 512], "two queries of at most 512 records");
  append(701, 600);
  assert.equal(await builder.catchUp(), 1300);
  assert.equal(source.read, 1300, "only the new records were read");
  assert.equal(await builder.catchUp(), 1300);
  const signed = await builder.sign(key);
  assert.equal(signed.sth.tree_size, 1300);
  assert.equal(signed.sth.root_hash, rootOfLedger(dir));
  assert.equal(verifyTreeHead(signed.sth, key.publicKey).ok, true);
  assert.equal(source.read, 1301, "and the last record once more, to see it is still there");
  assert.deepEqual(await builder.sign(key), signed, "nothing new: the same checkpoint");
  assert.equal((await plain.checkpoints()).length, 1);

  // A builder opened later goes on from the stored checkpoint: its last record, then the new ones.
  append(1301, 5);
  const restored = counting(plain);
  const later = await CheckpointBuilder.open(restored);
  assert.equal(later.size, 1300);
  const next = await later.sign(key);
  assert.equal(restored.read, 7);
  assert.equal(next.sth.tree_size, 1305);
  assert.equal(next.sth.root_hash, rootOfLedger(dir));
  // makeCheckpoint signs the same tree.
  append(1306, 3);
  assert.equal((await makeCheckpoint(plain, key)).sth.root_hash, rootOfLedger(dir));
});

test("a checkpoint builder refuses a broken chain by the verifier's words, even across a page, and stays at the last good record", async (t) => {
  const dir = tempDir(t);
  const key = loadOrCreateSigningKey(defaultSigningKeyPath(dir));
  const store = openSqliteLedger(dir);
  store.append(Array.from({ length: 1100 }, (_, i) => sampleEntry(i + 1)));
  store.close();
  const source = sqliteCheckpoints(ledgerPath(dir));
  t.after(() => source.close());
  // Record 512 ends the first page: naming what was altered needs record 513, on the next.
  tamper(dir, (db) =>
    db.exec(`UPDATE records SET entry = replace(entry, '"req-512"', '"req-x"') WHERE seq = 512`),
  );
  const builder = await CheckpointBuilder.open(source);
  await assert.rejects(builder.catchUp(), /record 512: hash mismatch: record content was altered/);
  assert.equal(builder.size, 511);
  await assert.rejects(builder.sign(key), /refusing to sign a checkpoint: record 512: hash mismatch/);
  assert.deepEqual(await source.checkpoints(), []);
  tamper(dir, (db) =>
    db.exec(`UPDATE records SET entry = replace(entry, '"req-x"', '"req-512"') WHERE seq = 512`),
  );
  assert.equal((await builder.sign(key)).sth.tree_size, 1100, "repaired: it goes on from record 512");
  assert.equal((await source.latestCheckpoint())?.sth.root_hash, rootOfLedger(dir));

  // The last checkpoint's own record gone: nothing to continue the chain from.
  const links = tempDir(t);
  const second = openSqliteLedger(links);
  second.append(Array.from({ length: 10 }, (_, i) => sampleEntry(i + 1)));
  second.close();
  const linked = sqliteCheckpoints(ledgerPath(links));
  t.after(() => linked.close());
  await makeCheckpoint(linked, key);
  tamper(links, (db) => db.exec("DELETE FROM records WHERE seq = 10"));
  tamper(links, (db) =>
    db.exec(
      `INSERT INTO records SELECT 11, id || 'b', kind, time, model, version, entry, hash, hash FROM records WHERE seq = 9`,
    ),
  );
  await assert.rejects(
    makeCheckpoint(linked, key),
    /refusing to sign a checkpoint: record 10: missing: the last checkpoint's last record is not in the ledger/,
  );
});

test("a checkpoint builder never signs past the ledger's end: records lost after it read them are read afresh from the stored checkpoint", async (t) => {
  const dir = tempDir(t);
  const key = loadOrCreateSigningKey(defaultSigningKeyPath(dir));
  const store = openSqliteLedger(dir);
  store.append(Array.from({ length: 600 }, (_, i) => sampleEntry(i + 1)));
  store.close();
  const source = sqliteCheckpoints(ledgerPath(dir));
  t.after(() => source.close());
  const builder = await CheckpointBuilder.open(source);
  assert.equal((await builder.sign(key)).sth.tree_size, 600);
  // Records 101 to 600 committed; then 601 to 1000 read, and lost (a restore from a backup, a lagging replica).
  const more = openSqliteLedger(dir);
  more.append(Array.from({ length: 400 }, (_, i) => sampleEntry(i + 601)));
  more.close();
  assert.equal(await builder.catchUp(), 1000);
  tamper(dir, (db) => db.exec("DELETE FROM records WHERE seq > 990"));
  const signed = await builder.sign(key);
  assert.equal(signed.sth.tree_size, 990);
  assert.equal(signed.sth.root_hash, rootOfLedger(dir));
  // Read on to 1390; then 1381 to 1390 lost and the ledger grown again past them, with other records.
  const again = openSqliteLedger(dir);
  again.append(Array.from({ length: 400 }, (_, i) => sampleEntry(i + 2001)));
  again.close();
  assert.equal(await builder.catchUp(), 1390);
  tamper(dir, (db) => db.exec("DELETE FROM records WHERE seq > 1380"));
  const regrown = openSqliteLedger(dir);
  regrown.append(Array.from({ length: 20 }, (_, i) => sampleEntry(i + 3001)));
  regrown.close();
  await assert.rejects(builder.catchUp(), /record 1391: broken link/, "what it read no longer continues");
  const grown = await builder.sign(key);
  assert.equal(grown.sth.tree_size, 1400);
  assert.equal(grown.sth.root_hash, rootOfLedger(dir));
  const full = await verifyLedgerFully({ kind: "sqlite", dataDir: dir }, { publicKey: key.publicKey });
  assert.deepEqual(full.chain, { ok: true, count: 1400 });
  assert.equal(full.checkpointProblem, undefined);
});

test("a checkpoint builder goes on from a larger checkpoint another signer stored, answers the stored one when it has nothing more, and runs overlapping calls in turn", async (t) => {
  const dir = tempDir(t);
  const key = loadOrCreateSigningKey(defaultSigningKeyPath(dir));
  const store = openSqliteLedger(dir);
  t.after(() => store.close());
  store.append(Array.from({ length: 100 }, (_, i) => sampleEntry(i + 1)));
  const source = sqliteCheckpoints(ledgerPath(dir));
  t.after(() => source.close());
  const builder = await CheckpointBuilder.open(source);
  assert.equal(await builder.catchUp(), 100);
  // Another signer (`warden ledger checkpoint`) signs 100 + 512 records: a restored first page exactly full.
  store.append(Array.from({ length: 512 }, (_, i) => sampleEntry(i + 101)));
  const other = await makeCheckpoint(source, key);
  assert.equal(other.sth.tree_size, 612);
  // An hour later: a head signed now would carry another time.
  const later = new Date(Date.now() + 3_600_000);
  assert.deepEqual(
    await builder.sign(key, later),
    other,
    "the stored one, not a second head of the same size",
  );
  store.append(Array.from({ length: 300 }, (_, i) => sampleEntry(i + 613)));
  const [a, b, signed] = await Promise.all([builder.catchUp(), builder.catchUp(), builder.sign(key)]);
  assert.deepEqual([a, b, signed.sth.tree_size], [912, 912, 912]);
  assert.equal(signed.sth.root_hash, rootOfLedger(dir));
  assert.equal((await source.checkpoints()).length, 2);
});

/** Each way of falsifying the ledger, done with the chain recomputed so that the chain alone still verifies. */
const attacks: Record<string, (db: Database.Database) => void> = {
  "an edited record": (db) => {
    db.exec(`UPDATE records SET entry = replace(entry, '"client-42"', '"client-43"') WHERE seq = 12`);
    rehashAll(db);
  },
  "two records reordered": (db) => {
    db.exec("UPDATE records SET seq = -1 WHERE seq = 5");
    db.exec("UPDATE records SET seq = 5 WHERE seq = 9");
    db.exec("UPDATE records SET seq = 9 WHERE seq = -1");
    rehashAll(db);
  },
  "a deleted record (the rest renumbered)": (db) => {
    db.exec("DELETE FROM records WHERE seq = 15");
    rehashAll(db);
  },
  "records cut off the end": (db) => {
    db.exec("DELETE FROM records WHERE seq > 30");
  },
};

for (const [attack, apply] of Object.entries(attacks)) {
  test(`signed checkpoints detect ${attack}, which the recomputed chain hides`, async (t) => {
    const { dir, key } = await checkpointed(t);
    tamper(dir, apply);
    const full = await verifyLedgerFully({ kind: "sqlite", dataDir: dir }, { publicKey: key.publicKey });
    assert.equal(full.chain.ok, true, "the chain alone was made to verify");
    assert.ok(full.checkpointProblem, `${attack} went unnoticed`);
    assert.match(full.checkpointProblem.reason, /do not match the checkpoint's Merkle root|truncated/);
  });
}

test("a forged or re-signed checkpoint is refused by its signature", async (t) => {
  const { dir, key } = await checkpointed(t);
  tamper(dir, (db) => {
    const row = db.prepare<[], { sth: string }>("SELECT sth FROM checkpoints WHERE tree_size = 20").get()!;
    const sth = JSON.parse(row.sth);
    sth.root_hash = "00".repeat(32);
    db.prepare("UPDATE checkpoints SET sth = ? WHERE tree_size = 20").run(JSON.stringify(sth));
  });
  let full = await verifyLedgerFully({ kind: "sqlite", dataDir: dir }, { publicKey: key.publicKey });
  assert.equal(full.checkpointProblem?.tree_size, 20);
  assert.match(full.checkpointProblem!.reason, /bad-signature/);

  // Someone with another key rewrites the ledger and signs fresh checkpoints: the operator's key refuses them.
  const other = tempDir(t);
  const { dir: second } = await checkpointed(t);
  const stranger = loadOrCreateSigningKey(join(other, "k.pem"));
  tamper(second, (db) => db.exec("DELETE FROM checkpoints"));
  const source = sqliteCheckpoints(ledgerPath(second));
  await makeCheckpoint(source, stranger);
  source.close();
  full = await verifyLedgerFully({ kind: "sqlite", dataDir: second }, { publicKey: key.publicKey });
  assert.match(full.checkpointProblem?.reason ?? "", /key-id-mismatch/);
});

test("PostgreSQL: checkpoints and proofs work the same on a shared ledger", async (t) => {
  const { TEST_POSTGRES_URL, dropSchema, uniqueSchema } = await import("./testkit-postgres.js");
  const { prepareEntry } = await import("./sqlite-store.js");
  const schema = uniqueSchema();
  t.after(() => dropSchema(schema));
  const location = { kind: "postgres", url: TEST_POSTGRES_URL, schema } as const;
  const key = loadOrCreateSigningKey(join(tempDir(t), "k.pem"));
  const store = await openLedgerBackend(location);
  await store.appendPrepared(Array.from({ length: 10 }, (_, i) => prepareEntry(sampleEntry(i + 1))));
  await makeCheckpoint(store.checkpoints, key);
  await store.appendPrepared(Array.from({ length: 6 }, (_, i) => prepareEntry(sampleEntry(i + 11))));
  await makeCheckpoint(store.checkpoints, key);
  assert.equal((await store.checkpoints.latestCheckpoint())?.sth.tree_size, 16);
  assert.deepEqual(await store.checkpoints.latestCheckpoint(), (await store.checkpoints.checkpoints())[1]);
  const evidence = await proveInclusion(store.checkpoints, sampleEntry(4).id);
  assert.equal(evidence.tree_size, 16);
  const consistency = await proveConsistency(store.checkpoints, 10, 16);
  assert.equal(consistency.new_checkpoint.tree_size, 16);
  await store.close();
  const full = await verifyLedgerFully(location, { publicKey: key.publicKey });
  assert.deepEqual(full, {
    chain: { ok: true, count: 16 },
    checkpoints: 2,
    latestCheckpoint: 16,
    signaturesChecked: true,
  });
  const { sql } = await import("./testkit-postgres.js");
  await sql(`DELETE FROM "${schema}".records WHERE seq > 12`);
  await sql(`UPDATE "${schema}".head SET seq = 12`);
  const cut = await verifyLedgerFully(location, { publicKey: key.publicKey });
  assert.match(cut.checkpointProblem?.reason ?? "", /truncated/);
});
