import assert from "node:assert/strict";
import { after, test } from "node:test";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { readReferenceRows } from "../explain/reference-stats.js";
import { xgboostScorer } from "../testing/demo-scorer.js";
import { DEMO_XGB, HOLDOUT_CSV, loadManifest } from "../testing/index.js";
import { createLiveMonitor } from "./live.js";
import { buildReferenceProfile } from "./profile.js";
import { createReportThread } from "./report-thread.js";

const manifest = loadManifest(DEMO_XGB);
const features = manifest.modelFeatures;
const width = features.length;
const holdout = readReferenceRows(manifest, HOLDOUT_CSV);
const scores = await xgboostScorer(manifest).score(holdout.input, holdout.rows);
const profile = buildReferenceProfile(manifest, holdout.input, holdout.rows, scores, {
  referenceSha256: "0".repeat(64),
  referenceFile: "holdout.csv",
  seed: 1,
});
const thread = createReportThread();
after(() => thread.close());

function observe(monitor: ReturnType<typeof createLiveMonitor>, from: number, to: number, shift = 1) {
  const amount = features.findIndex((f) => f.name === "Amount");
  for (let r = from; r < to; r++) {
    const row = Float64Array.from(holdout.input.subarray(r * width, (r + 1) * width));
    row[amount] = row[amount]! * shift;
    monitor.observe(row, scores[r]!);
  }
}

test("a report computed in the thread is the one computed in place, for both windows", async () => {
  const monitor = createLiveMonitor(features, { window: 200, profile });
  observe(monitor, 0, 300);
  assert.deepEqual(await thread.report(monitor, features), monitor.report());
  assert.deepEqual(await thread.report(monitor, features, "time"), monitor.report("time"));
  assert.equal((await thread.report(monitor, features, "time")).window, 300);
});

test("reports are shared until the monitor changes; a new profile reaches the thread", async () => {
  const monitor = createLiveMonitor(features, { window: 100, profile: null });
  observe(monitor, 0, 100);
  const first = thread.report(monitor, features);
  assert.equal(thread.report(monitor, features), first, "one computation for callers that ask together");
  assert.equal((await first).profile, null);
  observe(monitor, 100, 200, 3);
  const second = thread.report(monitor, features);
  assert.notEqual(second, first);
  assert.equal((await second).observed, 200);
  monitor.setProfile(profile);
  const profiled = await thread.report(monitor, features);
  assert.ok(profiled.profile !== null);
  assert.equal(profiled.features.find((f) => f.name === "Amount")?.drift?.drifted, true);
  assert.deepEqual(profiled, monitor.report());
});

test("a closed thread starts again on the next report", async () => {
  const monitor = createLiveMonitor(features, { window: 50, profile });
  observe(monitor, 0, 60);
  const before = await thread.report(monitor, features);
  await thread.close();
  observe(monitor, 60, 61);
  const again = await thread.report(monitor, features);
  assert.equal(again.observed, before.observed + 1);
  assert.deepEqual(again, monitor.report());
});

test("a forgotten monitor's profile is dropped here and in the thread; reporting on it again sends it again", async () => {
  const own = createReportThread();
  try {
    const a = createLiveMonitor(features, { window: 50, profile });
    const b = createLiveMonitor(features, { window: 50, profile });
    observe(a, 0, 60);
    observe(b, 60, 120);
    await own.report(a, features);
    await own.report(b, features);
    assert.equal(own.held(), 2);
    own.forget(a);
    assert.equal(own.held(), 1);
    own.forget(a); // twice: nothing more
    assert.equal(own.held(), 1);
    // The thread was told to drop it: a report on it again carries the setup again, and is right.
    observe(a, 120, 121);
    assert.deepEqual(await own.report(a, features), a.report());
    assert.equal(own.held(), 2);
    assert.deepEqual(await own.report(b, features), b.report());
  } finally {
    await own.close();
  }
});

test("a monitor that is collected (its model version unloaded) is forgotten on its own", async () => {
  setFlagsFromString("--expose-gc");
  const gc = runInNewContext("gc") as () => void;
  const own = createReportThread();
  try {
    const kept = createLiveMonitor(features, { window: 50, profile });
    observe(kept, 0, 60);
    await own.report(kept, features);
    await (async () => {
      // Only this scope holds the second monitor.
      const dropped = createLiveMonitor(features, { window: 50, profile });
      observe(dropped, 60, 120);
      await own.report(dropped, features);
    })();
    assert.equal(own.held(), 2);
    for (let i = 0; i < 50 && own.held() > 1; i++) {
      gc();
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    assert.equal(own.held(), 1, "the collected monitor's profile was dropped");
    assert.deepEqual(await own.report(kept, features), kept.report());
  } finally {
    await own.close();
  }
});
