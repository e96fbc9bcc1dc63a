import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { loadManifest } from "../config/index.js";
import { validateInstance } from "../decision/index.js";
import { createLiveMonitor, type MonitorReport, referenceProfileFromJSON } from "../monitor/index.js";
import {
  DEMO_XGB,
  demoVersion,
  HOLDOUT_CSV,
  holdoutInstances,
  startTestServer,
  tempDir,
} from "../testing/index.js";
import { main } from "./index.js";

const manifest = loadManifest(DEMO_XGB);
const scratch = tempDir("monitor-merge");
type Server = Awaited<ReturnType<typeof startTestServer>>;
const replicas: Server[] = [];
/** Every decision the replicas made: its encoded row and score. */
const decided: { row: Float32Array; score: number }[] = [];

async function run(...argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = "";
  let stderr = "";
  const code = await main(argv, { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t) });
  return { code, stdout, stderr };
}

before(async () => {
  const built = await run(
    "profile",
    "build",
    DEMO_XGB,
    HOLDOUT_CSV,
    "--data-dir",
    scratch.path,
    "--seed",
    "2",
  );
  assert.equal(built.code, 0, built.stderr);
  replicas.push(await startTestServer(), await startTestServer());
  const cases = holdoutInstances(manifest)
    .map((c) => ({ c, checked: validateInstance(manifest, c.features, c.subject, "") }))
    .filter(({ checked }) => checked.instance !== undefined);
  // Alternate rows between the replicas, as a load balancer would; 300 decisions in all.
  for (let k = 0; k < 2; k++) {
    const mine = cases.filter((_, i) => i % 2 === k).slice(0, 150);
    const response = await fetch(`${replicas[k]!.url}/v1/models/credit-demo/decisions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        instances: mine.map(({ c }) => ({ features: c.features, subject: c.subject })),
      }),
    });
    assert.equal(response.status, 200);
    const { decisions } = (await response.json()) as { decisions: { score: number }[] };
    decisions.forEach((d, i) => {
      decided.push({ row: mine[i]!.checked.instance!.row, score: d.score });
    });
  }
});
after(async () => {
  for (const r of replicas) await r.stop();
  scratch.remove();
});

test("warden monitor merge: the replicas' windows give the report of all their decisions at once", async () => {
  const result = await run(
    "monitor",
    "merge",
    DEMO_XGB,
    replicas[0]!.url,
    `${replicas[1]!.url}/`,
    "--data-dir",
    scratch.path,
    "--format",
    "json",
  );
  assert.equal(result.code, 0, result.stderr);
  const merged = JSON.parse(result.stdout) as MonitorReport & { replicas: number };
  assert.equal(merged.replicas, 2);
  assert.equal(merged.window, 300);
  assert.equal(merged.observed, 300);
  // One monitor fed every decision, in this process: the same tests, the same verdict.
  const profile = referenceProfileFromJSON(
    JSON.parse(readFileSync(join(scratch.path, "profiles", "credit-demo", "1.0.0.json"), "utf8")),
  );
  const one = createLiveMonitor(manifest.modelFeatures, { window: 300, profile, task: "binary" });
  for (const d of decided) one.observe(d.row, d.score);
  const expected = one.report();
  assert.deepEqual(merged.features, expected.features);
  assert.deepEqual(merged.dataset, expected.dataset);
  assert.equal(merged.anomaly_rate, expected.anomaly_rate);
  assert.deepEqual(merged.score.drift, expected.score.drift);
  assert.ok(Math.abs(merged.score.mean! - expected.score.mean!) < 1e-12);
  assert.ok(Math.abs(merged.score.mean_confidence! - expected.score.mean_confidence!) < 1e-12);

  const text = await run(
    "monitor",
    "merge",
    DEMO_XGB,
    replicas[0]!.url,
    replicas[1]!.url,
    "--data-dir",
    scratch.path,
  );
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, /^credit-demo 1\.0\.0: 300 decisions from 2 replicas' count windows\n/);
});

test("warden monitor merge refuses a replica of another manifest, and bad URLs", async () => {
  // The same version, another manifest (one more line): its sha256 differs.
  const other = demoVersion(scratch.path, "1.0.0");
  writeFileSync(other, `${readFileSync(other, "utf8")}# edited\n`);
  const mismatch = await run("monitor", "merge", other, replicas[0]!.url, "--data-dir", scratch.path);
  assert.equal(mismatch.code, 1);
  assert.match(mismatch.stderr, /serves another manifest of credit-demo 1\.0\.0/);
  const unknown = await run("monitor", "merge", demoVersion(scratch.path, "9.9.9"), replicas[0]!.url);
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, /answered 404/);
  const bad = await run("monitor", "merge", DEMO_XGB, "ftp://example");
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /must be an http:\/\/ or https:\/\/ URL/);
  const window = await run("monitor", "merge", DEMO_XGB, replicas[0]!.url, "--window", "week");
  assert.equal(window.code, 2);
});
