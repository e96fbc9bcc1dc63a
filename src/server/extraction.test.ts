import assert from "node:assert/strict";
import { test } from "node:test";
import { validateInstance } from "../decision/index.js";
import { createExtractionDefences, type ExtractionAlert } from "../security/index.js";
import { DEMO_XGB, holdoutInstances, loadManifest, startTestServer } from "../testing/index.js";

const HOUR = 3_600_000;
const manifest = loadManifest(DEMO_XGB);
const valid = holdoutInstances(manifest).filter(
  (c) => validateInstance(manifest, c.features, c.subject, "").instance !== undefined,
);

test("the query budget: refuses what would pass it, alerts from its share, refills as hours leave the window", () => {
  let now = 100 * HOUR;
  const alerts: ExtractionAlert[] = [];
  const d = createExtractionDefences(
    {
      perDay: 10,
      alertShare: 0.8,
      probing: { enabled: false, window: 10, share: 0.5, minObservations: 5, tolerance: 0 },
      now: () => now,
    },
    (a) => alerts.push(a),
  );
  assert.deepEqual(d.admit("key:a", "m", 6), { allowed: true });
  assert.equal(alerts.length, 0);
  assert.deepEqual(d.admit("key:a", "m", 2), { allowed: true });
  assert.deepEqual(
    alerts.map((a) => [a.kind, a.status]),
    [["budget", "firing"]],
  );
  const refused = d.admit("key:a", "m", 3);
  assert.equal(refused.allowed, false);
  if (!refused.allowed) {
    assert.equal(refused.used, 8);
    assert.equal(refused.retryAfterSeconds, 3600);
  }
  // Another caller, another model: budgets of their own.
  assert.deepEqual(d.admit("key:b", "m", 10), { allowed: true });
  assert.deepEqual(d.admit("key:a", "other", 10), { allowed: true });
  // A day later the first hour has left the window: the budget is whole again and the episode ends.
  now += 24 * HOUR;
  assert.deepEqual(d.admit("key:a", "m", 1), { allowed: true });
  assert.ok(alerts.some((a) => a.caller === "key:a" && a.model === "m" && a.status === "resolved"));
  assert.equal(d.state("key:a", "m").used, 1);
});

test("probing: one-feature sweeps raise the share of near-identical rows; ordinary traffic does not", () => {
  const alerts: ExtractionAlert[] = [];
  const d = createExtractionDefences(
    {
      perDay: 0,
      alertShare: 0.8,
      probing: { enabled: true, window: 50, share: 0.5, minObservations: 20, tolerance: 0.01 },
    },
    (a) => alerts.push(a),
  );
  const scales = manifest.modelFeatures.map((f) => ({
    range: f.min !== undefined && f.max !== undefined ? f.max - f.min : undefined,
  }));
  const rows = valid.map((c) => validateInstance(manifest, c.features, c.subject, "").instance!.row);
  for (const row of rows.slice(0, 50)) d.observe("key:honest", "m", row, scales);
  assert.ok(d.state("key:honest", "m").nearShare < 0.2, `honest: ${d.state("key:honest", "m").nearShare}`);
  const amount = manifest.modelFeatures.findIndex((f) => f.name === "Amount");
  for (let k = 0; k < 50; k++) {
    const row = Float32Array.from(rows[0]!);
    row[amount] = 100 + k * 200;
    d.observe("key:prober", "m", row, scales);
  }
  assert.ok(d.state("key:prober", "m").nearShare > 0.9);
  assert.deepEqual(
    alerts.map((a) => [a.kind, a.caller, a.status]),
    [["probing", "key:prober", "firing"]],
  );
});

