/**
 * Circuit breakers in the request path, driven by real traffic through a real server: the demo model with a
 * `policy.breaker` in a temporary manifest copy, its holdout rows and shifted copies of them, a model made to
 * fail, and a webhook receiver on 127.0.0.1. The clock is injected: cool-downs pass without sleeping.
 */
import assert from "node:assert/strict";
import { copyFileSync } from "node:fs";
import { join } from "node:path";
import { after, test } from "node:test";
import { validateInstance } from "../decision/index.js";
import { WardenError } from "../errors/index.js";
import { type LedgerRecord, openLedgerReader, verifyLedgerAt } from "../ledger/index.js";
import type { AlertmanagerPayload } from "../monitor/index.js";
import { xgboostScorer } from "../testing/demo-scorer.js";
import {
  collect,
  DEMO_XGB,
  demoCopy,
  HOLDOUT_CSV,
  holdoutInstances,
  loadManifest,
  startTestServer,
  startWebhookReceiver,
  tempDir,
  type WebhookReceiver,
} from "../testing/index.js";

type Server = Awaited<ReturnType<typeof startTestServer>>;
type Case = { features: Record<string, unknown>; subject: Record<string, unknown> };

const cleanups: (() => Promise<void> | void)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

const manifest = loadManifest(DEMO_XGB);
const valid: Case[] = holdoutInstances(manifest)
  .filter((row) => validateInstance(manifest, row.features, row.subject, "").instance !== undefined)
  .map(({ features, subject }) => ({ features, subject }));
/** The holdout in a spread order (the file is not in random order): every 7th row, then the next offset. */
const holdout: Case[] = [0, 1, 2, 3, 4, 5, 6].flatMap((offset) => valid.filter((_, i) => i % 7 === offset));
/** Applicants asking for twice the amount on half the income (the demo's confidence falls to about 0.72). */
const stretched: Case[] = holdout.map((c) => ({
  subject: c.subject,
  features: {
    ...c.features,
    Amount: Math.min(100_000, (c.features.Amount as number) * 2),
    Income: c.features.Income === null ? null : (c.features.Income as number) / 2,
  },
}));
/** A population the reference never saw: most numeric features far off. */
const shifted: Case[] = holdout.map((c) => ({
  subject: c.subject,
  features: {
    ...c.features,
    Seniority: Math.min(60, (c.features.Seniority as number) + 25),
    Time: 120,
    Expenses: Math.min(1000, (c.features.Expenses as number) * 4 + 200),
    Income: 5000,
    Assets: 900_000,
    Debt: 500_000,
    Amount: 90_000,
    Price: 190_000,
  },
}));

interface Harness {
  server: Server;
  hook: WebhookReceiver;
  clock: { now: number };
  url: (path: string) => string;
  decide: (cases: Case[], version?: string) => Promise<Response>;
  post: (path: string, body: unknown, actor?: string) => Promise<Response>;
  breaker: (version: string) => Promise<{ state: string; last_transition: { rule: string } | null }>;
  records: (kind: string) => Promise<LedgerRecord[]>;
  alerts: () => Promise<AlertmanagerPayload[]>;
}

