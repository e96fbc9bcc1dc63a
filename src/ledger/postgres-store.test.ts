import assert from "node:assert/strict";
import { test } from "node:test";
import pg from "pg";
import type { WardenError } from "../errors/index.js";
import { openLedgerBackend, verifyLedgerAt } from "./backend.js";
import { linkedQuery, reviewSourcesQuery } from "./postgres-store.js";
import { prepareEntry } from "./sqlite-store.js";
import { storeSuite } from "./store-suite.js";
import { sampleEntry, tempDir } from "./testkit.js";
import { dropSchema, sql, TEST_POSTGRES_URL, uniqueSchema } from "./testkit-postgres.js";
import { startLedgerThread } from "./thread-writer.js";

storeSuite("PostgreSQL", async () => {
  const schema = uniqueSchema();
  const location = { kind: "postgres", url: TEST_POSTGRES_URL, schema } as const;
  const store = await openLedgerBackend(location);
  return {
    store,
    reopen: () => openLedgerBackend(location),
    verify: () => verifyLedgerAt(location),
    dispose: async () => {
      await store.close();
      await dropSchema(schema);
    },
  };
});

test("PostgreSQL: the schema is migrated once, even by processes opening it together", async (t) => {
  const schema = uniqueSchema();
  t.after(() => dropSchema(schema));
  const location = { kind: "postgres", url: TEST_POSTGRES_URL, schema } as const;
  const stores = await Promise.all(Array.from({ length: 4 }, () => openLedgerBackend(location)));
  await Promise.all(stores.map((s) => s.close()));
  const migrations = await sql<{ version: number }>(`SELECT version FROM "${schema}".schema_migrations`);
  assert.deepEqual(
    migrations.map((m) => m.version),
    [1, 2, 3],
  );
});

test("PostgreSQL: linked reads through records_linked, reviewSources a range of the primary key", async (t) => {
  const schema = uniqueSchema();
  t.after(() => dropSchema(schema));
  const store = await openLedgerBackend({ kind: "postgres", url: TEST_POSTGRES_URL, schema });
  await store.close();
  const client = new pg.Client({ connectionString: TEST_POSTGRES_URL });
  await client.connect();
  try {
    // An empty table is read faster by a scan: forbid that, to see that the index matches the query.
    await client.query("SET enable_seqscan = off");
    const { rows } = await client.query<{ "QUERY PLAN": string }>(`EXPLAIN ${linkedQuery(`"${schema}"`)}`, [
      "x",
      0,
      null,
    ]);
    assert.match(rows.map((r) => r["QUERY PLAN"]).join("\n"), /records_linked/);
    const sources = await client.query<{ "QUERY PLAN": string }>(
      `EXPLAIN ${reviewSourcesQuery(`"${schema}"`)}`,
      [0, 10],
    );
    assert.match(sources.rows.map((r) => r["QUERY PLAN"]).join("\n"), /records_pkey/);
  } finally {
    await client.end();
  }
});

test("PostgreSQL: migration 3 fills the link column of records stored before it, and verification checks the column", async (t) => {
  const schema = uniqueSchema();
  t.after(() => dropSchema(schema));
  const location = { kind: "postgres", url: TEST_POSTGRES_URL, schema } as const;
  const store = await openLedgerBackend(location);
  const decision = sampleEntry(1);
  const outcome = sampleEntry(2, { kind: "outcome", body: { decision_id: decision.id, outcome: "bad" } });
  const appeal = sampleEntry(4, { kind: "appeal", body: { decision_id: decision.id, reason: "x\u0000" } });
  await store.appendPrepared([decision, outcome, sampleEntry(3), appeal].map(prepareEntry));
  await store.close();
  // As a ledger at migration 2 was: no column, no index, no record of migration 3.
  await sql(
    `DROP INDEX "${schema}".records_linked; ALTER TABLE "${schema}".records DROP COLUMN decision_id; DELETE FROM "${schema}".schema_migrations WHERE version = 3`,
  );
  const migrated = await openLedgerBackend(location);
  try {
    assert.deepEqual(
      (await migrated.linked(decision.id)).map((r) => r.seq),
      [2, 4],
    );
  } finally {
    await migrated.close();
  }
  assert.deepEqual(await verifyLedgerAt(location), { ok: true, count: 4 });
  // The column is outside the hashed text: changing it (hiding an appeal from the history) is found.
  await sql(`UPDATE "${schema}".records SET decision_id = NULL WHERE seq = 4`);
  const result = await verifyLedgerAt(location);
  assert.equal(result.ok, false);
  assert.equal(!result.ok && result.firstBad.seq, 4);
  assert.match(!result.ok ? result.firstBad.reason : "", /decision_id/);
  await sql(`UPDATE "${schema}".records SET decision_id = 'someone-else' WHERE seq = 3`);
  const again = await verifyLedgerAt(location);
  assert.equal(!again.ok && again.firstBad.seq, 3);
});

