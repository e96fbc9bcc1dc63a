import assert from "node:assert/strict";
import { test } from "node:test";
import { readReferenceRows } from "../explain/reference-stats.js";
import { xgboostScorer } from "../testing/demo-scorer.js";
import { DEMO_XGB, HOLDOUT_CSV, loadManifest } from "../testing/index.js";
import {
  jensenShannonDistance,
  ksTwoSample,
  normalizedWasserstein,
  populationStabilityIndex,
  psiNumeric,
} from "./drift.js";
import { createLiveMonitor, MIN_DRIFT_OBSERVATIONS, poolSparse } from "./live.js";
import { buildReferenceProfile } from "./profile.js";

const manifest = loadManifest(DEMO_XGB);
const features = manifest.modelFeatures;
const width = features.length;
const holdout = readReferenceRows(manifest, HOLDOUT_CSV);
const scorer = xgboostScorer(manifest).score;
/**
 * Every other holdout row profiles the model; the rest are fresh traffic from the same population (the file is
 * not in random order, so a split by position would compare two different populations).
 */
function rowsWhere(keep: (r: number) => boolean): { input: Float32Array; rows: number } {
  const picked: number[] = [];
  for (let r = 0; r < holdout.rows; r++) if (keep(r)) picked.push(r);
  const input = new Float32Array(picked.length * width);
  picked.forEach((r, i) => {
    input.set(holdout.input.subarray(r * width, (r + 1) * width), i * width);
  });
  return { input, rows: picked.length };
}
const { input: reference, rows: REFERENCE_ROWS } = rowsWhere((r) => r % 2 === 0);
const { input: fresh, rows: freshRows } = rowsWhere((r) => r % 2 === 1);
const column = (name: string) => features.findIndex((f) => f.name === name);

async function profile() {
  const scores = await scorer(reference, REFERENCE_ROWS);
  return buildReferenceProfile(manifest, reference, REFERENCE_ROWS, scores, {
    referenceSha256: "0".repeat(64),
    referenceFile: "holdout.csv (even rows)",
    seed: 3,
  });
}

async function observeAll(monitor: ReturnType<typeof createLiveMonitor>, input: Float32Array, rows: number) {
  const scores = await scorer(input, rows);
  for (let r = 0; r < rows; r++) monitor.observe(input.subarray(r * width, (r + 1) * width), scores[r]!);
}

test("traffic from the reference population: no dataset drift, few anomalies, tests against the profile's samples", async () => {
  const p = await profile();
  const monitor = createLiveMonitor(features, { window: 500, profile: p });
  await observeAll(monitor, fresh, freshRows);
  const report = monitor.report();
  assert.equal(report.window, freshRows);
  assert.equal(report.observed, freshRows);
  assert.ok(report.dataset !== null);
  assert.equal(report.dataset.drifted, false, JSON.stringify(report.dataset));
  // Each numeric test is the two-sample KS of the window's present values against the profile's sample.
  const amount = column("Amount");
  const values = Array.from({ length: freshRows }, (_, r) => fresh[r * width + amount]!);
  const profiled = p.features[amount]!;
  assert.equal(profiled.kind, "numeric");
  const expected = ksTwoSample(values, profiled.kind === "numeric" ? profiled.sample.values : []);
  const got = report.features[amount]!.drift!;
  assert.equal(got.test, "ks");
  assert.equal(got.statistic, expected.statistic);
  assert.equal(got.p_value, expected.pValue);
  // Beside the test: Evidently's normalised Wasserstein and the PSI on the reference's deciles.
  const sample = profiled.kind === "numeric" ? profiled.sample.values : [];
  assert.equal(got.wasserstein_normalized, normalizedWasserstein(sample, values));
  assert.equal(got.psi, psiNumeric(sample, values));
  assert.ok(got.wasserstein_normalized! < 0.1 && got.psi < 0.1, "the same population: below the thresholds");
  // Categories: Jensen–Shannon and PSI over the profile's counts (missing as a category) and the window's.
  const home = column("Home");
  const homeProfile = p.features[home]!;
  assert.equal(homeProfile.kind, "discrete");
  if (homeProfile.kind === "discrete") {
    const levels = Object.keys(homeProfile.counts.counts);
    const reference = [...levels.map((l) => homeProfile.counts.counts[l]!), homeProfile.counts.missing];
    const seen = new Array<number>(levels.length + 1).fill(0);
    for (let r = 0; r < freshRows; r++) {
      const v = fresh[r * width + home]!;
      seen[Number.isNaN(v) ? levels.length : v]! += 1;
    }
    const drift = report.features[home]!.drift!;
    assert.equal(drift.jensen_shannon, jensenShannonDistance(reference, seen));
    assert.equal(drift.psi, populationStabilityIndex(reference, seen));
  }
  // The forest's threshold is the reference's 99th percentile: fresh rows of the same population rarely pass it.
  assert.ok(
    report.anomaly_rate !== null && report.anomaly_rate < 0.05,
    `anomaly rate ${report.anomaly_rate}`,
  );
  assert.equal(report.profile?.rows, REFERENCE_ROWS);
});

