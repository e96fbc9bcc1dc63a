import { Worker } from "node:worker_threads";
import type { Manifest } from "../config/index.js";
import { ERRORS, type ErrorCode, type FieldProblem, WardenError } from "../errors/index.js";
import type { ExplanationJob, JobResult } from "../explain/service.js";
import type { ExplainerReply, ExplainerRequest } from "./explainer-worker.js";
import type { WorkerStart } from "./worker-protocol.js";

const WORKER_URL = new URL("./explainer-worker.js", import.meta.url);
/** How long a closing explainer thread may take to finish its job before it is stopped from outside. */
const CLOSE_GRACE_MS = 10_000;

/** Jobs that may wait for a model's explainer thread; more are refused at once (WARDEN_ERR_QUEUE_FULL). */
export const EXPLAINER_QUEUE_SIZE = 256;
/** A job not finished within this many ms fails with WARDEN_ERR_TIMEOUT (the thread is restarted). */
export const EXPLAINER_TIMEOUT_MS = 60_000;

/**
 * One model's explainer thread: its own engine instance, one job at a time, in arrival order, except that a
 * decision's explanation goes ahead of every waiting job that is not one (never ahead of the running job).
 */
export interface ExplainerPool {
  /** `decision`: a decision waits for this job (KernelSHAP of a model that explains decisions off-thread). */
  run(job: ExplanationJob, options?: { readonly decision?: boolean }): Promise<JobResult>;
  /**
   * Start the thread now rather than on the first job (for models that explain every decision off-thread), and
   * resolve once it is ready. Rejects when it cannot start (the reason is the explainer's error).
   */
  start(): Promise<void>;
  /** Jobs waiting or running. */
  readonly pending: number;
  close(): Promise<void>;
}

interface Pending {
  readonly id: number;
  readonly job: ExplanationJob;
  readonly decision: boolean;
  readonly resolve: (result: JobResult) => void;
  readonly reject: (error: Error) => void;
}

function toError(reply: ExplainerReply & { ok: false }): WardenError {
  const code = (reply.code in ERRORS ? reply.code : "WARDEN_ERR_INTERNAL") as ErrorCode;
  return new WardenError(code, reply.message, { details: reply.details as FieldProblem[] });
}

/** Options for {@link createExplainerPool}. */
export interface ExplainerPoolOptions {
  /**
   * Test hook only: called with each explainer thread right after it is created and the pool listens to it,
   * so that a test can end it (`worker.terminate()`) at a chosen moment. The product never sets it.
   */
  readonly onWorkerSpawnForTest?: (worker: Worker) => void;
  /** How long one job may run before it is refused and its thread retired (default {@link EXPLAINER_TIMEOUT_MS}). */
  readonly jobTimeoutMs?: number;
}

/**
 * The explainer thread of a model, started on first use (it loads the engine and scores the reference rows,
 * which takes a moment) and again after it dies or overruns a job. Rows are copied to it.
 */
