import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { checkReadableFile, makeFolder, readBoundedFile, sha256OfFile, UnreadableFile } from "./files.js";

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

test("with pipes allowed, a named pipe is read to its end, within the size limit", {
  skip: process.platform !== "linux",
}, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "warden-pipes-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const fifo = join(dir, "pipe");
  execFileSync("mkfifo", [fifo]);
  // The writer is another process: reading blocks this thread until it has written and closed the pipe.
  const writer = spawn("sh", ["-c", `printf 'port: 8080\\n' > '${fifo}'`], { stdio: "ignore" });
  t.after(() => writer.kill()); // left blocked on the pipe if the read fails
  assert.equal(readBoundedFile(fifo, 1 << 20, { pipes: true }).toString(), "port: 8080\n");
  await new Promise((resolve) => writer.once("exit", resolve));
  const flood = spawn("sh", ["-c", `head -c 3000000 /dev/zero > '${fifo}'`], { stdio: "ignore" });
  assert.throws(
    () => readBoundedFile(fifo, 2 << 20, { pipes: true }),
    (error: unknown) =>
      error instanceof UnreadableFile && /pipe\) gave more than the 2\.0 MiB allowed/.test(error.message),
  );
  flood.kill();
  await new Promise((resolve) => flood.once("exit", resolve));
  // Devices and folders are still refused.
  assert.throws(() => readBoundedFile("/dev/zero", 1 << 20, { pipes: true }), /character device/);
  assert.throws(() => readBoundedFile(dir, 1 << 20, { pipes: true }), /is a directory/);
});

test("sha256OfFile hashes a file a chunk at a time, as sha256sum does", {
  skip: process.platform !== "linux",
}, (t) => {
  const dir = mkdtempSync(join(tmpdir(), "warden-hash-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, "artifact.bin");
  // Three and a half chunks of varied bytes, so that chunk boundaries matter.
  const bytes = Buffer.alloc(3.5 * 1024 * 1024);
  for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 2654435761) >>> 24;
  writeFileSync(file, bytes);
  const expected = execFileSync("sha256sum", [file], { encoding: "utf8" }).split(" ")[0];
  assert.equal(sha256OfFile(file), expected);
  writeFileSync(file, "");
  assert.equal(sha256OfFile(file), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  assert.throws(() => sha256OfFile(dir), /is a directory, not a regular file/);
  assert.throws(() => sha256OfFile("/dev/zero"), /character device/);
});
