import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { test } from "node:test";
import { loadManifest } from "../config/index.js";
import { CanonicalText, canonicalJson } from "../ledger/index.js";
import { prepareEntry } from "../ledger/sqlite-store.js";
import { DEMO_XGB, startTestServer } from "../testing/index.js";
import {
  asWritten,
  type FloorRequest,
  measureGovernanceFloor,
  sampleEntries,
  throughputBound,
} from "./floor.js";
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

    // The entry stage canonicalises what the pipeline hands the ledger: the explanation as the worker wrote it,
    // which gives back the recorded text byte for byte.
    for (const entry of entries) {
      const written = asWritten(entry);
      assert.ok(written.body.explanation instanceof CanonicalText);
      assert.deepEqual(Object.keys(written.body), Object.keys(entry.body));
      assert.equal(prepareEntry(written).canonical, canonicalJson(entry));
    }

    const requests = bodies.map((b) => JSON.parse(b.body) as FloorRequest);
    const floor = await measureGovernanceFloor(manifest, requests, entries);
    assert.deepEqual(
      floor.stages.map((s) => s.thread),
      ["serving", "model worker", "model worker", "model worker", "serving", "serving", "ledger"],
    );
    // Validation beyond encoding may come out at 0; every other stage does work.
    assert.ok(floor.stages[0]!.us >= 0);
    for (const stage of floor.stages.slice(1))
      assert.ok(Number.isFinite(stage.us) && stage.us > 0, stage.label);
    const sum = floor.stages.reduce((total, s) => total + s.us, 0);
    assert.ok(Math.abs(floor.totalUs - sum) < 1e-9);

    await assert.rejects(measureGovernanceFloor(manifest, requests, []), /needs decision entries/);
    await assert.rejects(
      measureGovernanceFloor(manifest, [{ features: {} }], entries),
      /needs requests the model accepts/,
    );
  } finally {
    rmSync(server.dataDir, { recursive: true, force: true });
  }
});

test("the throughput bound is the cores' CPU time over the CPU time of one request", () => {
  // 2 cores, 40 µs of baseline and 60 µs of floor per request: 2,000,000 µs / 100 µs.
  assert.equal(throughputBound(2, 40, 60), 20_000);
  assert.equal(throughputBound(1, 25, 0), 40_000);
  assert.throws(() => throughputBound(0, 40, 60), RangeError);
  assert.throws(() => throughputBound(2, 0, 0), RangeError);
  assert.throws(() => throughputBound(2, -1, 60), RangeError);
  assert.throws(() => throughputBound(2, 40, Number.NaN), RangeError);
});
