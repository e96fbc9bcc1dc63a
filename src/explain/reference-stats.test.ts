import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, test } from "node:test";
import { loadManifest, parseManifest } from "../config/index.js";
import type { WardenError } from "../errors/index.js";
import { DEMO_XGB, HOLDOUT_CSV, tempDir, xgboostHoldoutReference } from "../testing/index.js";
import {
  computeReferenceStats,
  type DiscreteStats,
  favorableQuantile,
  type NumericStats,
  quantile,
  readReferenceRows,
  statsOf,
} from "./reference-stats.js";

const manifest = loadManifest(DEMO_XGB);
const reference = readReferenceRows(manifest, HOLDOUT_CSV);
// XGBoost's own probabilities for the holdout (made in Python), so the favourable split is independent of
// the native engine.
const scores = Float64Array.from(xgboostHoldoutReference());
const stats = computeReferenceStats(manifest, reference, scores);
const dir = tempDir("reference");
after(dir.remove);

const numeric = (name: string) => statsOf(stats, name) as NumericStats;
const discrete = (name: string) => statsOf(stats, name) as DiscreteStats;
const near = (actual: number | null | undefined, expected: number, what: string) =>
  assert.ok(actual != null && Math.abs(actual - expected) < 1e-9, `${what}: ${actual} vs ${expected}`);

test("quantiles interpolate between order statistics (type 7, as NumPy)", () => {
  near(quantile([1, 2, 3, 4], 0.25), 1.75, "q25");
  near(quantile([1, 2, 3, 4], 0.5), 2.5, "median");
  near(quantile([1, 2, 3, 4], 1), 4, "max");
  near(quantile([10, 20, 30, 40, 50], 0.9), 46, "q90");
  near(quantile([7], 0.3), 7, "one value");
  assert.ok(Number.isNaN(quantile([], 0.5)));
});

test("the holdout is read and encoded as the model sees it", () => {
  assert.equal(reference.rows, 891);
  assert.equal(reference.input.length, 891 * 11);
  // First data line: "good",9,"rent",60,30,"married","no","freelance",73,129,0,0,800,846 (Age, Marital dropped).
  assert.deepEqual(Array.from(reference.input.subarray(0, 11)), [9, 0, 60, 0, 1, 73, 129, 0, 0, 800, 846]);
  let missingIncome = 0;
  for (let r = 0; r < reference.rows; r++) if (Number.isNaN(reference.input[r * 11 + 6]!)) missingIncome++;
  assert.equal(missingIncome, 891 - 816);
});

// Expected numbers below were computed in Python (csv + the quantile formula, checked against
// numpy.quantile) from holdout.csv and XGBoost's reference predictions, favourable = P(bad) < 0.5.
test("statistics of the holdout match an independent computation", () => {
  assert.equal(stats.rows, 891);
  assert.equal(stats.favorableRows, 727);
  assert.equal(stats.favorableLabel, "good");
  assert.deepEqual(
    stats.features.map((f) => f.name),
    manifest.modelFeatures.map((f) => f.name),
  );
  const income = numeric("Income");
  assert.equal(income.kind, "numeric");
  assert.equal(income.favorable.present, 696);
  assert.equal(income.favorable.missing, 31);
  for (const [i, q] of [59.5, 71, 100, 130, 172.25, 233, 292.25].entries()) {
    near(income.favorable.quantiles[i], q, `Income q${i}`);
  }
  assert.equal(income.all.present, 816);
  assert.equal(income.all.missing, 75);
  near(income.all.min, 6, "min");
  near(income.all.median, 125, "median");
  near(income.all.max, 959, "max");
  near(income.all.scale, 37, "Income MAD");
  near(favorableQuantile(income, 0.5), 130, "Income favourable median");
  assert.equal(favorableQuantile(income, 0.3), undefined);
  const seniority = numeric("Seniority");
  // 20.4 is 20.399999999999977 in Python's arithmetic: compared with a tolerance.
  for (const [i, q] of [0, 1, 2, 6, 14, 20.4, 26].entries())
    near(seniority.favorable.quantiles[i], q, `Seniority q${i}`);
  near(seniority.all.scale, 4, "Seniority MAD");
  // Most debts are 0: the MAD and the interquartile range are 0, so the mean absolute deviation is the scale.
  near(numeric("Debt").all.scale, 285.09684684684686, "Debt scale");
  near(numeric("Amount").all.scale, 300, "Amount MAD");

  const home = discrete("Home");
  assert.equal(home.kind, "discrete");
  assert.deepEqual(home.favorable.counts, {
    rent: 142,
    owner: 366,
    parents: 133,
    priv: 41,
    ignore: 2,
    other: 42,
  });
  assert.equal(home.favorable.missing, 1);
  assert.equal(home.all.present, 890);
  assert.deepEqual(discrete("Records").favorable.counts, { false: 651, true: 76 });
  assert.deepEqual(discrete("Job").favorable.counts, { fixed: 506, freelance: 154, partime: 41, others: 26 });
});

test("statistics are frozen plain data: JSON gives them back unchanged", () => {
  assert.ok(
    Object.isFrozen(stats) &&
      Object.isFrozen(stats.features[0]) &&
      Object.isFrozen(numeric("Income").favorable),
  );
  assert.deepEqual(JSON.parse(JSON.stringify(stats)), stats);
});