test("PostgreSQL: several writers appending at once keep one verifiable chain", async (t) => {
  const schema = uniqueSchema();
  t.after(() => dropSchema(schema));
  const location = { kind: "postgres", url: TEST_POSTGRES_URL, schema } as const;
  const writers = await Promise.all(
    [1, 2, 3, 4].map((w) => openLedgerBackend(location, { writer: `writer-${w}` })),
  );
  // Each writer appends 20 batches of 25, all interleaved.
  await Promise.all(
    writers.map(async (store, w) => {
      for (let b = 0; b < 20; b++) {
        const from = w * 100_000 + b * 25 + 1;
        await store.appendPrepared(Array.from({ length: 25 }, (_, i) => prepareEntry(sampleEntry(from + i))));
      }
    }),
  );
  await Promise.all(writers.map((s) => s.close()));
  assert.deepEqual(await verifyLedgerAt(location), { ok: true, count: 2000 });
  const byWriter = await sql<{ writer: string; n: string }>(
    `SELECT writer, count(*) AS n FROM "${schema}".records GROUP BY writer ORDER BY writer`,
  );
  assert.deepEqual(
    byWriter.map((r) => [r.writer, Number(r.n)]),
    [
      ["writer-1", 500],
      ["writer-2", 500],
      ["writer-3", 500],
      ["writer-4", 500],
    ],
  );
});

test("PostgreSQL: edits, reordering, deletion and truncation are detected", async (t) => {
  const schema = uniqueSchema();
  t.after(() => dropSchema(schema));
  const location = { kind: "postgres", url: TEST_POSTGRES_URL, schema } as const;
  const reset = async () => {
    await sql(`TRUNCATE "${schema}".records`);
    await sql(`UPDATE "${schema}".head SET seq = 0, hash = $1`, ["0".repeat(64)]);
    const store = await openLedgerBackend(location);
    const positions = await store.appendPrepared(
      Array.from({ length: 10 }, (_, i) => prepareEntry(sampleEntry(i + 1))),
    );
    await store.close();
    return positions;
  };
  const store = await openLedgerBackend(location);
  await store.close();

  await reset();
  await sql(
    `UPDATE "${schema}".records SET entry = replace(entry, '"client-42"', '"client-43"') WHERE seq = 4`,
  );
  let result = await verifyLedgerAt(location);
  assert.equal(result.ok, false);
  assert.equal(!result.ok && result.firstBad.seq, 4);

  await reset();
  // Swap the contents of records 3 and 6.
  await sql(`UPDATE "${schema}".records SET seq = -3 WHERE seq = 3`);
  await sql(`UPDATE "${schema}".records SET seq = 3 WHERE seq = 6`);
  await sql(`UPDATE "${schema}".records SET seq = 6 WHERE seq = -3`);
  result = await verifyLedgerAt(location);
  assert.equal(!result.ok && result.firstBad.seq, 3);

  await reset();
  await sql(`DELETE FROM "${schema}".records WHERE seq = 7`);
  result = await verifyLedgerAt(location);
  assert.equal(!result.ok && result.firstBad.seq, 7);
  assert.match(!result.ok ? result.firstBad.reason : "", /sequence gap/);

  const positions = await reset();
  await sql(`DELETE FROM "${schema}".records WHERE seq > 8`);
  // A chain alone cannot see a cut-off tail; the head kept elsewhere (an anchor) can.
  assert.deepEqual(await verifyLedgerAt(location), { ok: true, count: 8 });
  result = await verifyLedgerAt(location, { anchor: { seq: 10, hash: positions[9]!.hash } });
  assert.equal(!result.ok && result.firstBad.seq, 9);
  assert.match(!result.ok ? result.firstBad.reason : "", /truncated/);
});

