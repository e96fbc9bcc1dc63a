import assert from "node:assert/strict";
import { test } from "node:test";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { loadManifest } from "../config/index.js";
import { DEMO_XGB, holdoutInstances, startTestServer } from "../testing/index.js";

test("an unloaded model version is let go: after decisions, explanations, metrics and monitor reports, nothing keeps it alive", async (t) => {
  setFlagsFromString("--expose-gc");
  const gc = runInNewContext("gc") as () => void;
  const server = await startTestServer();
  t.after(() => server.stop());
  const rows = holdoutInstances(loadManifest(DEMO_XGB)).slice(0, 20);
  const unloaded: WeakRef<object>[] = [];
  for (let cycle = 0; cycle < 4; cycle++) {
    if (cycle > 0) {
      const load = await server.app.inject({ method: "POST", url: "/v2/repository/models/credit-demo/load" });
      assert.equal(load.statusCode, 200, load.body);
    }
    let decisionId = "";
    for (const row of rows) {
      const decided = await server.app.inject({
        method: "POST",
        url: "/v1/models/credit-demo/decisions",
        payload: { features: row.features, subject: row.subject },
      });
      assert.equal(decided.statusCode, 200, decided.body);
      decisionId = decided.json().decision_id;
    }
    for (const url of [
      "/metrics",
      "/v1/models/credit-demo/monitor",
      "/v1/models/credit-demo/fairness",
      `/v1/decisions/${decisionId}/explanation`,
    ]) {
      const read = await server.app.inject({ method: "GET", url });
      assert.equal(read.statusCode, 200, `${url}: ${read.body}`);
    }
    unloaded.push(new WeakRef(server.registry.get("credit-demo", "1.0.0")));
    const unload = await server.app.inject({
      method: "POST",
      url: "/v2/repository/models/credit-demo/unload",
    });
    assert.equal(unload.statusCode, 200, unload.body);
  }
  // A WeakRef keeps its target alive until the end of the job that created or read it: collect in a job of its
  // own, after a turn with no reading.
  const collected = () => unloaded.map((w) => w.deref() === undefined);
  for (let i = 0; i < 50; i++) {
    await new Promise((resolve) => setTimeout(resolve, 20));
    gc();
    await new Promise((resolve) => setTimeout(resolve, 0));
    if (collected().every(Boolean)) break;
  }
  assert.deepEqual(collected(), [true, true, true, true], "every unloaded version was collected");
});
