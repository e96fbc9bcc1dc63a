import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { encodeValue, type FeatureValue } from "../decision/input.js";
import { readXGBoostModel } from "../runtime/xgboost/model.js";
import { computeMargins } from "../runtime/xgboost/predict.js";
import { DEMO_XGB, holdoutInstances, loadManifest, REPO_ROOT } from "../testing/index.js";
import {
  binOf,
  categoryBins,
  createLimeExplainer,
  percentile,
  quartileBins,
  quartileBoundaries,
  stabilityOf,
  topFeatures,
} from "./lime.js";
import { seededRandom } from "./random.js";

/** What scripts/fixtures/make_explain_fixtures.py records from numpy for each column. */
interface QuartileCase {
  readonly name: string;
  readonly values: (number | null)[];
  readonly boundaries: number[];
  readonly bins: (number | null)[];
  readonly bin_stats: { count: number; mean: number; std: number }[];
}

function close(actual: number, expected: number, relative: number): boolean {
  return Math.abs(actual - expected) <= relative * Math.max(1, Math.abs(expected));
}

/** Independent uniform [0, 1) features. */
function uniformData(seed: number, rows: number, features: number): Float32Array {
  const random = seededRandom(seed);
  return Float32Array.from({ length: rows * features }, () => random.next());
}

function linear(coefficients: readonly number[]) {
  const m = coefficients.length;
  return (input: Float32Array, rows: number) =>
    Float64Array.from({ length: rows }, (_, r) =>
      coefficients.reduce((s, c, j) => s + c * input[r * m + j]!, 0),
    );
}

test("quartiles, bins and per-bin statistics equal numpy's percentile, searchsorted, mean and std", () => {
  const fixture = JSON.parse(readFileSync(`${REPO_ROOT}fixtures/explain/quartiles.json`, "utf8")) as {
    cases: QuartileCase[];
  };
  assert.ok(fixture.cases.length >= 10);
  for (const c of fixture.cases) {
    const values = Float64Array.from(c.values, (v) => v ?? Number.NaN);
    const boundaries = quartileBoundaries(values);
    assert.equal(boundaries.length, c.boundaries.length, `${c.name}: boundaries ${boundaries}`);
    boundaries.forEach((b, i) => {
      assert.ok(close(b, c.boundaries[i]!, 1e-14), `${c.name} boundary ${i}: ${b} vs ${c.boundaries[i]}`);
    });
    c.values.forEach((v, i) => {
      const expected = c.bins[i] ?? boundaries.length + 1; // NaN: the missing-value bin
      assert.equal(binOf(boundaries, v ?? Number.NaN), expected, `${c.name} value ${v}`);
    });
    const bins = quartileBins(values);
    c.bin_stats.forEach((s, b) => {
      assert.ok(close(bins.frequency[b]! * values.length, s.count, 1e-12), `${c.name} bin ${b} count`);
      assert.ok(close(bins.mean[b]!, s.mean, 1e-12), `${c.name} bin ${b} mean ${bins.mean[b]} vs ${s.mean}`);
      assert.ok(close(bins.std[b]!, s.std, 1e-9), `${c.name} bin ${b} std ${bins.std[b]} vs ${s.std}`);
    });
    const missing = c.values.filter((v) => v === null).length;
    assert.ok(
      close(bins.frequency[boundaries.length + 1]! * values.length, missing, 1e-12),
      `${c.name} missing`,
    );
  }
  assert.equal(percentile([1, 2, 3, 4], 50), 2.5);
  assert.deepEqual(quartileBoundaries([Number.NaN, Number.NaN]), []);
});

test("categories keep their codes and training frequencies, missing counted last", () => {
  const bins = categoryBins([2, 0, 2, Number.NaN, 2, 0, 5, 2]);
  assert.deepEqual(bins.categories, [0, 2, 5]);
  assert.deepEqual([...bins.frequency], [2 / 8, 4 / 8, 1 / 8, 1 / 8]);
});