async function harness(options: {
  versions: { version: string; breaker?: Record<string, unknown>; fairness?: Record<string, unknown> }[];
  profile?: string[];
}): Promise<Harness> {
  const dir = tempDir("breakers");
  cleanups.push(dir.remove);
  const hook = await startWebhookReceiver();
  cleanups.push(() => hook.close());
  const manifests = options.versions.map((v) => {
    const path = demoCopy(dir.path, {
      version: v.version,
      policy: {
        explanations: { reference: "holdout.csv" },
        ...(v.breaker !== undefined ? { breaker: v.breaker } : {}),
        ...(v.fairness !== undefined ? { fairness: v.fairness } : {}),
      },
    });
    copyFileSync(HOLDOUT_CSV, join(path, "..", "holdout.csv"));
    return path;
  });
  const clock = { now: Date.parse("2025-06-02T09:00:00Z") };
  const server = await startTestServer({
    models: manifests,
    config: { alerts: { webhooks: [{ url: hook.url, timeout_ms: 2000 }], backoff_ms: 1 } },
    now: () => clock.now,
  });
  cleanups.push(() => server.stop());
  const url = (path: string) => `${server.url}${path}`;
  // Every body is read at once, so that no connection stays busy with an answer nobody reads.
  const post = async (path: string, body: unknown, actor?: string) => {
    const response = await fetch(url(path), {
      method: "POST",
      headers: { "content-type": "application/json", ...(actor ? { "x-warden-actor": actor } : {}) },
      body: JSON.stringify(body),
    });
    return new Response(await response.text(), { status: response.status, headers: response.headers });
  };
  for (const version of options.profile ?? []) {
    const built = await post(`/v1/admin/models/credit-demo/versions/${version}/profile`, { seed: 3 });
    assert.equal(built.status, 201);
  }
  return {
    server,
    hook,
    clock,
    url,
    post,
    decide: (cases, version) =>
      post(
        version === undefined
          ? "/v1/models/credit-demo/decisions"
          : `/v1/models/credit-demo/versions/${version}/decisions`,
        cases.length === 1 ? cases[0] : { instances: cases },
      ),
    async breaker(version) {
      // Drift checks run in the background (the report thread): let those started so far finish.
      await server.app.wardenBreakers.settled();
      return (await (await fetch(url(`/v1/models/credit-demo/versions/${version}/breaker`))).json()) as {
        state: string;
        last_transition: { rule: string } | null;
      };
    },
    async records(kind) {
      await server.app.wardenBreakers.settled();
      await server.writer.drain();
      return (await collect(server.ledger.scan())).filter((r) => r.kind === kind);
    },
    async alerts() {
      await server.app.wardenBreakers.settled();
      await server.alerts.settled();
      return hook.bodies as AlertmanagerPayload[];
    },
  };
}

const transitions = (records: LedgerRecord[]) =>
  records.map((r) => `${r.body.from}→${r.body.to} (${r.body.rule})`);

test("confidence: closed → open → half-open → closed on real traffic, with 503s, records, alerts and metrics", async () => {
  const h = await harness({
    versions: [
      {
        version: "1.0.0",
        breaker: {
          rules: { confidence: { trip: 0.75, reset: 0.76, min_observations: 50 } },
          window: 50,
          cool_down_s: 60,
          probe_fraction: 0.5,
          probes_to_close: 20,
          fallback: { action: "refuse" },
        },
      },
    ],
  });
  // Healthy traffic: the holdout keeps it closed.
  assert.equal((await h.decide(holdout.slice(0, 100))).status, 200);
  assert.equal((await h.breaker("1.0.0")).state, "closed");
  // Stretched applications: confidence falls below 0.75 within one window.
  for (let i = 0; i < 4 && (await h.breaker("1.0.0")).state === "closed"; i++) {
    assert.equal((await h.decide(stretched.slice(i * 25, (i + 1) * 25))).status, 200);
  }
  const open = await h.breaker("1.0.0");
  assert.equal(open.state, "open");
  assert.equal(open.last_transition?.rule, "confidence");

  // Open: refused with the reason and the cool-down left, recorded as a rejection.
  h.clock.now += 20_000;
  const refused = await h.decide([holdout[0]!]);
  assert.equal(refused.status, 503);
  assert.equal(refused.headers.get("retry-after"), "40");
  const error = (await refused.json()) as { code: string; error: string; details: { found: string }[] };
  assert.equal(error.code, "WARDEN_ERR_BREAKER_OPEN");
  assert.match(error.error, /is open \(confidence\): its fallback is to refuse/);
  assert.equal(error.details[0]!.found, "credit-demo 1.0.0: open (confidence)");

  const metrics = await (await fetch(h.url("/metrics"))).text();
  assert.match(metrics, /warden_breaker_state\{model="credit-demo",version="1.0.0",state="open"\} 1/);
  assert.match(metrics, /warden_breaker_state\{model="credit-demo",version="1.0.0",state="closed"\} 0/);

  // After the cool-down: half-open; half the requests probe (the first one included), the rest are refused.
  h.clock.now += 40_000;
  const statuses: number[] = [];
  for (let i = 0; i < 60 && (await h.breaker("1.0.0")).state !== "closed"; i++) {
    const r = await h.decide([holdout[200 + i]!]);
    statuses.push(r.status);
    if (r.status === 200) {
      const body = (await r.json()) as { breaker?: { action: string; state: string } };
      assert.deepEqual(body.breaker, { action: "probe", state: "half_open", version: "1.0.0" });
    } else assert.equal(r.headers.get("retry-after"), "1");
  }
  assert.equal(statuses[0], 200, "the first request probes");
  assert.equal(statuses.filter((s) => s === 200).length, 20, "probes_to_close probes");
  assert.equal(statuses.filter((s) => s === 503).length, 19, "one refusal between two probes");
  assert.equal((await h.breaker("1.0.0")).state, "closed");

  const records = await h.records("breaker");
  assert.deepEqual(transitions(records), [
    "closed→open (confidence)",
    "open→half_open (cool_down)",
    "half_open→closed (probes_healthy)",
  ]);
  const trip = records[0]!.body as {
    threshold: number;
    values: { confidence: { value: number; observations: number } };
  };
  assert.equal(trip.threshold, 0.75);
  assert.ok(trip.values.confidence.value < 0.75);
  assert.equal(trip.values.confidence.observations, 50);
  assert.equal(records[1]!.time, "2025-06-02T09:01:00.000Z");
  const rejections = await h.records("rejection");
  assert.ok(rejections.some((r) => (r.body.error as { code: string }).code === "WARDEN_ERR_BREAKER_OPEN"));

  // One alert episode: fired at the trip, resolved at the close, nothing per request in between.
  const alerts = (await h.alerts()).filter((a) => a.groupLabels.alertname === "WardenBreakerOpen");
  assert.deepEqual(
    alerts.map((a) => a.status),
    ["firing", "resolved"],
  );
  assert.equal(alerts[0]!.alerts[0]!.labels.model, "credit-demo");
  assert.equal(alerts[0]!.alerts[0]!.labels.severity, "critical");
  assert.equal(alerts[1]!.alerts[0]!.endsAt, "2025-06-02T09:01:00.000Z");

  const verified = await verifyLedgerAt(h.server.location);
  assert.equal(verified.ok, true, JSON.stringify(verified));
});

