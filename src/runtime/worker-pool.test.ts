import assert from "node:assert/strict";
import { copyFileSync } from "node:fs";
import { join } from "node:path";
import { after, test } from "node:test";
import { parseManifest, sha256File } from "../config/index.js";
import { REPO_ROOT, tempDir } from "../testing/index.js";
import { loadEngine } from "./engines.js";
import { createWorkerPool } from "./worker-pool.js";

const dir = tempDir("pool");
after(() => dir.remove());

/** A manifest for fixtures/onnx/slow.onnx (4 inputs, one output; about half a second per run here). */
function slowManifest(instances = 1) {
  const artifact = join(dir.path, "slow.onnx");
  copyFileSync(join(REPO_ROOT, "fixtures/onnx/slow.onnx"), artifact);
  return parseManifest(
    {
      name: "slow",
      version: "1",
      owner: "tests",
      intended_use: "prove that inference does not block the event loop",
      risk_tier: "minimal",
      task: "regression",
      artifact: { path: "slow.onnx", format: "onnx", sha256: sha256File(artifact) },
      runtime: { instances },
      features: ["a", "b", "c", "d"].map((name) => ({ name, type: "number" })),
    },
    join(dir.path, "slow.yaml"),
  );
}

/** Run `work` while a 5 ms interval timer measures how late it fires; returns the worst lateness and work time. */
async function lateness(work: () => Promise<unknown>): Promise<{ worstLateMs: number; workMs: number }> {
  let worstLateMs = 0;
  let expected = performance.now() + 5;
  const timer = setInterval(() => {
    const now = performance.now();
    worstLateMs = Math.max(worstLateMs, now - expected);
    expected = now + 5;
  }, 5);
  const started = performance.now();
  await work();
  const workMs = performance.now() - started;
  // Let the interval observe the loop once more after the work ends.
  await new Promise((r) => setTimeout(r, 12));
  clearInterval(timer);
  return { worstLateMs, workMs };
}

test("a slow model in a worker thread leaves the main thread's timers on time", async () => {
  const manifest = slowManifest();
  const input = () => Float32Array.from([1, 2, 3, 4]);

  // In the calling thread, onnxruntime-node's run blocks the event loop for the whole inference...
  const engine = await loadEngine(manifest);
  const inline = await lateness(async () => engine.predict(input(), 1));
  await engine.close();
  assert.ok(
    inline.worstLateMs > 0.5 * inline.workMs,
    `inline: timer ${inline.worstLateMs.toFixed(1)} ms late over ${inline.workMs.toFixed(1)} ms`,
  );

  // ...in the worker pool the same inference leaves the timer on time (late by a small fraction of it).
  const pool = await createWorkerPool(manifest);
  try {
    const pooled = await lateness(() => pool.run(input(), 1));
    assert.ok(pooled.workMs > 0.5 * inline.workMs, "the pooled run really took the model's time");
    assert.ok(
      pooled.worstLateMs < 0.2 * pooled.workMs,
      `worker: timer ${pooled.worstLateMs.toFixed(1)} ms late over a ${pooled.workMs.toFixed(1)} ms inference`,
    );
  } finally {
    await pool.close();
  }
});

test("the pool reports idle instances and refuses work once closed", async () => {
  const manifest = slowManifest(2);
  const pool = await createWorkerPool(manifest);
  assert.equal(pool.idleCount(), 2);
  assert.equal(pool.description.format, "onnx");
  assert.equal(pool.description.featureCount, 4);
  let idleEvents = 0;
  pool.onIdle(() => idleEvents++);
  const running = pool.run(Float32Array.from([1, 2, 3, 4]), 1);
  assert.equal(pool.idleCount(), 1);
  const output = await running;
  assert.equal(output.kind, "values");
  assert.equal(output.values.length, 1);
  assert.equal(pool.idleCount(), 2);
  assert.equal(idleEvents, 1);
  await pool.close();
  await assert.rejects(pool.run(Float32Array.from([1, 2, 3, 4]), 1), /shutting down/);
});

test("a model that fails to load reports the engine's error from the worker", async () => {
  const manifest = slowManifest();
  const broken = parseManifest(
    { ...(manifest.source as Record<string, unknown>), runtime: { device: "cuda" } },
    manifest.manifestPath,
  );
  await assert.rejects(createWorkerPool(broken), (e: Error & { code?: string }) => {
    assert.equal(e.code, "WARDEN_ERR_DEVICE_UNAVAILABLE");
    return true;
  });
});