/** A two-feature manifest whose favourable label is the scored one, so the split runs the other way. */
function smallManifest() {
  return parseManifest(
    {
      name: "small",
      version: "1",
      owner: "t",
      intended_use: "t",
      risk_tier: "minimal",
      task: "binary",
      artifact: { path: "m.json", format: "xgboost-json", sha256: "0".repeat(64) },
      features: [
        { name: "x", type: "number", nullable: true },
        { name: "flag", type: "boolean" },
      ],
      output: { labels: ["no", "yes"], positive_label: "yes", favorable_label: "yes", threshold: 0.5 },
    },
    join(dir.path, "small.yaml"),
  );
}

test("favourable rows follow favorable_label; the scale falls back when half the values are equal", () => {
  const m = smallManifest();
  // x: six 0s, 20, NaN; flag alternates. Scores ≥ 0.5 decide "yes", the favourable label here.
  const xs = [0, 0, 0, 0, 0, 0, 20, Number.NaN];
  const input = new Float32Array(xs.flatMap((x, i) => [x, i % 2]));
  const s = computeReferenceStats(
    m,
    { input, rows: 8 },
    Float64Array.from([0.9, 0.1, 0.9, 0.1, 0.9, 0.9, 0.9, 0.9]),
  );
  assert.equal(s.favorableRows, 6);
  assert.equal(s.favorableLabel, "yes");
  const x = s.features[0] as NumericStats;
  assert.equal(x.favorable.present, 5);
  assert.equal(x.favorable.missing, 1);
  near(x.favorable.quantiles[3], 0, "favourable median of 0, 0, 0, 0, 20");
  near(x.favorable.quantiles[6], 16, "favourable q95 of 0, 0, 0, 0, 20");
  // Median 0, MAD 0, IQR (q75 = 0) 0: the mean absolute deviation (20 / 7) is the scale.
  near(x.all.scale, 20 / 7, "mean absolute deviation");
  const flag = s.features[1] as DiscreteStats;
  assert.deepEqual(flag.favorable.counts, { false: 4, true: 2 });
  assert.deepEqual(flag.all.counts, { false: 4, true: 4 });
  // IQR / 2 when the MAD is 0 but the quartiles differ: 0, 0, 0, 1, 2 → MAD 0, IQR 1 − 0.
  const quartiles = computeReferenceStats(
    m,
    { input: new Float32Array([0, 0, 0, 0, 0, 0, 1, 0, 2, 0]), rows: 5 },
    new Float64Array(5).fill(0.2),
  );
  assert.equal(quartiles.favorableRows, 0);
  near((quartiles.features[0] as NumericStats).all.scale, 0.5, "half the IQR");
  assert.deepEqual((quartiles.features[0] as NumericStats).favorable.quantiles, []);
  const constant = computeReferenceStats(
    m,
    { input: new Float32Array([3, 0, 3, 1]), rows: 2 },
    Float64Array.from([1, 1]),
  );
  near((constant.features[0] as NumericStats).all.scale, 1, "constant feature");
  const absent = computeReferenceStats(
    m,
    { input: new Float32Array([Number.NaN, 0]), rows: 1 },
    Float64Array.from([1]),
  );
  assert.equal((absent.features[0] as NumericStats).all.median, null);
  assert.deepEqual(JSON.parse(JSON.stringify(absent)), absent);
});

test("sizes that disagree, non-finite scores and non-binary models are refused", () => {
  const m = smallManifest();
  assert.throws(
    () => computeReferenceStats(m, { input: new Float32Array(3), rows: 2 }, new Float64Array(2)),
    RangeError,
  );
  assert.throws(
    () =>
      computeReferenceStats(m, { input: new Float32Array(4), rows: 2 }, Float64Array.from([0.1, Number.NaN])),
    /scored reference row 1 NaN/,
  );
  const regression = parseManifest(
    { ...structuredClone(m.source as object), task: "regression", output: {} },
    m.manifestPath,
  );
  assert.throws(
    () => computeReferenceStats(regression, { input: new Float32Array(0), rows: 0 }, new Float64Array(0)),
    /binary task/,
  );
});

test("bad reference files are refused naming the file, the line and the feature", () => {
  const m = smallManifest();
  const write = (name: string, text: string) => {
    const path = join(dir.path, name);
    writeFileSync(path, text);
    return path;
  };
  const refused = (path: string, pattern: RegExp) =>
    assert.throws(
      () => readReferenceRows(m, path),
      (error: WardenError) => {
        assert.equal(error.code, "WARDEN_ERR_MANIFEST_INVALID");
        assert.match(error.message, /\/policy\/explanations\/reference/);
        assert.match(error.message, pattern);
        return true;
      },
    );
  const good = write("good.csv", "x,flag,label\n1.5,yes,a\nNA,0,b\n");
  const rows = readReferenceRows(m, good);
  assert.equal(rows.rows, 2);
  assert.deepEqual(Array.from(rows.input), [1.5, 1, Number.NaN, 0]);
  refused(write("no-column.csv", "x,label\n1,a\n"), /no column flag/);
  refused(write("empty.csv", ""), /no rows/);
  refused(
    write("bad-cell.csv", "x,flag\n1,yes\n2,perhaps\nabc,no\n"),
    /bad-cell\.csv:3: features\.flag: expected true or false/,
  );
  refused(
    write("bad-cell-2.csv", "x,flag\nabc,no\n"),
    /bad-cell-2\.csv:2: features\.x: expected a finite number/,
  );
  refused(join(dir.path, "none.csv"), /cannot be read/);
});