test("error rate: a failing model opens its breaker and the fallback version answers, recorded as such", async () => {
  const h = await harness({
    versions: [
      { version: "1.0.0" },
      {
        version: "2.0.0",
        breaker: {
          rules: { error_rate: { trip: 0.2, reset: 0.05, min_observations: 10 } },
          window: 20,
          cool_down_s: 30,
          fallback: { action: "fallback_version", version: "1.0.0" },
        },
      },
    ],
  });
  const failing = h.server.registry.get("credit-demo", "2.0.0");
  const executor = failing.executor as { run: typeof failing.executor.run };
  const run = executor.run;
  executor.run = () => Promise.reject(new WardenError("WARDEN_ERR_INFERENCE_FAILED", "injected failure"));
  for (let i = 0; i < 10; i++) assert.equal((await h.decide([holdout[i]!])).status, 500);
  assert.equal((await h.breaker("2.0.0")).state, "open");

  // The production version (2.0.0) is open: 1.0.0 answers, and says so.
  const answered = await h.decide([holdout[0]!, holdout[1]!]);
  assert.equal(answered.status, 200);
  const body = (await answered.json()) as {
    decisions: { decision_id: string; version: string; breaker: Record<string, unknown> }[];
  };
  for (const d of body.decisions) {
    assert.equal(d.version, "1.0.0");
    assert.deepEqual(d.breaker, {
      action: "fallback_version",
      version: "2.0.0",
      state: "open",
      rule: "error_rate",
    });
  }
  const decisions = await h.records("decision");
  const recorded = decisions.find((r) => r.id === body.decisions[0]!.decision_id)!;
  assert.equal(recorded.version, "1.0.0");
  assert.deepEqual(recorded.body.breaker, body.decisions[0]!.breaker);

  // The model recovers: after the cool-down the probes are healthy and it closes.
  executor.run = run;
  h.clock.now += 30_000;
  for (let i = 0; i < 200 && (await h.breaker("2.0.0")).state !== "closed"; i++) {
    assert.equal((await h.decide([holdout[i]!])).status, 200);
  }
  assert.equal((await h.breaker("2.0.0")).state, "closed");
  assert.deepEqual(transitions(await h.records("breaker")), [
    "closed→open (error_rate)",
    "open→half_open (cool_down)",
    "half_open→closed (probes_healthy)",
  ]);
});

test("error rate: a model that answers NaN opens its breaker too (no decision can be made on its output)", async () => {
  const h = await harness({
    versions: [
      {
        version: "1.0.0",
        breaker: {
          rules: { error_rate: { trip: 0.2, reset: 0.05, min_observations: 10 } },
          window: 20,
          cool_down_s: 30,
          fallback: { action: "refuse" },
        },
      },
    ],
  });
  const model = h.server.registry.get("credit-demo", "1.0.0");
  const executor = model.executor as { run: typeof model.executor.run };
  const run = executor.run.bind(executor);
  executor.run = async (input, rows, tasks) => {
    const output = await run(input, rows, tasks);
    return { ...output, values: output.values.map(() => Number.NaN) };
  };
  for (let i = 0; i < 10; i++) {
    const response = await h.decide([holdout[i]!]);
    assert.equal(response.status, 500);
    assert.match(((await response.json()) as { error: string }).error, /non-finite output/);
  }
  const breaker = await h.breaker("1.0.0");
  assert.equal(breaker.state, "open");
  assert.equal(breaker.last_transition?.rule, "error_rate");
});

