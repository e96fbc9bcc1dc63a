import assert from "node:assert/strict";
import { copyFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { after, test } from "node:test";
import type { Worker } from "node:worker_threads";
import { loadManifest, parseManifest, sha256File } from "../config/index.js";
import type { WardenError } from "../errors/index.js";
import { DEMO_XGB, REPO_ROOT, tempDir } from "../testing/index.js";
import { loadEngine } from "./engines.js";
import { createWorkerPool, type ModelExecutor } from "./worker-pool.js";

const dir = tempDir("pool");
after(() => dir.remove());

/**
 * A manifest for fixtures/onnx/slow.onnx (4 inputs, one output; about half a second per run here), copied
 * into `folder` (a test that changes the artifact passes a folder of its own).
 */
function slowManifest(instances = 1, folder = dir.path) {
  mkdirSync(folder, { recursive: true });
  const artifact = join(folder, "slow.onnx");
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
    join(folder, "slow.yaml"),
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
  assert.equal(pool.liveCount(), 2);
  assert.ok(pool.isReady());
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
  assert.ok(!pool.isReady(), "a closed pool is not ready");
  await assert.rejects(pool.run(Float32Array.from([1, 2, 3, 4]), 1), /shutting down/);
});

test("a model that fails to load reports the engine's error from the worker", async () => {
  const manifest = slowManifest();
  const broken = parseManifest(
    { ...(manifest.source as Record<string, unknown>), runtime: { device: "cuda" } },
    manifest.manifestPath,
  );
  const workers = watchWorkers();
  await assert.rejects(createWorkerPool(broken, workers.options), (e: Error & { code?: string }) => {
    assert.equal(e.code, "WARDEN_ERR_DEVICE_UNAVAILABLE");
    return true;
  });
  assert.equal(workers.running(), 0, "the failed worker was stopped");
});

/**
 * Pool options that record every worker thread the pool creates (so a test can crash one with
 * `terminate()`, as a native crash or an out-of-memory kill would end it) and every error it reports.
 */
function watchWorkers() {
  const all: Worker[] = [];
  const exited = new Set<Worker>();
  const errors: (Error & { code?: string })[] = [];
  return {
    all,
    errors,
    /** Threads created and not yet exited. */
    running: () => all.filter((w) => !exited.has(w)).length,
    options: {
      onWorkerError: (error: Error) => errors.push(error),
      onWorkerSpawnForTest: (worker: Worker) => {
        all.push(worker);
        worker.once("exit", () => exited.add(worker));
      },
    },
  };
}

/** Wait until `condition` holds, re-checking it whenever the pool announces a change of capacity. */
function untilIdle(pool: ModelExecutor, condition: () => boolean): Promise<void> {
  return new Promise((resolve) => {
    if (condition()) return resolve();
    pool.onIdle(() => {
      if (condition()) resolve();
    });
  });
}

/** Wait until `condition` holds, polling (for states the pool announces only through onWorkerError). */
async function until(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((r) => setTimeout(r, 10));
}

const row = () => Float32Array.from([1, 2, 3, 4]);
/** A pool that failed to recover would leave these tests waiting: fail them instead. */
const RECOVERY = { timeout: 20_000 };
const isCode = (code: string) => (e: WardenError) => {
  assert.equal(e.code, code, e.message);
  return true;
};

test(
  "a worker that dies mid-batch fails that batch, and its replacement brings capacity back",
  RECOVERY,
  async () => {
    // The XGBoost engine (plain JavaScript) here: onnxruntime-node aborts the whole process when its thread
    // is terminated in the middle of a run.
    const manifest = loadManifest(DEMO_XGB);
    const width = manifest.modelFeatures.length;
    const workers = watchWorkers();
    const pool = await createWorkerPool(manifest, workers.options);
    try {
      // 300,000 rows take about half a second: the worker is inside the batch when it dies.
      const running = pool.run(new Float32Array(300_000 * width), 300_000);
      await new Promise((r) => setTimeout(r, 100));
      void workers.all[0]!.terminate();
      await assert.rejects(running, isCode("WARDEN_ERR_INFERENCE_FAILED"));
      const { instances } = manifest.runtime;
      await untilIdle(pool, () => pool.idleCount() === instances);
      assert.equal(workers.all.length, instances + 1, "one replacement started");
      const output = await pool.run(new Float32Array(width), 1);
      assert.equal(output.values.length, output.width, "one row answered");
    } finally {
      await pool.close();
    }
    assert.equal(workers.running(), 0);
  },
);

test("a batch sent to a worker whose thread has just died is rejected, not lost", RECOVERY, async () => {
  const workers = watchWorkers();
  const pool = await createWorkerPool(slowManifest(), workers.options);
  try {
    // The pool learns of the exit only after run() has posted to the dying thread, which drops the message.
    void workers.all[0]!.terminate();
    await assert.rejects(pool.run(row(), 1), isCode("WARDEN_ERR_INFERENCE_FAILED"));
  } finally {
    await pool.close();
  }
  assert.equal(workers.running(), 0);
});

