import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { after, test } from "node:test";
import { openSqliteLedger, verifyLedger } from "../ledger/index.js";
import { REPO_ROOT, tempDir } from "../testing/index.js";
import { DEMO_REQUEST } from "./paths.js";

const dir = tempDir("sigterm");
after(() => dir.remove());

const BODY = JSON.stringify(DEMO_REQUEST);

test("SIGTERM mid-burst: every acknowledged decision is in the ledger, and the chain verifies", async () => {
  const child = spawn(
    process.execPath,
    [join(REPO_ROOT, "bin/warden.js"), "serve", "--port", "0", "--data-dir", dir.path, "--log-level", "warn"],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  let stdout = "";
  child.stdout.setEncoding("utf8").on("data", (t: string) => (stdout += t));
  let stderr = "";
  child.stderr.setEncoding("utf8").on("data", (t: string) => (stderr += t));
  const exited = once(child, "exit");
  while (!/Warden (http:\/\/\S+)/.test(stderr)) {
    if (child.exitCode !== null) assert.fail(`server exited: ${stderr}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  const url = stderr.match(/Warden (http:\/\/\S+)/)![1]!;
  // The first start writes an admin key to an owner-only file, and the example request reads it from there; no
  // key appears in the output, which may be collected with the logs.
  while (!/Try:\n/.test(stderr)) await new Promise((r) => setTimeout(r, 20));
  const keyFile = join(dir.path, "keys", "first-admin.key");
  const key = readFileSync(keyFile, "utf8").trim();
  assert.match(key, /^wdn_[0-9a-f]{12}_[A-Za-z0-9_-]{43}$/);
  assert.equal(statSync(keyFile).mode & 0o777, 0o600);
  assert.ok(stderr.includes(`-H "authorization: Bearer $(cat '${keyFile}')"`), stderr);
  assert.ok(!(stdout + stderr).includes(key), "the key is in no output");

  // A burst of concurrent clients; SIGTERM lands once some answers are back and many are in flight.
  const acknowledged: string[] = [];
  let refused = 0;
  let sent = 0;
  let stopping = false;
  const client = async () => {
    for (let i = 0; i < 150; i++) {
      sent++;
      try {
        const response = await fetch(`${url}/v1/models/credit-demo/decisions`, {
          method: "POST",
          headers: { "content-type": "application/json", authorization: `Bearer ${key}` },
          body: BODY,
        });
        const body = (await response.json()) as { decision_id?: string; code?: string };
        if (response.status === 200) acknowledged.push(body.decision_id!);
        else {
          assert.equal(response.status, 503, JSON.stringify(body));
          assert.equal(body.code, "WARDEN_ERR_SHUTTING_DOWN");
          refused++;
        }
      } catch {
        refused++; // the listener is closed: the connection is refused, nothing was acknowledged
        if (stopping) return;
      }
      if (acknowledged.length >= 200 && !stopping) {
        stopping = true;
        child.kill("SIGTERM");
      }
    }
  };
  await Promise.all(Array.from({ length: 16 }, client));
  const [code] = await exited;
  assert.equal(code, 0, stderr);
  assert.ok(stopping, "SIGTERM was sent mid-burst");
  assert.ok(acknowledged.length >= 200, `${acknowledged.length} acknowledged, ${refused} refused of ${sent}`);
  assert.match(stderr, /SIGTERM: draining/);
  assert.match(stderr, /stopped/);
  // Standard output holds log lines only, each one JSON.
  for (const line of stdout.split("\n").filter((l) => l !== ""))
    assert.doesNotThrow(() => JSON.parse(line), line);

  const ledger = openSqliteLedger(dir.path);
  try {
    const missing = acknowledged.filter((id) => ledger.get(id)?.kind !== "decision");
    assert.deepEqual(missing, [], `${missing.length} acknowledged decisions are not in the ledger`);
    const decisions = [...ledger.scan()].filter((r) => r.kind === "decision").length;
    assert.equal(
      decisions,
      acknowledged.length,
      "no decision was recorded that was not acknowledged or refused",
    );
    // The rest are the start-up registrations of the two demo models (`deployment` records).
    assert.equal(ledger.count() - decisions, 2);
  } finally {
    ledger.close();
  }
  const report = verifyLedger(dir.path);
  assert.deepEqual(report, { ok: true, count: acknowledged.length + 2 });
});
