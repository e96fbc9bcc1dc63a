import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { parse } from "csv-parse/sync";
import { loadManifest } from "../config/index.js";
import { policyScores } from "../explain/model-explainer.js";
import { readReferenceRows } from "../explain/reference-stats.js";
import { loadEngine } from "../runtime/engines.js";
import { DEMO_XGB, HOLDOUT_CSV, xgboostHoldoutReference } from "../testing/index.js";
import { isolationForestFromJSON } from "./anomaly.js";
import {
  buildReferenceProfile,
  type DiscreteFeatureProfile,
  type NumericFeatureProfile,
  type ReferenceProfile,
  referenceProfileFromJSON,
} from "./profile.js";
import { quantileSketchFromJSON } from "./sketch.js";
import { momentsFromJSON } from "./sketch-counts.js";

const manifest = loadManifest(DEMO_XGB);
const reference = readReferenceRows(manifest, HOLDOUT_CSV);
const engine = await loadEngine(manifest);
const scores = await policyScores(manifest, engine, reference.input, reference.rows);
await engine.close();
const sha256 = createHash("sha256").update(readFileSync(HOLDOUT_CSV)).digest("hex");
const createdAt = new Date("2026-01-02T03:04:05.000Z");
const profile = buildReferenceProfile(manifest, reference.input, reference.rows, scores, {
  referenceSha256: sha256,
  referenceFile: "holdout.csv",
  seed: 11,
  createdAt,
});

/** The holdout's raw cells, read without the project's CSV coercion. */
const raw = parse(readFileSync(HOLDOUT_CSV), { columns: true }) as Record<string, string>[];
const missing = (cell: string | undefined) => cell === undefined || cell === "" || cell === "NA";

function byName<T>(name: string): T {
  const f = profile.features.find((x) => x.name === name);
  assert.ok(f, name);
  return f as T;
}

test("provenance names the model, its hashes, the reference file and its rows", () => {
  assert.deepEqual(profile.provenance, {
    model: "credit-demo",
    version: "1.0.0",
    manifestSha256: createHash("sha256").update(readFileSync(DEMO_XGB)).digest("hex"),
    artifactSha256: "73ad47fbf1e4913e165c757a68f1ec9fee8128f2b4270e9e2874dbefcab24e22",
    referenceSha256: sha256,
    referenceFile: "holdout.csv",
    rows: 891,
    createdAt: "2026-01-02T03:04:05.000Z",
    seed: 11,
  });
  assert.deepEqual(
    profile.features.map((f) => f.name),
    manifest.modelFeatures.map((f) => f.name),
  );
  assert.ok(Object.isFrozen(profile.features[0]));
});

test("numeric features: missing rate, moments, quantiles and sample match exact figures from the raw CSV", () => {
  for (const name of ["Seniority", "Time", "Expenses", "Income", "Assets", "Debt", "Amount", "Price"]) {
    const f = byName<NumericFeatureProfile>(name);
    const cells = raw.map((r) => r[name]);
    const values = cells
      .filter((c) => !missing(c))
      .map(Number)
      .sort((a, b) => a - b);
    const n = values.length;
    assert.equal(f.kind, "numeric");
    assert.equal(f.rows, raw.length);
    assert.equal(f.missing, raw.length - n, name);
    assert.equal(f.missingRate, (raw.length - n) / raw.length);
    assert.equal(f.outOfRange, 0, `${name}: the holdout lies within the manifest's bounds`);
    const mean = values.reduce((a, b) => a + b, 0) / n;
    const variance = values.reduce((a, b) => a + (b - mean) ** 2, 0) / n;
    const moments = momentsFromJSON(f.moments);
    assert.equal(moments.count, n);
    assert.ok(Math.abs(moments.mean - mean) <= 1e-9 * Math.max(1, Math.abs(mean)), `${name} mean`);
    assert.ok(Math.abs(moments.variance - variance) <= 1e-9 * Math.max(1, variance), `${name} variance`);
    assert.equal(moments.min, values[0]);
    assert.equal(moments.max, values[n - 1]);
    const sketch = quantileSketchFromJSON(f.sketch);
    assert.equal(sketch.count, n);
    for (const q of [0, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 1]) {
      // DDSketch's guarantee: within 1% of the order statistic at ⌊q·(n − 1)⌋.
      const exact = values[Math.floor(q * (n - 1))]!;
      assert.ok(Math.abs(sketch.quantile(q) - exact) <= 0.01 * Math.abs(exact) + 1e-12, `${name} q${q}`);
    }
    // 891 rows fit in a sample of 1,000: the sample is every present value.
    assert.equal(f.sample.seen, n);
    assert.deepEqual(f.sample.values, values);
  }
});

test("boolean and category features: counts per value and missing match the raw CSV", () => {
  for (const name of ["Home", "Records", "Job"]) {
    const f = byName<DiscreteFeatureProfile>(name);
    const spec = manifest.modelFeatures.find((x) => x.name === name)!;
    const expected: Record<string, number> = {};
    const levels = spec.type === "boolean" ? ["false", "true"] : [...spec.categories!];
    for (const level of levels) expected[level] = 0;
    let nMissing = 0;
    for (const row of raw) {
      const cell = row[name];
      if (missing(cell)) nMissing++;
      else {
        const level = spec.type === "boolean" ? String(cell === "yes") : cell!;
        expected[level] = (expected[level] ?? 0) + 1;
      }
    }
    assert.deepEqual({ ...f.counts.counts }, expected, name);
    assert.equal(f.missing, nMissing);
    assert.equal(f.counts.missing, nMissing);
    assert.equal(f.missingRate, nMissing / raw.length);
  }
  assert.ok(byName<DiscreteFeatureProfile>("Home").missing > 0, "Home has NA cells in the holdout");
});