test(
  "an instance that dies after loading, while a sibling still loads, is noticed and replaced",
  RECOVERY,
  async () => {
    const workers = watchWorkers();
    let emitSecond: ((event: string | symbol, ...args: unknown[]) => boolean) | undefined;
    let firstExited = false;
    const held: unknown[][] = [];
    const pool = await createWorkerPool(slowManifest(2), {
      ...workers.options,
      onWorkerSpawnForTest: (worker) => {
        workers.options.onWorkerSpawnForTest(worker);
        if (workers.all.length === 1) {
          // The first instance dies as soon as it reports ready...
          worker.once("message", () => void worker.terminate());
          worker.once("exit", () => {
            firstExited = true;
            for (const args of held.splice(0)) emitSecond?.("message", ...args);
          });
        } else if (workers.all.length === 2) {
          // ...while, as far as the pool can tell, the second is still loading: its replies are held back
          // until the first has exited, so the pool is still starting up when that exit arrives.
          const emit = worker.emit.bind(worker);
          emitSecond = emit;
          worker.emit = ((event: string | symbol, ...args: unknown[]) => {
            if (event !== "message" || firstExited) return emit(event, ...args);
            held.push(args);
            return true;
          }) as typeof worker.emit;
        }
      },
    });
    try {
      // On a busy machine the replacement may already be up by now; until it is spawned, only the sibling is idle.
      if (workers.all.length === 2)
        assert.equal(pool.idleCount(), 1, "the dead instance is not counted as idle");
      else assert.ok(pool.idleCount() <= 2, `${pool.idleCount()} idle of two live instances`);
      await untilIdle(pool, () => pool.idleCount() === 2);
      assert.equal(workers.all.length, 3, "the dead instance was replaced");
      // Both instances really answer: before the fix, one of these was posted to the dead thread and hung.
      const outputs = await Promise.all([pool.run(row(), 1), pool.run(row(), 1)]);
      assert.deepEqual(
        outputs.map((o) => o.values.length),
        [1, 1],
      );
    } finally {
      await pool.close();
    }
    assert.equal(workers.running(), 0);
  },
);

test(
  "close() stops a replacement that is still starting, so no thread outlives the pool",
  RECOVERY,
  async () => {
    const workers = watchWorkers();
    const pool = await createWorkerPool(slowManifest(), workers.options);
    // terminate() resolves once the exit is delivered, so the replacement has been created by then.
    await workers.all[0]!.terminate();
    assert.equal(workers.all.length, 2, "a replacement is starting");
    await pool.close();
    assert.equal(workers.running(), 0, "close() waited for the replacement and stopped it");
  },
);

/** Replace the artifact of `manifest` with another valid ONNX model (so only its sha256 gives it away). */
function swapArtifact(manifest: ReturnType<typeof slowManifest>): () => void {
  const path = manifest.artifact.absolutePath;
  copyFileSync(join(REPO_ROOT, "fixtures/onnx/regression.onnx"), path);
  return () => copyFileSync(join(REPO_ROOT, "fixtures/onnx/slow.onnx"), path);
}

test(
  "a replacement refuses a changed artifact; the pool is not ready until a retry succeeds",
  RECOVERY,
  async () => {
    const manifest = slowManifest(1, join(dir.path, "swapped"));
    const workers = watchWorkers();
    const pool = await createWorkerPool(manifest, workers.options);
    const retries = () =>
      workers.errors.filter((e) => e.code === "WARDEN_ERR_ARTIFACT_HASH_MISMATCH").map((e) => e.message);
    try {
      const restore = swapArtifact(manifest);
      await workers.all[0]!.terminate();
      await until(() => retries().length >= 2);
      // The file on disk no longer matches the manifest's sha256 (which the ledger records): not loaded.
      assert.match(retries()[0]!, /attempt 1; next in 100 ms\): .*has sha256/);
      assert.match(retries()[1]!, /attempt 2; next in 200 ms\)/, "retried with a doubling backoff");
      assert.equal(pool.liveCount(), 0);
      assert.equal(pool.isReady(), false);
      assert.equal(pool.idleCount(), 0);
      // With no instance left, run() fails at once with a 503 that says so (not a timeout).
      const started = performance.now();
      await assert.rejects(pool.run(row(), 1), (e: WardenError) => {
        assert.equal(e.code, "WARDEN_ERR_MODEL_NOT_READY");
        assert.equal(e.status, 503);
        assert.match(e.message, /no running instance.*server log/);
        return true;
      });
      assert.ok(performance.now() - started < 100, "rejected at once");

      restore();
      await untilIdle(pool, () => pool.isReady());
      assert.equal(pool.idleCount(), 1);
      assert.equal((await pool.run(row(), 1)).values.length, 1);
    } finally {
      await pool.close();
    }
    assert.equal(workers.running(), 0);
  },
);

test("close() during a replacement's backoff stops the retries and leaves no thread", RECOVERY, async () => {
  const manifest = slowManifest(1, join(dir.path, "closed-while-retrying"));
  const workers = watchWorkers();
  const pool = await createWorkerPool(manifest, workers.options);
  swapArtifact(manifest);
  await workers.all[0]!.terminate();
  await until(() => workers.errors.some((e) => e.code === "WARDEN_ERR_ARTIFACT_HASH_MISMATCH"));
  await pool.close();
  assert.equal(workers.running(), 0);
  const created = workers.all.length;
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(workers.all.length, created, "no replacement started after close()");
});
