import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { LedgerRecord } from "../ledger/index.js";
import {
  DEMO_XGB,
  holdoutInstances,
  loadManifest,
  startTestServer,
  xgboostHoldoutReference,
} from "../testing/index.js";

type Server = Awaited<ReturnType<typeof startTestServer>>;
let server: Server;
const manifest = loadManifest(DEMO_XGB);
const holdout = holdoutInstances(manifest);
const reference = xgboostHoldoutReference();

before(async () => {
  server = await startTestServer();
});
after(async () => {
  await server.stop();
});

const post = (url: string, payload: unknown, headers: Record<string, string> = {}) =>
  server.app.inject({ method: "POST", url, payload: payload as object, headers });

describe("decision API", () => {
  test("one decision: score equals XGBoost's own prediction, decision follows the threshold", async () => {
    const { features, subject } = holdout[0]!;
    const response = await post("/v1/models/credit-demo/decisions", { features, subject, id: "app-1" });
    assert.equal(response.statusCode, 200, response.body);
    const body = response.json();
    assert.match(body.decision_id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-/);
    assert.equal(body.id, "app-1");
    assert.equal(body.model, "credit-demo");
    assert.equal(body.version, "1.0.0");
    assert.ok(Math.abs(body.score - reference[0]!) < 1e-6, `${body.score} vs ${reference[0]}`);
    assert.ok(Math.abs(body.probabilities.bad + body.probabilities.good - 1) < 1e-9);
    assert.equal(body.decision, body.score >= manifest.output.threshold ? "bad" : "good");
    assert.equal(typeof body.latency_ms, "number");
    assert.ok(response.headers["x-request-id"]);
  });

  test("a batch of 200 holdout rows matches XGBoost within 1e-6, in order", async () => {
    const instances = holdout
      .slice(0, 200)
      .map(({ features, subject }, i) => ({ features, subject, id: `row-${i}` }));
    const response = await post("/v1/models/credit-demo/decisions", { instances });
    assert.equal(response.statusCode, 200, response.body);
    const { decisions } = response.json() as { decisions: { id: string; score: number }[] };
    assert.equal(decisions.length, 200);
    decisions.forEach((d, i) => {
      assert.equal(d.id, `row-${i}`);
      assert.ok(Math.abs(d.score - reference[i]!) < 1e-6, `row ${i}: ${d.score} vs ${reference[i]}`);
    });
  });

  test("concurrent requests are batched on the real worker pool, and each gets its own answer", async () => {
    const before = await server.metrics.batchSize.get();
    const count = (m: typeof before, suffix: string) =>
      m.values.filter((v) => v.metricName === `warden_batch_size${suffix}`).reduce((n, v) => n + v.value, 0);
    const rows = holdout.slice(300, 364);
    const answers = await Promise.all(
      rows.map(({ features, subject }) => post("/v1/models/credit-demo/decisions", { features, subject })),
    );
    answers.forEach((response, i) => {
      assert.equal(response.statusCode, 200);
      assert.ok(Math.abs(response.json().score - reference[300 + i]!) < 1e-6, `row ${300 + i}`);
    });
    const after = await server.metrics.batchSize.get();
    const batches = count(after, "_count") - count(before, "_count");
    const rowsRun = count(after, "_sum") - count(before, "_sum");
    assert.equal(rowsRun, 64);
    assert.ok(batches < 64, `64 concurrent rows ran in ${batches} batches`);
  });

  test("the recorded decision can be read back with its inputs, subject and chain hash", async () => {
    const { features, subject } = holdout[5]!;
    const made = (await post("/v1/models/credit-demo/decisions", { features, subject })).json();
    const response = await server.app.inject({ method: "GET", url: `/v1/decisions/${made.decision_id}` });
    assert.equal(response.statusCode, 200);
    const record = response.json();
    assert.equal(record.kind, "decision");
    assert.deepEqual(record.inputs, features);
    // The demo model is high-risk: the subject is recorded as one salted commitment per attribute, the values
    // encrypted in the subject vault (docs/manifest.md#retention-and-privacy); they prove against the record.
    assert.deepEqual(Object.keys(record.subject).sort(), Object.keys(subject).sort());
    assert.deepEqual(record.privacy, { retention_days: 183, subject_storage: "encrypted" });
    assert.equal(record.subject_vault.status, "stored");
    const stored = (await server.ledger.get(made.decision_id))!;
    assert.equal(server.privacy.check(stored, subject as Record<string, number | string | null>).ok, true);
    assert.equal(record.decision, made.decision);
    assert.equal(record.outputs.score, made.score);
    assert.equal(record.artifact_sha256, manifest.artifact.sha256);
    assert.equal(record.manifest_sha256, manifest.manifestSha256);
    assert.equal(record.threshold, manifest.output.threshold);
    assert.match(record.ledger.hash, /^[0-9a-f]{64}$/);
    // The response's schema documents it and filters nothing: every field of the entry's body shows as stored.
    for (const [key, value] of Object.entries(stored.body)) assert.deepEqual(record[key], value, key);
    assert.deepEqual(record.ledger, { seq: stored.seq, prev_hash: stored.prev_hash, hash: stored.hash });
    // Any kind of record reads back as recorded: a deployment (registering the model at start) too.
    let deployment: LedgerRecord | undefined;
    for await (const r of server.ledger.scan()) if (r.kind === "deployment") deployment ??= r;
    assert.ok(deployment !== undefined);
    const shownDeployment = (await server.app.inject({ url: `/v1/decisions/${deployment.id}` })).json();
    for (const [key, value] of Object.entries(deployment.body))
      assert.deepEqual(shownDeployment[key], value, key);
    const missing = await server.app.inject({ method: "GET", url: "/v1/decisions/nope" });
    assert.equal(missing.statusCode, 404);
    assert.equal(missing.json().code, "WARDEN_ERR_DECISION_NOT_FOUND");
  });

  test("invalid input: 400 listing every bad field, recorded as a rejection, no inference", async () => {
    const before = await server.metrics.batchSize.get();
    const features = { ...holdout[0]!.features, Income: "lots", Home: "castle", Seniority: -3, Bogus: 1 };
    delete (features as Record<string, unknown>).Amount;
    const response = await post("/v1/models/credit-demo/decisions", { features, subject: { Age: 250 } });
    assert.equal(response.statusCode, 400);
    const body = response.json();
    assert.equal(body.code, "WARDEN_ERR_VALIDATION");
    assert.ok(body.error.length > 0);
    const fields = body.details.map((d: { field: string }) => d.field).sort();
    assert.deepEqual(fields, [
      "features.Amount",
      "features.Bogus",
      "features.Home",
      "features.Income",
      "features.Seniority",
      "subject.Age",
    ]);
    for (const d of body.details) assert.ok(d.expected && d.found, JSON.stringify(d));
    const after = await server.metrics.batchSize.get();
    assert.deepEqual(
      after.values.filter((v) => v.metricName?.endsWith("_count")),
      before.values.filter((v) => v.metricName?.endsWith("_count")),
      "nothing reached the model",
    );
    // Answers wait for the journal; the SQLite commit follows within milliseconds.
    await server.writer.drain();
    const rejections = [];
    for await (const r of server.ledger.scan()) if (r.kind === "rejection") rejections.push(r);
    const rejection = rejections.find(
      (r) => (r.body.error as { code: string }).code === "WARDEN_ERR_VALIDATION",
    );
    assert.ok(rejection !== undefined);
    // Read back as recorded, its malformed input included (the response's schema coerces nothing).
    const shown = (await server.app.inject({ url: `/v1/decisions/${rejection.id}` })).json();
    assert.equal(shown.kind, "rejection");
    for (const [key, value] of Object.entries(rejection.body)) assert.deepEqual(shown[key], value, key);
  });

  test("envelope errors: unknown model/version/route 404, both features and instances 400", async () => {
    const unknown = await post("/v1/models/nope/decisions", { features: {} });
    assert.equal(unknown.statusCode, 404);
    assert.equal(unknown.json().code, "WARDEN_ERR_MODEL_NOT_FOUND");
    assert.match(unknown.json().details[0].expected, /credit-demo/);
    const version = await post("/v1/models/credit-demo/versions/9.9/decisions", { features: {} });
    assert.equal(version.json().code, "WARDEN_ERR_VERSION_NOT_FOUND");
    const route = await server.app.inject({ method: "GET", url: "/v1/nothing" });
    assert.equal(route.statusCode, 404);
    assert.equal(route.json().code, "WARDEN_ERR_ROUTE_NOT_FOUND");
    const both = await post("/v1/models/credit-demo/decisions", {
      features: {},
      instances: [{ features: {} }],
    });
    assert.equal(both.statusCode, 400);
    const extra = await post("/v1/models/credit-demo/decisions", { features: {}, colour: "red" });
    assert.equal(extra.statusCode, 400);
    assert.equal(extra.json().details[0].field, "colour");
    const neither = await post("/v1/models/credit-demo/decisions", {});
    assert.equal(neither.statusCode, 400);
    // A schema error says what came, and lists the allowed values.
    const mistyped = await post("/v1/models/credit-demo/decisions", { features: [1, 2], id: 123 });
    assert.equal(mistyped.statusCode, 400);
    assert.deepEqual(
      (mistyped.json().details as { field: string; expected: string; found: string }[]).map((d) => [
        d.field,
        d.expected,
        d.found,
      ]),
      [
        ["features", "a value of type object", "an array of 2"],
        ["id", "a value of type string", "123 (number)"],
      ],
    );
    const none = await server.app.inject({ method: "POST", url: "/v1/models/credit-demo/decisions" });
    assert.equal(none.statusCode, 400);
    assert.equal(none.json().details[0].found, "missing");
    const long = await post("/v1/models/credit-demo/decisions", {
      features: {},
      subject_id: "x".repeat(129),
    });
    assert.deepEqual(long.json().details[0].expected, "at most 128 characters");
    // Routes without query parameters refuse a misspelt one rather than ignore it.
    for (const url of [
      "/v1/models?colour=red",
      "/v1/models/credit-demo/fairness?colour=red",
      "/v1/admin/keys?colour=red",
    ]) {
      const refused = await server.app.inject({ method: "GET", url });
      assert.equal(refused.statusCode, 400, url);
      assert.equal(refused.json().details[0].field, "colour", url);
    }
    const reveal = await server.app.inject({ method: "GET", url: "/v1/decisions/abc?reveal=xx" });
    assert.equal(reveal.statusCode, 400);
    assert.deepEqual(reveal.json().details[0], {
      field: "reveal",
      expected: 'one of "subject"',
      found: '"xx" (string)',
    });
  });

  test("malformed JSON 400, wrong content type 415, body over the limit 413, prototype poisoning 400", async () => {
    const malformed = await post("/v1/models/credit-demo/decisions", '{"features": {', {
      "content-type": "application/json",
    });
    assert.equal(malformed.statusCode, 400);
    assert.equal(malformed.json().code, "WARDEN_ERR_MALFORMED_JSON");
    const text = await post("/v1/models/credit-demo/decisions", "features=1", {
      "content-type": "text/plain",
    });
    assert.equal(text.statusCode, 415);
    assert.equal(text.json().code, "WARDEN_ERR_UNSUPPORTED_MEDIA_TYPE");
    const gzipped = await post("/v1/models/credit-demo/decisions", '{"features": {}}', {
      "content-type": "application/json",
      "content-encoding": "gzip",
    });
    assert.equal(gzipped.statusCode, 415);
    assert.equal(gzipped.json().details[0].field, "content-encoding");
    // Without a body the header alone refuses nothing; identity is no coding.
    const bodiless = await server.app.inject({
      method: "GET",
      url: "/v1/models",
      headers: { "content-encoding": "gzip" },
    });
    assert.equal(bodiless.statusCode, 200);
    const identity = await post(
      "/v1/models/credit-demo/decisions",
      { features: {} },
      {
        "content-encoding": "identity, identity",
      },
    );
    assert.notEqual(identity.statusCode, 415);
    const huge = await post("/v1/models/credit-demo/decisions", {
      features: { x: "y".repeat(5 * 1024 * 1024) },
    });
    assert.equal(huge.statusCode, 413);
    assert.equal(huge.json().code, "WARDEN_ERR_BODY_TOO_LARGE");
    const poisoned = await post("/v1/models/credit-demo/decisions", '{"features": {"__proto__": {"x": 1}}}', {
      "content-type": "application/json",
    });
    assert.equal(poisoned.statusCode, 400);
  });
});

