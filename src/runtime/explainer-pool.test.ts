import assert from "node:assert/strict";
import { renameSync } from "node:fs";
import { dirname, join } from "node:path";
import { after, test } from "node:test";
import type { Worker } from "node:worker_threads";
import { validateInstance } from "../decision/index.js";
import { WardenError } from "../errors/index.js";
import type { ExplanationRecord } from "../explain/model-explainer.js";
import type { ExplanationJob } from "../explain/service.js";
import {
  DEMO_ONNX,
  DEMO_XGB,
  demoVersion,
  holdoutInstances,
  loadManifest,
  tempDir,
} from "../testing/index.js";
import { createExplainerPool, EXPLAINER_QUEUE_SIZE, type ExplainerPoolOptions } from "./explainer-pool.js";

// The XGBoost demo throughout: its engine is plain JavaScript, so a thread may be ended in the middle of a job
// (onnxruntime-node aborts the process when its thread is terminated inside a run).
const manifest = loadManifest(DEMO_XGB);
const dir = tempDir("explainer-pool");
after(() => dir.remove());

const holdout = holdoutInstances(manifest);
const instance = (row: number) => {
  const checked = validateInstance(manifest, holdout[row]!.features, undefined, "");
  assert.ok(checked.instance, JSON.stringify(checked.problems));
  return checked.instance;
};

/** KernelSHAP of one holdout row. */
const kernelJob = (row = 0): ExplanationJob => {
  const { row: input, inputs } = instance(row);
  return { kind: "kernelshap", input, rows: 1, values: [inputs] };
};
/** LIME with 40 seeds: several seconds of work, so a test can act while it runs. */
const longJob = (): ExplanationJob => ({ kind: "lime", row: instance(0).row, runs: 40 });

/** Pool options that record every explainer thread the pool creates, and which of them have exited. */
function watchThreads() {
  const all: Worker[] = [];
  const exited = new Set<Worker>();
  const options: ExplainerPoolOptions = {
    onWorkerSpawnForTest: (worker) => {
      all.push(worker);
      worker.once("exit", () => exited.add(worker));
    },
  };
  return { all, options, running: () => all.filter((w) => !exited.has(w)).length };
}

const exitOf = (worker: Worker) => new Promise<void>((resolve) => worker.once("exit", () => resolve()));
/** Resolves on the thread's first message: its start-up answer. */
const startOf = (worker: Worker) => new Promise<void>((resolve) => worker.once("message", () => resolve()));

const isCode = (code: string) => (error: unknown) => {
  assert.ok(error instanceof WardenError, String(error));
  assert.equal(error.code, code, error.message);
  return true;
};

/** A KernelSHAP answer for one row: one record whose contributions add up to output − base. */
function assertKernelAnswer(result: unknown): void {
  assert.ok(Array.isArray(result) && result.length === 1, JSON.stringify(result).slice(0, 200));
  const [record] = result as ExplanationRecord[];
  assert.equal(record!.method, "kernelshap");
  assert.deepEqual(Object.keys(record!.contributions), manifest.modelFeatures.map((f) => f.name).sort());
}

const RECOVERY = { timeout: 60_000 };

test(
  "the thread starts on first use, answers jobs in order, and a job that fails leaves it serving",
  RECOVERY,
  async () => {
    const threads = watchThreads();
    const pool = createExplainerPool(manifest, threads.options);
    try {
      assert.equal(threads.all.length, 0, "no thread before the first job");
      const order: string[] = [];
      const first = pool.run(kernelJob(0)).then((r) => {
        order.push("first");
        return r;
      });
      // Rows of the wrong length: the maths refuses them (a request it cannot serve, not a crash).
      const broken: ExplanationJob = {
        kind: "kernelshap",
        input: new Float32Array(3),
        rows: 2,
        values: [{}, {}],
      };
      const failing = pool.run(broken).then(
        () => assert.fail("a job of 3 values for 2 rows was answered"),
        (error: unknown) => {
          order.push("failing");
          throw error;
        },
      );
      const third = pool.run(kernelJob(1)).then((r) => {
        order.push("third");
        return r;
      });
      assert.equal(pool.pending, 3);
      assertKernelAnswer(await first);
      await assert.rejects(failing, isCode("WARDEN_ERR_EXPLANATION_UNAVAILABLE"));
      assertKernelAnswer(await third);
      assert.deepEqual(order, ["first", "failing", "third"], "jobs are answered in arrival order");
      assert.equal(threads.all.length, 1, "one thread served all three jobs");
      assert.equal(pool.pending, 0);
    } finally {
      await pool.close();
    }
    assert.equal(threads.running(), 0, "close ends the thread");
  },
);

