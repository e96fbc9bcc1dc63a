import assert from "node:assert/strict";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { test } from "node:test";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { WardenError } from "../errors/index.js";
import { type BatchingPolicy, DynamicBatcher } from "./batcher.js";
import type { RowTask } from "./row-tasks.js";
import type { EngineOutput } from "./types.js";
import type { ModelExecutor } from "./worker-pool.js";

/**
 * An in-process executor with `instances` slots whose batches finish when the test says (or after
 * `autoMs`). Output row r is [sum of row r's inputs], so every answer can be checked against its input.
 */
function controlledExecutor(instances: number, autoMs?: number) {
  const batches: {
    rows: number;
    startedAt: number;
    finishedAt?: number;
    finish: () => void;
    input: Float32Array;
  }[] = [];
  const listeners: (() => void)[] = [];
  let busy = 0;
  const executor: ModelExecutor = {
    description: { format: "onnx", featureCount: 2, inputs: [], outputs: [], details: {} },
    idleCount: () => instances - busy,
    liveCount: () => instances,
    isReady: () => instances > 0,
    onIdle: (l) => {
      listeners.push(l);
    },
    run(input, rows) {
      busy++;
      return new Promise<EngineOutput>((resolve) => {
        const finish = () => {
          batch.finishedAt = performance.now();
          const values = new Float64Array(rows);
          for (let r = 0; r < rows; r++) values[r] = input[r * 2]! + input[r * 2 + 1]!;
          busy--;
          resolve({ kind: "values", width: 1, values });
          // Like the worker pool: announce the free instance after the result is delivered.
          queueMicrotask(() => {
            for (const l of listeners) l();
          });
        };
        const batch: (typeof batches)[number] = { rows, startedAt: performance.now(), finish, input };
        batches.push(batch);
        if (autoMs !== undefined) setTimeout(finish, autoMs);
      });
    },
    close: async () => {},
  };
  return { executor, batches };
}

const policy = (p: Partial<BatchingPolicy> = {}): BatchingPolicy => ({
  max_batch_size: 4,
  max_queue_delay_us: 1000,
  preferred_batch_sizes: [],
  max_queue_size: 100,
  timeout_ms: 5000,
  ...p,
});

const rowOf = (a: number, b: number) => Float32Array.from([a, b]);

test("concurrent requests form batches of max_batch_size while the instance is busy", async () => {
  const { executor, batches } = controlledExecutor(1);
  const batcher = new DynamicBatcher(policy(), executor, 2);
  const answers = Array.from({ length: 10 }, (_, i) => batcher.submit([rowOf(i, 100)]));
  // Four rows reach max_batch_size at once; the other six wait for the busy instance.
  assert.deepEqual(
    batches.map((b) => b.rows),
    [4],
  );
  assert.equal(batcher.queueDepth, 6);
  batches[0]!.finish();
  await answers[3];
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(
    batches.map((b) => b.rows),
    [4, 4],
  );
  batches[1]!.finish();
  // The last two wait out the delay, then go as a smaller batch.
  await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(
    batches.map((b) => b.rows),
    [4, 4, 2],
  );
  batches[2]!.finish();
  const results = await Promise.all(answers);
  results.forEach((rows, i) => {
    assert.equal(rows[0]!.values[0], i + 100);
  });
  assert.deepEqual(
    results.map((r) => r[0]!.batchSize),
    [4, 4, 4, 4, 4, 4, 4, 4, 2, 2],
  );
});

test("a request's rows keep their order even when split across batches", async () => {
  const { executor } = controlledExecutor(2, 1);
  const batcher = new DynamicBatcher(policy({ max_batch_size: 3 }), executor, 2);
  const rows = Array.from({ length: 8 }, (_, i) => rowOf(i, i));
  const results = await batcher.submit(rows);
  assert.deepEqual(
    results.map((r) => r.values[0]),
    [0, 2, 4, 6, 8, 10, 12, 14],
  );
});

