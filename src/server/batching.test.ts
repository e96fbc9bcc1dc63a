/**
 * Batching timeouts over HTTP, with a model slower than the timeout (fixtures/onnx/slow.onnx, about half a
 * second per run): the request the model has and the one queued behind it (the model answered nothing
 * meanwhile) both get 504 with Retry-After, and are recorded as rejections. (503 for a request queued while
 * the model keeps answering others is shown in runtime/batcher.test.ts, where time is under the test's control.)
 */
import assert from "node:assert/strict";
import { copyFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, test } from "node:test";
import { sha256File } from "../config/index.js";
import { captureLogs, REPO_ROOT, startTestServer, tempDir } from "../testing/index.js";

const dir = tempDir("batching");
after(() => dir.remove());

test("timeout_ms with a model slower than it: 504 + Retry-After for the request it has and the one queued behind; both recorded", async (t) => {
  const artifact = join(dir.path, "slow.onnx");
  copyFileSync(join(REPO_ROOT, "fixtures/onnx/slow.onnx"), artifact);
  const manifest = join(dir.path, "slow.yaml");
  // JSON is YAML.
  writeFileSync(
    manifest,
    JSON.stringify({
      name: "slow",
      version: "1",
      owner: "tests",
      intended_use: "timeouts",
      risk_tier: "minimal",
      task: "regression",
      artifact: { path: "slow.onnx", format: "onnx", sha256: sha256File(artifact) },
      batching: { max_batch_size: 1, timeout_ms: 150 },
      features: ["a", "b", "c", "d"].map((name) => ({ name, type: "number" })),
    }),
  );
  const { logger, lines } = captureLogs("info");
  const server = await startTestServer({ models: [manifest], logger });
  t.after(() => server.stop());
  const decide = (id: string) =>
    server.app.inject({
      method: "POST",
      url: "/v1/models/slow/decisions",
      payload: { id, features: { a: 1, b: 2, c: 3, d: 4 } },
    });
  const [running, queued] = await Promise.all([decide("running"), decide("queued")]);
  assert.equal(running.statusCode, 504, running.body);
  assert.equal(running.json().code, "WARDEN_ERR_TIMEOUT");
  assert.match(running.json().error, /did not answer within 150 ms/);
  assert.equal(running.headers["retry-after"], "1");
  assert.equal(queued.statusCode, 504, queued.body);
  assert.equal(queued.json().code, "WARDEN_ERR_TIMEOUT");
  await server.writer.drain();
  const codes: string[] = [];
  for await (const r of server.ledger.scan()) {
    if (r.kind === "rejection") codes.push((r.body.error as { code: string }).code);
  }
  assert.deepEqual(codes, ["WARDEN_ERR_TIMEOUT", "WARDEN_ERR_TIMEOUT"]);
  // Back-pressure is logged as one warning a request, without a stack: under overload it comes in floods.
  const logged = lines.filter((l) => l.code === "WARDEN_ERR_TIMEOUT");
  assert.equal(logged.length, 2);
  for (const line of logged) {
    assert.equal(line.level, 40);
    assert.equal(line.err, undefined);
    assert.equal(line.model, "slow");
    assert.equal(line.route, "/v1/models/:model/decisions");
  }
});