test(
  "a decision's job goes ahead of the waiting jobs that are not, never ahead of the running one",
  RECOVERY,
  async () => {
    const pool = createExplainerPool(manifest);
    try {
      const order: string[] = [];
      const run = (name: string, decision: boolean) =>
        pool.run(kernelJob(0), { decision }).then(() => {
          order.push(name);
        });
      // All in one turn: the thread is still starting, so "running" has been taken and the others wait.
      const all = [
        run("running", false),
        run("waiting 1", false),
        run("decision 1", true),
        run("waiting 2", false),
        run("decision 2", true),
      ];
      await Promise.all(all);
      assert.deepEqual(order, ["running", "decision 1", "decision 2", "waiting 1", "waiting 2"]);
    } finally {
      await pool.close();
    }
  },
);

test("a thread that died while idle is replaced by the next job", RECOVERY, async () => {
  const threads = watchThreads();
  const pool = createExplainerPool(manifest, threads.options);
  try {
    assertKernelAnswer(await pool.run(kernelJob(0)));
    const first = threads.all[0]!;
    const exited = exitOf(first);
    // As a native crash or an out-of-memory kill would end it.
    void first.terminate();
    await exited;
    assertKernelAnswer(await pool.run(kernelJob(2)));
    assert.equal(threads.all.length, 2, "a second thread was started for the job");
    assert.equal(threads.running(), 1);
  } finally {
    await pool.close();
  }
  assert.equal(threads.running(), 0);
});

test(
  "a thread that dies in a job fails that job; the job behind it runs in a new thread",
  RECOVERY,
  async () => {
    const threads = watchThreads();
    const pool = createExplainerPool(manifest, threads.options);
    try {
      const long = pool.run(longJob());
      const waiting = pool.run(kernelJob(3));
      const thread = threads.all[0]!;
      await startOf(thread);
      // The long job was posted once the thread answered its start; end the thread in the middle of it.
      await new Promise((resolve) => setImmediate(resolve));
      void thread.terminate();
      await assert.rejects(long, (error: unknown) => {
        isCode("WARDEN_ERR_INTERNAL")(error);
        assert.match((error as Error).message, /explainer thread of credit-demo stopped/);
        return true;
      });
      assertKernelAnswer(await waiting);
      assert.equal(threads.all.length, 2);
    } finally {
      await pool.close();
    }
    assert.equal(threads.running(), 0);
  },
);

test(
  "a thread that fails to start fails its job with the reason; the next job starts a fresh thread",
  RECOVERY,
  async () => {
    const manifestPath = demoVersion(dir.path, "9.0.0-start");
    const copy = loadManifest(manifestPath);
    const artifact = join(dirname(manifestPath), "model.json");
    const threads = watchThreads();
    const pool = createExplainerPool(copy, threads.options);
    try {
      // The thread reads the artifact when it starts: take it away, so that the start fails.
      renameSync(artifact, `${artifact}.away`);
      const first = pool.run(kernelJob(0));
      const second = pool.run(kernelJob(1));
      await assert.rejects(
        first.finally(() => renameSync(`${artifact}.away`, artifact)),
        isCode("WARDEN_ERR_ARTIFACT_INVALID"),
      );
      // The second job's thread was started after the first one failed, and reads the artifact back in place.
      // The failed thread ends after that: its exit must not fail the job now running in its successor.
      assertKernelAnswer(await second);
      assert.equal(threads.all.length, 2);
      assert.equal(threads.running(), 1, "the failed thread was stopped");
    } finally {
      await pool.close();
    }
    assert.equal(threads.running(), 0);
  },
);