test("operator stop and resume: held open through cool-downs, actor and reason in the ledger and the alert", async () => {
  const h = await harness({
    versions: [
      {
        version: "1.0.0",
        breaker: {
          rules: { confidence: { trip: 0.5, reset: 0.55, min_observations: 10 } },
          window: 10,
          cool_down_s: 5,
          probe_fraction: 1,
          probes_to_close: 5,
          fallback: { action: "human_review" },
        },
      },
    ],
  });
  const stopPath = "/v1/admin/models/credit-demo/versions/1.0.0/breaker/stop";
  const resumePath = "/v1/admin/models/credit-demo/versions/1.0.0/breaker/resume";
  assert.equal((await h.post(resumePath, { reason: "nothing to resume" }, "ops")).status, 409);
  const stopped = await h.post(stopPath, { reason: "bias complaint under investigation" }, "alice@risk");
  assert.equal(stopped.status, 200);
  const view = (await stopped.json()) as { state: string; stopped_by: { actor: string; reason: string } };
  assert.equal(view.state, "open");
  assert.equal(view.stopped_by.actor, "alice@risk");
  assert.equal((await h.post(stopPath, { reason: "again" }, "bob")).status, 409);

  // Human review while stopped: the model scores the cases, a reviewer decides; the answer is pending_review.
  const sent = await h.decide([holdout[0]!, holdout[1]!]);
  assert.equal(sent.status, 200);
  const pending = (await sent.json()) as {
    decisions: {
      decision_id: string;
      score: number;
      decision: null;
      status: string;
      review_reasons: string[];
    }[];
  };
  for (const d of pending.decisions) {
    assert.equal(d.status, "pending_review");
    assert.equal(d.decision, null);
    assert.equal(typeof d.score, "number");
    assert.deepEqual(d.review_reasons, ["breaker_open"]);
  }
  const queue = (await (await fetch(h.url("/v1/review/items?model=credit-demo"))).json()) as {
    items: { decision_id: string; reasons: string[] }[];
  };
  assert.deepEqual(
    queue.items.map((item) => [item.decision_id, item.reasons]),
    pending.decisions.map((d) => [d.decision_id, ["breaker_open"]]),
  );
  const held = (await h.records("decision")).filter((r) =>
    pending.decisions.some((d) => d.decision_id === r.id),
  );
  assert.equal(held.length, 2);
  assert.deepEqual(held[0]!.body.breaker, {
    action: "human_review",
    version: "1.0.0",
    state: "open",
    rule: "manual_stop",
  });

  // A cool-down changes nothing while an operator holds it.
  h.clock.now += 3_600_000;
  assert.equal((await h.breaker("1.0.0")).state, "open");

  const resumed = await h.post(resumePath, { reason: "investigation closed" }, "alice@risk");
  assert.equal(((await resumed.json()) as { state: string }).state, "half_open");
  for (let i = 0; i < 5; i++) assert.equal((await h.decide([holdout[i]!])).status, 200);
  assert.equal((await h.breaker("1.0.0")).state, "closed");

  const records = await h.records("breaker");
  assert.deepEqual(transitions(records), [
    "closed→open (manual_stop)",
    "open→half_open (manual_resume)",
    "half_open→closed (probes_healthy)",
  ]);
  assert.equal(records[0]!.body.actor, "alice@risk");
  assert.equal(records[0]!.body.reason, "bias complaint under investigation");
  assert.equal(records[1]!.body.actor, "alice@risk");
  const alerts = (await h.alerts()).filter((a) => a.groupLabels.alertname === "WardenBreakerOpen");
  assert.deepEqual(
    alerts.map((a) => a.status),
    ["firing", "resolved"],
  );
  assert.match(alerts[0]!.alerts[0]!.annotations.description!, /stopped by alice@risk: bias complaint/);
});