test("PostgreSQL: an unreachable server or a bad schema name is a clear ledger error", async () => {
  await assert.rejects(
    openLedgerBackend({ kind: "postgres", url: "postgres://postgres@127.0.0.1:1/test" }),
    (e: WardenError) => e.code === "WARDEN_ERR_LEDGER" && /cannot open the PostgreSQL ledger/.test(e.message),
  );
  await assert.rejects(
    openLedgerBackend({ kind: "postgres", url: TEST_POSTGRES_URL, schema: "Robert'); DROP TABLE x;--" }),
    (e: WardenError) => e.code === "WARDEN_ERR_LEDGER" && e.details[0]?.field === "ledger.postgres.schema",
  );
});

test("PostgreSQL: the threaded writer journals, commits to PostgreSQL and replays after a failure", async (t) => {
  const schema = uniqueSchema();
  t.after(() => dropSchema(schema));
  const dir = tempDir(t);
  const location = { kind: "postgres", url: TEST_POSTGRES_URL, schema } as const;
  const writer = await startLedgerThread(dir, { location });
  await Promise.all(Array.from({ length: 300 }, (_, i) => writer.write(sampleEntry(i + 1))));
  await writer.drain();
  assert.equal(writer.stats().entriesWritten, 300);
  await writer.close();
  assert.deepEqual(await verifyLedgerAt(location), { ok: true, count: 300 });
});

test("PostgreSQL: a stalled store fills the writer's backlog; past maxBacklog writes are refused at once, and every accepted entry is committed once the store resumes", async (t) => {
  const schema = uniqueSchema();
  t.after(() => dropSchema(schema));
  const dir = tempDir(t);
  const location = { kind: "postgres", url: TEST_POSTGRES_URL, schema } as const;
  const writer = await startLedgerThread(dir, { location, maxBacklog: 50, maxBatch: 10, commitDelayMs: 0 });
  // Another session holds the chain's head row: every append waits for it.
  const holder = new pg.Client({ connectionString: TEST_POSTGRES_URL });
  await holder.connect();
  try {
    await holder.query("BEGIN");
    await holder.query(`SELECT seq FROM "${schema}".head FOR UPDATE`);
    let accepted = 0;
    const refusals: WardenError[] = [];
    for (let i = 1; i <= 120; i++) {
      try {
        await writer.write(sampleEntry(i));
        accepted += 1;
      } catch (error) {
        refusals.push(error as WardenError);
      }
    }
    assert.equal(accepted, 50, "accepted up to the backlog");
    assert.equal(refusals.length, 70);
    assert.ok(refusals.every((e) => e.code === "WARDEN_ERR_LEDGER_BUSY" && e.status === 503));
    assert.equal(refusals[0]!.retryAfterSeconds, 1);
    assert.equal(writer.backlogged(), true);
    assert.deepEqual(
      {
        queued: writer.stats().queued,
        refused: writer.stats().refused,
        written: writer.stats().entriesWritten,
      },
      { queued: 50, refused: 70, written: 0 },
    );
    await holder.query("COMMIT");
    await writer.drain();
    assert.equal(writer.backlogged(), false);
    assert.equal(writer.stats().entriesWritten, 50);
    await writer.write(sampleEntry(1000));
    await writer.close();
  } finally {
    await holder.end().catch(() => undefined);
  }
  assert.deepEqual(await verifyLedgerAt(location), { ok: true, count: 51 });
});

test("PostgreSQL: warden ledger export reads a PostgreSQL ledger", async (t) => {
  const { main } = await import("../cli/index.js");
  const schema = uniqueSchema();
  t.after(() => dropSchema(schema));
  const location = { kind: "postgres", url: TEST_POSTGRES_URL, schema } as const;
  const store = await openLedgerBackend(location);
  await store.appendPrepared(Array.from({ length: 5 }, (_, i) => prepareEntry(sampleEntry(i + 1))));
  await store.close();
  let stdout = "";
  const code = await main(
    [
      "ledger",
      "export",
      "--postgres-url",
      TEST_POSTGRES_URL,
      "--postgres-schema",
      schema,
      "--format",
      "ndjson",
    ],
    { stdout: (text) => (stdout += text), stderr: () => {} },
  );
  assert.equal(code, 0);
  const lines = stdout
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as { seq: number; id: string });
  assert.deepEqual(
    lines.map((l) => [l.seq, l.id]),
    Array.from({ length: 5 }, (_, i) => [i + 1, sampleEntry(i + 1).id]),
  );
  const bad = await main(["ledger", "export", "--postgres-url", "mysql://x"], {
    stdout: () => {},
    stderr: () => {},
  });
  assert.equal(bad, 2);
});
