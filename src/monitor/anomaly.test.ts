import assert from "node:assert/strict";
import { test } from "node:test";
import { loadManifest } from "../config/index.js";
import { readReferenceRows } from "../explain/reference-stats.js";
import { DEMO_XGB, HOLDOUT_CSV } from "../testing/index.js";
import { averagePathLength, fitIsolationForest, harmonicNumber, isolationForestFromJSON } from "./anomaly.js";

const manifest = loadManifest(DEMO_XGB);
const holdout = readReferenceRows(manifest, HOLDOUT_CSV);
const width = manifest.modelFeatures.length;
const column = (name: string) => manifest.modelFeatures.findIndex((f) => f.name === name);

test("H(n) and c(n) match hand-computed values", () => {
  assert.equal(harmonicNumber(0), 0);
  assert.equal(harmonicNumber(1), 1);
  assert.equal(harmonicNumber(2), 1.5);
  assert.ok(Math.abs(harmonicNumber(3) - 11 / 6) < 1e-15);
  assert.ok(Math.abs(harmonicNumber(10) - 7381 / 2520) < 1e-15);
  // Beyond exact summation the asymptotic series takes over; both agree where they meet.
  assert.ok(Math.abs(harmonicNumber(2_000_000) - (Math.log(2e6) + 0.5772156649015329 + 1 / 4e6)) < 1e-12);
  assert.equal(averagePathLength(1), 0);
  assert.equal(averagePathLength(2), 1);
  // c(3) = 2·H(2) − 2·2/3 = 3 − 4/3; c(4) = 2·H(3) − 2·3/4 = 11/3 − 3/2.
  assert.ok(Math.abs(averagePathLength(3) - 5 / 3) < 1e-15);
  assert.ok(Math.abs(averagePathLength(4) - 13 / 6) < 1e-15);
  // c(256) = 2·H(255) − 510/256 ≈ 10.2487, exact in rationals (the paper's ψ = 256).
  assert.ok(Math.abs(averagePathLength(256) - 10.248689925634562) < 1e-12);
});

test("scores lie in (0, 1]; planted outliers score above the threshold, the holdout mostly below", () => {
  const forest = fitIsolationForest(holdout.input, holdout.rows, width, { seed: 7 });
  const json = forest.toJSON();
  assert.equal(json.trees.length, 100);
  assert.equal(json.subsample, 256);
  assert.equal(json.heightLimit, 8);
  let above = 0;
  for (let r = 0; r < holdout.rows; r++) {
    const s = forest.score(holdout.input.subarray(r * width, (r + 1) * width));
    assert.ok(s > 0 && s <= 1, `row ${r} scored ${s}`);
    if (forest.isAnomalous(s)) above++;
  }
  // The threshold is the 99th percentile of these very scores: about 1% lie at or above it.
  assert.ok(above >= 5 && above <= 12, `${above} of ${holdout.rows} holdout rows anomalous`);
  // Rows far from the holdout yet within the manifest's bounds.
  const planted = [
    { Seniority: 58, Time: 120, Expenses: 950, Income: 9500, Amount: 90000, Price: 190000 },
    { Assets: 900000, Debt: 800000, Income: 9000 },
    { Expenses: 999, Amount: 95000, Price: 150000, Time: 1 },
  ];
  const median = typicalRow();
  for (const change of planted) {
    const row = Float32Array.from(median);
    for (const [name, value] of Object.entries(change)) row[column(name)] = value;
    const s = forest.score(row);
    assert.ok(forest.isAnomalous(s), `${JSON.stringify(change)} scored ${s} < ${forest.threshold}`);
  }
  assert.ok(forest.score(median) < forest.threshold);
});

test("a missing value the reference rarely shows scores higher than one it often shows", () => {
  const forest = fitIsolationForest(holdout.input, holdout.rows, width, { seed: 1 });
  const base = typicalRow();
  const missingIncome = Float32Array.from(base);
  missingIncome[column("Income")] = Number.NaN;
  assert.ok(forest.score(missingIncome) > forest.score(base));
});

