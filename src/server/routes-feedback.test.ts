import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import fc from "fast-check";
import { sha256File } from "../config/index.js";
import type { LedgerRecord } from "../ledger/index.js";
import {
  collect,
  DEMO_XGB,
  holdoutInstances,
  loadManifest,
  REPO_ROOT,
  startTestServer,
  tempDir,
} from "../testing/index.js";

type Server = Awaited<ReturnType<typeof startTestServer>>;
let server: Server;
const manifest = loadManifest(DEMO_XGB);
const holdout = holdoutInstances(manifest);
const dir = tempDir("feedback-routes");

/** A regression model (4 numeric features) beside the demo classifier. */
function regressionManifest(): string {
  const artifact = join(REPO_ROOT, "fixtures/onnx/regression.onnx");
  const file = join(dir.path, "regression.yaml");
  writeFileSync(
    file,
    JSON.stringify({
      name: "reg-demo",
      version: "2",
      owner: "tests",
      intended_use: "outcome tests for a regression model",
      risk_tier: "minimal",
      task: "regression",
      artifact: { path: artifact, format: "onnx", sha256: sha256File(artifact) },
      features: ["x0", "x1", "x2", "x3"].map((name) => ({ name, type: "number" })),
    }),
  );
  return file;
}

before(async () => {
  server = await startTestServer({ models: [DEMO_XGB, regressionManifest()] });
});
after(async () => {
  await server.stop();
  dir.remove();
});

const post = (url: string, payload?: unknown) =>
  server.app.inject({
    method: "POST",
    url,
    ...(payload === undefined ? {} : { payload: JSON.stringify(payload) }),
    headers: { "content-type": "application/json" },
  });
const get = (url: string) => server.app.inject({ method: "GET", url });

async function decide(row = 0): Promise<{ decision_id: string; decision: string }> {
  const { features, subject } = holdout[row]!;
  const response = await post("/v1/models/credit-demo/decisions", { features, subject });
  assert.equal(response.statusCode, 200, response.body);
  return response.json();
}

/** The committed ledger record with this id, read from the file. */
async function record(id: string): Promise<LedgerRecord> {
  await server.writer.drain();
  const found = await server.ledger.get(id);
  assert.ok(found, `record ${id} is in the ledger`);
  return found;
}

interface Problem {
  field: string;
  expected: string;
  found: string;
  fix?: string;
}

/** Post a body that must be refused with 400 and return its problems by field. */
async function refused(url: string, payload: unknown): Promise<Map<string, Problem>> {
  const response = await post(url, payload);
  assert.equal(response.statusCode, 400, response.body);
  const body = response.json() as { code: string; error: string; details: Problem[] };
  assert.match(body.code, /^WARDEN_ERR_(VALIDATION|BAD_REQUEST|MALFORMED_JSON)$/);
  for (const d of body.details ?? []) assert.ok(d.field && d.expected && d.found, JSON.stringify(d));
  return new Map((body.details ?? []).map((d) => [d.field, d]));
}

