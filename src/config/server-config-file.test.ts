import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { WardenError } from "../errors/index.js";
import { readServerConfigFile } from "./server-config.js";

test("a configuration file's paths are relative to its folder", (t) => {
  const dir = mkdtempSync(join(tmpdir(), "warden-config-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, "warden.yaml");
  writeFileSync(file, "port: 8081\ndata_dir: data\nmodels: [m/manifest.yaml]\n");
  const raw = readServerConfigFile(file);
  assert.deepEqual(raw, { port: 8081, data_dir: join(dir, "data"), models: [join(dir, "m/manifest.yaml")] });
});

test("a configuration read from a pipe (--config <(...)) takes paths relative to the working folder", {
  skip: process.platform !== "linux",
}, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "warden-config-pipe-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const fifo = join(dir, "pipe");
  execFileSync("mkfifo", [fifo]);
  const writer = spawn("sh", ["-c", `printf 'data_dir: data\\n' > '${fifo}'`], { stdio: "ignore" });
  t.after(() => writer.kill()); // left blocked on the pipe if the read fails
  const raw = readServerConfigFile(fifo);
  await new Promise((resolve) => writer.once("exit", resolve));
  assert.deepEqual(raw, { data_dir: join(process.cwd(), "data") });
  // A file that is neither (a folder, a device) is refused, naming the file and what it is.
  assert.throws(
    () => readServerConfigFile(dir),
    (error: unknown) =>
      error instanceof WardenError &&
      error.code === "WARDEN_ERR_CONFIG_INVALID" &&
      error.message.includes(
        `${dir}: cannot read the configuration (${dir} is a directory, not a regular file)`,
      ),
  );
  assert.throws(() => readServerConfigFile("/dev/zero"), /is a character device, not a regular file/);
});
