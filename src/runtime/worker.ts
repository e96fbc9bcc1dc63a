/**
 * Worker-thread entry: loads one model engine and answers predict requests, so that inference
 * (onnxruntime-node's `run` is synchronous on its thread) never blocks the HTTP event loop.
 */
import { parentPort, workerData } from "node:worker_threads";
import { type Manifest, parseManifest, verifyArtifact } from "../config/index.js";
import { WardenError } from "../errors/index.js";
import type { InlineExplainer } from "../explain/model-explainer.js";
import { loadEngine } from "./engines.js";
import { inlineExplainerOf } from "./explainers.js";
import { runRowTasks } from "./row-tasks.js";
import type { EngineOutput, ModelEngine } from "./types.js";
import type { WorkerReply, WorkerRequest, WorkerStart } from "./worker-protocol.js";

const port = parentPort;
if (port === null) throw new Error("runtime/worker.js must run as a worker thread");

const start = workerData as WorkerStart;
let engine: ModelEngine | undefined;
let manifest: Manifest | undefined;
let explainer: InlineExplainer | undefined;

function post(reply: WorkerReply): void {
  port!.postMessage(reply);
}

function serialiseError(error: unknown): WorkerReply & { type: "error" } {
  if (error instanceof WardenError) {
    return { type: "error", id: -1, code: error.code, message: error.message, details: [...error.details] };
  }
  const message = error instanceof Error ? error.message : String(error);
  return { type: "error", id: -1, code: "WARDEN_ERR_INFERENCE_FAILED", message, details: [] };
}

try {
  // Validated in the main thread already; parsing the source again restores the derived, frozen fields.
  manifest = parseManifest(start.manifest, start.manifestPath, start.manifestSha256);
  // The main thread checked the artifact when the model was loaded, but a worker started later (a
  // replacement after a crash) reads the file as it is now: refuse one whose sha256 no longer matches the
  // manifest, since the ledger records the manifest's hash for every decision this worker would make.
  verifyArtifact(manifest);
  engine = await loadEngine(manifest);
  explainer = await inlineExplainerOf(manifest, engine);
  post({ type: "ready", id: 0, description: engine.describe() });
} catch (error) {
  post({ ...serialiseError(error), id: 0 });
}

port.on("message", async (request: WorkerRequest) => {
  if (request.type === "close") {
    await engine?.close();
    process.exit(0);
  }
  try {
    const output: EngineOutput = await engine!.predict(request.input, request.rows);
    // Row tasks run after inference: a batch whose model fails does no sealing.
    const tasks =
      request.tasks === undefined
        ? undefined
        : runRowTasks(
            { manifest: manifest!, keys: start.sealKeys, explainer },
            request.tasks,
            request.input,
            output,
          );
    // Copied, not transferred (cheaper for small outputs, and an engine may return views of its own buffers).
    post(
      tasks === undefined
        ? { type: "result", id: request.id, output }
        : { type: "result", id: request.id, output, tasks },
    );
  } catch (error) {
    post({ ...serialiseError(error), id: request.id });
  }
});