test("a model without a breaker policy can still be stopped by an operator, and resumed", async () => {
  const h = await harness({ versions: [{ version: "2.0.0" }] });
  // No policy.breaker: the operator's stop refuses; the resume closes at once.
  const plain = await h.breaker("2.0.0");
  assert.equal((plain as { configured?: boolean }).configured, false);
  await h.post("/v1/admin/models/credit-demo/versions/2.0.0/breaker/stop", { reason: "audit" }, "carol");
  assert.equal((await h.decide([holdout[0]!], "2.0.0")).status, 503);
  const resumed = await h.post(
    "/v1/admin/models/credit-demo/versions/2.0.0/breaker/resume",
    { reason: "ok" },
    "carol",
  );
  assert.equal(((await resumed.json()) as { state: string }).state, "closed");
  assert.equal((await h.decide([holdout[0]!], "2.0.0")).status, 200);
  const bad = await h.post("/v1/admin/models/credit-demo/versions/2.0.0/breaker/stop", {}, "carol");
  assert.equal(bad.status, 400);
});

test("drift and anomalies: the breaker trips on the drifted share and on anomalous inputs; drift alerts once per episode", async () => {
  const h = await harness({
    versions: [
      {
        version: "1.0.0",
        breaker: {
          rules: {
            anomaly_rate: { trip: 0.5, reset: 0.1, min_observations: 20 },
          },
          window: 20,
        },
      },
      {
        version: "2.0.0",
        breaker: { rules: { drift: { trip: 0.3, reset: 0.1, min_observations: 50 } }, window: 50 },
      },
    ],
    profile: ["1.0.0", "2.0.0"],
  });
  // Anomalies: inputs far from the reference, per request, through the profile's Isolation Forest.
  assert.equal((await h.decide(holdout.slice(0, 40), "1.0.0")).status, 200);
  assert.equal((await h.breaker("1.0.0")).state, "closed");
  assert.equal((await h.decide(shifted.slice(0, 20), "1.0.0")).status, 200);
  const anomalous = await h.breaker("1.0.0");
  assert.equal(anomalous.state, "open");
  assert.equal(anomalous.last_transition?.rule, "anomaly_rate");

  // Drift: the monitor's verdict every 50 decisions (at most once a second); 50 shifted decisions drift most
  // features.
  assert.equal((await h.decide(holdout.slice(0, 50), "2.0.0")).status, 200);
  assert.equal((await h.breaker("2.0.0")).state, "closed");
  for (let i = 0; i < 3 && (await h.breaker("2.0.0")).state === "closed"; i++) {
    h.clock.now += 1000;
    assert.equal((await h.decide(shifted.slice(i * 50, (i + 1) * 50), "2.0.0")).status, 200);
  }
  const drifted = await h.breaker("2.0.0");
  assert.equal(drifted.state, "open");
  assert.equal(drifted.last_transition?.rule, "drift");
  const records = (await h.records("breaker")).filter((r) => r.version === "2.0.0");
  const share = (records[0]!.body.values as { drift: { value: number } }).drift.value;
  assert.ok(share > 0.3, `drifted share ${share}`);

  // One drift alert per version for the whole episode, however many checks saw it.
  const driftAlerts = (await h.alerts()).filter(
    (a) => a.groupLabels.alertname === "WardenDatasetDrift" && a.alerts[0]!.labels.version === "2.0.0",
  );
  assert.deepEqual(
    driftAlerts.map((a) => a.status),
    ["firing"],
  );
  const anomalyAlerts = (await h.alerts()).filter((a) => a.groupLabels.alertname === "WardenAnomalyRate");
  assert.ok(anomalyAlerts.every((a) => a.status === "firing"));
  assert.equal(new Set(anomalyAlerts.map((a) => a.alerts[0]!.labels.version)).size, anomalyAlerts.length);
});

test("a webhook that never answers does not slow decisions", async () => {
  const h = await harness({ versions: [{ version: "1.0.0" }] });
  h.hook.answer = () => "hang";
  await h.post("/v1/admin/models/credit-demo/versions/1.0.0/breaker/stop", { reason: "drill" }, "dave");
  await h.post(
    "/v1/admin/models/credit-demo/versions/1.0.0/breaker/resume",
    { reason: "drill over" },
    "dave",
  );
  // The receiver holds the firing notification unanswered; decisions are answered all the same.
  await h.hook.received(1);
  for (let i = 0; i < 20; i++) assert.equal((await h.decide([holdout[i]!])).status, 200);
  assert.equal(h.hook.bodies.length, 1, "the resolution still waits behind the unanswered firing");
});