test("a linear model of independent features: weights ≈ c_j × (E[x | x's bin] − E[x | other bins])", async () => {
  // x sits in the top quartile of every uniform feature. y is exactly linear in the bin indicators (the
  // within-bin noise is independent of them), so the weighted regression recovers c_j times the gap between
  // the top bin's mean and the other bins' (about 0.875 − 0.375 = ½), up to sampling noise and a negligible
  // ridge shrinkage. Over 20 seeds the weights averaged 0.49–0.51 c_j with standard deviations of
  // 0.017–0.028; the bound of 0.1 is about four of them.
  const c = [3, -2, 1, 0.5, 0, -0.25];
  const m = c.length;
  const lime = createLimeExplainer(linear(c), { data: uniformData(1, 2000, m), rows: 2000, features: m });
  const x = Float32Array.from({ length: m }, () => 0.9);
  const { explanation } = await lime.explain(x, { seed: 3, runs: 1 });
  c.forEach((cj, j) => {
    const { mean, frequency } = lime.bins[j]!;
    const rest =
      (mean[0]! * frequency[0]! + mean[1]! * frequency[1]! + mean[2]! * frequency[2]!) / (1 - frequency[3]!);
    const expected = cj * (mean[3]! - rest);
    const w = explanation.weights[j]!;
    assert.ok(Math.abs(w - expected) < 0.1, `feature ${j}: weight ${w}, expected about ${expected}`);
  });
  assert.deepEqual(topFeatures(explanation.weights, 5), [0, 1, 2, 3, 5], "ordered by |c_j|");
  // The indicators explain Σc²·Var(½b) / Σc²·Var(x) = (¼ · 3/16) / (1/12) ≈ 0.56 of the variance; the rest
  // is the spread within bins, which no binary surrogate can follow.
  assert.ok(explanation.score > 0.45 && explanation.score < 0.7, `R² ${explanation.score}`);
  const prediction = c.reduce((s, cj) => s + cj * Math.fround(0.9), 0);
  assert.ok(Math.abs(explanation.prediction - prediction) < 1e-12);
  const sum = explanation.weights.reduce((s, w) => s + w, explanation.intercept);
  assert.ok(Math.abs(explanation.localPrediction - sum) < 1e-12);
  assert.deepEqual(explanation.conditions[0], {
    kind: "range",
    lower: lime.bins[0]!.boundaries[2],
    upper: Number.POSITIVE_INFINITY,
  });
});

test("a categorical feature: its weight is the model's jump between x's category and the others", async () => {
  // f = 2 when column 0 holds category 1, else 0; column 1 is noise the model ignores.
  const random = seededRandom(8);
  const data = Float32Array.from({ length: 600 * 2 }, (_, i) =>
    i % 2 === 0 ? random.int(3) : random.normal(),
  );
  const scorer = (input: Float32Array, rows: number) =>
    Float64Array.from({ length: rows }, (_, r) => (input[r * 2] === 1 ? 2 : 0));
  const lime = createLimeExplainer(scorer, { data, rows: 600, features: 2 }, { categorical: [0] });
  const { explanation } = await lime.explain(Float32Array.from([1, 0.3]), { runs: 1 });
  assert.ok(Math.abs(explanation.weights[0]! - 2) < 0.02, `weight ${explanation.weights[0]}`);
  assert.ok(Math.abs(explanation.weights[1]!) < 0.02, `weight ${explanation.weights[1]}`);
  assert.ok(explanation.score > 0.99);
  assert.deepEqual(explanation.conditions[0], { kind: "category", value: 1 });
});

test("missing values: a bin of their own, sampled at their training rate and sent as NaN", async () => {
  const random = seededRandom(4);
  const data = Float32Array.from({ length: 1000 }, () =>
    random.next() < 0.3 ? Number.NaN : random.normal(),
  );
  let missing = 0;
  let rows = 0;
  const scorer = (input: Float32Array, count: number) => {
    // Row 0 of each run of 5,000 is x itself.
    for (let i = 0; i < count; i++) if (i % 5000 !== 0 && Number.isNaN(input[i]!)) missing++;
    rows += count - count / 5000;
    return Float64Array.from({ length: count }, (_, i) => (Number.isNaN(input[i]!) ? 1 : 0));
  };
  const lime = createLimeExplainer(scorer, { data, rows: 1000, features: 1 });
  // Ten runs of 5,000 samples: the sampled rate has a standard deviation of 0.002 around the training rate.
  const { explanation } = await lime.explain(Float32Array.from([Number.NaN]), { runs: 10 });
  const rate = missing / rows;
  const trained = lime.bins[0]!.frequency[lime.bins[0]!.boundaries.length + 1]!;
  assert.ok(Math.abs(trained - 0.3) < 0.05);
  assert.ok(Math.abs(rate - trained) < 0.01, `rate ${rate} vs ${trained}`);
  // The jump is 1; ridge's alpha = 1 against a weighted indicator variance of several hundred shrinks it
  // by a few 1e-3.
  assert.ok(
    Math.abs(explanation.weights[0]! - 1) < 0.01,
    `the model's jump at missing: ${explanation.weights[0]}`,
  );
  assert.deepEqual(explanation.conditions[0], { kind: "missing" });
});