test("a shifted copy drifts on the shifted features, and the dataset verdict says why", async () => {
  const p = await profile();
  const monitor = createLiveMonitor(features, { window: freshRows, profile: p });
  const shifted = Float32Array.from(fresh);
  const [amount, income, records] = [column("Amount"), column("Income"), column("Records")];
  for (let r = 0; r < freshRows; r++) {
    shifted[r * width + amount]! *= 2.5;
    if (!Number.isNaN(shifted[r * width + income]!)) shifted[r * width + income]! *= 0.5;
    shifted[r * width + records] = 1;
  }
  await observeAll(monitor, shifted, freshRows);
  const report = monitor.report();
  for (const name of ["Amount", "Income", "Records"]) {
    const feature = report.features.find((f) => f.name === name)!;
    assert.equal(feature.drift?.drifted, true, `${name}: ${JSON.stringify(feature.drift)}`);
  }
  assert.equal(report.features[records]!.drift!.test, "chi2");
  assert.equal(report.features.find((f) => f.name === "Home")!.drift!.drifted, false);
  assert.equal(report.dataset!.drifted, true);
  assert.ok(report.dataset!.reasons.includes("bonferroni"));
  assert.ok(report.score.drift!.drifted, "the scores moved too");
  const amountDrift = report.features[amount]!.drift!;
  assert.ok(amountDrift.wasserstein_normalized! > 0.1 && amountDrift.psi > 0.2, JSON.stringify(amountDrift));
});

test("without a profile, or before enough decisions, it reports rates but no drift", async () => {
  const bare = createLiveMonitor(features, { window: 50 });
  await observeAll(bare, fresh, 80);
  const report = bare.report();
  assert.equal(report.window, 50);
  assert.equal(report.observed, 80);
  assert.equal(report.dataset, null);
  assert.equal(report.anomaly_rate, null);
  assert.ok(report.features.every((f) => f.drift === undefined));
  const income = report.features.find((f) => f.name === "Income")!;
  // The window holds the last 50 of the 80 rows: count their missing incomes directly.
  let missing = 0;
  for (let r = 30; r < 80; r++) if (Number.isNaN(fresh[r * width + column("Income")]!)) missing++;
  assert.equal(income.missing_rate, missing / 50);

  const early = createLiveMonitor(features, { profile: await profile() });
  await observeAll(early, fresh, MIN_DRIFT_OBSERVATIONS - 1);
  assert.equal(early.report().dataset, null);
  assert.throws(() => early.observe([1, 2], 0.5), RangeError);
  assert.throws(() => createLiveMonitor(features, { window: 0 }), RangeError);
});

test("chi-squared bins expected to hold fewer than 5 are pooled, into the sparsest bin when still too few", () => {
  // Reference shares 50/30/10/6/4 %, 100 current rows: the last two are expected 6 and 4 → only the 4 pools,
  // and a pool of 4 alone is still sparse, so it joins the sparsest kept bin (expected 6).
  assert.deepEqual(poolSparse([40, 35, 12, 8, 5], [500, 300, 100, 60, 40]), [
    [40, 35, 12, 13],
    [500, 300, 100, 100],
  ]);
  // Two sparse bins whose pool reaches 5 stay one pooled bin.
  assert.deepEqual(poolSparse([50, 40, 6, 4], [500, 400, 30, 30]), [
    [50, 40, 10],
    [500, 400, 60],
  ]);
  // Nothing sparse: unchanged.
  assert.deepEqual(poolSparse([10, 20], [100, 200]), [
    [10, 20],
    [100, 200],
  ]);
});