test("the largest preferred size the queue can fill leaves at once; fewer rows wait out the delay", async () => {
  const { executor, batches } = controlledExecutor(1);
  const delayUs = 40_000;
  const batcher = new DynamicBatcher(
    policy({ max_batch_size: 8, preferred_batch_sizes: [4, 2], max_queue_delay_us: delayUs }),
    executor,
    2,
  );
  const first = batcher.submit([rowOf(1, 0)]);
  assert.equal(batches.length, 0, "one row waits for company");
  const second = batcher.submit([rowOf(2, 0)]);
  assert.deepEqual(
    batches.map((b) => b.rows),
    [2],
    "two rows fill the preferred size 2 (4 cannot be filled): sent at once, as Triton does",
  );
  // While the instance is busy, three rows gather; when it is free, the largest preferred size they fill (2)
  // leaves at once and the third waits.
  const more = [3, 4, 5].map((i) => batcher.submit([rowOf(i, 0)]));
  batches[0]!.finish();
  await Promise.all([first, second]);
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(
    batches.map((b) => b.rows),
    [2, 2],
  );
  batches[1]!.finish();
  await Promise.all(more.slice(0, 2));
  await new Promise((r) => setImmediate(r));
  assert.equal(batches.length, 2, "a single row waits out the delay");
  const last = more[2]!;
  await new Promise((r) => setTimeout(r, delayUs / 1000 + 5));
  assert.deepEqual(
    batches.map((b) => b.rows),
    [2, 2, 1],
  );
  batches[2]!.finish();
  assert.ok((await last)[0]!.queueMs >= delayUs / 1000 - 1, "it left when the delay was spent");
});

test("once the delay is spent, a backlog leaves in batches up to max_batch_size, not the preferred size", async () => {
  const { executor, batches } = controlledExecutor(1);
  const batcher = new DynamicBatcher(
    policy({ max_batch_size: 32, preferred_batch_sizes: [4], max_queue_delay_us: 1000 }),
    executor,
    2,
  );
  const busy = batcher.submit([1, 2, 3, 4].map((i) => rowOf(i, 0)));
  assert.deepEqual(
    batches.map((b) => b.rows),
    [4],
  );
  const backlog = Array.from({ length: 40 }, (_, i) => batcher.submit([rowOf(i, 1)]));
  await new Promise((r) => setTimeout(r, 5)); // past the delay
  batches[0]!.finish();
  await busy;
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(
    batches.map((b) => b.rows),
    [4, 32],
  );
  batches[1]!.finish();
  await Promise.all(backlog.slice(0, 32));
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(
    batches.map((b) => b.rows),
    [4, 32, 8],
  );
  batches[2]!.finish();
  const rows = await Promise.all(backlog);
  assert.deepEqual(
    rows.map((r) => r[0]!.values[0]),
    Array.from({ length: 40 }, (_, i) => i + 1),
  );
});

test("a request with more rows than max_batch_size is split over consecutive batches without waiting the delay again", async () => {
  const { executor, batches } = controlledExecutor(1);
  // A delay far longer than the test: any batch that waited for it would never start.
  const batcher = new DynamicBatcher(
    policy({ max_batch_size: 4, max_queue_delay_us: 60_000_000 }),
    executor,
    2,
  );
  const small = batcher.submit([rowOf(1, 0), rowOf(2, 0)]);
  assert.equal(batches.length, 0, "two rows wait for company");
  const large = batcher.submit([3, 4, 5, 6, 7, 8, 9].map((i) => rowOf(i, 0)));
  assert.deepEqual(
    batches.map((b) => b.rows),
    [2],
    "the next request does not fit with them: waiting cannot make their batch larger, so it goes; batches end on requests",
  );
  for (const expected of [
    [2, 4],
    [2, 4, 3],
  ]) {
    batches.at(-1)!.finish();
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(
      batches.map((b) => b.rows),
      expected,
      "the large request fills a batch, and its rest follows as soon as the instance is free",
    );
  }
  batches.at(-1)!.finish();
  assert.deepEqual(
    (await small).map((r) => r.values[0]),
    [1, 2],
  );
  assert.deepEqual(
    (await large).map((r) => r.values[0]),
    [3, 4, 5, 6, 7, 8, 9],
  );
});

