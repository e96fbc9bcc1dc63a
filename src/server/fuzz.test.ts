import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import fc from "fast-check";
import { DEMO_XGB, holdoutInstances, loadManifest, startTestServer } from "../testing/index.js";

type Server = Awaited<ReturnType<typeof startTestServer>>;
let server: Server;
const manifest = loadManifest(DEMO_XGB);
const valid = holdoutInstances(manifest)[0]!;

before(async () => {
  server = await startTestServer();
});
after(async () => {
  await server.stop();
});

/** Ledger records the decision route must have written: one per decision, one per invalid-input rejection. */
let expectedRecords = 0;

/** Send one request and hold the server to its contract: no 5xx, a JSON error body for every 4xx. */
async function check(method: "POST" | "GET", url: string, payload: string, contentType = "application/json") {
  const response = await server.app.inject({
    method,
    url,
    payload,
    headers: { "content-type": contentType },
  });
  if (url === "/v1/models/credit-demo/decisions") {
    if (response.statusCode === 200) expectedRecords += response.json().decisions?.length ?? 1;
    else if (response.json().code === "WARDEN_ERR_VALIDATION") expectedRecords += 1;
  }
  assert.ok(
    response.statusCode < 500,
    `${response.statusCode} for ${url} ${payload.slice(0, 300)}: ${response.body.slice(0, 300)}`,
  );
  if (response.statusCode >= 400) {
    const body = response.json() as { error?: unknown; code?: unknown };
    assert.equal(typeof body.error, "string", response.body);
    assert.match(String(body.code), /^WARDEN_ERR_/);
  }
  return response;
}

const RUNS = 1500;
const featureNames = manifest.features.map((f) => f.name);

test("random JSON values as decision bodies never cause a 5xx", async () => {
  await fc.assert(
    fc.asyncProperty(fc.jsonValue(), async (value) => {
      await check("POST", "/v1/models/credit-demo/decisions", JSON.stringify(value));
    }),
    { numRuns: RUNS, seed: 2026 },
  );
});

test("valid bodies with fields replaced, removed or added never cause a 5xx", async () => {
  const mutation = fc.record({
    replace: fc.dictionary(
      fc.constantFrom(...featureNames),
      fc.oneof(fc.jsonValue(), fc.double(), fc.constant(null)),
    ),
    remove: fc.subarray(featureNames),
    add: fc.dictionary(fc.string({ maxLength: 12 }), fc.jsonValue(), { maxKeys: 3 }),
    subject: fc.oneof(fc.constant(valid.subject), fc.jsonValue()),
    batch: fc.boolean(),
  });
  await fc.assert(
    fc.asyncProperty(mutation, async (m) => {
      const features: Record<string, unknown> = { ...valid.features, ...m.add, ...m.replace };
      for (const name of m.remove) delete features[name];
      const instance = { features, subject: m.subject };
      const response = await check(
        "POST",
        "/v1/models/credit-demo/decisions",
        JSON.stringify(m.batch ? { instances: [instance, { features: valid.features }] } : instance),
      );
      if (response.statusCode === 200) {
        const body = response.json();
        const decisions = m.batch ? body.decisions : [body];
        for (const d of decisions) assert.ok(d.score >= 0 && d.score <= 1, response.body);
      }
    }),
    { numRuns: RUNS, seed: 7 },
  );
});

test("malformed bodies, odd content types and random paths never cause a 5xx", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.oneof(
        fc.string({ unit: "binary", maxLength: 200 }),
        fc.constantFrom("{", "[1,", '{"features":', "nul", "\u0000", '{"a":1}}'),
      ),
      fc.constantFrom(
        "application/json",
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/json; charset=latin1",
        "multipart/form-data",
      ),
      fc.constantFrom(
        "/v1/models/credit-demo/decisions",
        "/v2/models/credit-demo/infer",
        "/v1/models/%00/decisions",
        "/v2/models/credit-demo/versions/x/infer",
      ),
      async (payload, contentType, url) => {
        await check("POST", url, payload, contentType);
      },
    ),
    { numRuns: RUNS, seed: 11 },
  );
  await fc.assert(
    fc.asyncProperty(fc.webPath(), async (path) => {
      await check("GET", path.startsWith("/") ? path : `/${path}`, "");
    }),
    { numRuns: 300, seed: 5 },
  );
});

test("random inference tensors never cause a 5xx", async () => {
  const tensor = fc.record({
    name: fc.oneof(fc.constantFrom(...featureNames, "input"), fc.string({ maxLength: 8 })),
    shape: fc.array(fc.integer({ min: -2, max: 12 }), { maxLength: 3 }),
    datatype: fc.constantFrom("FP32", "FP64", "INT64", "BOOL", "BYTES", "UINT8", "FP16", "nope"),
    data: fc.array(
      fc.oneof(fc.double(), fc.integer(), fc.boolean(), fc.string({ maxLength: 5 }), fc.constant(null)),
      {
        maxLength: 30,
      },
    ),
  });
  await fc.assert(
    fc.asyncProperty(
      fc.array(tensor, { maxLength: 4 }),
      fc.option(fc.array(fc.record({ name: fc.string() }))),
      async (inputs, outputs) => {
        await check(
          "POST",
          "/v2/models/credit-demo/infer",
          JSON.stringify(outputs ? { inputs, outputs } : { inputs }),
        );
      },
    ),
    { numRuns: RUNS, seed: 3 },
  );
});

test("after the fuzzing the server still answers and its ledger verifies", async () => {
  const live = await server.app.inject({ url: "/v2/health/live" });
  assert.equal(live.statusCode, 200);
  const ok = await check(
    "POST",
    "/v1/models/credit-demo/decisions",
    JSON.stringify({ features: valid.features }),
  );
  assert.equal(ok.statusCode, 200);
  await server.writer.drain();
  const { verifyLedgerAt } = await import("../ledger/index.js");
  const report = await verifyLedgerAt(server.location);
  assert.equal(report.ok, true, JSON.stringify(report));
  // Other routes (inference tensors) add records too, so the decision route's share is a lower bound.
  assert.ok(
    report.count >= expectedRecords && expectedRecords > RUNS / 2,
    `${report.count} records, ${expectedRecords} expected`,
  );
});