test("a report is kept until a decision or a profile changes it", async () => {
  const monitor = createLiveMonitor(features, { window: 100, profile: await profile() });
  await observeAll(monitor, fresh, 40);
  const first = monitor.report();
  assert.equal(monitor.report(), first, "the same report while nothing changed");
  monitor.observe(fresh.subarray(0, width), 0.5);
  const second = monitor.report();
  assert.notEqual(second, first);
  assert.equal(second.observed, 41);
  monitor.setProfile(null);
  assert.equal(monitor.report().profile, null);
});

test("the time window reports the decisions of its span, expires them by the clock, and says when it is capped", async () => {
  const p = await profile();
  let now = 1_000_000;
  const monitor = createLiveMonitor(features, {
    window: 50,
    timeWindowMs: 60_000,
    timeWindowCapacity: 300,
    profile: p,
    now: () => now,
  });
  const scores = await scorer(fresh, freshRows);
  const rowOf = (r: number) => fresh.subarray(r * width, (r + 1) * width);
  // 200 decisions a second apart, then nothing.
  for (let r = 0; r < 200; r++) {
    monitor.observe(rowOf(r), scores[r]!);
    now += 1000;
  }
  // The span holds the last 60 s: the latest 60 decisions (made at now − 60 s ... now − 1 s).
  const timed = monitor.report("time");
  assert.equal(timed.window_kind, "time");
  assert.equal(timed.window_span_s, 60);
  assert.equal(timed.window, 59);
  assert.equal(timed.window_capped, false);
  // The same figures as a count monitor fed only those decisions.
  const same = createLiveMonitor(features, { window: 59, profile: p });
  for (let r = 141; r < 200; r++) same.observe(rowOf(r), scores[r]!);
  const expected = same.report();
  assert.deepEqual(timed.features, expected.features);
  assert.deepEqual(timed.score, expected.score);
  assert.equal(timed.anomaly_rate, expected.anomaly_rate);
  // The count window is the latest 50, whatever the clock says.
  assert.equal(monitor.report().window, 50);
  assert.equal(monitor.report().window_kind, "count");
  // Thirty seconds later, half of them have left the span; two minutes later, all.
  now += 30_000;
  assert.equal(monitor.report("time").window, 29);
  now += 120_000;
  assert.equal(monitor.report("time").window, 0);
  assert.equal(monitor.report("time").dataset, null);
  assert.equal(monitor.report().window, 50);
  // A burst of 400 decisions in one second overflows the 300 kept: the report says it is capped.
  for (let r = 0; r < 400; r++) monitor.observe(rowOf(r % freshRows), scores[r % freshRows]!);
  const burst = monitor.report("time");
  assert.equal(burst.window, 300);
  assert.equal(burst.window_capped, true);
  assert.throws(() => createLiveMonitor(features, { timeWindowMs: 0 }), /timeWindowMs/);
});

test("the mean confidence is the probability of the class decided: max(p, 1 − p) for binary, the score for multiclass", () => {
  const row = fresh.subarray(0, width);
  const binary = createLiveMonitor(features, { task: "binary" });
  const multiclass = createLiveMonitor(features, { task: "multiclass" });
  const regression = createLiveMonitor(features, { task: "regression" });
  for (const p of [0.2, 0.9, 0.5]) {
    binary.observe(row, p);
    multiclass.observe(row, p);
    regression.observe(row, p);
  }
  assert.ok(Math.abs(binary.report().score.mean_confidence! - (0.8 + 0.9 + 0.5) / 3) < 1e-15);
  assert.ok(Math.abs(multiclass.report().score.mean_confidence! - (0.2 + 0.9 + 0.5) / 3) < 1e-15);
  assert.equal(regression.report().score.mean_confidence, null);
  assert.equal(createLiveMonitor(features, { task: "binary" }).report().score.mean_confidence, null);
});
