import { once } from "node:events";
import { open } from "node:fs/promises";
import type { CliIo } from "./index.js";

/** A system error's message without its ", open '<path>'" tail, for messages that already name the file. */
export function reasonOf(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const { syscall, path } = error as NodeJS.ErrnoException;
  return syscall && path ? error.message.replace(`, ${syscall} '${path}'`, "") : error.message;
}

/** Output could not be written (to --out's file or standard output); reported in one line, exit code 1. */
export class OutputError extends Error {
  /** @param what what was being written ("results"), for the message. */
  constructor(target: string, cause: unknown, what?: string) {
    super(`cannot write ${what ? `${what} ` : ""}to ${target}: ${reasonOf(cause)}`, { cause });
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
export async function openStreamOutput(
  path: string | undefined,
  io: CliIo,
  what?: string,
): Promise<StreamOutput> {
  if (path === undefined) return standardOutput(io, what);
  const handle = await open(path, "w").catch((error: unknown) => {
    throw new OutputError(path, error, what);
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
      if (failure !== undefined) throw new OutputError(path, failure, what);
      if (sink.write(text)) return;
      await once(sink, "drain").catch((error: unknown) => {
        throw new OutputError(path, error, what);
      });
    },
    async close() {
      await new Promise<void>((resolve) => sink.end(() => resolve()));
      if (failure !== undefined) throw new OutputError(path, failure, what);
    },
  };
}

/**
 * Standard output through io.stdout. In the real CLI that is process.stdout, whose buffer is watched for
 * backpressure and whose failures arrive as 'error' events; a test's io never touches process.stdout, which
 * then never needs draining.
 */
function standardOutput(io: CliIo, what: string | undefined): StreamOutput {
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
      if (failure !== undefined) throw new OutputError("standard output", failure, what);
      if (closed) return;
      io.stdout(text);
      if (process.stdout.writableNeedDrain) {
        // 'error' rejects the wait; the listener above has classified it by then.
        await once(process.stdout, "drain").catch(() => undefined);
        if (failure !== undefined) throw new OutputError("standard output", failure, what);
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
      if (failure !== undefined) throw new OutputError("standard output", failure, what);
    },
  };
}
