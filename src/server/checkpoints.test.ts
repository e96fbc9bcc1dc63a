import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { test } from "node:test";
import { loadManifest } from "../config/index.js";
import { defaultSigningKeyPath, loadPublicKey, verifyLedgerFully } from "../ledger/index.js";
import { DEMO_XGB, holdoutInstances, startTestServer } from "../testing/index.js";

test("the server makes its signing key on first start and signs a checkpoint over every decision when it stops", async (t) => {
  const server = await startTestServer({ config: { ledger: { checkpoint_interval_s: 0 } } });
  t.after(() => server.stop());
  const keyPath = defaultSigningKeyPath(server.dataDir);
  assert.ok(existsSync(keyPath) && existsSync(`${keyPath}.pub`));
  assert.equal(statSync(keyPath).mode & 0o777, 0o600);
  const nice = (stat: string) => Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[16]);
  if (process.platform === "linux" && nice(readFileSync("/proc/thread-self/stat", "utf8")) < 10) {
    // The checkpoint threads (Merkle signing, WAL copying) run below the serving threads' priority.
    const lowered = () =>
      readdirSync("/proc/self/task").filter(
        (tid) => nice(readFileSync(`/proc/self/task/${tid}/stat`, "utf8")) >= 10,
      ).length;
    for (let i = 0; i < 100 && lowered() < 2; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(lowered(), 2);
  }
  const rows = holdoutInstances(loadManifest(DEMO_XGB)).slice(0, 12);
  for (const row of rows) {
    const response = await server.app.inject({
      method: "POST",
      url: "/v1/models/credit-demo/decisions",
      payload: { features: row.features, subject: row.subject },
    });
    assert.equal(response.statusCode, 200);
  }
  await server.close();
  const full = await verifyLedgerFully(server.location, { publicKey: loadPublicKey(`${keyPath}.pub`) });
  assert.equal(full.chain.ok, true);
  // Every record (the start's deployment record and the 12 decisions) is under the signed checkpoint.
  assert.equal(full.latestCheckpoint, full.chain.count);
  assert.ok(full.chain.count >= 13);
  assert.equal(full.signaturesChecked, true);
  assert.equal(full.checkpointProblem, undefined);
});