test(
  "a full queue refuses at once with WARDEN_ERR_QUEUE_FULL; close rejects every pending job",
  RECOVERY,
  async () => {
    const threads = watchThreads();
    const pool = createExplainerPool(manifest, threads.options);
    // All in one turn: the thread is still starting, so the first job is running and the others wait.
    const accepted = Array.from({ length: EXPLAINER_QUEUE_SIZE + 1 }, () => pool.run(kernelJob(0)));
    const settled = Promise.allSettled(accepted);
    assert.equal(pool.pending, EXPLAINER_QUEUE_SIZE + 1);
    await assert.rejects(pool.run(kernelJob(0)), (error: unknown) => {
      isCode("WARDEN_ERR_QUEUE_FULL")(error);
      assert.equal((error as WardenError).status, 429);
      assert.equal((error as WardenError).retryAfterSeconds, 1);
      return true;
    });
    assert.equal(pool.pending, EXPLAINER_QUEUE_SIZE + 1, "the refused job was not queued");

    await pool.close();
    const outcomes = await settled;
    assert.equal(outcomes.length, EXPLAINER_QUEUE_SIZE + 1);
    for (const outcome of outcomes) {
      assert.equal(outcome.status, "rejected");
      isCode("WARDEN_ERR_SHUTTING_DOWN")((outcome as PromiseRejectedResult).reason);
    }
    assert.equal(pool.pending, 0);
    await assert.rejects(pool.run(kernelJob(0)), isCode("WARDEN_ERR_SHUTTING_DOWN"));
    assert.equal(threads.all.length, 1, "no thread is started after close");
    assert.equal(threads.running(), 0);
  },
);

/** The ONNX demo (its engine is onnxruntime, which must never be stopped mid-run), and its first holdout row. */
const onnx = loadManifest(DEMO_ONNX);
const onnxRow = () => {
  const checked = validateInstance(onnx, holdoutInstances(onnx)[0]!.features, undefined, "");
  assert.ok(checked.instance, JSON.stringify(checked.problems));
  return checked.instance;
};

test(
  "close stops an ONNX explainer thread's job between two inferences and lets the thread leave on its own",
  RECOVERY,
  async () => {
    const threads = watchThreads();
    const pool = createExplainerPool(onnx, threads.options);
    // LIME with 40 seeds: thousands of onnxruntime runs, so close arrives while the thread is among them.
    const job = pool.run({ kind: "lime", row: onnxRow().row, runs: 40 });
    const settled = job.then(
      () => assert.fail("the job was answered after close"),
      (error: unknown) => error,
    );
    await startOf(threads.all[0]!);
    const exited = new Promise<number>((resolve) => threads.all[0]!.once("exit", resolve));
    // A second close waits for the same one: both resolve once the thread has gone.
    await Promise.all([pool.close(), pool.close()]);
    assert.equal(threads.running(), 0);
    isCode("WARDEN_ERR_SHUTTING_DOWN")(await settled);
    // Exit code 0: the thread called process.exit itself (terminate() would give 1). Had it been stopped inside
    // a run, this process would have aborted before getting here.
    assert.equal(await exited, 0);
    assert.equal(threads.running(), 0);
  },
);

test(
  "a job past its time is refused (504) and its ONNX thread retired between two inferences; the next job gets a new thread",
  RECOVERY,
  async () => {
    const threads = watchThreads();
    // A limit far below what LIME with 400 seeds takes (each seed one onnxruntime run of 5,000 samples; over two
    // seconds in all on a fast machine), counted from when the ready thread is sent the job: it overruns anywhere.
    // And far above what the next job, one row's KernelSHAP on a fresh thread, takes (20-60 ms on a slow machine).
    const pool = createExplainerPool(onnx, { ...threads.options, jobTimeoutMs: 400 });
    try {
      const { row, inputs } = onnxRow();
      const long = pool.run({ kind: "lime", row, runs: 400 });
      await startOf(threads.all[0]!);
      const exited = new Promise<number>((resolve) => threads.all[0]!.once("exit", resolve));
      await assert.rejects(long, (error: unknown) => {
        isCode("WARDEN_ERR_TIMEOUT")(error);
        assert.equal((error as WardenError).status, 504);
        return true;
      });
      // Exit code 0: the thread left on its own, at an inference boundary, instead of being terminated.
      assert.equal(await exited, 0);
      const next = await pool.run({ kind: "kernelshap", input: row, rows: 1, values: [inputs] });
      assert.ok(Array.isArray(next) && next.length === 1);
      assert.equal(threads.all.length, 2);
    } finally {
      await pool.close();
    }
    assert.equal(threads.running(), 0);
  },
);