test("a request that fits a batch is never split to make a preferred size", async () => {
  const { executor, batches } = controlledExecutor(1);
  const batcher = new DynamicBatcher(
    policy({ max_batch_size: 8, preferred_batch_sizes: [2, 4], max_queue_delay_us: 20_000 }),
    executor,
    2,
  );
  const three = batcher.submit([1, 2, 3].map((i) => rowOf(i, 0)));
  assert.equal(batches.length, 0, "3 rows fill no preferred size: they wait for company");
  const one = batcher.submit([rowOf(4, 0)]);
  assert.deepEqual(
    batches.map((b) => b.rows),
    [4],
    "3 + 1 whole requests fill the preferred size 4",
  );
  batches[0]!.finish();
  assert.deepEqual(
    [...(await three), ...(await one)].map((r) => r.values[0]),
    [1, 2, 3, 4],
  );
  const seven = batcher.submit([1, 2, 3, 4, 5, 6, 7].map((i) => rowOf(i, 0)));
  await new Promise((r) => setImmediate(r));
  assert.equal(batches.length, 1, "7 rows are not cut into 4 + 3");
  await new Promise((r) => setTimeout(r, 25));
  assert.deepEqual(
    batches.map((b) => b.rows),
    [4, 7],
    "they leave whole once the delay is spent",
  );
  batches[1]!.finish();
  assert.equal((await seven).length, 7);
});

test("no row waits longer than the delay bound plus one inference (measured in the same run)", async () => {
  const loopDelay = monitorEventLoopDelay({ resolution: 1 });
  loopDelay.enable();
  const inferenceMs = 3;
  const { executor, batches } = controlledExecutor(1, inferenceMs);
  const delayUs = 2000;
  const batcher = new DynamicBatcher(policy({ max_batch_size: 8, max_queue_delay_us: delayUs }), executor, 2);
  const pending: Promise<unknown>[] = [];
  const waits: number[] = [];
  for (let i = 0; i < 60; i++) {
    pending.push(batcher.submit([rowOf(i, 0)]).then((r) => waits.push(r[0]!.queueMs)));
    await new Promise((r) => setTimeout(r, i % 7));
  }
  await Promise.all(pending);
  loopDelay.disable();
  // The longest inference in this run, start to finish (timers may fire late on a busy machine).
  const slowestBatch = Math.max(...batches.map((b) => b.finishedAt! - b.startedAt));
  // The bound: the delay, plus one batch in flight (the slowest one of this run), plus the event loop's own
  // worst delay in this run (timers cannot fire while the loop is busy).
  const bound = delayUs / 1000 + Math.max(inferenceMs, slowestBatch) + loopDelay.max / 1e6 + 1;
  assert.ok(batches.length > 1 && batches.some((b) => b.rows > 1), "batches formed");
  for (const wait of waits)
    assert.ok(wait <= bound, `waited ${wait.toFixed(2)} ms > bound ${bound.toFixed(2)} ms`);
});

test("a full queue refuses at once with WARDEN_ERR_QUEUE_FULL and Retry-After; queued work still completes", async () => {
  const { executor, batches } = controlledExecutor(1);
  const batcher = new DynamicBatcher(policy({ max_batch_size: 2, max_queue_size: 3 }), executor, 2);
  const accepted = [
    batcher.submit([rowOf(1, 1), rowOf(2, 2)]),
    batcher.submit([rowOf(3, 3), rowOf(4, 4), rowOf(5, 5)]),
  ];
  await assert.rejects(batcher.submit([rowOf(6, 6)]), (e: WardenError) => {
    assert.equal(e.code, "WARDEN_ERR_QUEUE_FULL");
    assert.equal(e.status, 429);
    assert.equal(e.retryAfterSeconds, 1);
    return true;
  });
  batches[0]!.finish();
  await accepted[0];
  await new Promise((r) => setImmediate(r));
  batches[1]!.finish();
  await new Promise((r) => setTimeout(r, 5));
  batches[2]!.finish();
  const rows = await accepted[1]!;
  assert.deepEqual(
    rows.map((r) => r.values[0]),
    [6, 8, 10],
  );
});

test("a request larger than the whole queue is a 400 (retrying could never help)", async () => {
  const { executor } = controlledExecutor(1, 0);
  const batcher = new DynamicBatcher(policy({ max_queue_size: 3 }), executor, 2);
  await assert.rejects(
    batcher.submit([rowOf(1, 1), rowOf(2, 2), rowOf(3, 3), rowOf(4, 4)]),
    (e: WardenError) => {
      assert.equal(e.code, "WARDEN_ERR_BAD_REQUEST");
      assert.equal(e.status, 400);
      assert.match(e.details[0]!.expected, /batching\.max_queue_size/);
      return true;
    },
  );
});

const reasonOf = (settled: PromiseSettledResult<unknown>) => {
  assert.equal(settled.status, "rejected");
  return (settled as PromiseRejectedResult).reason as WardenError;
};

