import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { dirname } from "node:path";
import { after, before, test } from "node:test";
import { validateInstance } from "../decision/index.js";
import { profilePath, referenceProfileFromJSON } from "../monitor/index.js";
import { DEMO_XGB, HOLDOUT_CSV, holdoutInstances, loadManifest, startTestServer } from "../testing/index.js";

type Server = Awaited<ReturnType<typeof startTestServer>>;
let server: Server;

before(async () => {
  server = await startTestServer();
});
after(async () => {
  await server.stop();
});

const url = (path: string) => `${server.url}${path}`;

test("a model version has no profile until one is built; then GET returns what was stored", async () => {
  const missing = await fetch(url("/v1/models/credit-demo/versions/1.0.0/profile"));
  assert.equal(missing.status, 404);
  assert.equal(((await missing.json()) as { code: string }).code, "WARDEN_ERR_PROFILE_NOT_FOUND");

  const built = await fetch(url("/v1/admin/models/credit-demo/versions/1.0.0/profile"), {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ seed: 7 }),
  });
  assert.equal(built.status, 201);
  const answer = (await built.json()) as {
    stored: string;
    provenance: { referenceSha256: string; rows: number; seed: number; referenceFile: string };
    anomaly_threshold: number;
  };
  // The manifest's reference rows, by an independent count and hash of the file.
  const bytes = readFileSync(HOLDOUT_CSV);
  const lines = bytes.toString("utf8").trim().split("\n").length - 1;
  assert.equal(answer.provenance.referenceSha256, createHash("sha256").update(bytes).digest("hex"));
  assert.equal(answer.provenance.rows, lines);
  assert.equal(answer.provenance.seed, 7);
  assert.equal(answer.provenance.referenceFile, "holdout.csv");
  assert.ok(answer.anomaly_threshold > 0 && answer.anomaly_threshold <= 1);
  // Stored where `warden profile build` stores it, whole.
  assert.equal(answer.stored, profilePath(server.dataDir, "credit-demo", "1.0.0"));
  assert.ok(existsSync(answer.stored));

  // The build is an admin action in the ledger, with its actor.
  await server.writer.drain();
  const actions: Record<string, unknown>[] = [];
  for await (const r of server.ledger.scan()) if (r.kind === "access") actions.push(r.body);
  assert.equal(actions.at(-1)?.action, "profile_built");
  assert.equal((actions.at(-1)!.profile as { seed: number }).seed, 7);
  const read = await fetch(url("/v1/models/credit-demo/versions/1.0.0/profile"));
  assert.equal(read.status, 200);
  const profile = referenceProfileFromJSON(await read.json());
  assert.deepEqual(profile, referenceProfileFromJSON(JSON.parse(readFileSync(answer.stored, "utf8"))));
  assert.equal(profile.features.length, 11);
  const records = profile.features.find((f) => f.name === "Records")!;
  assert.equal(records.kind, "discrete");
});