describe("outcomes", () => {
  test("an outcome is recorded as a new ledger record pointing to the decision; 201 with its id", async () => {
    const made = await decide(1);
    const before = await record(made.decision_id);
    // A second after the decision, written with a +01:00 offset: recorded in UTC.
    const observed = new Date(Date.parse(before.time) + 1000);
    const local = `${new Date(observed.getTime() + 3_600_000).toISOString().slice(0, -1)}+01:00`;
    const response = await post(`/v1/decisions/${made.decision_id}/outcomes`, {
      outcome: "bad",
      source: "collections-system",
      observed_at: local,
      note: "90 days past due",
    });
    assert.equal(response.statusCode, 201, response.body);
    const answer = response.json();
    assert.match(answer.outcome_id, /^[0-9a-f]{8}-[0-9a-f]{4}-7/);
    assert.equal(answer.decision_id, made.decision_id);
    assert.equal(answer.outcome, "bad");
    assert.equal(answer.source, "collections-system");
    assert.equal(answer.observed_at, observed.toISOString());
    assert.equal(answer.note, "90 days past due");
    assert.equal(answer.model, "credit-demo");
    assert.equal(answer.version, "1.0.0");

    const stored = await record(answer.outcome_id);
    assert.equal(stored.kind, "outcome");
    assert.equal(stored.model, "credit-demo");
    assert.equal(stored.version, "1.0.0");
    assert.equal(stored.artifact_sha256, manifest.artifact.sha256);
    assert.equal(stored.time, answer.recorded_at);
    assert.deepEqual(stored.body, {
      decision_id: made.decision_id,
      outcome: "bad",
      source: "collections-system",
      observed_at: observed.toISOString(),
      note: "90 days past due",
    });
    assert.ok(stored.seq > before.seq);
    // Nothing is mutated: the decision's record is byte for byte what it was.
    assert.deepEqual(await record(made.decision_id), before);
  });

  test("observed_at defaults to now and note may be left out", async () => {
    const made = await decide(2);
    const before = Date.now();
    const response = await post(`/v1/decisions/${made.decision_id}/outcomes`, {
      outcome: "good",
      source: "s",
    });
    assert.equal(response.statusCode, 201, response.body);
    const answer = response.json();
    const observed = Date.parse(answer.observed_at);
    assert.ok(observed >= before - 1000 && observed <= Date.now() + 1000, answer.observed_at);
    assert.equal("note" in answer, false);
    assert.equal("note" in (await record(answer.outcome_id)).body, false);
  });

  test("labels come from the model's manifest; every bad field is named with expected, found and a fix", async () => {
    const { decision_id } = await decide(3);
    const url = `/v1/decisions/${decision_id}/outcomes`;
    let problems = await refused(url, { outcome: "Bad", source: "s" });
    assert.match(
      problems.get("outcome")!.expected,
      /one of the labels of credit-demo 1\.0\.0: "good", "bad"/,
    );
    assert.equal(problems.get("outcome")!.found, '"Bad" (string)');
    assert.match(problems.get("outcome")!.fix!, /case-sensitive: send "bad"/);

    problems = await refused(url, {
      outcome: 1,
      source: "",
      observed_at: "yesterday",
      note: "n".repeat(1001),
      x: 1,
    });
    assert.deepEqual([...problems.keys()].sort(), ["note", "observed_at", "outcome", "source", "x"]);
    assert.match(problems.get("source")!.expected, /1 to 128 characters/);
    assert.match(problems.get("source")!.found, /0 characters/);
    assert.match(problems.get("note")!.expected, /at most 1000 characters/);
    assert.equal(problems.get("note")!.found, "1001 characters");
    assert.match(problems.get("observed_at")!.expected, /ISO-8601/);
    assert.equal(problems.get("x")!.expected, "no such field");

    problems = await refused(url, { source: "s".repeat(129), observed_at: "2025-02-30" });
    assert.equal(problems.get("outcome")!.found, "missing");
    assert.equal(problems.get("source")!.found, "129 characters");
    assert.equal(problems.get("observed_at")!.found, '"2025-02-30" (string)');

    const future = new Date(Date.now() + 3600_000).toISOString();
    problems = await refused(url, { outcome: "good", source: "s", observed_at: future });
    assert.match(problems.get("observed_at")!.found, /in the future/);
    // Within the allowed skew is fine.
    const soon = new Date(Date.now() + 60_000).toISOString();
    assert.equal((await post(url, { outcome: "good", source: "s", observed_at: soon })).statusCode, 201);
    // An outcome follows its decision: one observed a day before it is refused, a minute before is skew.
    const decidedAt = Date.parse((await record(decision_id)).time);
    const early = new Date(decidedAt - 86_400_000).toISOString();
    problems = await refused(url, { outcome: "good", source: "s", observed_at: early });
    assert.match(problems.get("observed_at")!.found, /before the decision/);
    assert.match(problems.get("observed_at")!.expected, /no earlier than the decision/);
    const skewed = new Date(decidedAt - 60_000).toISOString();
    assert.equal((await post(url, { outcome: "good", source: "s", observed_at: skewed })).statusCode, 201);

    for (const body of [[1], "bad", null, 7]) {
      problems = await refused(url, body);
      assert.ok(problems.has("body"), JSON.stringify(body));
    }
    const empty = await post(url, undefined);
    assert.equal(empty.statusCode, 400);
    assert.equal(empty.json().code, "WARDEN_ERR_MALFORMED_JSON");
    const none = await server.app.inject({ method: "POST", url });
    assert.equal(none.statusCode, 400, none.body);
    assert.equal(none.json().details[0].field, "body");
  });

  test("a regression model takes a finite number, and says so when it gets a string", async () => {
    const made = await post("/v1/models/reg-demo/decisions", { features: { x0: 1, x1: 2, x2: 3, x3: 4 } });
    assert.equal(made.statusCode, 200, made.body);
    const url = `/v1/decisions/${made.json().decision_id}/outcomes`;
    const problems = await refused(url, { outcome: "12.5", source: "meter" });
    assert.match(problems.get("outcome")!.expected, /a finite number \(reg-demo 2 is a regression model\)/);
    assert.match(problems.get("outcome")!.fix!, /without quotes: 12\.5/);
    const response = await post(url, { outcome: 12.5, source: "meter" });
    assert.equal(response.statusCode, 201, response.body);
    assert.equal((await record(response.json().outcome_id)).body.outcome, 12.5);
  });

  test("unknown id → 404; a rejection or an outcome → 409 saying what the record is", async () => {
    const missing = await post("/v1/decisions/0190c9a2-7b3e-7def-8abc-000000000000/outcomes", {
      outcome: "good",
      source: "s",
    });
    assert.equal(missing.statusCode, 404);
    assert.equal(missing.json().code, "WARDEN_ERR_DECISION_NOT_FOUND");
    assert.equal(missing.json().details[0].field, "id");

    const refusedDecision = await post("/v1/models/credit-demo/decisions", { features: { Seniority: -1 } });
    assert.equal(refusedDecision.statusCode, 400);
    await server.writer.drain();
    const rejections = (await collect(server.ledger.scan())).filter((r) => r.kind === "rejection");
    assert.ok(rejections.length > 0);
    const rejected = await post(`/v1/decisions/${rejections.at(-1)!.id}/outcomes`, {
      outcome: "good",
      source: "s",
    });
    assert.equal(rejected.statusCode, 409);
    assert.equal(rejected.json().code, "WARDEN_ERR_NOT_A_DECISION");
    assert.match(rejected.json().error, /is a rejection, not a decision/);

    const made = await decide(4);
    const outcome = (
      await post(`/v1/decisions/${made.decision_id}/outcomes`, { outcome: "good", source: "s" })
    ).json();
    const onOutcome = await post(`/v1/decisions/${outcome.outcome_id}/appeals`, { reason: "r" });
    assert.equal(onOutcome.statusCode, 409);
    assert.match(onOutcome.json().error, /is an outcome, not a decision \(it points to decision /);
    assert.equal(onOutcome.json().details[0].fix, `use the decision it points to: ${made.decision_id}`);
    assert.equal((await get(`/v1/decisions/${outcome.outcome_id}/history`)).statusCode, 409);
  });
});

describe("appeals", () => {
  test("an appeal is recorded as kind appeal; 202 pending_review; requested_action defaults to human_review", async () => {
    const made = await decide(5);
    const response = await post(`/v1/decisions/${made.decision_id}/appeals`, {
      reason: "My income was recorded wrongly.",
      contact: "case-4711",
    });
    assert.equal(response.statusCode, 202, response.body);
    const answer = response.json();
    assert.equal(answer.status, "pending_review");
    assert.equal(answer.decision_id, made.decision_id);
    assert.equal(answer.requested_action, "human_review");
    const stored = await record(answer.appeal_id);
    assert.equal(stored.kind, "appeal");
    assert.equal(stored.model, "credit-demo");
    assert.deepEqual(stored.body, {
      decision_id: made.decision_id,
      reason: "My income was recorded wrongly.",
      contact: "case-4711",
      requested_action: "human_review",
    });
    const explanation = await post(`/v1/decisions/${made.decision_id}/appeals`, {
      reason: "why?",
      requested_action: "explanation",
    });
    assert.equal(explanation.statusCode, 202);
    assert.equal((await record(explanation.json().appeal_id)).body.requested_action, "explanation");
  });

  test("appeal fields are checked: reason 1–2000, contact ≤ 256, a known requested_action", async () => {
    const { decision_id } = await decide(6);
    const url = `/v1/decisions/${decision_id}/appeals`;
    const problems = await refused(url, {
      reason: "r".repeat(2001),
      contact: "c".repeat(257),
      requested_action: "delete",
    });
    assert.deepEqual([...problems.keys()].sort(), ["contact", "reason", "requested_action"]);
    assert.match(problems.get("requested_action")!.expected, /"human_review", "correction", "explanation"/);
    assert.equal(problems.get("requested_action")!.found, '"delete" (string)');
    assert.equal((await refused(url, {})).get("reason")!.found, "missing");
    assert.equal((await refused(url, { reason: "   " })).get("reason")!.found, "3 characters (blank)");
  });
});

describe("history", () => {
  test("the decision with every outcome and appeal for it, in ledger order; the latest outcome wins", async () => {
    const made = await decide(7);
    const other = await decide(8);
    const url = `/v1/decisions/${made.decision_id}`;
    const first = (await post(`${url}/outcomes`, { outcome: "good", source: "origination" })).json();
    await post(`/v1/decisions/${other.decision_id}/outcomes`, { outcome: "bad", source: "s" });
    const appeal = (await post(`${url}/appeals`, { reason: "wrong income" })).json();
    const correction = (
      await post(`${url}/outcomes`, { outcome: "bad", source: "collections", note: "fix" })
    ).json();

    const response = await get(`${url}/history`);
    assert.equal(response.statusCode, 200, response.body);
    const history = response.json();
    assert.equal(history.decision_id, made.decision_id);
    const plain = (await get(url)).json();
    assert.deepEqual(history.decision, plain, "the decision as GET /v1/decisions/{id} shows it");
    assert.deepEqual(
      history.history.map((h: { id: string; kind: string }) => [h.kind, h.id]),
      [
        ["outcome", first.outcome_id],
        ["appeal", appeal.appeal_id],
        ["outcome", correction.outcome_id],
      ],
    );
    const seqs = history.history.map((h: { ledger: { seq: number } }) => h.ledger.seq);
    assert.deepEqual(
      seqs,
      [...seqs].sort((a, b) => a - b),
    );
    assert.equal(history.history[1].reason, "wrong income");
    assert.equal(history.latest_outcome.id, correction.outcome_id);
    assert.equal(history.latest_outcome.outcome, "bad");
    assert.equal(history.latest_outcome.note, "fix");
    assert.match(history.latest_outcome.ledger.hash, /^[0-9a-f]{64}$/);

    // A page at a time: the cursor of each page leads to the next; the latest outcome whatever the page.
    const pages: string[][] = [];
    let cursor: string | null = "";
    while (cursor !== null) {
      const page: { history: { id: string }[]; latest_outcome: { id: string }; next_cursor: string | null } =
        (await get(`${url}/history?limit=2${cursor ? `&cursor=${cursor}` : ""}`)).json();
      pages.push(page.history.map((h) => h.id));
      assert.equal(page.latest_outcome.id, correction.outcome_id);
      cursor = page.next_cursor;
    }
    assert.deepEqual(pages, [[first.outcome_id, appeal.appeal_id], [correction.outcome_id]]);
    assert.equal(history.next_cursor, null);
    for (const bad of ["limit=0", "limit=10001", "limit=two", "cursor=-1", "page=2"]) {
      const refused = await get(`${url}/history?${bad}`);
      assert.equal(refused.statusCode, 400, bad);
      assert.equal(refused.json().code, "WARDEN_ERR_VALIDATION");
    }

    const bare = (await get(`/v1/decisions/${(await decide(9)).decision_id}/history`)).json();
    assert.deepEqual(bare.history, []);
    assert.equal(bare.latest_outcome, null);
    assert.equal((await get("/v1/decisions/nope/history")).statusCode, 404);
  });

  test("the feedback routes are in the OpenAPI document", async () => {
    const doc = (await get("/openapi.json")).json();
    assert.ok(doc.paths["/v1/decisions/{id}/outcomes"].post.requestBody);
    assert.ok(doc.paths["/v1/decisions/{id}/appeals"].post.responses["202"]);
    assert.ok(doc.paths["/v1/decisions/{id}/history"].get.responses["200"]);
  });
});

test("random JSON bodies for outcomes and appeals never cause a 5xx", async () => {
  const { decision_id } = await decide(10);
  const fields = fc.record(
    {
      outcome: fc.oneof(fc.constantFrom("good", "bad"), fc.jsonValue()),
      source: fc.oneof(fc.string(), fc.jsonValue()),
      observed_at: fc.oneof(
        fc.date({ noInvalidDate: true }).map((d) => d.toISOString()),
        fc.jsonValue(),
      ),
      note: fc.oneof(fc.string(), fc.jsonValue()),
      reason: fc.oneof(fc.string(), fc.jsonValue()),
      requested_action: fc.oneof(fc.constantFrom("correction", "human_review"), fc.jsonValue()),
    },
    { requiredKeys: [] },
  );
  await fc.assert(
    fc.asyncProperty(
      fc.oneof(fields, fc.jsonValue()),
      fc.constantFrom("outcomes", "appeals"),
      async (body, route) => {
        const response = await server.app.inject({
          method: "POST",
          url: `/v1/decisions/${decision_id}/${route}`,
          payload: JSON.stringify(body),
          headers: { "content-type": "application/json" },
        });
        assert.ok(response.statusCode < 500, `${response.statusCode}: ${response.body.slice(0, 300)}`);
        assert.ok([201, 202, 400].includes(response.statusCode), response.body.slice(0, 300));
      },
    ),
    { numRuns: 300, seed: 2027 },
  );
});
