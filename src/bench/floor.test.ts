import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { test } from "node:test";
import { loadManifest } from "../config/index.js";
import { DEMO_XGB, startTestServer } from "../testing/index.js";
import { measureGovernanceFloor, sampleEntries } from "./floor.js";
import { decisionRequests } from "./serving.js";

test("the floor of the decision path runs every stage on decisions a server recorded", async () => {
  const manifest = loadManifest(DEMO_XGB);
  const server = await startTestServer();
  const bodies = decisionRequests(manifest).slice(0, 12);
  try {
    for (const { path, body } of bodies) {
      const response = await fetch(`${server.url}${path}`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body,
      });
      assert.equal(response.status, 200);
    }
  } finally {
    await server.close();
  }
  try {
    const entries = sampleEntries(server.dataDir);
    assert.equal(entries.length, bodies.length);
    assert.ok(entries.every((e) => e.kind === "decision" && e.model === manifest.name));

    const floor = await measureGovernanceFloor(manifest, entries);
    assert.deepEqual(
      floor.stages.map((s) => s.thread),
      ["serving", "model worker", "model worker", "model worker", "serving", "serving", "ledger"],
    );
    for (const stage of floor.stages) assert.ok(Number.isFinite(stage.us) && stage.us > 0, stage.label);
    const sum = floor.stages.reduce((total, s) => total + s.us, 0);
    assert.ok(Math.abs(floor.totalUs - sum) < 1e-9);

    await assert.rejects(measureGovernanceFloor(manifest, []), /needs decision entries/);
  } finally {
    rmSync(server.dataDir, { recursive: true, force: true });
  }
});
