import { Worker } from "node:worker_threads";
import type { Manifest } from "../config/index.js";
import { ERRORS, type ErrorCode, type FieldProblem, WardenError } from "../errors/index.js";
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
  /** Run one batch (`rows × featureCount` float32, row-major). The input buffer is transferred. */
  run(input: Float32Array, rows: number): Promise<EngineOutput>;
  /** Called whenever an instance becomes free. */
  onIdle(listener: () => void): void;
  close(): Promise<void>;
}

interface Instance {
  worker: Worker;
  busy: { id: number; resolve: (o: EngineOutput) => void; reject: (e: Error) => void } | undefined;
  closing: boolean;
}

const WORKER_URL = new URL("./worker.js", import.meta.url);

function toError(reply: WorkerReply & { type: "error" }): WardenError {
  const code = (reply.code in ERRORS ? reply.code : "WARDEN_ERR_INFERENCE_FAILED") as ErrorCode;
  return new WardenError(code, reply.message, { details: reply.details as FieldProblem[] });
}

function startInstance(manifest: Manifest): Promise<{ worker: Worker; description: EngineDescription }> {
  const start: WorkerStart = {
    manifest: manifest.source,
    manifestPath: manifest.manifestPath,
    manifestSha256: manifest.manifestSha256,
  };
  const worker = new Worker(WORKER_URL, { workerData: start, name: `model:${manifest.name}` });
  return new Promise((resolve, reject) => {
    const onExit = (code: number) =>
      reject(
        new WardenError("WARDEN_ERR_INFERENCE_FAILED", `model worker for ${manifest.name} exited (${code})`),
      );
    worker.once("error", reject);
    worker.once("exit", onExit);
    worker.once("message", (reply: WorkerReply) => {
      worker.off("error", reject);
      worker.off("exit", onExit);
      if (reply.type === "ready") resolve({ worker, description: reply.description });
      else {
        void worker.terminate();
        reject(reply.type === "error" ? toError(reply) : new Error("unexpected worker reply"));
      }
    });
  });
}

/**
 * Start `manifest.runtime.instances` worker threads, each holding one loaded engine. A worker that dies is
 * replaced; the batch it was running fails with WARDEN_ERR_INFERENCE_FAILED.
 */
export async function createWorkerPool(
  manifest: Manifest,
  options: { onWorkerError?: (error: Error) => void } = {},
): Promise<ModelExecutor> {
  const settled = await Promise.allSettled(
    Array.from({ length: manifest.runtime.instances }, () => startInstance(manifest)),
  );
  const failure = settled.find((s) => s.status === "rejected");
  if (failure !== undefined) {
    // One instance failed to load: stop the others rather than serve at partial capacity.
    await Promise.all(
      settled.map((s) => (s.status === "fulfilled" ? s.value.worker.terminate() : undefined)),
    );
    throw failure.reason;
  }
  const started = settled.map(
    (s) => (s as PromiseFulfilledResult<{ worker: Worker; description: EngineDescription }>).value,
  );
  const description = started[0]!.description;
  const instances: Instance[] = [];
  const idleListeners: Array<() => void> = [];
  let nextId = 1;
  let closed = false;

  const notifyIdle = () => {
    for (const listener of idleListeners) listener();
  };

  const attach = (instance: Instance) => {
    instance.worker.on("message", (reply: WorkerReply) => {
      const task = instance.busy;
      if (task === undefined || reply.id !== task.id) return;
      instance.busy = undefined;
      if (reply.type === "result") task.resolve(reply.output);
      else if (reply.type === "error") task.reject(toError(reply));
      notifyIdle();
    });
    instance.worker.on("error", (error) => options.onWorkerError?.(error));
    instance.worker.on("exit", (code) => {
      const task = instance.busy;
      instance.busy = undefined;
      task?.reject(
        new WardenError(
          "WARDEN_ERR_INFERENCE_FAILED",
          `model worker for ${manifest.name} stopped (exit ${code})`,
        ),
      );
      const index = instances.indexOf(instance);
      if (index >= 0) instances.splice(index, 1);
      if (closed || instance.closing) return;
      // Replace the lost instance so capacity recovers.
      startInstance(manifest)
        .then(({ worker }) => {
          const replacement: Instance = { worker, busy: undefined, closing: false };
          instances.push(replacement);
          attach(replacement);
          notifyIdle();
        })
        .catch((error: unknown) => options.onWorkerError?.(error as Error));
    });
  };

  for (const { worker } of started) {
    const instance: Instance = { worker, busy: undefined, closing: false };
    instances.push(instance);
    attach(instance);
  }

  return {
    description,
    idleCount: () => instances.reduce((n, i) => n + (i.busy === undefined ? 1 : 0), 0),
    onIdle: (listener) => {
      idleListeners.push(listener);
    },
    run(input, rows) {
      if (closed) return Promise.reject(new WardenError("WARDEN_ERR_SHUTTING_DOWN"));
      const instance = instances.find((i) => i.busy === undefined);
      if (instance === undefined) {
        return Promise.reject(
          new WardenError("WARDEN_ERR_MODEL_NOT_READY", `no free instance of ${manifest.name}`),
        );
      }
      const id = nextId++;
      return new Promise<EngineOutput>((resolve, reject) => {
        instance.busy = { id, resolve, reject };
        const request: WorkerRequest = { type: "predict", id, input, rows };
        instance.worker.postMessage(request, [input.buffer as ArrayBuffer]);
      });
    },
    async close() {
      closed = true;
      await Promise.all(
        instances.map(async (instance) => {
          instance.closing = true;
          const exited = new Promise((resolve) => instance.worker.once("exit", resolve));
          instance.worker.postMessage({ type: "close" } satisfies WorkerRequest);
          const timer = setTimeout(() => void instance.worker.terminate(), 2000);
          await exited;
          clearTimeout(timer);
        }),
      );
    },
  };
}
