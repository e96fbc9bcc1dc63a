/**
 * Back-pressure from the ledger: when its store stalls (here another PostgreSQL session holds the chain's head
 * row), answered decisions wait to be committed; past `ledger.max_backlog` the server refuses new decisions
 * with 503 and is not ready, and it serves again once the store catches up, every answered decision recorded.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import pg from "pg";
import { verifyLedgerAt } from "../ledger/index.js";
import { dropSchema, TEST_POSTGRES_URL, uniqueSchema } from "../ledger/testkit-postgres.js";
import { DEMO_XGB, holdoutInstances, loadManifest, startTestServer } from "../testing/index.js";

const manifest = loadManifest(DEMO_XGB);
const rows = holdoutInstances(manifest).slice(0, 400);

test("a stalled ledger store: past ledger.max_backlog decisions are refused with 503 before inference, readiness fails, and both recover", async (t) => {
  const schema = uniqueSchema();
  t.after(() => dropSchema(schema));
  const server = await startTestServer({
    config: { ledger: { postgres: { url: TEST_POSTGRES_URL, schema }, max_backlog: 1000 } },
  });
  const holder = new pg.Client({ connectionString: TEST_POSTGRES_URL });
  await holder.connect();
  try {
    const decide = (n: number) =>
      server.app.inject({
        method: "POST",
        url: "/v1/models/credit-demo/decisions",
        payload: { instances: rows.slice(0, n).map((r) => ({ features: r.features, subject: r.subject })) },
      });
    const ready = async () => (await server.app.inject({ url: "/v2/health/ready" })).statusCode;
    assert.equal(await ready(), 200);
    await server.writer.drain();
    await holder.query("BEGIN");
    await holder.query(`SELECT seq FROM "${schema}".head FOR UPDATE`);
    // 3 × 400 answered, waiting for their commit: the last of them crosses the backlog.
    let answered = 0;
    for (let i = 0; i < 3; i++) {
      const res = await decide(400);
      if (res.statusCode === 200) answered += 400;
    }
    assert.ok(server.writer.backlogged(), `backlog ${server.writer.stats().queued}`);
    const refused = await decide(1);
    assert.equal(refused.statusCode, 503, refused.body);
    assert.equal(refused.json().code, "WARDEN_ERR_LEDGER_BUSY");
    assert.equal(refused.headers["retry-after"], "1");
    assert.equal(await ready(), 503);
    const metrics = (await server.app.inject({ url: "/metrics" })).body;
    assert.match(metrics, /^warden_ledger_backlog \d{4}/m);
    // Counted as a failure to decide, like every other refusal of a decision request.
    assert.match(
      metrics,
      /^warden_failures_total\{model="credit-demo",version="1\.0\.0",reason="WARDEN_ERR_LEDGER_BUSY"\} [1-9]/m,
    );
    await holder.query("COMMIT");
    await server.writer.drain();
    assert.equal(await ready(), 200);
    assert.equal((await decide(1)).statusCode, 200);
    await server.writer.drain();
    const recorded = server.writer.stats().entriesWritten;
    assert.ok(recorded >= answered + 1, `${recorded} recorded, ${answered + 1} answered`);
  } finally {
    await holder.end().catch(() => undefined);
    await server.stop();
  }
  assert.equal((await verifyLedgerAt({ kind: "postgres", url: TEST_POSTGRES_URL, schema })).ok, true);
});