test("an operator's stop survives a restart, and so does the resume", async () => {
  const dir = tempDir("breaker-restart");
  cleanups.push(dir.remove);
  const start = () =>
    startTestServer({ models: [DEMO_XGB], config: { data_dir: dir.path, alerts: { webhooks: [] } } });
  const decide = (url: string) =>
    fetch(`${url}/v1/models/credit-demo/decisions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(holdout[0]),
    });
  const admin = (url: string, action: "stop" | "resume", reason: string) =>
    fetch(`${url}/v1/admin/models/credit-demo/versions/1.0.0/breaker/${action}`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-warden-actor": "dana@ops" },
      body: JSON.stringify({ reason }),
    });
  let server = await start();
  assert.equal((await admin(server.url, "stop", "regulator's request")).status, 200);
  assert.equal((await decide(server.url)).status, 503);
  await server.close();

  server = await start();
  const view = (await (await fetch(`${server.url}/v1/models/credit-demo/versions/1.0.0/breaker`)).json()) as {
    state: string;
    stopped_by: { actor: string; reason: string } | null;
  };
  assert.equal(view.state, "open");
  assert.equal(view.stopped_by?.actor, "dana@ops");
  assert.match(view.stopped_by!.reason, /^regulator's request \(stopped on .*; kept across a restart\)$/);
  assert.equal((await decide(server.url)).status, 503);
  assert.equal((await admin(server.url, "resume", "cleared")).status, 200);
  assert.equal((await decide(server.url)).status, 200);
  await server.close();

  server = await start();
  assert.equal((await decide(server.url)).status, 200);
  // Every stop and resume, the one re-applied at the restart included, is in the ledger, chain intact.
  await server.close();
  const reader = openLedgerReader(dir.path);
  const records = [...reader.scan()].filter((r) => r.kind === "breaker");
  reader.close();
  assert.deepEqual(transitions(records), [
    "closed→open (manual_stop)",
    "closed→open (manual_stop)",
    "open→closed (manual_resume)",
  ]);
  assert.equal((await verifyLedgerAt({ kind: "sqlite", dataDir: dir.path })).ok, true);
});

test("fairness: the breaker trips when the live fairness monitor's worst selection-rate ratio falls below its floor", async () => {
  const h = await harness({
    versions: [
      {
        version: "1.0.0",
        breaker: {
          rules: { fairness: { trip: 0.6, reset: 0.8, min_observations: 60 } },
          fallback: { action: "refuse" },
        },
        fairness: { attributes: { Marital: {} }, min_group_size: 20 },
      },
    ],
  });
  // The model's own decisions, worked out here: favourable (good) when P(bad) < 0.5.
  const score = xgboostScorer(manifest).score;
  const rows = holdout.map((c) => validateInstance(manifest, c.features, c.subject, "").instance!.row);
  const input = new Float32Array(rows.length * rows[0]!.length);
  rows.forEach((r, i) => {
    input.set(r, i * r.length);
  });
  const scores = await score(input, rows.length);
  // Fair traffic first: marital status assigned regardless of the decision.
  const fair = holdout.slice(0, 100).map((c, i) => ({
    ...c,
    subject: { ...c.subject, Marital: i % 2 === 0 ? "married" : "single" },
  }));
  assert.equal((await h.decide(fair)).status, 200);
  assert.equal((await h.breaker("1.0.0")).state, "closed");
  // Then every favourable decision goes to married applicants and every adverse one to single ones.
  const skewed = holdout.slice(100, 300).map((c, k) => ({
    ...c,
    subject: { ...c.subject, Marital: scores[100 + k]! < 0.5 ? "married" : "single" },
  }));
  for (let i = 0; i < 4 && (await h.breaker("1.0.0")).state === "closed"; i++) {
    h.clock.now += 1000;
    assert.equal((await h.decide(skewed.slice(i * 50, (i + 1) * 50))).status, 200);
  }
  const tripped = await h.breaker("1.0.0");
  assert.equal(tripped.state, "open");
  assert.equal(tripped.last_transition?.rule, "fairness");
  const records = await h.records("breaker");
  const value = (records.at(-1)!.body.values as { fairness: { value: number } }).fairness.value;
  assert.ok(value < 0.6, `worst selection-rate ratio ${value}`);
  // The live fairness monitor says the same.
  const report = (await (await fetch(h.url("/v1/models/credit-demo/versions/1.0.0/fairness"))).json()) as {
    worst_selection_rate_ratio: number;
  };
  assert.ok(report.worst_selection_rate_ratio < 0.6);
  assert.equal((await h.decide([holdout[0]!])).status, 503);
});
