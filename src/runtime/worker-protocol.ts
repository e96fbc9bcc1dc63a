import type { FieldProblem } from "../errors/index.js";
import type { SealKeys } from "../privacy/seal.js";
import type { RowTask, RowTaskResult } from "./row-tasks.js";
import type { EngineDescription, EngineOutput } from "./types.js";

/** What a model worker is started with (structured-cloned). */
export interface WorkerStart {
  readonly manifest: unknown;
  readonly manifestPath: string;
  readonly manifestSha256: string;
  /** Subject keys, for row tasks that seal subjects (absent on a server without them, and offline). */
  readonly sealKeys?: SealKeys;
}

/** Main thread → worker. */
export type WorkerRequest =
  | {
      readonly type: "predict";
      readonly id: number;
      readonly input: Float32Array;
      readonly rows: number;
      /** One per row (`null`: none), or absent when no row has any. */
      readonly tasks?: readonly (RowTask | null)[];
    }
  | { readonly type: "close" };

/** Worker → main thread. `id` 0 answers the start-up load. */
export type WorkerReply =
  | { readonly type: "ready"; readonly id: 0; readonly description: EngineDescription }
  | {
      readonly type: "result";
      readonly id: number;
      readonly output: EngineOutput;
      /** One per row when the request had tasks. */
      readonly tasks?: readonly (RowTaskResult | null)[];
    }
  | {
      readonly type: "error";
      readonly id: number;
      readonly code: string;
      readonly message: string;
      readonly details: FieldProblem[];
    };