describe("Open Inference Protocol v2", () => {
  test("server and model metadata, health and readiness", async () => {
    const meta = (await server.app.inject({ url: "/v2" })).json();
    assert.equal(meta.name, "warden");
    assert.ok(Array.isArray(meta.extensions));
    assert.deepEqual((await server.app.inject({ url: "/v2/health/live" })).json(), { live: true });
    assert.equal((await server.app.inject({ url: "/v2/health/ready" })).statusCode, 200);
    const model = (await server.app.inject({ url: "/v2/models/credit-demo" })).json();
    assert.equal(model.name, "credit-demo");
    assert.deepEqual(model.versions, ["1.0.0"]);
    assert.equal(model.platform, "xgboost_json");
    assert.equal(model.inputs.length, manifest.features.length);
    assert.deepEqual(
      model.outputs.map((o: { name: string }) => o.name),
      ["probabilities", "score", "decision", "decision_id"],
    );
    const versioned = await server.app.inject({ url: "/v2/models/credit-demo/versions/1.0.0/ready" });
    assert.deepEqual(versioned.json(), { name: "credit-demo", ready: true });
    const missing = await server.app.inject({ url: "/v2/models/nope/ready" });
    assert.equal(missing.statusCode, 404);
    assert.equal(typeof missing.json().error, "string");
  });

  test("infer with one tensor per feature matches XGBoost and records decisions", async () => {
    const rows = holdout.slice(10, 14);
    const inputs = manifest.features.map((f) => ({
      name: f.name,
      shape: [rows.length, 1],
      datatype: f.type === "category" ? "BYTES" : f.type === "boolean" ? "BOOL" : "FP64",
      data: rows.map((r) => (f.sensitive ? r.subject[f.name] : r.features[f.name]) ?? null),
    }));
    const response = await post("/v2/models/credit-demo/infer", { id: "req-7", inputs });
    assert.equal(response.statusCode, 200, response.body);
    const body = response.json();
    assert.equal(body.model_name, "credit-demo");
    assert.equal(body.model_version, "1.0.0");
    assert.equal(body.id, "req-7");
    const score = body.outputs.find((o: { name: string }) => o.name === "score");
    assert.deepEqual(score.shape, [4]);
    score.data.forEach((s: number, i: number) => {
      assert.ok(Math.abs(s - reference[10 + i]!) < 1e-6);
    });
    const probabilities = body.outputs.find((o: { name: string }) => o.name === "probabilities");
    assert.deepEqual(probabilities.shape, [4, 2]);
    const ids = body.outputs.find((o: { name: string }) => o.name === "decision_id").data;
    const record = (await server.app.inject({ url: `/v1/decisions/${ids[0]}` })).json();
    assert.equal(record.route, "oip");
  });

  test("infer with a single [N, F] tensor in the model's encoding; requested outputs only", async () => {
    const data = [9, 0, 60, 0, 1, 73, 129, 0, 0, 800, 846];
    const response = await post("/v2/models/credit-demo/versions/1.0.0/infer", {
      inputs: [{ name: "input", shape: [1, 11], datatype: "FP32", data }],
      outputs: [{ name: "score" }],
    });
    assert.equal(response.statusCode, 200, response.body);
    const outputs = response.json().outputs;
    assert.equal(outputs.length, 1);
    assert.ok(Math.abs(outputs[0].data[0] - reference[0]!) < 1e-6);
  });

  test("tensor errors are 400 with {error} naming the tensor", async () => {
    const cases: [unknown, RegExp][] = [
      [{ inputs: [{ name: "input", shape: [1, 3], datatype: "FP32", data: [1, 2, 3] }] }, /inputs\[0\]/],
      [{ inputs: [{ name: "input", shape: [1, 11], datatype: "FP32", data: [1, 2] }] }, /inputs\[0\]\.data/],
      [
        { inputs: [{ name: "Seniority", shape: [1], datatype: "FP32", data: ["x"] }] },
        /inputs\[0\]\.data\[0\]/,
      ],
      [{ inputs: [{ name: "input", shape: [1], datatype: "FP99", data: [1] }] }, /datatype/],
      [{ inputs: [] }, /inputs/],
      [
        {
          inputs: [{ name: "input", shape: [1, 11], datatype: "FP32", data: Array(11).fill(1) }],
          outputs: [{ name: "zz" }],
        },
        /outputs/,
      ],
    ];
    for (const [body, pattern] of cases) {
      const response = await post("/v2/models/credit-demo/infer", body);
      assert.equal(response.statusCode, 400, response.body);
      const json = response.json();
      assert.equal(typeof json.error, "string");
      assert.match(JSON.stringify(json.details ?? json.error), pattern);
    }
  });
});