test("the same seed gives the same explanation, another seed another; one scorer call for all runs", async () => {
  const c = [1, 1, 0.9, 0.3];
  let calls = 0;
  const scorer = async (input: Float32Array, rows: number) => {
    calls++;
    return linear(c)(input, rows);
  };
  const lime = createLimeExplainer(scorer, { data: uniformData(2, 500, 4), rows: 500, features: 4 });
  const x = Float32Array.from([0.1, 0.95, 0.5, 0.3]);
  const a = await lime.explain(x, { seed: 7 });
  assert.equal(calls, 1, "ten runs × 5,000 samples in one call");
  const b = await lime.explain(x, { seed: 7 });
  const other = await lime.explain(x, { seed: 8 });
  assert.deepEqual([...a.explanation.weights], [...b.explanation.weights]);
  assert.deepEqual(a.stability, b.stability);
  assert.notDeepEqual([...a.explanation.weights], [...other.explanation.weights]);
  // Run 2 of seed 7 is run 1 of seed 8: the stability runs are the explanations of the next seeds.
  const single = await lime.explain(x, { seed: 8, runs: 1 });
  assert.deepEqual([...single.explanation.weights], [...other.explanation.weights]);
});

test("stability: 1 and 0 for clear reasons, lower agreement when two features tie for the last place", async () => {
  const data = uniformData(3, 1000, 6);
  const x = Float32Array.from({ length: 6 }, () => 0.9);
  const clear = createLimeExplainer(linear([4, -3, 2, 1.5, 0.1, 0]), { data, rows: 1000, features: 6 });
  const steady = (await clear.explain(x)).stability;
  assert.equal(steady.runs, 10);
  assert.equal(steady.k, 4);
  assert.equal(steady.changedPairs, 0);
  assert.equal(steady.meanJaccard, 1);
  assert.deepEqual([...steady.topKFrequency], [1, 1, 1, 1, 0, 0]);
  // Features 3 and 4 have the same coefficient: which one makes the top 4 is down to sampling noise.
  const tied = createLimeExplainer(linear([4, -3, 2, 1, 1, 0]), { data, rows: 1000, features: 6 });
  const shaky = (await tied.explain(x)).stability;
  assert.ok(shaky.changedPairs > 0.2 && shaky.changedPairs < 1, `changed ${shaky.changedPairs}`);
  assert.ok(shaky.meanJaccard < 1 && shaky.meanJaccard >= 0.6, `jaccard ${shaky.meanJaccard}`);
  const total = shaky.topKFrequency.reduce((s, f) => s + f, 0);
  assert.ok(Math.abs(total - 4) < 1e-12, "k features per run");
  assert.ok(Math.abs(shaky.topKFrequency[3]! + shaky.topKFrequency[4]! - 1) < 1e-12);
});

test("stability figures by hand: pairs of top-2 sets and their Jaccard similarity", () => {
  // Top-2 sets {0,1}, {0,1}, {0,2}: pairs (a,b) same, (a,c) and (b,c) differ with Jaccard 1/3.
  const s = stabilityOf(
    [
      [3, 2, 1],
      [3, -2, 1],
      [3, 1, -2],
    ],
    2,
  );
  assert.equal(s.changedPairs, 2 / 3);
  assert.ok(Math.abs(s.meanJaccard - (1 + 1 / 3 + 1 / 3) / 3) < 1e-15);
  assert.deepEqual([...s.topKFrequency], [1, 2 / 3, 1 / 3]);
  assert.deepEqual(stabilityOf([[1, 2]], 1), {
    runs: 1,
    k: 1,
    changedPairs: 0,
    meanJaccard: 1,
    topKFrequency: Float64Array.from([0, 1]),
  });
});

test("credit demo: finite weights, a score in [0, 1], and the model's own margin as prediction", async () => {
  const manifest = loadManifest(DEMO_XGB);
  const model = readXGBoostModel(manifest.artifact.absolutePath);
  const m = manifest.modelFeatures.length;
  const encoded = holdoutInstances(manifest).map(({ features }) =>
    manifest.modelFeatures.map((f) => encodeValue(f, (features[f.name] ?? null) as FeatureValue)),
  );
  const data = Float32Array.from(encoded.flat());
  const scorer = (input: Float32Array, rows: number) => {
    const out = new Float64Array(rows);
    computeMargins(model, input, rows, out);
    return out;
  };
  const categorical = manifest.modelFeatures.flatMap((f, j) =>
    f.type === "category" || f.type === "boolean" ? [j] : [],
  );
  assert.equal(categorical.length, 3);
  const lime = createLimeExplainer(scorer, { data, rows: encoded.length, features: m }, { categorical });
  const x = data.slice(5 * m, 6 * m);
  const { explanation, stability } = await lime.explain(x, { runs: 3, seed: 2 });
  assert.ok(explanation.weights.every(Number.isFinite));
  assert.ok(explanation.score > 0 && explanation.score <= 1, `score ${explanation.score}`);
  assert.equal(explanation.prediction, scorer(x, 1)[0]);
  assert.equal(stability.runs, 3);
  assert.throws(
    () => createLimeExplainer(scorer, { data, rows: 10, features: m }, { categorical: [m] }),
    RangeError,
  );
  await assert.rejects(lime.explain(data.slice(0, m - 1)), RangeError);
});
