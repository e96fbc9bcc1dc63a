/**
 * Reading whole files whose paths come from people (manifests, configuration, artifacts, reference rows): a path
 * to something that is not a regular file (a device such as /dev/zero, a FIFO, a directory) or to a file far too
 * large would otherwise block the reading thread or exhaust the memory of the whole server.
 */
import { createHash } from "node:crypto";
import {
  closeSync,
  fstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  readSync,
  type Stats,
  statSync,
} from "node:fs";
import { dirname, resolve } from "node:path";

/** Size limits of the files Warden reads whole. */
export const MAX_MANIFEST_BYTES = 1024 * 1024;
export const MAX_CONFIG_BYTES = 1024 * 1024;
/** V8's longest string is about 512 MiB: a JSON model must be read as text. */
export const MAX_JSON_MODEL_BYTES = 512 * 1024 * 1024;
export const MAX_REFERENCE_BYTES = 256 * 1024 * 1024;
/** A labelled CSV (fairness audits, monitor reports, training exports) is read whole, as reference rows are. */
export const MAX_LABELLED_BYTES = MAX_REFERENCE_BYTES;
/** A stored reference profile (JSON) given on the command line. */
export const MAX_PROFILE_BYTES = 64 * 1024 * 1024;

/** Why a file cannot be read whole: a plain Error whose message says what is wrong, for the caller's own error. */
export class UnreadableFile extends Error {}

function kindOf(stats: Stats): string {
  if (stats.isDirectory()) return "a directory";
  if (stats.isFile()) return "a regular file";
  if (stats.isCharacterDevice()) return "a character device";
  if (stats.isBlockDevice()) return "a block device";
  if (stats.isFIFO()) return "a named pipe";
  if (stats.isSocket()) return "a socket";
  return "not a regular file";
}

function size(bytes: number): string {
  return bytes >= 1024 * 1024 ? `${(bytes / (1024 * 1024)).toFixed(1)} MiB` : `${bytes} bytes`;
}

/**
 * Check that `path` is a regular file of at most `maxBytes` bytes; returns its size.
 *
 * @throws UnreadableFile when it is not (a missing or unreadable path keeps the file system's message).
 */
export function checkReadableFile(path: string, maxBytes: number): number {
  let stats: Stats;
  try {
    stats = statSync(path);
  } catch (error) {
    throw new UnreadableFile(error instanceof Error ? error.message : String(error));
  }
  if (!stats.isFile()) throw new UnreadableFile(`${path} is ${kindOf(stats)}, not a regular file`);
  if (stats.size > maxBytes) {
    throw new UnreadableFile(`${path} holds ${size(stats.size)}, more than the ${size(maxBytes)} allowed`);
  }
  return stats.size;
}

/** Bytes read at a time from a pipe or while hashing. */
const CHUNK_BYTES = 1024 * 1024;

/**
 * Read a regular file of at most `maxBytes` bytes.
 *
 * With `pipes: true`, a named pipe is read too, up to `maxBytes` (for a file a person names when starting a
 * command, such as `--config <(...)`, where waiting for the writer is what they expect; never for a path that
 * arrives over HTTP, where it would hold the serving thread).
 *
 * @throws UnreadableFile when it is not one, or cannot be read.
 */
export function readBoundedFile(path: string, maxBytes: number, options: { pipes?: boolean } = {}): Buffer {
  if (options.pipes === true && isPipe(path)) return readPipe(path, maxBytes);
  checkReadableFile(path, maxBytes);
  try {
    return readFileSync(path);
  } catch (error) {
    throw new UnreadableFile(error instanceof Error ? error.message : String(error));
  }
}

function isPipe(path: string): boolean {
  try {
    return statSync(path).isFIFO();
  } catch {
    return false;
  }
}

/** Read a pipe to its end, refusing it once it has given more than `maxBytes`. */
function readPipe(path: string, maxBytes: number): Buffer {
  const chunks: Buffer[] = [];
  let total = 0;
  let fd: number | undefined;
  try {
    fd = openSync(path, "r");
    if (!fstatSync(fd).isFIFO()) throw new UnreadableFile(`${path} changed while it was opened`);
    // One buffer for every read (a pipe gives at most a page or so a time); what came is copied out of it.
    const chunk = Buffer.allocUnsafe(Math.min(CHUNK_BYTES, maxBytes + 1));
    for (;;) {
      let n: number;
      try {
        n = readSync(fd, chunk, 0, Math.min(chunk.length, maxBytes + 1 - total), null);
      } catch (error) {
        // A non-blocking descriptor with nothing yet to read: wait for the writer.
        if ((error as NodeJS.ErrnoException).code === "EAGAIN") {
          Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
          continue;
        }
        throw error;
      }
      if (n === 0) break;
      total += n;
      if (total > maxBytes) {
        throw new UnreadableFile(`${path} (a named pipe) gave more than the ${size(maxBytes)} allowed`);
      }
      chunks.push(Buffer.from(chunk.subarray(0, n)));
    }
  } catch (error) {
    if (error instanceof UnreadableFile) throw error;
    throw new UnreadableFile(error instanceof Error ? error.message : String(error));
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
  return Buffer.concat(chunks, total);
}

/**
 * sha256 of a regular file, lower-case hex, read a chunk at a time (so a file of any size can be hashed without
 * holding it in memory).
 *
 * @throws UnreadableFile when it is not a regular file, or cannot be read.
 */
export function sha256OfFile(path: string): string {
  checkReadableFile(path, Number.MAX_SAFE_INTEGER);
  const hash = createHash("sha256");
  let fd: number | undefined;
  try {
    fd = openSync(path, "r");
    const chunk = Buffer.allocUnsafe(CHUNK_BYTES);
    for (;;) {
      const n = readSync(fd, chunk, 0, CHUNK_BYTES, null);
      if (n === 0) break;
      hash.update(chunk.subarray(0, n));
    }
  } catch (error) {
    throw new UnreadableFile(error instanceof Error ? error.message : String(error));
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
  return hash.digest("hex");
}

/**
 * Make a folder and any missing parents, one level at a time, so a failure names its cause at once. (Node's
 * recursive mkdirSync retries without end on some paths, such as one under /proc.)
 *
 * @throws UnreadableFile naming the part that could not be made and why.
 */
export function makeFolder(path: string): void {
  const missing: string[] = [];
  let at = resolve(path);
  for (;;) {
    let stats: Stats | undefined;
    try {
      stats = statSync(at);
    } catch {
      stats = undefined;
    }
    if (stats !== undefined) {
      if (!stats.isDirectory()) throw new UnreadableFile(`${at} is ${kindOf(stats)}, not a folder`);
      break;
    }
    missing.push(at);
    const parent = dirname(at);
    if (parent === at) break;
    at = parent;
  }
  for (const folder of missing.reverse()) {
    try {
      mkdirSync(folder);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "EEXIST" && statSync(folder).isDirectory()) continue;
      throw new UnreadableFile(
        `cannot make ${folder}: ${error instanceof Error ? error.message : String(error)}`,
      );
    }
  }
}