test("the score profile matches XGBoost's own holdout predictions", () => {
  const expected = xgboostHoldoutReference();
  assert.equal(expected.length, 891);
  const positive = expected.filter((p) => p >= 0.5).length;
  assert.equal(profile.score.task, "binary");
  assert.equal(profile.score.positiveLabel, "bad");
  assert.equal(profile.score.threshold, 0.5);
  assert.equal(profile.score.positiveShare, positive / 891);
  const moments = momentsFromJSON(profile.score.moments);
  const mean = expected.reduce((a, b) => a + b, 0) / expected.length;
  assert.ok(Math.abs(moments.mean - mean) < 1e-6, `${moments.mean} vs ${mean}`);
  const sorted = [...expected].sort((a, b) => a - b);
  const median = quantileSketchFromJSON(profile.score.sketch).quantile(0.5);
  assert.ok(Math.abs(median - sorted[445]!) <= 0.01 * sorted[445]! + 1e-6);
  assert.equal(profile.score.sample.values.length, 891);
});

test("the anomaly forest in the profile scores requests; its threshold leaves about 1% of the reference above", () => {
  const forest = isolationForestFromJSON(profile.anomaly);
  assert.equal(forest.width, manifest.modelFeatures.length);
  const w = forest.width;
  let above = 0;
  for (let r = 0; r < reference.rows; r++) {
    if (forest.isAnomalous(forest.score(reference.input.subarray(r * w, (r + 1) * w)))) above++;
  }
  assert.ok(above >= 5 && above <= 12, `${above}`);
});

test("a profile survives a JSON round trip; a damaged one is refused naming the field", () => {
  const text = JSON.stringify(profile);
  const back: ReferenceProfile = referenceProfileFromJSON(JSON.parse(text));
  assert.deepEqual(back, profile);
  assert.equal(JSON.stringify(back), text);
  // biome-ignore lint/suspicious/noExplicitAny: the edits reach into parsed JSON of any shape
  const damage = (edit: (j: any) => void, pattern: RegExp) => {
    const j = JSON.parse(text);
    edit(j);
    assert.throws(() => referenceProfileFromJSON(j), pattern);
  };
  damage((j) => (j.kind = "profile"), /kind: must be "reference-profile"/);
  damage((j) => (j.provenance.referenceSha256 = "abc"), /provenance\.referenceSha256: must be 64/);
  damage((j) => (j.features[0].sketch.count = -1), /features\[0\]\.sketch: not a DDSketch JSON/);
  damage((j) => (j.features[1].counts.kind = "x"), /features\[1\]\.counts: not a category-counts JSON/);
  damage((j) => (j.features[2].rows = 5), /features\[2\]\.rows: must equal provenance\.rows/);
  damage((j) => (j.score.positiveShare = 2), /score\.positiveShare: must lie in \[0, 1\]/);
  damage((j) => (j.anomaly.missingAs = []), /anomaly: not an isolation-forest JSON: missingAs/);
  damage((j) => j.features.pop(), /anomaly\.width: must equal the number of features/);
  assert.throws(() => referenceProfileFromJSON(null), /\(root\): expected an object/);
});

test("the same seed gives the same profile; a small sample keeps a seeded subset", () => {
  const options = { referenceSha256: sha256, referenceFile: "holdout.csv", createdAt, sampleSize: 50 };
  const a = buildReferenceProfile(manifest, reference.input, reference.rows, scores, { ...options, seed: 5 });
  const b = buildReferenceProfile(manifest, reference.input, reference.rows, scores, { ...options, seed: 5 });
  const c = buildReferenceProfile(manifest, reference.input, reference.rows, scores, { ...options, seed: 6 });
  assert.equal(JSON.stringify(a), JSON.stringify(b));
  const amount = (p: ReferenceProfile) =>
    (p.features.find((f) => f.name === "Amount") as NumericFeatureProfile).sample;
  assert.equal(amount(a).values.length, 50);
  assert.equal(amount(a).seen, 891);
  assert.notDeepEqual(amount(a).values, amount(c).values);
  const all = new Set(raw.map((r) => Number(r.Amount)));
  assert.ok(amount(a).values.every((v) => all.has(v)));
  assert.throws(
    () => buildReferenceProfile(manifest, reference.input, reference.rows, scores.subarray(1), options),
    RangeError,
  );
});

test("a model that is not binary gets no positive share; the profile still reads back", () => {
  const regression = { ...manifest, task: "regression" as const };
  const values = Float64Array.from(scores, (s) => 1000 * s);
  const p = buildReferenceProfile(regression, reference.input, reference.rows, values, {
    referenceSha256: sha256,
    referenceFile: "holdout.csv",
    createdAt,
  });
  assert.equal(p.score.task, "regression");
  assert.equal(p.score.positiveShare, null);
  assert.equal(p.score.threshold, null);
  assert.equal(p.score.positiveLabel, null);
  assert.deepEqual(referenceProfileFromJSON(JSON.parse(JSON.stringify(p))).score, p.score);
});