test("timeout_ms against a model that answers nothing: 504 WARDEN_ERR_TIMEOUT for the request it has and for those queued behind it", async () => {
  const { executor, batches } = controlledExecutor(1);
  const batcher = new DynamicBatcher(policy({ max_batch_size: 1, timeout_ms: 30 }), executor, 2);
  const first = batcher.submit([rowOf(1, 1)]);
  const second = batcher.submit([rowOf(2, 2)]);
  assert.equal(batcher.queueDepth, 1);
  const [a, b] = await Promise.allSettled([first, second]);
  // A hung model is the model failing (the breaker's error_rate), not back-pressure.
  for (const settled of [a, b]) {
    assert.equal(reasonOf(settled).code, "WARDEN_ERR_TIMEOUT");
    assert.equal(reasonOf(settled).status, 504);
  }
  assert.equal(batcher.queueDepth, 0);
  batches[0]!.finish();
  await new Promise((r) => setImmediate(r));
  assert.equal(batches.length, 1, "the timed-out row was never sent to the model");
});

test("timeout_ms while the model keeps answering others: 503 WARDEN_ERR_QUEUE_TIMEOUT (back-pressure) for a request still queued", async () => {
  const { executor, batches } = controlledExecutor(1);
  const batcher = new DynamicBatcher(policy({ max_batch_size: 1, timeout_ms: 40 }), executor, 2);
  const first = batcher.submit([rowOf(1, 1)]);
  const second = batcher.submit([rowOf(2, 2)]);
  const third = batcher.submit([rowOf(3, 3)]);
  await new Promise((r) => setTimeout(r, 10));
  batches[0]!.finish(); // the model answers: the second goes to it (and hangs there), the third waits
  const [a, b, c] = await Promise.allSettled([first, second, third]);
  assert.equal(a.status, "fulfilled");
  assert.equal(reasonOf(b).code, "WARDEN_ERR_TIMEOUT", "the model had it");
  const queued = reasonOf(c);
  assert.equal(queued.code, "WARDEN_ERR_QUEUE_TIMEOUT");
  assert.equal(queued.status, 503);
  assert.equal(queued.retryAfterSeconds, 1);
  assert.equal(batches.length, 2, "the third row never reached the model");
  assert.equal(batcher.queueDepth, 0);
});

test("a request partly sent to a model that then hangs times out as 504, though rows of it are still queued", async () => {
  const { executor, batches } = controlledExecutor(1);
  const batcher = new DynamicBatcher(policy({ max_batch_size: 4, timeout_ms: 40 }), executor, 2);
  const large = batcher.submit(Array.from({ length: 12 }, (_, i) => rowOf(i, 0)));
  assert.deepEqual(
    batches.map((b) => b.rows),
    [4],
  );
  batches[0]!.finish(); // answered: the next 4 go, and hang
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(
    batches.map((b) => b.rows),
    [4, 4],
  );
  assert.equal(batcher.queueDepth, 4);
  const error = reasonOf((await Promise.allSettled([large]))[0]!);
  assert.equal(error.code, "WARDEN_ERR_TIMEOUT", "the model has rows of it: not back-pressure");
});

test("a failed batch is no sign of progress: a request queued behind it that times out is a 504", async () => {
  const { executor } = controlledExecutor(1);
  // The first batch takes the only instance and fails; the instance does not come back (as when a worker dies
  // and its replacement hangs starting), so the second request stays queued.
  const failingThenHung: ModelExecutor = {
    ...executor,
    run(input, rows, tasks) {
      void executor.run(input, rows, tasks); // holds the instance, never finished
      return new Promise((_, reject) =>
        setTimeout(() => reject(new WardenError("WARDEN_ERR_INFERENCE_FAILED", "the model failed")), 5),
      );
    },
  };
  const batcher = new DynamicBatcher(policy({ max_batch_size: 1, timeout_ms: 40 }), failingThenHung, 2);
  const [first, second] = await Promise.allSettled([
    batcher.submit([rowOf(1, 1)]),
    batcher.submit([rowOf(2, 2)]),
  ]);
  assert.equal(reasonOf(first!).code, "WARDEN_ERR_INFERENCE_FAILED");
  assert.equal(reasonOf(second!).code, "WARDEN_ERR_TIMEOUT");
});