test("a reference file that is not there, an unknown version and a bad body are refused clearly", async () => {
  const post = (path: string, body: unknown) =>
    fetch(url(path), {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
  const gone = await post("/v1/admin/models/credit-demo/versions/1.0.0/profile", {
    reference: "no-such.csv",
  });
  assert.equal(gone.status, 400);
  const error = (await gone.json()) as { code: string; details: { field: string }[] };
  assert.equal(error.code, "WARDEN_ERR_INPUT_FILE");
  assert.equal(error.details[0]!.field, "reference");
  // Not a regular file (reading /dev/zero would never end), and a file that is not reference rows: the request's
  // mistake (400), not the manifest's.
  for (const [reference, found] of [
    ["/dev/zero", /character device, not a regular file/],
    [dirname(HOLDOUT_CSV), /directory, not a regular file/],
    [DEMO_XGB, /CSV|header|column|quote/i],
  ] as const) {
    const refused = await post("/v1/admin/models/credit-demo/versions/1.0.0/profile", { reference });
    assert.equal(refused.status, 400, reference);
    const body = (await refused.json()) as { code: string; error: string; details: { found: string }[] };
    assert.equal(body.code, "WARDEN_ERR_INPUT_FILE");
    assert.match(body.details[0]!.found, found);
    assert.doesNotMatch(body.error, /in the manifest/);
  }
  const unknown = await post("/v1/admin/models/credit-demo/versions/9.9.9/profile", {});
  assert.equal(unknown.status, 404);
  const bad = await post("/v1/admin/models/credit-demo/versions/1.0.0/profile", { seed: -1, colour: "red" });
  assert.equal(bad.status, 400);
});

test("the live monitor counts every decision, and tests drift once the version has a profile", async () => {
  const manifest = loadManifest(DEMO_XGB);
  const cases = holdoutInstances(manifest)
    .filter((row) => validateInstance(manifest, row.features, row.subject, "").instance !== undefined)
    // Spread over the file (it is not in random order), so that the rows are a sample of its population.
    .filter((_, i) => i % 14 === 0);
  const decide = async (instances: unknown[]) => {
    const response = await fetch(url("/v1/models/credit-demo/decisions"), {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ instances }),
    });
    assert.equal(response.status, 200);
  };
  const report = async () => {
    const response = await fetch(url("/v1/models/credit-demo/monitor"));
    assert.equal(response.status, 200);
    return (await response.json()) as {
      observed: number;
      window: number;
      profile: unknown;
      dataset: { drifted: boolean } | null;
      features: { name: string; drift?: { test: string; drifted: boolean } }[];
    };
  };
  const before = await report();
  await decide(cases.map((c) => ({ features: c.features, subject: c.subject })));
  const after = await report();
  assert.equal(after.observed - before.observed, cases.length);
  // The profile built by the first test is in force: holdout rows come from its population.
  assert.ok(after.profile !== null);
  assert.equal(after.dataset?.drifted, false);
  // Loan amounts 2.5 times the holdout's: Amount drifts.
  await decide(
    cases.map((c) => ({
      features: { ...c.features, Amount: Math.min(100_000, (c.features.Amount as number) * 2.5) },
      subject: c.subject,
    })),
  );
  const shifted = await report();
  assert.equal(shifted.features.find((f) => f.name === "Amount")?.drift?.drifted, true);
  assert.equal(shifted.features.find((f) => f.name === "Home")?.drift?.test, "chi2");
  // The time window (the last hour) holds every decision of this test: both halves, so Amount drifts there too.
  const timed = await fetch(url("/v1/models/credit-demo/versions/1.0.0/monitor?window=time"));
  assert.equal(timed.status, 200);
  const byTime = (await timed.json()) as {
    window: number;
    window_kind: string;
    window_span_s: number;
    window_capped: boolean;
    features: { name: string; drift?: { drifted: boolean } }[];
  };
  assert.equal(byTime.window_kind, "time");
  assert.equal(byTime.window_span_s, 3600);
  assert.equal(byTime.window_capped, false);
  assert.equal(byTime.window, shifted.observed);
  assert.equal(byTime.features.find((f) => f.name === "Amount")?.drift?.drifted, true);
  const bad = await fetch(url("/v1/models/credit-demo/monitor?window=week"));
  assert.equal(bad.status, 400);
  const error = (await bad.json()) as { code: string; details: { field: string }[] };
  assert.equal(error.code, "WARDEN_ERR_BAD_REQUEST");
  assert.equal(error.details[0]!.field, "window");
});