describe("errors before any route runs keep Warden's format", () => {
  test("an undecodable URL and an over-long path parameter are 400s with a code", async () => {
    const bad = await server.app.inject({ url: "/v1/decisions/%E0%A4%A" });
    assert.equal(bad.statusCode, 400);
    assert.equal(bad.json().code, "WARDEN_ERR_BAD_REQUEST");
    const long = await server.app.inject({ url: `/v1/decisions/${"x".repeat(600)}` });
    assert.equal(long.statusCode, 400);
    assert.equal(long.json().code, "WARDEN_ERR_BAD_REQUEST");
  });

  test("a request Node's HTTP parser refuses gets a JSON 400 on the socket", async () => {
    const { connect } = await import("node:net");
    const port = Number(new URL(server.url).port);
    const answer = await new Promise<string>((resolve, reject) => {
      const socket = connect(port, "127.0.0.1", () => {
        socket.write(
          "POST /v1/models/credit-demo/decisions HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        );
      });
      let text = "";
      socket.on("data", (chunk) => {
        text += chunk;
      });
      socket.on("end", () => resolve(text));
      socket.on("error", reject);
    });
    assert.match(answer, /^HTTP\/1\.1 400 /);
    const body = JSON.parse(answer.slice(answer.indexOf("\r\n\r\n") + 4));
    assert.equal(body.code, "WARDEN_ERR_BAD_REQUEST");
  });

  test("tensors nested deeper than their shape are a 400, and the refusal is recorded", async () => {
    // Written by hand: JSON.stringify itself would overflow the stack on this nesting.
    const nested = `${"[".repeat(20_000)}1${"]".repeat(20_000)}`;
    const deep = await post(
      "/v2/models/credit-demo/infer",
      `{"inputs":[{"name":"Seniority","shape":[1],"datatype":"FP32","data":${nested}}]}`,
      { "content-type": "application/json" },
    );
    assert.equal(deep.statusCode, 400, deep.body.slice(0, 200));
    const unknown = await post("/v2/models/credit-demo/infer", {
      id: "unknown-output",
      inputs: [{ name: "input", shape: [1, 11], datatype: "FP32", data: Array(11).fill(1) }],
      outputs: [{ name: "nope" }],
    });
    assert.equal(unknown.statusCode, 400);
    const requestId = unknown.headers["x-request-id"];
    await server.writer.drain();
    let recorded: LedgerRecord | undefined;
    for await (const r of server.ledger.scan()) if (r.body.request_id === requestId) recorded = r;
    assert.equal(recorded?.kind, "rejection");
    assert.equal(recorded?.body.route, "oip");
  });

  test("a validation error lists at most 100 problems and counts the rest", async () => {
    const features: Record<string, number> = {};
    for (let i = 0; i < 500; i++) features[`unknown_${i}`] = i;
    const response = await post("/v1/models/credit-demo/decisions", { features });
    assert.equal(response.statusCode, 400);
    const body = response.json();
    assert.equal(body.details.length, 101);
    assert.match(body.details[100].found, /more problems not listed/);
  });
});

describe("operations", () => {
  test("the OpenAPI document lists exactly the served routes", async () => {
    const doc = (await server.app.inject({ url: "/openapi.json" })).json();
    const documented = new Set<string>();
    for (const [path, methods] of Object.entries(doc.paths as Record<string, object>)) {
      for (const method of Object.keys(methods)) documented.add(`${method.toUpperCase()} ${path}`);
    }
    const served = new Set(server.app.wardenRoutes);
    assert.ok(served.size >= 15);
    assert.deepEqual([...documented].sort(), [...served].sort());
    assert.ok(documented.has("POST /v1/models/{model}/decisions"));
    assert.ok(documented.has("POST /v2/models/{model}/versions/{version}/infer"));
    const recorded = doc.paths["/v1/decisions/{id}"].get.responses["200"];
    assert.deepEqual(recorded.content["application/json"].schema.properties.ledger.required, [
      "seq",
      "prev_hash",
      "hash",
    ]);
  });

  test("/metrics reports requests by model, route and outcome, batch sizes and inference time", async () => {
    const text = (await server.app.inject({ url: "/metrics" })).body;
    assert.match(
      text,
      /warden_requests_total\{model="credit-demo",version="1.0.0",route="\/v1\/models\/:model\/decisions",outcome="ok"\} \d+/,
    );
    assert.match(text, /outcome="WARDEN_ERR_VALIDATION"/);
    assert.match(text, /warden_batch_size_bucket\{le="64",model="credit-demo",version="1.0.0"\} \d+/);
    assert.match(
      text,
      /warden_inference_duration_seconds_count\{model="credit-demo",version="1.0.0"\} [1-9]/,
    );
    assert.match(text, /warden_queue_depth\{model="credit-demo",version="1.0.0"\} 0/);
    assert.match(
      text,
      /warden_failures_total\{model="credit-demo",version="1.0.0",reason="WARDEN_ERR_VALIDATION"\} [1-9]/,
    );
    assert.match(text, /warden_ledger_records_total\{kind="decision"\} [1-9]/);
    assert.match(text, /warden_request_duration_seconds_bucket/);
  });
});
