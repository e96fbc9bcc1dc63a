/**
 * The first admin key: written to an owner-only file (never printed), and undone when that file cannot be
 * written, so that nobody is locked out of a server whose only admin key nobody has.
 */
import assert from "node:assert/strict";
import { mkdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { test } from "node:test";
import { parseServerConfig } from "../config/index.js";
import { WardenError } from "../errors/index.js";
import { openKeyStore } from "../security/index.js";
import { DEMO_XGB, tempDir } from "../testing/index.js";
import { firstKeyPath, startServer } from "./index.js";

const config = (dataDir: string) =>
  parseServerConfig(
    { port: 0, data_dir: dataDir, log_level: "silent", models: [DEMO_XGB], auth: { required: true } },
    "test",
  );

test("a first key that cannot be written to its file is undone; the next start makes one, owner-only", async (t) => {
  const dir = tempDir("first-key");
  t.after(() => dir.remove());
  const file = firstKeyPath(dir.path);
  mkdirSync(file, { recursive: true }); // a folder where the file must go
  await assert.rejects(startServer(config(dir.path)), (error: unknown) => {
    assert.ok(error instanceof WardenError);
    assert.equal(error.code, "WARDEN_ERR_CONFIG_INVALID");
    assert.match(error.message, new RegExp(`cannot write the first admin API key to ${file}`));
    return true;
  });
  const keys = openKeyStore(dir.path);
  assert.equal(keys.count(), 0, "no admin key whose secret nobody has");
  keys.close();

  rmSync(file, { recursive: true });
  const server = await startServer(config(dir.path));
  try {
    assert.ok(server.firstKey !== undefined);
    assert.equal(server.firstKey.file, file);
    assert.equal(readFileSync(file, "utf8"), `${server.firstKey.key}\n`);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    const answer = await fetch(`${server.url}/v1/admin/keys`, {
      headers: { authorization: `Bearer ${readFileSync(file, "utf8").trim()}` },
    });
    assert.equal(answer.status, 200, "the key in the file is the admin's");
  } finally {
    await server.close();
  }
});
