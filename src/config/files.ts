/**
 * Reading whole files whose paths come from people (manifests, configuration, artifacts, reference rows): a path
 * to something that is not a regular file (a device such as /dev/zero, a FIFO, a directory) or to a file far too
 * large would otherwise block the reading thread or exhaust the memory of the whole server.
 */
import { mkdirSync, readFileSync, type Stats, statSync } from "node:fs";
import { dirname, resolve } from "node:path";

/** Size limits of the files Warden reads whole. */
export const MAX_MANIFEST_BYTES = 1024 * 1024;
export const MAX_CONFIG_BYTES = 1024 * 1024;
/** V8's longest string is about 512 MiB: a JSON model must be read as text. */
export const MAX_JSON_MODEL_BYTES = 512 * 1024 * 1024;
export const MAX_REFERENCE_BYTES = 256 * 1024 * 1024;
/** Node reads at most 2 GiB into one buffer. */
export const MAX_ARTIFACT_BYTES = 2 * 1024 * 1024 * 1024 - 1;

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

/**
 * Read a regular file of at most `maxBytes` bytes.
 *
 * @throws UnreadableFile when it is not one, or cannot be read.
 */
export function readBoundedFile(path: string, maxBytes: number): Buffer {
  checkReadableFile(path, maxBytes);
  try {
    return readFileSync(path);
  } catch (error) {
    throw new UnreadableFile(error instanceof Error ? error.message : String(error));
  }
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