test("a full batch leaves at once, whatever the preferred sizes", async () => {
  const { executor, batches } = controlledExecutor(1);
  const batcher = new DynamicBatcher(
    policy({ max_batch_size: 8, preferred_batch_sizes: [4], max_queue_delay_us: 60_000_000 }),
    executor,
    2,
  );
  const busy = batcher.submit([1, 2, 3, 4].map((i) => rowOf(i, 0)));
  const waiting = Array.from({ length: 8 }, (_, i) => batcher.submit([rowOf(i, 1)]));
  batches[0]!.finish();
  await busy;
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(
    batches.map((b) => b.rows),
    [4, 8],
    "8 whole requests fill max_batch_size: one batch, not the preferred 4 twice",
  );
  batches[1]!.finish();
  assert.equal((await Promise.all(waiting)).length, 8);
});

test("with no live instance, queued requests fail at once with 503 instead of waiting out their timeout", async () => {
  const { executor } = controlledExecutor(1, 0);
  let live = 1;
  const listeners: (() => void)[] = [];
  const flaky: ModelExecutor = {
    ...executor,
    idleCount: () => (live > 0 ? executor.idleCount() : 0),
    liveCount: () => live,
    isReady: () => live > 0,
    onIdle: (listener) => {
      listeners.push(listener);
      executor.onIdle(listener);
    },
  };
  const batcher = new DynamicBatcher(policy({ max_queue_delay_us: 5_000_000, timeout_ms: 60_000 }), flaky, 2);
  const waiting = batcher.submit([rowOf(1, 1)]);
  live = 0; // every instance lost: the pool tells its listeners
  for (const listener of listeners) listener();
  await assert.rejects(
    waiting,
    (e: WardenError) => e.code === "WARDEN_ERR_MODEL_NOT_READY" && e.status === 503,
  );
  await assert.rejects(
    batcher.submit([rowOf(2, 2)]),
    (e: WardenError) => e.code === "WARDEN_ERR_MODEL_NOT_READY",
  );
  assert.equal(batcher.queueDepth, 0);
});

test("a failing batch rejects its requests and the batcher carries on", async () => {
  let fail = true;
  const { executor } = controlledExecutor(1, 0);
  const failing: ModelExecutor = {
    ...executor,
    run: (input, rows) => {
      if (!fail) return executor.run(input, rows);
      fail = false;
      return Promise.reject(new WardenError("WARDEN_ERR_INFERENCE_FAILED", "boom"));
    },
  };
  const batcher = new DynamicBatcher(policy({ max_batch_size: 1, max_queue_delay_us: 0 }), failing, 2);
  await assert.rejects(batcher.submit([rowOf(1, 1)]), /boom/);
  const ok = await batcher.submit([rowOf(2, 3)]);
  assert.equal(ok[0]!.values[0], 5);
  batcher.close();
  await assert.rejects(
    batcher.submit([rowOf(1, 1)]),
    (e: WardenError) => e.code === "WARDEN_ERR_SHUTTING_DOWN",
  );
});

test("with no queue delay, rows submitted in the same event-loop turn share one batch", async () => {
  const { executor, batches } = controlledExecutor(1, 0);
  const batcher = new DynamicBatcher(policy({ max_batch_size: 8, max_queue_delay_us: 0 }), executor, 2);
  const answers = [1, 2, 3, 4, 5].map((i) => batcher.submit([rowOf(i, 0)]));
  // Nothing has gone yet: the turn is still running.
  assert.equal(batches.length, 0);
  const results = await Promise.all(answers);
  assert.deepEqual(
    batches.map((b) => b.rows),
    [5],
  );
  assert.deepEqual(
    results.map((r) => r[0]!.values[0]),
    [1, 2, 3, 4, 5],
  );
  // A lone request in a later turn goes on its own, without waiting for company.
  await batcher.submit([rowOf(9, 0)]);
  assert.deepEqual(
    batches.map((b) => b.rows),
    [5, 1],
  );
});

