/**
 * Explainer-thread entry: loads its own instance of one model's engine and its off-thread explainers
 * (explain/service.ts), and answers one job at a time. A model's inference never waits for it.
 */
import { parentPort, workerData } from "node:worker_threads";
import { parseManifest, verifyArtifact } from "../config/index.js";
import { WardenError } from "../errors/index.js";
import {
  createExplanationService,
  type ExplanationJob,
  type ExplanationService,
} from "../explain/service.js";
import { loadEngine } from "./engines.js";
import type { ModelEngine } from "./types.js";
import type { WorkerStart } from "./worker-protocol.js";

const port = parentPort;
if (port === null) throw new Error("runtime/explainer-worker.js must run as a worker thread");
const start = workerData as WorkerStart;

/** Main thread → explainer thread. */
export type ExplainerRequest =
  | { readonly id: number; readonly job: ExplanationJob }
  | { readonly id: -1; readonly close: true };
/** Explainer thread → main thread; id 0 answers the start. */
export type ExplainerReply =
  | { readonly id: number; readonly ok: true; readonly result: unknown }
  | {
      readonly id: number;
      readonly ok: false;
      readonly code: string;
      readonly message: string;
      readonly details: unknown[];
    };

function failure(id: number, error: unknown): ExplainerReply {
  if (error instanceof WardenError)
    return { id, ok: false, code: error.code, message: error.message, details: [...error.details] };
  const message = error instanceof Error ? error.message : String(error);
  // A RangeError from the maths is a request the explainer cannot serve, not a crash.
  return { id, ok: false, code: "WARDEN_ERR_EXPLANATION_UNAVAILABLE", message, details: [] };
}

/** Set by a close: the job in hand then ends at its next inference (see {@link stoppable}). */
let closing = false;

/**
 * The engine as the explainers see it: once the thread is closing, the next inference is refused, so a long job
 * (KernelSHAP, LIME: thousands of runs) ends between two runs, never inside one. onnxruntime-node starts each
 * run from a macrotask, so the close message is read between runs.
 */
function stoppable(engine: ModelEngine): ModelEngine {
  return new Proxy(engine, {
    get(target, property) {
      if (property === "predict") {
        return (input: Float32Array, rows: number) => {
          if (closing) throw new WardenError("WARDEN_ERR_SHUTTING_DOWN", "the explainer thread is closing");
          return target.predict(input, rows);
        };
      }
      const value: unknown = Reflect.get(target, property, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

let service: ExplanationService | undefined;
let engine: ModelEngine | undefined;
try {
  const manifest = parseManifest(start.manifest, start.manifestPath, start.manifestSha256);
  verifyArtifact(manifest);
  engine = await loadEngine(manifest);
  service = await createExplanationService(manifest, stoppable(engine));
  port.postMessage({ id: 0, ok: true, result: null } satisfies ExplainerReply);
} catch (error) {
  port.postMessage(failure(0, error));
}

/** The job being explained, if any: a close waits for it. */
let running: Promise<unknown> = Promise.resolve();

port.on("message", async (request: ExplainerRequest) => {
  if ("close" in request) {
    // Leave on our own, once the job in hand has stopped at an inference boundary and the engine is released: a
    // thread stopped from outside while native inference (onnxruntime) holds it can bring the whole process down.
    closing = true;
    await running.catch(() => undefined);
    try {
      await engine?.close();
    } catch {
      // Leaving anyway.
    }
    process.exit(0);
  }
  const job = service!.run(request.job);
  running = job;
  try {
    const result = await job;
    port.postMessage({ id: request.id, ok: true, result } satisfies ExplainerReply);
  } catch (error) {
    port.postMessage(failure(request.id, error));
  }
});