test("the same seed gives the same forest; another seed another; the JSON round trip keeps the scores", () => {
  const a = fitIsolationForest(holdout.input, holdout.rows, width, { seed: 3, trees: 20 });
  const b = fitIsolationForest(holdout.input, holdout.rows, width, { seed: 3, trees: 20 });
  const c = fitIsolationForest(holdout.input, holdout.rows, width, { seed: 4, trees: 20 });
  assert.deepEqual(a.toJSON(), b.toJSON());
  assert.notDeepEqual(a.toJSON(), c.toJSON());
  const restored = isolationForestFromJSON(JSON.parse(JSON.stringify(a)));
  assert.equal(restored.threshold, a.threshold);
  for (let r = 0; r < 50; r++) {
    const row = holdout.input.subarray(r * width, (r + 1) * width);
    assert.equal(restored.score(row), a.score(row));
  }
  const broken = JSON.parse(JSON.stringify(a));
  broken.trees[2].left[0] = 0;
  assert.throws(() => isolationForestFromJSON(broken), /trees\[2\]\.node 0: an internal node/);
  assert.throws(() => isolationForestFromJSON({ kind: "ddsketch" }), /kind must be "isolation-forest"/);
});

test("contamination moves the threshold; bad options are refused", () => {
  const loose = fitIsolationForest(holdout.input, holdout.rows, width, { seed: 3, contamination: 0.1 });
  const strict = fitIsolationForest(holdout.input, holdout.rows, width, { seed: 3 });
  assert.ok(loose.threshold < strict.threshold);
  assert.throws(
    () => fitIsolationForest(holdout.input, holdout.rows, width, { contamination: 0 }),
    RangeError,
  );
  assert.throws(() => fitIsolationForest(holdout.input, holdout.rows + 1, width), /expected/);
});

/** A row of each feature's median (the most common value for discrete features is close enough here). */
function typicalRow(): Float32Array {
  const row = new Float32Array(width);
  for (let j = 0; j < width; j++) {
    const values: number[] = [];
    for (let r = 0; r < holdout.rows; r++) {
      const v = holdout.input[r * width + j]!;
      if (!Number.isNaN(v)) values.push(v);
    }
    values.sort((x, y) => x - y);
    row[j] = values[Math.floor(values.length / 2)]!;
  }
  return row;
}

test("a hand-built tree scores by s = 2^(−h/c(ψ)), with c(size) added at external nodes", () => {
  // ψ = 4. Root: x < 5 → node 1 (1 row); else node 2: x < 10 → node 3 (2 rows), else node 4 (1 row).
  // Missing values are split as −10.
  const forest = isolationForestFromJSON({
    kind: "isolation-forest",
    version: 1,
    width: 1,
    seed: 0,
    subsample: 4,
    heightLimit: 2,
    missingAs: [-10],
    contamination: 0.01,
    threshold: 0.6,
    trees: [
      {
        feature: [0, -1, 0, -1, -1],
        threshold: [5, 0, 10, 0, 0],
        left: [1, -1, 3, -1, -1],
        right: [2, -1, 4, -1, -1],
        size: [0, 1, 0, 2, 1],
      },
    ],
  });
  const c4 = 13 / 6;
  // x = 0: one edge, a leaf of one row: h = 1.
  assert.ok(Math.abs(forest.score([0]) - 2 ** (-1 / c4)) < 1e-15);
  // x = 7: two edges into a leaf of two rows: h = 2 + c(2) = 3.
  assert.ok(Math.abs(forest.score([7]) - 2 ** (-3 / c4)) < 1e-15);
  // x = 12: two edges, one row: h = 2.
  assert.ok(Math.abs(forest.score([12]) - 2 ** (-2 / c4)) < 1e-15);
  // Missing: split as −10, the left leaf.
  assert.equal(forest.score([Number.NaN]), forest.score([0]));
  assert.ok(forest.isAnomalous(forest.score([0])));
  assert.ok(!forest.isAnomalous(forest.score([7])));
});

test("two distinct rows with ψ = 2: every path has length 1 = c(2), so every score is 0.5", () => {
  const forest = fitIsolationForest([0, 1], 2, 1, { trees: 5, seed: 9 });
  for (const x of [0, 0.5, 1, 100, Number.NaN]) assert.equal(forest.score([x]), 0.5);
});
