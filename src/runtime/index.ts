export { type BatcherObserver, type BatchingPolicy, DynamicBatcher, type RowResult } from "./batcher.js";
export { loadEngine } from "./engines.js";
export type { EngineDescription, EngineFactory, EngineOutput, ModelEngine, TensorInfo } from "./types.js";
export { createWorkerPool, type ModelExecutor } from "./worker-pool.js";