export function createExplainerPool(manifest: Manifest, options: ExplainerPoolOptions = {}): ExplainerPool {
  const start: WorkerStart = {
    manifest: manifest.source,
    manifestPath: manifest.manifestPath,
    manifestSha256: manifest.manifestSha256,
  };
  const queue: Pending[] = [];
  let running: Pending | undefined;
  let timer: NodeJS.Timeout | undefined;
  let worker: Worker | undefined;
  let ready: Promise<void> | undefined;
  let nextId = 1;
  let closed = false;
  /** The close in progress: a second call waits for the same one. */
  let closing: Promise<void> | undefined;

  const jobTimeoutMs = options.jobTimeoutMs ?? EXPLAINER_TIMEOUT_MS;

  /**
   * Let a thread go: it stops its job at the next inference, releases its engine and leaves (explainer-worker.ts);
   * it is stopped from outside only if it has not left after CLOSE_GRACE_MS (terminating a thread inside native
   * inference, onnxruntime's, can abort the whole process). Resolves once it has exited.
   */
  const retire = (w: Worker): Promise<void> => {
    const exited = new Promise<void>((resolve) => w.once("exit", () => resolve()));
    w.postMessage({ id: -1, close: true } satisfies ExplainerRequest);
    const late = setTimeout(() => void w.terminate(), CLOSE_GRACE_MS);
    return exited.finally(() => clearTimeout(late));
  };

  const stopWorker = () => {
    const w = worker;
    worker = undefined;
    ready = undefined;
    if (w !== undefined) void retire(w);
  };

  const spawn = (): Promise<void> => {
    const w = new Worker(WORKER_URL, { workerData: start, name: `explainer:${manifest.name}` });
    worker = w;
    return new Promise<void>((resolve, reject) => {
      let started = false;
      w.on("message", (reply: ExplainerReply) => {
        if (!started) {
          started = true;
          if (reply.ok) resolve();
          else {
            reject(toError(reply));
            if (worker === w) stopWorker();
          }
          return;
        }
        const job = running;
        if (job === undefined || reply.id !== job.id) return;
        clearTimeout(timer);
        running = undefined;
        if (reply.ok) job.resolve(reply.result as JobResult);
        else job.reject(toError(reply));
        next();
      });
      w.on("error", (error) => {
        if (!started) {
          started = true;
          reject(error);
        }
      });
      w.once("exit", (code) => {
        if (!started) {
          started = true;
          reject(
            new WardenError(
              "WARDEN_ERR_INTERNAL",
              `the explainer thread of ${manifest.name} exited (${code}) before it started`,
            ),
          );
        }
        // A thread stopped on purpose (a failed start, an overrun, close) has settled its job already; the job
        // running now, if any, belongs to its successor.
        if (worker !== w) return;
        worker = undefined;
        ready = undefined;
        const job = running;
        if (job !== undefined) {
          clearTimeout(timer);
          running = undefined;
          job.reject(
            new WardenError(
              "WARDEN_ERR_INTERNAL",
              `the explainer thread of ${manifest.name} stopped (${code})`,
            ),
          );
          next();
        }
      });
      options.onWorkerSpawnForTest?.(w);
    });
  };

  const next = (): void => {
    if (running !== undefined || queue.length === 0 || closed) return;
    const job = queue.shift()!;
    running = job;
    ready ??= spawn();
    ready.then(
      () => {
        if (running !== job || worker === undefined) return;
        timer = setTimeout(() => {
          if (running !== job) return;
          running = undefined;
          job.reject(
            new WardenError(
              "WARDEN_ERR_TIMEOUT",
              `the explanation took longer than ${jobTimeoutMs / 1000} s`,
              {
                retryAfterSeconds: 1,
              },
            ),
          );
          // Its thread may be stuck in the job: retire it (see retire) and start afresh.
          stopWorker();
          next();
        }, jobTimeoutMs);
        worker.postMessage({ id: job.id, job: job.job } satisfies ExplainerRequest);
      },
      (error: unknown) => {
        if (running !== job) return;
        running = undefined;
        ready = undefined;
        job.reject(error as Error);
        next();
      },
    );
  };

  return {
    get pending() {
      return queue.length + (running === undefined ? 0 : 1);
    },
    start() {
      if (closed) return Promise.reject(new WardenError("WARDEN_ERR_SHUTTING_DOWN"));
      ready ??= spawn();
      const starting = ready;
      // A failed start is forgotten, so the next job tries again.
      starting.catch(() => {
        if (ready === starting) ready = undefined;
      });
      return starting;
    },
    run(job, runOptions = {}) {
      if (closed) return Promise.reject(new WardenError("WARDEN_ERR_SHUTTING_DOWN"));
      if (queue.length >= EXPLAINER_QUEUE_SIZE) {
        return Promise.reject(
          new WardenError(
            "WARDEN_ERR_QUEUE_FULL",
            `${queue.length} explanations of ${manifest.name} are waiting; retry shortly`,
            { retryAfterSeconds: 1 },
          ),
        );
      }
      return new Promise<JobResult>((resolve, reject) => {
        const decision = runOptions.decision === true;
        const pending: Pending = { id: nextId++, job, decision, resolve, reject };
        // Explanations asked through /explain may take seconds each; a decision's answer should not wait for them.
        const at = decision ? queue.findIndex((p) => !p.decision) : -1;
        if (at === -1) queue.push(pending);
        else queue.splice(at, 0, pending);
        next();
      });
    },
    close() {
      closing ??= closeNow();
      return closing;
    },
  };

  async function closeNow(): Promise<void> {
    closed = true;
    for (const job of queue.splice(0)) job.reject(new WardenError("WARDEN_ERR_SHUTTING_DOWN"));
    if (running !== undefined) {
      running.reject(new WardenError("WARDEN_ERR_SHUTTING_DOWN"));
      running = undefined;
    }
    clearTimeout(timer);
    const w = worker;
    worker = undefined;
    if (w !== undefined) await retire(w);
  }
}
