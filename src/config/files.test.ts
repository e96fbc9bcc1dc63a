import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { checkReadableFile, makeFolder, readBoundedFile, UnreadableFile } from "./files.js";

test("only regular files within the size limit are read whole; devices, pipes, folders and oversized files are refused before reading", (t) => {
  const dir = mkdtempSync(join(tmpdir(), "warden-files-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, "a.yaml");
  writeFileSync(file, "name: x\n");
  assert.equal(readBoundedFile(file, 8).toString(), "name: x\n");
  assert.equal(checkReadableFile(file, 8), 8);
  const refused = (path: string, max: number, message: RegExp) =>
    assert.throws(
      () => readBoundedFile(path, max),
      (error: unknown) => error instanceof UnreadableFile && message.test(error.message),
    );
  refused(file, 7, /holds 8 bytes, more than the 7 bytes allowed/);
  refused(dir, 1 << 20, /is a directory, not a regular file/);
  refused(join(dir, "none.yaml"), 1 << 20, /ENOENT/);
  if (process.platform === "linux") {
    refused("/dev/zero", 1 << 20, /is a character device, not a regular file/);
    const fifo = join(dir, "pipe");
    execFileSync("mkfifo", [fifo]);
    // Opening a pipe for reading would wait for a writer: it is refused without being opened.
    refused(fifo, 1 << 20, /is a named pipe, not a regular file/);
  }
});

test("makeFolder makes missing parents one at a time and names what stops it", (t) => {
  const dir = mkdtempSync(join(tmpdir(), "warden-folders-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const nested = join(dir, "a", "b", "c");
  makeFolder(nested);
  assert.equal(statSync(nested).isDirectory(), true);
  makeFolder(nested); // already there
  const file = join(dir, "file");
  writeFileSync(file, "x");
  assert.throws(
    () => makeFolder(join(file, "data")),
    (error: unknown) =>
      error instanceof UnreadableFile && /file is a regular file, not a folder/.test(error.message),
  );
  if (process.platform === "linux") {
    // Node's recursive mkdirSync retries without end here.
    assert.throws(
      () => makeFolder("/proc/warden-nothing/data"),
      (error: unknown) =>
        error instanceof UnreadableFile && /cannot make \/proc\/warden-nothing/.test(error.message),
    );
  }
});
