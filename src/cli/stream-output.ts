import { once } from "node:events";
import { open } from "node:fs/promises";
import type { CliIo } from "./index.js";

/** Output could not be written (to --out's file or standard output); reported in one line, exit code 1. */
export class OutputError extends Error {
  constructor(target: string, cause: unknown) {
    const reason = cause instanceof Error ? cause.message : String(cause);
    super(`cannot write to ${target}: ${reason}`, { cause });
  }
}

/** Where an export writes, with backpressure: `write` resolves once the destination can take more. */
export interface StreamOutput {
  write(text: string): Promise<void>;
  /** The reader closed standard output (EPIPE): nothing more can arrive, so the export should stop. */
  readonly closed: boolean;
  /** Flush and let go; throws OutputError when a write failed. */
  close(): Promise<void>;
}

/**
 * Open `path` for writing (standard output through `io` when undefined). A file is opened at once, so a path
 * that cannot be written fails before any work. Every write waits for `drain` when the stream's buffer is
 * full, so a slow disk or reader holds the export back instead of filling memory.
 */
export async function openStreamOutput(path: string | undefined, io: CliIo): Promise<StreamOutput> {
  if (path === undefined) return standardOutput(io);
  const handle = await open(path, "w").catch((error: unknown) => {
    throw new OutputError(path, error);
  });
  const sink = handle.createWriteStream();
  let failure: unknown;
  // A write can fail after write() returned (disk full) while nothing awaits the stream; keep the error for
  // the next write or close instead of letting an unheard 'error' event end the process.
  sink.on("error", (error) => {
    failure ??= error;
  });
  return {
    closed: false,
    async write(text) {
      if (failure !== undefined) throw new OutputError(path, failure);
      if (sink.write(text)) return;
      await once(sink, "drain").catch((error: unknown) => {
        throw new OutputError(path, error);
      });
    },
    async close() {
      await new Promise<void>((resolve) => sink.end(() => resolve()));
      if (failure !== undefined) throw new OutputError(path, failure);
    },
  };
}

/**
 * Standard output through io.stdout. In the real CLI that is process.stdout, whose buffer is watched for
 * backpressure and whose failures arrive as 'error' events; a test's io never touches process.stdout, which
 * then never needs draining.
 */
function standardOutput(io: CliIo): StreamOutput {
  let closed = false;
  let failure: unknown;
  const onError = (error: NodeJS.ErrnoException) => {
    // EPIPE: the reader stopped reading (`warden ledger export | head`). Its choice, not a failure.
    if (error.code === "EPIPE") closed = true;
    else failure ??= error;
  };
  process.stdout.on("error", onError);
  return {
    get closed() {
      return closed;
    },
    async write(text) {
      if (failure !== undefined) throw new OutputError("standard output", failure);
      if (closed) return;
      io.stdout(text);
      if (process.stdout.writableNeedDrain) {
        // 'error' rejects the wait; the listener above has classified it by then.
        await once(process.stdout, "drain").catch(() => undefined);
        if (failure !== undefined) throw new OutputError("standard output", failure);
      }
    },
    async close() {
      await new Promise<void>((resolve) => process.stdout.write("", () => resolve()));
      const error = process.stdout.errored;
      if (error === null) {
        process.stdout.off("error", onError);
        return;
      }
      onError(error);
      if (failure !== undefined) throw new OutputError("standard output", failure);
    },
  };
}