test("/metrics carries the live monitor: drift p-values and missing rates per feature, the dataset verdict", async () => {
  const text = await (await fetch(url("/metrics"))).text();
  const line = (name: string, labels: string) =>
    text.split("\n").find((l) => l.startsWith(`${name}{${labels}}`) || l.startsWith(`${name}{${labels},`));
  const report = (await (await fetch(url("/v1/models/credit-demo/monitor"))).json()) as {
    features: { name: string; missing_rate: number; drift?: { p_value: number } }[];
    dataset: { drifted: boolean } | null;
  };
  const income = report.features.find((f) => f.name === "Income")!;
  const missing = line("warden_monitor_missing_rate", 'model="credit-demo",version="1.0.0",feature="Income"');
  assert.ok(missing, "missing rate of Income");
  assert.equal(Number(missing.split(" ").pop()), income.missing_rate);
  const amount = line("warden_monitor_drift_p_value", 'model="credit-demo",version="1.0.0",feature="Amount"');
  assert.ok(amount, "drift p-value of Amount");
  assert.equal(
    Number(amount.split(" ").pop()),
    report.features.find((f) => f.name === "Amount")!.drift!.p_value,
  );
  const dataset = line("warden_monitor_dataset_drift", 'model="credit-demo",version="1.0.0"');
  assert.equal(Number(dataset!.split(" ").pop()), report.dataset!.drifted ? 1 : 0);
});

test("outcomes feed the live performance: realised figures beside the CBPE estimate, on the monitor and /metrics", async () => {
  const manifest = loadManifest(DEMO_XGB);
  const cases = holdoutInstances(manifest)
    .filter((row) => validateInstance(manifest, row.features, row.subject, "").instance !== undefined)
    .filter((_, i) => i % 9 === 4);
  const before = (await (await fetch(url("/v1/models/credit-demo/monitor"))).json()) as {
    performance: { by_count: { decisions: number; outcomes: number } };
  };
  const response = await fetch(url("/v1/models/credit-demo/decisions"), {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ instances: cases.map((c) => ({ features: c.features, subject: c.subject })) }),
  });
  assert.equal(response.status, 200);
  const { decisions } = (await response.json()) as {
    decisions: { decision_id: string; decision: string; score: number }[];
  };
  let right = 0;
  for (const [i, d] of decisions.entries()) {
    const recorded = await fetch(url(`/v1/decisions/${d.decision_id}/outcomes`), {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ outcome: cases[i]!.status, source: "collections" }),
    });
    assert.equal(recorded.status, 201);
    if (d.decision === cases[i]!.status) right++;
  }
  const report = (await (await fetch(url("/v1/models/credit-demo/monitor"))).json()) as {
    performance: {
      threshold: number;
      by_count: {
        decisions: number;
        outcomes: number;
        realised: { accuracy: number };
        estimated: { accuracy: number };
        estimated_on_labelled: { accuracy: number };
      };
      by_time: { hours: number; outcomes: number };
    };
  };
  const p = report.performance;
  assert.equal(p.threshold, 0.5);
  assert.equal(p.by_count.decisions - before.performance.by_count.decisions, cases.length);
  // The first outcomes this server has seen: the realised accuracy is the share decided right, counted here.
  assert.equal(before.performance.by_count.outcomes, 0);
  assert.equal(p.by_count.outcomes, cases.length);
  assert.ok(Math.abs(p.by_count.realised.accuracy - right / cases.length) < 1e-12);
  // CBPE over the labelled decisions: Σ max(p, 1 − p) / n from the answered scores.
  const expected =
    decisions.reduce((s, d) => s + (d.score >= 0.5 ? d.score : 1 - d.score), 0) / decisions.length;
  assert.ok(Math.abs(p.by_count.estimated_on_labelled.accuracy - expected) < 1e-12);
  assert.equal(p.by_time.hours, 24);
  assert.equal(p.by_time.outcomes, cases.length);
  const text = await (await fetch(url("/metrics"))).text();
  const gauge = text
    .split("\n")
    .find((l) =>
      l.startsWith(
        'warden_monitor_performance{model="credit-demo",version="1.0.0",window="count",basis="realised",figure="accuracy"}',
      ),
    );
  assert.ok(gauge, "the realised accuracy gauge");
  assert.ok(Math.abs(Number(gauge.split(" ").pop()) - right / cases.length) < 1e-12);
});
