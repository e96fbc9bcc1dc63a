import { Worker } from "node:worker_threads";
import type { Manifest } from "../config/index.js";
import { ERRORS, type ErrorCode, type FieldProblem, WardenError } from "../errors/index.js";
import type { SealKeys } from "../privacy/seal.js";
import type { RowTask, RowTaskResult } from "./row-tasks.js";
import type { EngineDescription, EngineOutput } from "./types.js";
import type { WorkerReply, WorkerRequest, WorkerStart } from "./worker-protocol.js";

/**
 * Runs batches on a model's instances. The dynamic batcher asks `idleCount()` before it dispatches, so
 * that requests accumulate into larger batches while every instance is busy (Triton's behaviour).
 */
export interface ModelExecutor {
  readonly description: EngineDescription;
  /** Instances free to take a batch now. */
  idleCount(): number;
  /**
   * Instances running with the model loaded, busy or not. 0 means every instance was lost and none could
   * be restarted yet: nothing will become idle until one is.
   */
  liveCount(): number;
  /** Whether at least one instance is live (the model can serve). */
  isReady(): boolean;
  /**
   * Run one batch (`rows × featureCount` float32, row-major), and the rows' tasks when given (one per row,
   * `null` for none; see row-tasks.ts). The input is copied to the worker. Rejects at once with
   * WARDEN_ERR_MODEL_NOT_READY when no instance is free (or none is live).
   */
  run(input: Float32Array, rows: number, tasks?: readonly (RowTask | null)[]): Promise<BatchOutput>;
  /**
   * Called whenever capacity may have changed: an instance became free, a replacement came up, or an
   * instance was lost. Listeners re-check `idleCount()` (and `liveCount()`).
   */
  onIdle(listener: () => void): void;
  close(): Promise<void>;
}

/** A batch's output, with the outcome of its row tasks (one per row) when it had any. */
export interface BatchOutput extends EngineOutput {
  readonly tasks?: readonly (RowTaskResult | null)[];
}

/** Options for {@link createWorkerPool}. */
export interface WorkerPoolOptions {
  /** Subject keys for the workers, which seal protected subjects beside inference (row tasks). */
  readonly sealKeys?: SealKeys;
  /**
   * Told about every failure the pool recovers from by itself, for the log: a worker's uncaught error, an
   * instance that stopped, a replacement that failed to start (and when it will be tried again).
   */
  onWorkerError?: (error: Error) => void;
  /**
   * Test hook only: called with each worker thread right after it is created and the pool listens to it,
   * so that a test can crash it (`worker.terminate()`) at a chosen moment. The product never sets it.
   */
  onWorkerSpawnForTest?: (worker: Worker) => void;
}

interface Task {
  readonly id: number;
  readonly resolve: (o: BatchOutput) => void;
  readonly reject: (e: Error) => void;
}

interface Instance {
  readonly worker: Worker;
  /** Settles when the worker answers its start-up load (or dies before it does). */
  readonly started: Promise<EngineDescription>;
  /** Resolves once the thread has exited. */
  readonly exited: Promise<void>;
  state: "starting" | "ready" | "exited";
  busy: Task | undefined;
}

const WORKER_URL = new URL("./worker.js", import.meta.url);

/** First wait before starting a replacement again after it failed; doubles per failure up to the cap. */
const RETRY_FIRST_MS = 100;
const RETRY_MAX_MS = 10_000;
/** How long close() lets an idle worker close its engine and exit before terminating it. */
const CLOSE_GRACE_MS = 2000;

function toError(reply: WorkerReply & { type: "error" }): WardenError {
  const code = (reply.code in ERRORS ? reply.code : "WARDEN_ERR_INFERENCE_FAILED") as ErrorCode;
  return new WardenError(code, reply.message, { details: reply.details as FieldProblem[] });
}

/** The same failure, its message saying that a replacement failed and when it is tried again. */
function retryError(manifest: Manifest, error: unknown, attempt: number, delayMs: number): Error {
  const cause = error instanceof Error ? error : new Error(String(error));
  const message =
    `replacement instance of ${manifest.name} ${manifest.version} failed to start ` +
    `(attempt ${attempt + 1}; next in ${delayMs} ms): ${cause.message}`;
  return cause instanceof WardenError
    ? new WardenError(cause.code, message, { details: cause.details, cause })
    : new WardenError("WARDEN_ERR_INFERENCE_FAILED", message, { cause });
}

