import type { Manifest } from "../config/index.js";
import { createOnnxEngine } from "./onnx/index.js";
import type { ModelEngine } from "./types.js";
import { createXGBoostEngine } from "./xgboost/index.js";

/**
 * Build the engine for a manifest's artifact format, in the calling thread. The server runs engines in
 * worker threads (see `createWorkerPool`); this is also what those workers call.
 */
export function loadEngine(manifest: Manifest): Promise<ModelEngine> {
  switch (manifest.artifact.format) {
    case "xgboost-json":
      return createXGBoostEngine(manifest);
    case "onnx":
      return createOnnxEngine(manifest);
  }
}
