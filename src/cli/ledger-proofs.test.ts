import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { test } from "node:test";
import {
  fromHex,
  loadPublicKey,
  openSqliteLedger,
  proofFromHex,
  verifyConsistency,
  verifyInclusion,
  verifyTreeHead,
} from "../ledger/index.js";
import { sampleEntry } from "../ledger/testkit.js";
import { tempDir } from "../testing/index.js";
import { main } from "./index.js";

async function run(...argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = "";
  let stderr = "";
  const code = await main(argv, { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t) });
  return { code, stdout, stderr };
}

test("warden ledger checkpoint, prove and consistency print evidence that checks out on its own", async (t) => {
  const dir = tempDir("proofs");
  t.after(() => dir.remove());
  const store = openSqliteLedger(dir.path);
  store.append(Array.from({ length: 9 }, (_, i) => sampleEntry(i + 1)));
  const first = await run("ledger", "checkpoint", "--data-dir", dir.path);
  assert.equal(first.code, 0, first.stderr);
  assert.match(first.stderr, /created signing key/);
  store.append(Array.from({ length: 4 }, (_, i) => sampleEntry(i + 10)));
  store.close();
  const second = await run("ledger", "checkpoint", "--data-dir", dir.path);
  assert.equal(second.code, 0, second.stderr);
  assert.equal(second.stderr, "", "the key exists now");
  const head = JSON.parse(second.stdout);
  assert.equal(head.tree_size, 13);
  const publicKey = loadPublicKey(`${dir.path}/keys/ledger-ed25519.pem.pub`);
  assert.equal(verifyTreeHead(head, publicKey).ok, true);

  const proved = await run("ledger", "prove", sampleEntry(5).id, "--data-dir", dir.path);
  assert.equal(proved.code, 0, proved.stderr);
  const evidence = JSON.parse(proved.stdout);
  assert.deepEqual(
    verifyInclusion(
      fromHex(evidence.leaf_hash),
      evidence.leaf_index,
      evidence.tree_size,
      proofFromHex(evidence.inclusion_proof),
      fromHex(head.root_hash),
    ),
    { ok: true },
  );
  const older = await run("ledger", "prove", sampleEntry(5).id, "--data-dir", dir.path, "--tree-size", "9");
  assert.equal(JSON.parse(older.stdout).tree_size, 9);

  const consistent = await run("ledger", "consistency", "9", "13", "--data-dir", dir.path);
  assert.equal(consistent.code, 0, consistent.stderr);
  const proof = JSON.parse(consistent.stdout);
  assert.deepEqual(
    verifyConsistency(
      9,
      13,
      fromHex(proof.old_checkpoint.root_hash),
      fromHex(proof.new_checkpoint.root_hash),
      proofFromHex(proof.consistency_proof),
    ),
    { ok: true },
  );

  // Clear failures: an unknown id (1), a size with no checkpoint (1), sizes the wrong way round (2).
  assert.equal((await run("ledger", "prove", "no-such-id", "--data-dir", dir.path)).code, 1);
  const missing = await run("ledger", "consistency", "5", "13", "--data-dir", dir.path);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /no checkpoint of size 5/);
  assert.equal((await run("ledger", "consistency", "13", "9", "--data-dir", dir.path)).code, 2);
  assert.equal((await run("ledger", "prove", "x", "--postgres-url", "mysql://h/db")).code, 2);
});

test("warden ledger checkpoint, prove and consistency on a folder with no ledger: a clear error, exit 1, and no key made", async (t) => {
  const dir = tempDir("no-ledger");
  t.after(() => dir.remove());
  for (const args of [["checkpoint"], ["prove", "x"], ["consistency", "1", "2"]]) {
    const result = await run("ledger", ...args, "--data-dir", `${dir.path}/typo`);
    assert.equal(result.code, 1, result.stderr);
    assert.match(result.stderr, /^warden: cannot read the ledger at .*typo\/ledger\.sqlite/);
    assert.doesNotMatch(result.stderr, /\n\s+at /, "no stack trace");
    assert.equal(existsSync(`${dir.path}/typo`), false, "nothing made in the mistyped folder");
  }
});
