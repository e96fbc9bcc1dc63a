import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { checkReadableFile, readBoundedFile, UnreadableFile } from "./files.js";

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