test("past max_callers the least recently seen caller is forgotten: a fresh budget, its open episode resolved", () => {
  const alerts: ExtractionAlert[] = [];
  const d = createExtractionDefences(
    {
      perDay: 10,
      alertShare: 0.5,
      maxCallers: 3,
      probing: { enabled: true, window: 10, share: 0.5, minObservations: 5, tolerance: 0 },
    },
    (a) => alerts.push(a),
  );
  const row = Float32Array.from(
    valid.map((c) => validateInstance(manifest, c.features, c.subject, "").instance!.row)[0]!,
  );
  // a: budget alert firing; b, c: some use; then a is seen again, so b is the least recently seen.
  assert.deepEqual(d.admit("key:a", "m", 6), { allowed: true });
  assert.deepEqual(d.admit("key:b", "m", 4), { allowed: true });
  assert.deepEqual(d.admit("key:c", "m", 4), { allowed: true });
  assert.deepEqual(d.admit("key:a", "m", 1), { allowed: true });
  assert.deepEqual(
    alerts.map((a) => [a.kind, a.caller, a.status]),
    [["budget", "key:a", "firing"]],
  );
  // A fourth caller: b is forgotten (it had no episode open); a and c keep their counts.
  assert.deepEqual(d.admit("key:d", "m", 1), { allowed: true });
  assert.equal(d.state("key:b", "m").used, 0);
  assert.equal(d.state("key:a", "m").used, 7);
  assert.equal(d.state("key:c", "m").used, 4);
  // b comes back with its whole budget, which pushes out c; then e pushes out a, whose episode is resolved.
  assert.deepEqual(d.admit("key:b", "m", 4), { allowed: true });
  assert.equal(d.state("key:c", "m").used, 0);
  assert.deepEqual(d.admit("key:e", "m", 1), { allowed: true });
  assert.deepEqual(
    alerts.map((a) => [a.kind, a.caller, a.status]),
    [
      ["budget", "key:a", "firing"],
      ["budget", "key:a", "resolved"],
    ],
  );
  // Probing windows are bounded the same way: a prober's firing episode ends when it is forgotten.
  for (let k = 0; k < 10; k++) d.observe("key:p", "m", row, []);
  assert.equal(alerts.at(-1)?.status, "firing");
  assert.equal(alerts.at(-1)?.kind, "probing");
  for (const caller of ["key:x", "key:y", "key:z"]) d.observe(caller, "m", row, []);
  assert.deepEqual(
    [alerts.at(-1)?.kind, alerts.at(-1)?.caller, alerts.at(-1)?.status],
    ["probing", "key:p", "resolved"],
  );
  assert.equal(d.state("key:p", "m").rows, 0);
  // Many callers in turn: never more than three kept, and each new one gets its whole budget.
  for (let i = 0; i < 10_000; i++) assert.deepEqual(d.admit(`key:n${i}`, "m", 10), { allowed: true });
  assert.equal(d.state("key:n9999", "m").used, 10);
  assert.equal(d.state("key:n0", "m").used, 0);
});

test("through the server: 429 past the budget, and budget and probing alerts in the alert sink", async () => {
  const server = await startTestServer({
    config: {
      auth: { required: true },
      extraction: { daily_budget: 60, probing: { window: 40, min_observations: 20, share: 0.5 } },
    },
  });
  try {
    const honest = server.keys.create({ name: "honest", role: "client", createdBy: "test" }).key;
    const prober = server.keys.create({ name: "prober", role: "client", createdBy: "test" }).key;
    const decide = (key: string, instances: unknown[]) =>
      fetch(`${server.url}/v1/models/credit-demo/decisions`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${key}` },
        body: JSON.stringify({ instances }),
      });
    const ordinary = valid.slice(0, 40).map((c) => ({ features: c.features, subject: c.subject }));
    assert.equal((await decide(honest, ordinary)).status, 200);
    const sweep = Array.from({ length: 40 }, (_, k) => ({
      features: { ...valid[0]!.features, Amount: 100 + k * 250 },
      subject: valid[0]!.subject,
    }));
    assert.equal((await decide(prober, sweep)).status, 200);
    const over = await decide(honest, ordinary);
    assert.equal(over.status, 429);
    assert.ok(Number(over.headers.get("retry-after")) >= 1);
    const error = (await over.json()) as { code: string; error: string };
    assert.equal(error.code, "WARDEN_ERR_QUERY_BUDGET");
    assert.match(error.error, /40 of 60 instances in 24 hours/);
    await server.alerts.settled();
    const firing = server.alerts.firing().map((a) => [a.labels.alertname, a.labels.caller]);
    assert.ok(
      firing.some(([name, caller]) => name === "WardenSystematicProbing" && caller?.startsWith("key:")),
      JSON.stringify(firing),
    );
    assert.ok(
      firing.some(([name]) => name === "WardenQueryBudget"),
      JSON.stringify(firing),
    );
    const probing = server.alerts.firing().filter((a) => a.labels.alertname === "WardenSystematicProbing");
    assert.equal(probing.length, 1, "only the prober");
  } finally {
    await server.stop();
  }
});