/**
 * Start `manifest.runtime.instances` worker threads, each holding one loaded engine. The returned promise
 * rejects (and every worker is stopped) when any instance fails to load.
 *
 * Afterwards an instance that dies is replaced: the batch it was running fails with
 * WARDEN_ERR_INFERENCE_FAILED, and a replacement that fails to start (for example because the artifact
 * no longer matches its sha256) is tried again with capped exponential backoff until the pool is closed.
 * While no instance is live, `isReady()` is false and `run()` fails at once with WARDEN_ERR_MODEL_NOT_READY.
 */
export async function createWorkerPool(
  manifest: Manifest,
  options: WorkerPoolOptions = {},
): Promise<ModelExecutor> {
  const start: WorkerStart = {
    manifest: manifest.source,
    manifestPath: manifest.manifestPath,
    manifestSha256: manifest.manifestSha256,
    ...(options.sealKeys ? { sealKeys: options.sealKeys } : {}),
  };
  /** Every instance whose thread has not exited: starting or ready. */
  const instances: Instance[] = [];
  const idleListeners: Array<() => void> = [];
  const retryTimers = new Set<NodeJS.Timeout>();
  let nextId = 1;
  let closed = false;

  const notifyIdle = () => {
    for (const listener of idleListeners) listener();
  };
  const liveCount = () => instances.reduce((n, i) => n + (i.state === "ready" ? 1 : 0), 0);

  /**
   * Create a worker and listen to it at once, for its whole life: an exit is then observed whenever it
   * happens (while loading, while a sibling is still loading, idle or mid-batch).
   */
  const spawn = (): Instance => {
    const worker = new Worker(WORKER_URL, { workerData: start, name: `model:${manifest.name}` });
    let loaded!: (description: EngineDescription) => void;
    let failed!: (error: Error) => void;
    let markExited!: () => void;
    const instance: Instance = {
      worker,
      started: new Promise((resolve, reject) => {
        loaded = resolve;
        failed = reject;
      }),
      exited: new Promise((resolve) => {
        markExited = resolve;
      }),
      state: "starting",
      busy: undefined,
    };
    instances.push(instance);

    worker.on("message", (reply: WorkerReply) => {
      if (instance.state === "starting") {
        if (reply.type === "ready") {
          instance.state = "ready";
          loaded(reply.description);
        } else {
          // The worker stays up after reporting a failed load; stop it (its exit removes the instance).
          failed(reply.type === "error" ? toError(reply) : new Error("unexpected worker reply"));
          void worker.terminate();
        }
        return;
      }
      const task = instance.busy;
      if (task === undefined || reply.id !== task.id) return;
      instance.busy = undefined;
      if (reply.type === "result")
        task.resolve(reply.tasks === undefined ? reply.output : { ...reply.output, tasks: reply.tasks });
      else if (reply.type === "error") task.reject(toError(reply));
      notifyIdle();
    });
    worker.on("error", (error) => {
      // An uncaught error while loading is the load's failure; later it is only worth a log line (the
      // exit that follows fails the batch and starts a replacement).
      if (instance.state === "starting") failed(error);
      else options.onWorkerError?.(error);
    });
    worker.once("exit", (code) => {
      const wasReady = instance.state === "ready";
      if (instance.state === "starting") {
        failed(
          new WardenError(
            "WARDEN_ERR_INFERENCE_FAILED",
            `model worker for ${manifest.name} exited (${code}) before it loaded the model`,
          ),
        );
      }
      instance.state = "exited";
      instances.splice(instances.indexOf(instance), 1);
      const task = instance.busy;
      instance.busy = undefined;
      task?.reject(
        new WardenError(
          "WARDEN_ERR_INFERENCE_FAILED",
          `model worker for ${manifest.name} stopped (exit ${code})`,
        ),
      );
      markExited();
      // A load that failed is retried by `replace`; only a loaded instance that died needs a new one.
      if (closed || !wasReady) return;
      options.onWorkerError?.(
        new WardenError(
          "WARDEN_ERR_INFERENCE_FAILED",
          `model worker for ${manifest.name} stopped (exit ${code}); starting a replacement`,
        ),
      );
      replace(0);
      // Let listeners see the lost capacity (liveCount may now be 0).
      notifyIdle();
    });
    options.onWorkerSpawnForTest?.(worker);
    return instance;
  };

  /** Start a replacement instance; if it fails, try again after a backoff, until the pool is closed. */
  const replace = (attempt: number): void => {
    spawn().started.then(
      // When closed meanwhile, close() is already waiting for this start in order to stop the worker.
      () => {
        if (!closed) notifyIdle();
      },
      (error: unknown) => {
        if (closed) return;
        const delayMs = Math.min(RETRY_FIRST_MS * 2 ** attempt, RETRY_MAX_MS);
        options.onWorkerError?.(retryError(manifest, error, attempt, delayMs));
        const timer = setTimeout(() => {
          retryTimers.delete(timer);
          replace(attempt + 1);
        }, delayMs);
        retryTimers.add(timer);
      },
    );
  };

  /**
   * Stop one instance. One still loading is let finish first (then stopped like the others): terminating
   * it mid-load would interrupt the engine's native set-up.
   */
  const stop = async (instance: Instance): Promise<void> => {
    await instance.started.catch(() => undefined);
    // A batch in flight runs to its end: terminating a thread inside onnxruntime's native run aborts the
    // whole process. The grace period below starts once the worker is idle.
    while (instance.state === "ready" && instance.busy !== undefined) {
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    if (instance.state === "ready") {
      instance.worker.postMessage({ type: "close" } satisfies WorkerRequest);
      const timer = setTimeout(() => void instance.worker.terminate(), CLOSE_GRACE_MS);
      await instance.exited;
      clearTimeout(timer);
    } else {
      await instance.exited;
    }
  };

  const shutdown = async (): Promise<void> => {
    // From here no replacement is spawned (exit handlers and retries check `closed`), so the snapshot
    // below holds every thread the pool will ever have left.
    closed = true;
    for (const timer of retryTimers) clearTimeout(timer);
    retryTimers.clear();
    await Promise.all([...instances].map(stop));
  };

  const initial = Array.from({ length: manifest.runtime.instances }, () => spawn());
  const settled = await Promise.allSettled(initial.map((i) => i.started));
  const failure = settled.find((s) => s.status === "rejected");
  if (failure !== undefined) {
    // One instance failed to load: stop the others rather than serve at partial capacity.
    await shutdown();
    throw failure.reason;
  }
  const description = (settled[0] as PromiseFulfilledResult<EngineDescription>).value;

  return {
    description,
    idleCount: () => instances.reduce((n, i) => n + (i.state === "ready" && i.busy === undefined ? 1 : 0), 0),
    liveCount,
    isReady: () => liveCount() > 0,
    onIdle: (listener) => {
      idleListeners.push(listener);
    },
    run(input, rows, tasks) {
      if (closed) return Promise.reject(new WardenError("WARDEN_ERR_SHUTTING_DOWN"));
      const instance = instances.find((i) => i.state === "ready" && i.busy === undefined);
      if (instance === undefined) {
        return Promise.reject(
          new WardenError(
            "WARDEN_ERR_MODEL_NOT_READY",
            liveCount() === 0
              ? `model ${manifest.name} ${manifest.version} has no running instance: its workers stopped ` +
                  "and could not be restarted yet (the server log says why)"
              : `no free instance of ${manifest.name}`,
          ),
        );
      }
      const id = nextId++;
      return new Promise<BatchOutput>((resolve, reject) => {
        // If the thread has died but its exit is not yet delivered, this message is dropped; the exit
        // handler, always attached, then rejects the task.
        instance.busy = { id, resolve, reject };
        const request: WorkerRequest =
          tasks === undefined
            ? { type: "predict", id, input, rows }
            : { type: "predict", id, input, rows, tasks };
        // Copied, not transferred: for batches this small, a copy costs less than detaching the buffer.
        instance.worker.postMessage(request);
      });
    },
    close: shutdown,
  };
}