test("a row whose task fails fails its own request only; the others in its batch are answered", async () => {
  const listeners: (() => void)[] = [];
  const seen: ((RowTask | null)[] | undefined)[] = [];
  const executor: ModelExecutor = {
    description: { format: "onnx", featureCount: 2, inputs: [], outputs: [], details: {} },
    idleCount: () => 1,
    liveCount: () => 1,
    isReady: () => true,
    onIdle: (l) => {
      listeners.push(l);
    },
    async run(input, rows, tasks) {
      seen.push(tasks === undefined ? undefined : [...tasks]);
      const values = new Float64Array(rows);
      for (let r = 0; r < rows; r++) values[r] = input[r * 2]! + input[r * 2 + 1]!;
      // The worker's answer for a task that failed: an error for that row, nothing for the others.
      const results = tasks?.map((task) =>
        task?.explain?.values.fail === true
          ? { error: { code: "WARDEN_ERR_EXPLANATION_UNAVAILABLE", message: "no explainer here" } }
          : null,
      );
      return { kind: "values", width: 1, values, ...(results ? { tasks: results } : {}) };
    },
    close: async () => {},
  };
  const batcher = new DynamicBatcher(policy({ max_queue_delay_us: 0 }), executor, 2);
  const failing = batcher.submit([rowOf(1, 2)], [{ explain: { values: { fail: true } } }]);
  const plain = batcher.submit([rowOf(3, 4)]);
  const fine = batcher.submit([rowOf(5, 6)], [{ explain: { values: { fail: false } } }]);
  await assert.rejects(failing, (error: unknown) => {
    assert.ok(error instanceof WardenError);
    assert.equal(error.code, "WARDEN_ERR_EXPLANATION_UNAVAILABLE");
    return true;
  });
  assert.equal((await plain)[0]!.values[0], 7);
  assert.equal((await fine)[0]!.values[0], 11);
  // All three rode in one batch, with a task slot per row.
  assert.equal(seen.length, 1);
  assert.equal(seen[0]!.length, 3);
  assert.equal(seen[0]![1], null);
});

/** Answer `n` one-row requests one after another; weak references to their rows. */
async function answerAll(batcher: DynamicBatcher, n: number): Promise<WeakRef<Float32Array>[]> {
  const rows: WeakRef<Float32Array>[] = [];
  for (let i = 0; i < n; i++) {
    const row = rowOf(i, 1);
    rows.push(new WeakRef(row));
    const [result] = await batcher.submit([row]);
    assert.equal(result!.values[0], i + 1);
  }
  return rows;
}

test("answered requests are not kept alive by the queue: their rows can be collected", async () => {
  setFlagsFromString("--expose-gc");
  const gc = runInNewContext("gc") as () => void;
  const { executor } = controlledExecutor(1, 0);
  const batcher = new DynamicBatcher(policy({ max_queue_delay_us: 0 }), executor, 2);
  // Fewer requests than the queue keeps before it compacts its array.
  const rows = await answerAll(batcher, 200);
  // WeakRef targets live to the end of the job that made or read them: collect from a later one.
  await new Promise((resolve) => setImmediate(resolve));
  gc();
  const alive = rows.filter((r) => r.deref() !== undefined).length;
  assert.equal(alive, 0, `${alive} of 200 answered rows are still reachable`);
  assert.equal(batcher.queueDepth, 0);
});

/** Submit `n` one-row requests while the only instance is busy and let them time out; weak references to their rows. */
async function timeOutAll(batcher: DynamicBatcher, n: number): Promise<WeakRef<Float32Array>[]> {
  const rows: WeakRef<Float32Array>[] = [];
  const refused: Promise<unknown>[] = [];
  for (let i = 0; i < n; i++) {
    const row = rowOf(i, 1);
    rows.push(new WeakRef(row));
    refused.push(assert.rejects(batcher.submit([row]), (e: WardenError) => e.code === "WARDEN_ERR_TIMEOUT"));
  }
  await Promise.all(refused);
  return rows;
}

test("requests that timed out in the queue are not kept alive by it once the queue moves past them", async () => {
  setFlagsFromString("--expose-gc");
  const gc = runInNewContext("gc") as () => void;
  const { executor, batches } = controlledExecutor(1);
  const batcher = new DynamicBatcher(policy({ max_queue_delay_us: 0, timeout_ms: 20 }), executor, 2);
  // The only instance is busy (with a request that times out too): these rows wait in the queue until their
  // requests time out.
  const busy = assert.rejects(
    batcher.submit([rowOf(0, 0)]),
    (e: WardenError) => e.code === "WARDEN_ERR_TIMEOUT",
  );
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(batches.length, 1);
  const rows = await timeOutAll(batcher, 100);
  assert.equal(batcher.queueDepth, 0);
  // The instance frees up: the queue moves past the timed-out rows (nothing is left to run).
  batches[0]!.finish();
  await busy;
  await new Promise((resolve) => setImmediate(resolve));
  gc();
  const alive = rows.filter((r) => r.deref() !== undefined).length;
  assert.equal(alive, 0, `${alive} of 100 timed-out rows are still reachable`);
  assert.equal(batches.length, 1, "no batch ran the timed-out rows");
});
